"""The embedding stage: meaning, not keywords. MiniLM text prototypes, a kNN vote over labelled
examples and (when CLIP artefacts and GIF bytes are there) CLIP frames against prompt prototypes.

Each signal becomes a distribution over the categories; the stage's scores are their weighted mean,
so they lie in [0, 1], sum to 1 and the cascade's min_score/min_margin apply directly. The encoders are
ports (gifcat.domain.ports), loaded by gifcat.adapters.embeddings.factory; prototypes are built once,
in the constructor; `score` costs one MiniLM run (~1-3 ms) plus, with a GIF, one CLIP batch.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from gifcat.config import StageOptions
from gifcat.domain.artefact import BUNDLED, IN_PROCESS
from gifcat.domain.lexicon import Lexicon
from gifcat.domain.memory import Learned, LinearHead, Memory
from gifcat.domain.model import (
    Candidate,
    Classification,
    GifItem,
    GifMetadata,
    Neighbour,
    StageName,
    StageOutput,
)
from gifcat.domain.normalise import normalise_tag, words
from gifcat.domain.ports import FrameLimits, GifDecodeError, ImageEncoder, TextEncoder
from gifcat.domain.records import LabelledRecord
from gifcat.domain.stages import NO_TEXT_NO_IMAGE_MODEL, Stage
from gifcat.domain.taxonomy import Taxonomy, category_name_pattern

# "Happy Dance GIF by Originals" -> "Happy Dance": the "GIF by <brand>" suffix says nothing of content.
_TITLE_NOISE = re.compile(r"\s*\b(gifs?|animated gif)\b(\s+by\s+.*)?\s*$", re.IGNORECASE)


Signal = Literal["text", "knn", "classifier", "image", "lexicon"]  # what the stage mixes (`weights`)
DEFAULT_WEIGHTS: dict[Signal, float] = {
    "text": 0.4, "knn": 0.3, "classifier": 0.3, "image": 0.15, "lexicon": 1.0,
}


class EmbeddingOptions(StageOptions):
    """The knobs under `stages.embedding` in settings.yaml (beside min_score/min_margin)."""

    text_model: str = "model.onnx"  # graph in <models>/minilm: model.onnx (shipped int8) or model.pc.onnx
    image_model: str = "image.onnx"  # graph in <models>/clip: image.onnx (fp32) or image.int8.onnx
    # onnxruntime intra-op threads: a number (0: one per core onnxruntime sees) or "auto", one per CPU
    # the process can keep busy (a Lambda function gets one per 1,769 MB; adapters.cpus).
    threads: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    # ...for CLIP's towers, when they should differ (None: `threads`). A GIF's frames are one batch, a
    # larger run than one text, where a second thread of its own pays more than for MiniLM.
    image_threads: Annotated[int, Field(ge=0)] | Literal["auto"] | None = None
    spin: bool = False  # those threads busy-wait between runs (adapters.embeddings.text.session_options)
    frames: int = Field(4, ge=1)  # GIF frames CLIP sees (one batch)
    k: int = Field(11, ge=1)  # neighbours in the kNN vote
    # Tuned on dev.jsonl with leave-one-out kNN (text 0.853 alone, 0.863 with kNN); image is untuned.
    weights: dict[Signal, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS)
    )  # a misspelt signal ("txt") would silently drop out of the mix
    # Decide only when the text prototypes, the neighbours and the classifier name the same category.
    # Off by default: the calibrated margin already falls where they disagree, and under cross-validation
    # the hard rule only cost coverage (docs/results/README.md). A category with no labelled example is never
    # decided here either way (see `learned_categories`).
    require_agreement: bool = False
    # ...and only when the tags read alone and the description read alone name the same category. Off by
    # default: with the description read alone (below) the mixed margin already falls where they disagree,
    # and under cross-validation the rule cost coverage and bought no accuracy (docs/results/README.md).
    require_field_agreement: bool = False
    # The description read alone is a second reading, mixed with the whole text's at this weight. The
    # description says what happens in the scene; the whole text is mostly tags and title, and a team
    # name, a figure of speech or an ironic hashtag in them outweighs one sentence there
    # (docs/results/README.md: chosen on dev under cross-validation). 0: the whole text alone, as before.
    description_weight: float = Field(0.5, ge=0, le=1)
    # A category's own name in the text ("Hurricane flattens a town — food", "surprised!!") is evidence
    # only when the rest of the text agrees: the text is read again without the taxonomy's names (one
    # more text in the same batch) and the stage abstains when that reading puts another category first.
    # A name set beside a scene is how misleading and planted text looks (docs/results/README.md).
    names_need_the_rest: bool = True
    # MiniLM reads English. When less than this share of the text's letters are in words its vocabulary
    # holds whole (or the taxonomy's English aliases, which its prototypes read), the stage abstains,
    # and the taxonomy's aliases found in the text, its words in other languages (`aliases_by_language`)
    # among them, join the ranking it hands on, as the `lexicon` signal. 0: off. Chosen on dev and
    # dev-hard (no dev record under it, 4 of dev-hard's 10 multilingual ones), measured on held-out
    # records in docs/results/README.md ("Text MiniLM cannot read").
    min_known_share: float = Field(0.4, ge=0, le=1)
    text_temperature: float = Field(0.03, gt=0)  # softmax over prototype cosines (MiniLM's span ~0.1-0.7)
    knn_temperature: float = Field(0.1, gt=0)  # neighbour weight exp(cos / T): close neighbours count more
    image_temperature: float = Field(0.01, gt=0)  # CLIP's own logit scale is 100
    labelled: str | None = None  # JSONL (dev.jsonl format) for the kNN vote; none: no vote
    # The memory artefact (<models>/memory/memory.npz: the labelled examples embedded at build time and
    # the trained classifier). "auto": use it when `labelled` is "bundled" and it exists.
    memory: str = "auto"
    verify_checksums: bool = True  # hash the artefacts against their manifest at load (~30 ms)
    # How often the embed function asks whether `gifcat learn` published a newer artefact (seconds;
    # 0: on every invocation). Only with GIFCAT_ARTEFACTS set (gifcat.application.artefacts).
    refresh_s: float = Field(300, ge=0)
    max_canvas_pixels: int = Field(FrameLimits.max_canvas_pixels, gt=0)
    max_frames_decoded: int = Field(FrameLimits.max_frames_decoded, gt=0)
    max_decode_pixels: int = Field(FrameLimits.max_decode_pixels, gt=0)


def item_text(title: str, tags: Sequence[str], description: str, generic: frozenset[str]) -> str:
    """The text MiniLM sees: title (minus "GIF by ..."), tags as words (generic ones dropped), description."""
    title = _TITLE_NOISE.sub("", title.strip())
    kept = []
    for tag in tags:
        key = normalise_tag(tag)
        if key and key not in generic:
            kept.append(" ".join(words(tag.lstrip("#@ "))))  # "#HappyBirthday" -> "happy birthday"
    parts = [title, ", ".join(dict.fromkeys(kept)), description.strip()]
    return ". ".join(p for p in parts if p)


def _softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = (x - x.max()) / max(temperature, 1e-6)
    e = np.exp(z)
    return e / e.sum()


class EmbeddingStage(Stage):
    name = StageName.EMBEDDING

    def __init__(
        self,
        taxonomy: Taxonomy,
        text_encoder: TextEncoder,
        text_identity: str,
        clip: ImageEncoder | None = None,
        labelled: Sequence[LabelledRecord] | None = None,
        options: EmbeddingOptions | None = None,
        clip_note: str | None = None,
        learned: Learned | None = None,
        artefact_version: str = BUNDLED,
        frames_to_llm: bool = False,
    ) -> None:
        """`frames_to_llm`: the LLM step reads a text-less GIF's frames, so without CLIP such an item is
        left to it; otherwise it is skipped here, before any LLM call."""
        self.taxonomy = taxonomy
        # Which learned artefact (memory and classifier) this stage scores with: recorded in each output.
        self.artefact_version = artefact_version
        self.frames_to_llm = frames_to_llm
        self.options = options or EmbeddingOptions()
        self.text = text_encoder
        self.clip = clip
        self._clip_note = clip_note
        self._categories = taxonomy.names
        self._index = {c: i for i, c in enumerate(self._categories)}
        self._generic = taxonomy.normalised_generic_tags
        self._text_identity = text_identity
        self._a_name = category_name_pattern(self._categories)
        self._lexicon = Lexicon(taxonomy)
        # Words MiniLM reads: its vocabulary's, and the English aliases its prototypes hold ("lol", "bday")
        self._alias_words = frozenset(
            word for cat in taxonomy.categories for alias in cat.aliases if alias.isascii()
            for word, _ in text_encoder.known_words(alias)
        )
        # Names every model this stage may use; each output names only those it did use.
        self.model = text_identity + (f",{clip.identity}" if clip else "")

        # Text prototypes: every phrase embedded; the prototype is their normalised mean; phrases are kept
        # to name the closest one in the evidence. On dev.jsonl (text only) description+examples gave
        # 0.816 top-1, adding the image prompts and one line of (ASCII) aliases 0.853.
        phrases: list[str] = []
        owners: list[int] = []
        for i, cat in enumerate(taxonomy.categories):
            alias_line = ", ".join(a for a in cat.aliases if a.isascii())
            for phrase in dict.fromkeys((cat.description, *cat.examples, *cat.prompts(), alias_line)):
                if phrase:
                    phrases.append(phrase)
                    owners.append(i)
        self._phrases = phrases
        self._phrase_owner = np.asarray(owners)
        # Embedded at build time with the memory when the taxonomy's phrases are the same (cold start).
        if learned is not None and learned.phrases == phrases:
            self._phrase_vecs = learned.phrase_vectors
        else:
            self._phrase_vecs = self.text.encode(phrases)
        protos = np.stack([self._phrase_vecs[self._phrase_owner == i].mean(axis=0)
                           for i in range(len(self._categories))])
        self._text_protos = protos / np.linalg.norm(protos, axis=1, keepdims=True)

        self._image_protos: np.ndarray | None = None
        if clip is not None:
            vecs = [clip.encode_texts(list(cat.prompts())).mean(axis=0) for cat in taxonomy.categories]
            arr = np.stack(vecs)
            self._image_protos = arr / np.linalg.norm(arr, axis=1, keepdims=True)

        self.labelled: Memory | None = None
        self.head: LinearHead | None = None
        if learned is not None:
            self.labelled, self.head = learned.memory.restricted_to(self._index), learned.head
        elif labelled is not None:
            self.labelled = self.embed_labelled(labelled)
        self._learned = self._learned_from(self.labelled, self.head)

    @property
    def text_identity(self) -> str:
        return self._text_identity

    @property
    def phrases(self) -> list[str]:
        return self._phrases

    @property
    def phrase_vectors(self) -> np.ndarray:
        return self._phrase_vecs

    @property
    def phrase_owners(self) -> list[int]:
        """The index (taxonomy order) of the category each of `phrases` belongs to."""
        return [int(i) for i in self._phrase_owner]

    @property
    def text_prototypes(self) -> np.ndarray:
        """One unit vector per category (taxonomy order): the normalised mean of its phrases' vectors."""
        return self._text_protos

    def with_learned(self, learned: Learned, version: str = IN_PROCESS) -> EmbeddingStage:
        """The same models with another memory and classifier: a published artefact (`version` as the
        store numbers it), or one learned in this process (cross-validation's folds, gifcat stream)."""
        other = copy.copy(self)
        other.labelled, other.head = learned.memory, learned.head
        other._learned = other._learned_from(other.labelled, other.head)
        other.artefact_version = version
        return other

    @property
    def learned_categories(self) -> frozenset[str] | None:
        """The categories the kNN memory or the classifier has labelled examples of; None when the stage
        has neither (prototypes are all it knows). A new category stays the LLM's until examples of it
        are learned: the memory and the classifier cannot vote for it, so a decision for it would rest on
        the prototypes alone."""
        return self._learned

    @staticmethod
    def _learned_from(labelled: Memory | None, head: LinearHead | None) -> frozenset[str] | None:
        # Once per memory (at load or relearn), not per item: a learned memory holds thousands of labels.
        if labelled is None and head is None:
            return None
        known = set(head.categories) if head is not None else set()
        if labelled is not None:
            known.update(label for labels in labelled.labels for label in labels)
        return frozenset(known)

    def embed_labelled(self, records: Sequence[LabelledRecord]) -> Memory:
        """The records that carry a label of this taxonomy, embedded as the kNN vote's memory."""
        known = set(self._categories)
        kept = [r for r in records if set(r.labels) & known]
        texts = [item_text(r.title, r.tags, r.description, self._generic) for r in kept]
        return Memory(
            ids=[r.id for r in kept],
            labels=[tuple(lbl for lbl in r.labels if lbl in known) for r in kept],
            primaries=[r.primary_among(known) or "" for r in kept],  # kept: each has a known label
            vectors=self.text.encode(texts),
            texts=texts,
            fields=[{"title": r.title, "tags": list(r.tags), "description": r.description} for r in kept],
        )

    def wants_gif(self, item: GifItem) -> bool:
        # Only CLIP reads it: without CLIP artefacts the step downloaded every GIF (up to 25 MB) unread.
        return self.clip is not None

    def text_of(self, item: GifItem) -> str:
        meta = item.metadata
        return item_text(meta.title, meta.tags, meta.description, self._generic)

    # ----------------------------------------------------------------------------------------------
    def score(self, item: GifItem, so_far: Classification | None = None) -> StageOutput:
        """Candidates for every category. A labelled example with the item's own id never votes for it
        (leave-one-out: honest numbers when calibrating on the labelled set)."""
        notes: list[str] = []
        usage: dict[str, int] = {}
        neighbours: list[Neighbour] = []
        n = len(self._categories)
        dists: dict[str, np.ndarray] = {}
        evidence: list[list[str]] = [[] for _ in range(n)]
        meta = item.metadata
        text = item_text(meta.title, meta.tags, meta.description, self._generic)

        # The tags and the description are also read apart (one batch): when each names a different
        # category, the metadata contradicts itself (reach hashtags, ironic tags) and the stage abstains.
        fields = {
            "tags": item_text("", meta.tags, "", self._generic),
            "description": meta.description.strip(),
        }
        apart = self.options.require_field_agreement and all(fields.values())
        # The description read alone (`description_weight`): only when the whole text holds more than it.
        described_text = fields["description"]
        reread = self.options.description_weight > 0 and bool(described_text) and text != described_text
        field_tops: dict[str, str] = {}
        described: np.ndarray | None = None
        unnamed = self._without_names(meta) if self.options.names_need_the_rest else None
        unnamed_top: str | None = None
        if text:
            # one batch: [whole text, tags, description], [whole text, description] or [whole text], and
            # the text without the category names last when they are asked for and it has some
            wanted = [text, *fields.values()] if apart else [text, described_text][: 1 + reread]
            batch = self.text.encode(wanted + ([unnamed] if unnamed else []))
            if unnamed:
                dist = self._mix(self._text_signals(batch[-1], item.id, [[] for _ in range(n)], []))
                unnamed_top, batch = self._categories[int(np.argmax(dist))], batch[:-1]
            vec = batch[0]
            if apart:
                for name, fvec in zip(fields, batch[1:], strict=True):
                    field_tops[name] = self._categories[int(np.argmax(self._text_protos @ fvec))]
            if reread:
                # its evidence and neighbours are not recorded: the whole text's are
                described = self._mix(self._text_signals(batch[-1], item.id, [[] for _ in range(n)], []))
            phrase_cos = self._phrase_vecs @ vec
            for i in range(n):
                mine = np.flatnonzero(self._phrase_owner == i)
                best = mine[np.argmax(phrase_cos[mine])]
                evidence[i].append(f"text≈'{_short(self._phrases[best])}' {phrase_cos[best]:.2f}")
            dists.update(self._text_signals(vec, item.id, evidence, neighbours))
        else:
            notes.append("text: no usable title, tags or description")

        known = self.known_share(meta)
        unreadable = known is not None and known < self.options.min_known_share
        if unreadable:
            notes.append(f"text: {known:.0%} of its letters are in words MiniLM knows")

        used_clip = False
        if self.clip is None:
            notes.append(self._clip_note or "image: no CLIP artefacts, text only")
        elif not item.gif:
            notes.append("image: no GIF bytes, text only")
        else:
            try:
                gif = self.clip.encode_gif(item.gif, self.options.frames)
            except GifDecodeError as exc:
                notes.append(f"image: {exc.reason}: {exc}; text only")
            else:
                assert self._image_protos is not None
                icos = self._image_protos @ gif.vector
                dists["image"] = _softmax(icos, self.options.image_temperature)
                for i in range(n):
                    evidence[i].append(f"image {icos[i]:.2f}")
                usage["frames"] = gif.frames
                used_clip = True
                if gif.considered < gif.found or gif.capped:
                    notes.append(f"image: sampled the first {gif.considered} of "
                                 f"{gif.found}{'+' if gif.capped else ''} frames")
                if gif.truncated:
                    notes.append("image: GIF truncated; used the complete frames")

        if not dists and self.clip is None and meta.is_empty:
            if self.frames_to_llm:
                notes.append("image: no CLIP artefacts; the LLM step reads the frames")
                return StageOutput(stage=self.name, model=self.model, notes=notes,
                                   abstained="no text, and no CLIP artefacts to look at the frames")
            return StageOutput(stage=self.name, model=self.model, notes=notes, skipped=NO_TEXT_NO_IMAGE_MODEL)
        if not dists:
            frames = "no CLIP artefacts to look at the frames" if self.clip is None else "no decodable GIF"
            return StageOutput(stage=self.name, model=self.model, notes=notes,
                               artefact_version=self.artefact_version,
                               error=f"nothing to embed: no title, tags or description, and {frames}")
        combined = self._mix(dists)
        if described is not None:
            w = self.options.description_weight
            combined = (1 - w) * combined + w * described
            best = int(np.argmax(described))
            evidence[best].append(f"description alone {described[best]:.2f}")
        lexicon = self._lexicon_signal(meta, evidence) if unreadable else None
        if lexicon is not None:
            # Where MiniLM cannot read the text, the taxonomy's words in the text's language order the
            # ranking handed on, mixed at `weights.lexicon` against 1 for everything else.
            w = float(self.options.weights.get("lexicon", 0.0))
            combined = (combined + w * lexicon) / (1.0 + w)
        model = self._text_identity + (f",{self.clip.identity}" if used_clip and self.clip else "")
        candidates = [
            Candidate(category=cat, score=float(np.clip(combined[i], 0.0, 1.0)), evidence=evidence[i])
            for i, cat in enumerate(self._categories)
        ]
        abstained = None
        learned = self.learned_categories
        top = self._categories[int(np.argmax(combined))]
        if learned is not None and top not in learned:
            abstained = f"no labelled example of {top} yet: the memory and the classifier cannot vote for it"
        if abstained is None and self.options.require_agreement:
            tops = {k: self._categories[int(np.argmax(d))] for k, d in dists.items() if k != "image"}
            if len(set(tops.values())) > 1:
                abstained = "signals disagree: " + ", ".join(f"{k} {c}" for k, c in tops.items())
        if abstained is None and len(set(field_tops.values())) > 1:
            abstained = "fields disagree: " + ", ".join(f"{k} {c}" for k, c in field_tops.items())
        if abstained is None and unreadable:
            abstained = (f"MiniLM reads English: {known:.0%} of the text's letters are in words it knows "
                         f"(under {self.options.min_known_share:.0%})")
        if abstained is None and unnamed_top is not None and unnamed_top != top:
            # Whichever names they are, they decide the ranking: the rest of the text says otherwise.
            abstained = (f"category names decide it: without them the text reads as {unnamed_top}, "
                         f"not {top}")
        return StageOutput(stage=self.name, candidates=candidates, model=model, notes=notes, usage=usage,
                           neighbours=neighbours, abstained=abstained,
                           artefact_version=self.artefact_version)

    def known_share(self, meta: GifMetadata) -> float | None:
        """The share of the text's letters in words MiniLM reads whole (its vocabulary, or an English
        alias its prototypes hold); None for a text without letters (emoji only). One character of
        another script is no word it reads: its vocabulary holds Chinese characters and Indic letters
        one by one (and BERT's normaliser cuts Indic words apart at their vowel signs)."""
        text = " ".join((meta.title, *(tag.lstrip("#@ ") for tag in meta.tags), meta.description))
        letters = known = 0
        for word, whole in self.text.known_words(text):
            letters += len(word)
            if (whole or word in self._alias_words) and (len(word) > 1 or word.isascii()):
                known += len(word)
        return known / letters if letters else None

    def _lexicon_signal(self, meta: GifMetadata, evidence: list[list[str]]) -> np.ndarray | None:
        """The categories the taxonomy's aliases (of any language) name in the tags, title and
        description, by how many different words name each (a word in a tag and the title is one);
        None when none does."""
        named: dict[str, set[str]] = {}
        for tag in meta.tags:
            whole = self._lexicon.tag(tag)
            found = {cat: [normalise_tag(tag)] for cat in whole} if whole else self._lexicon.words_in(tag)
            for cat, said in found.items():
                named.setdefault(cat, set()).update(said)
        for text in (meta.title, meta.description):
            for cat, said in self._lexicon.words_in(text).items():
                named.setdefault(cat, set()).update(said)
        votes = np.zeros(len(self._categories))
        for cat, words_of_cat in named.items():
            if cat in self._index:
                votes[self._index[cat]] = len(words_of_cat)
                evidence[self._index[cat]].append("words of the taxonomy: " + ", ".join(sorted(words_of_cat)))
        return votes / votes.sum() if votes.sum() > 0 else None

    def _without_names(self, meta: GifMetadata) -> str | None:
        """The item's text with the taxonomy's category names taken out; None when it names none, or
        holds nothing else."""
        if self._a_name is None:
            return None
        name = self._a_name
        if not name.search(" ".join((meta.title, *meta.tags, meta.description))):
            return None

        def strip(text: str) -> str:
            return " ".join(name.sub(" ", text).split())

        tags = [t for t in (strip(tag) for tag in meta.tags) if t.strip("#@ ")]
        rest = item_text(strip(meta.title), tags, strip(meta.description), self._generic)
        return rest if any(ch.isalnum() for ch in rest) else None

    def _text_signals(
        self, vec: np.ndarray, item_id: str, evidence: list[list[str]], neighbours: list[Neighbour]
    ) -> dict[str, np.ndarray]:
        """One text's distributions: prototypes, the kNN vote (when there is a memory) and the classifier
        (when there is a head); the last two add their evidence and neighbours to the lists given."""
        dists = {"text": _softmax(self._text_protos @ vec, self.options.text_temperature)}
        if self.labelled is not None and len(self.labelled.ids):
            knn = self._knn(vec, item_id, evidence, neighbours)
            if knn is not None:
                dists["knn"] = knn
        if self.head is not None:
            dists["classifier"] = self._classify(vec, evidence)
        return dists

    def _mix(self, dists: dict[str, np.ndarray]) -> np.ndarray:
        """The signals' distributions, weighted by `weights`."""
        configured: dict[str, float] = {str(k): v for k, v in self.options.weights.items()}
        weights = {k: float(configured.get(k, 0.0)) for k in dists}
        total = sum(weights.values())
        if total <= 0:  # all present signals weighted 0: fall back to an even mix rather than divide by 0
            weights, total = {k: 1.0 for k in dists}, float(len(dists))
        return np.sum([weights[k] * d for k, d in dists.items()], axis=0) / total

    def _classify(self, vec: np.ndarray, evidence: list[list[str]]) -> np.ndarray:
        assert self.head is not None
        probs = self.head.proba(vec)
        out = np.zeros(len(self._categories))
        for j, cat in enumerate(self.head.categories):  # the head may know fewer categories
            if cat in self._index:
                out[self._index[cat]] = probs[j]
        best = int(np.argmax(out))
        evidence[best].append(f"classifier {out[best]:.2f}")
        return out / out.sum() if out.sum() > 0 else out

    def _knn(
        self, vec: np.ndarray, item_id: str, evidence: list[list[str]], neighbours: list[Neighbour]
    ) -> np.ndarray | None:
        assert self.labelled is not None
        sims = self.labelled.vectors @ vec
        own = [j for j, rid in enumerate(self.labelled.ids) if rid == item_id]
        if own:
            sims = sims.copy()
            sims[own] = -np.inf  # leave-one-out
        k = min(self.options.k, int(np.isfinite(sims).sum()))
        if k <= 0:
            return None
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        for j in top:
            neighbours.append(Neighbour(
                id=self.labelled.ids[j], text=self.labelled.texts[j], primary=self.labelled.primaries[j],
                labels=list(self.labelled.labels[j]), similarity=round(float(sims[j]), 4),
            ))
        votes = np.zeros(len(self._categories))
        counts = np.zeros(len(self._categories), dtype=int)
        weights = np.exp((sims[top] - sims[top].max()) / max(self.options.knn_temperature, 1e-6))
        for j, w in zip(top, weights, strict=True):
            labels = self.labelled.labels[j]
            primary = self.labelled.primaries[j]
            for lbl in labels:
                i = self._index[lbl]
                # The primary carries a full vote, secondary labels half: "hamster eating" is cute first.
                votes[i] += w * (1.0 if lbl == primary else 0.5)
                counts[i] += 1
        if votes.sum() <= 0:
            return None
        for c in np.flatnonzero(counts):
            evidence[c].append(f"knn: {counts[c]}/{k} neighbours {self._categories[c]}")
        return votes / votes.sum()


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
