"""The embedding stage: meaning, not keywords. MiniLM text prototypes, a kNN vote over labelled
examples and (when CLIP artefacts and GIF bytes are there) CLIP frames against prompt prototypes.

Each signal becomes a distribution over the categories; the stage's scores are their weighted mean,
so they lie in [0, 1], sum to 1 and the cascade's min_score/min_margin apply directly. Models load once,
in the constructor; `score` costs one MiniLM run (~1-3 ms) plus, with a GIF, one CLIP batch.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from gifcat.adapters.embeddings.artefacts import (
    BUILD_HINT,
    ArtefactError,
    ModelFiles,
    locate_clip,
    locate_minilm,
)
from gifcat.adapters.embeddings.artefacts import models_dir as _resolve_models_dir
from gifcat.adapters.embeddings.frames import FrameLimits, GifDecodeError, sample_frames
from gifcat.adapters.embeddings.image import ClipEncoder
from gifcat.adapters.embeddings.text import TextEncoder
from gifcat.config import Settings
from gifcat.domain.memory import ARTEFACT as MEMORY_ARTEFACT
from gifcat.domain.memory import Learned, LinearHead, Memory
from gifcat.domain.model import Candidate, Classification, GifItem, Neighbour, StageName, StageOutput
from gifcat.domain.normalise import normalise_tag, words
from gifcat.domain.taxonomy import Taxonomy

# "Happy Dance GIF by Originals" -> "Happy Dance": the "GIF by <brand>" suffix says nothing of content.
_TITLE_NOISE = re.compile(r"\s*\b(gifs?|animated gif)\b(\s+by\s+.*)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class EmbeddingOptions:
    """The knobs under `stages.embedding` in settings.yaml (beside min_score/min_margin)."""

    text_model: str = "model.onnx"  # graph in <models>/minilm: model.onnx (shipped int8) or model.pc.onnx
    image_model: str = "image.onnx"  # graph in <models>/clip: image.onnx (fp32) or image.int8.onnx
    threads: int = 2  # onnxruntime intra-op threads (Lambda at 3538 MB+ has 2 vCPUs)
    frames: int = 4  # GIF frames CLIP sees (one batch)
    k: int = 11  # neighbours in the kNN vote
    # Tuned on dev.jsonl with leave-one-out kNN (text 0.853 alone, 0.863 with kNN); image is untuned.
    weights: Mapping[str, float] = field(
        default_factory=lambda: {"text": 0.4, "knn": 0.3, "classifier": 0.3, "image": 0.15}
    )
    # Decide only when the text prototypes, the neighbours and the classifier name the same category:
    # out of fold on dev, disagreement is where most errors are (README "Results").
    require_agreement: bool = True
    # ...and only when the tags read alone and the description read alone name the same category.
    require_field_agreement: bool = True
    text_temperature: float = 0.03  # softmax over prototype cosines (MiniLM cosines span ~0.1-0.7)
    knn_temperature: float = 0.1  # neighbour weight exp(cos / T): close neighbours count more
    image_temperature: float = 0.01  # CLIP's own logit scale is 100
    labelled: str | None = None  # JSONL (dev.jsonl format) for the kNN vote; none: no vote
    # The memory artefact (<models>/memory/memory.npz: the labelled examples embedded at build time and
    # the trained classifier). "auto": use it when `labelled` is "bundled" and it exists.
    memory: str = "auto"
    verify_checksums: bool = True  # hash the artefacts against their manifest at load (~30 ms)
    max_canvas_pixels: int = FrameLimits.max_canvas_pixels
    max_frames_decoded: int = FrameLimits.max_frames_decoded
    max_decode_pixels: int = FrameLimits.max_decode_pixels

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EmbeddingOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"settings: unknown stages.embedding option(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**dict(data))


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


def read_labelled(source: str | Path | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Labelled examples: records, a JSONL path, or "bundled" (the examples shipped with gifcat)."""
    if source == "bundled":
        text = resources.files("gifcat.config").joinpath("examples.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(source, str | Path):
        lines = Path(source).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    return [dict(r) for r in source]


class EmbeddingStage:
    name = StageName.EMBEDDING

    def __init__(
        self,
        taxonomy: Taxonomy,
        text_encoder: TextEncoder,
        text_identity: str,
        clip: ClipEncoder | None = None,
        labelled: Iterable[Mapping[str, Any]] | None = None,
        options: EmbeddingOptions = EmbeddingOptions(),
        limits: FrameLimits | None = None,
        clip_note: str | None = None,
        learned: Learned | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.options = options
        self.text = text_encoder
        self.clip = clip
        self.limits = limits or FrameLimits()
        self._clip_note = clip_note
        self._categories = taxonomy.names
        self._index = {c: i for i, c in enumerate(self._categories)}
        self._generic = taxonomy.normalised_generic_tags
        self._text_identity = text_identity
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
            self.labelled, self.head = learned.memory, learned.head
        elif labelled is not None:
            self.labelled = self.embed_labelled(list(labelled))

    @property
    def text_identity(self) -> str:
        return self._text_identity

    @property
    def phrases(self) -> list[str]:
        return self._phrases

    @property
    def phrase_vectors(self) -> np.ndarray:
        return self._phrase_vecs

    def with_learned(self, learned: Learned) -> EmbeddingStage:
        """The same models with another memory and classifier (cross-validation swaps them per fold)."""
        other = copy.copy(self)
        other.labelled, other.head = learned.memory, learned.head
        return other

    # ----------------------------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        taxonomy: Taxonomy,
        models_dir: str | Path | None = None,
        labelled: str | Path | Iterable[Mapping[str, Any]] | None = None,
    ) -> EmbeddingStage:
        """Load the models named by settings from `models_dir` (else $GIFCAT_MODELS_DIR, else the repo's
        .artifacts/models). `labelled` (records or a JSONL path) overrides the `labelled` option."""
        options = EmbeddingOptions.from_mapping(settings.stage_options("embedding"))
        root = _resolve_models_dir(models_dir)
        minilm = locate_minilm(root, verify=options.verify_checksums)
        text = _load_text(minilm, options)
        clip: ClipEncoder | None = None
        clip_note: str | None = None
        clip_files = locate_clip(root, verify=options.verify_checksums)
        if clip_files is None:
            clip_note = "image: no CLIP artefacts, text only"
        else:
            clip = ClipEncoder(clip_files, threads=options.threads, image_model=options.image_model)
        source = labelled if labelled is not None else options.labelled
        identity = minilm.identity_of(options.text_model)
        learned = _load_learned(root, options, identity) if labelled is None else None
        records = read_labelled(source) if source is not None and learned is None else None
        limits = FrameLimits(
            max_bytes=settings.limits.max_gif_bytes,
            max_canvas_pixels=options.max_canvas_pixels,
            max_frames_decoded=options.max_frames_decoded,
            max_decode_pixels=options.max_decode_pixels,
        )
        return cls(taxonomy, text, identity, clip, records, options, limits, clip_note, learned)

    def embed_labelled(self, records: list[dict[str, Any]]) -> Memory:
        known = set(self._categories)
        kept = [r for r in records if set(r.get("labels", ())) & known]
        texts = [item_text(r.get("title", ""), r.get("tags", ()), r.get("description", ""), self._generic)
                 for r in kept]
        return Memory(
            ids=[str(r["id"]) for r in kept],
            labels=[tuple(lbl for lbl in r["labels"] if lbl in known) for r in kept],
            primaries=[r.get("primary") or r["labels"][0] for r in kept],
            vectors=self.text.encode(texts),
            texts=texts,
        )

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
        field_tops: dict[str, str] = {}
        if text:
            batch = self.text.encode([text, *fields.values()] if apart else [text])
            vec = batch[0]
            if apart:
                for name, fvec in zip(fields, batch[1:], strict=True):
                    field_tops[name] = self._categories[int(np.argmax(self._text_protos @ fvec))]
            cos = self._text_protos @ vec
            dists["text"] = _softmax(cos, self.options.text_temperature)
            phrase_cos = self._phrase_vecs @ vec
            for i in range(n):
                mine = np.flatnonzero(self._phrase_owner == i)
                best = mine[np.argmax(phrase_cos[mine])]
                evidence[i].append(f"text≈'{_short(self._phrases[best])}' {phrase_cos[best]:.2f}")
            if self.labelled is not None and len(self.labelled.ids):
                knn = self._knn(vec, item.id, evidence, neighbours)
                if knn is not None:
                    dists["knn"] = knn
            if self.head is not None:
                dists["classifier"] = self._classify(vec, evidence)
        else:
            notes.append("text: no usable title, tags or description")

        used_clip = False
        if self.clip is None:
            notes.append(self._clip_note or "image: no CLIP artefacts, text only")
        elif not item.gif:
            notes.append("image: no GIF bytes, text only")
        else:
            try:
                sampled = sample_frames(item.gif, self.options.frames, self.limits)
            except GifDecodeError as exc:
                notes.append(f"image: {exc.reason}: {exc}; text only")
            else:
                assert self._image_protos is not None
                emb = self.clip.encode_frames(sampled.frames)
                icos = self._image_protos @ emb
                dists["image"] = _softmax(icos, self.options.image_temperature)
                for i in range(n):
                    evidence[i].append(f"image {icos[i]:.2f}")
                usage["frames"] = len(sampled.frames)
                used_clip = True
                if sampled.considered < sampled.info.n_frames or sampled.info.capped:
                    notes.append(f"image: sampled the first {sampled.considered} of "
                                 f"{sampled.info.n_frames}{'+' if sampled.info.capped else ''} frames")
                if sampled.info.truncated:
                    notes.append("image: GIF truncated; used the complete frames")

        if not dists:
            frames = "no CLIP artefacts to look at the frames" if self.clip is None else "no decodable GIF"
            return StageOutput(stage=self.name, model=self.model, notes=notes,
                               error=f"nothing to embed: no title, tags or description, and {frames}")
        weights = {k: float(self.options.weights.get(k, 0.0)) for k in dists}
        total = sum(weights.values())
        if total <= 0:  # all present signals weighted 0: fall back to an even mix rather than divide by 0
            weights, total = {k: 1.0 for k in dists}, float(len(dists))
        combined = sum(weights[k] * d for k, d in dists.items()) / total
        model = self._text_identity + (f",{self.clip.identity}" if used_clip and self.clip else "")
        candidates = [
            Candidate(category=cat, score=float(np.clip(combined[i], 0.0, 1.0)), evidence=evidence[i])
            for i, cat in enumerate(self._categories)
        ]
        abstained = None
        if self.options.require_agreement:
            tops = {k: self._categories[int(np.argmax(d))] for k, d in dists.items() if k != "image"}
            if len(set(tops.values())) > 1:
                abstained = "signals disagree: " + ", ".join(f"{k} {c}" for k, c in tops.items())
        if abstained is None and len(set(field_tops.values())) > 1:
            abstained = "fields disagree: " + ", ".join(f"{k} {c}" for k, c in field_tops.items())
        return StageOutput(stage=self.name, candidates=candidates, model=model, notes=notes, usage=usage,
                           neighbours=neighbours, abstained=abstained)

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
        for i in np.flatnonzero(counts):
            evidence[i].append(f"knn: {counts[i]}/{k} neighbours {self._categories[i]}")
        return votes / votes.sum()


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _load_learned(root: Path, options: EmbeddingOptions, identity: str) -> Learned | None:
    """The build-time memory artefact, when settings ask for the bundled examples (or name a file)."""
    if options.memory == "auto":
        path = root / MEMORY_ARTEFACT
        if options.labelled != "bundled" or not path.is_file():
            return None
    elif options.memory in ("none", ""):
        return None
    else:
        path = Path(options.memory)
    return Learned.load(path, encoder=identity)


def _load_text(files: ModelFiles, options: EmbeddingOptions) -> TextEncoder:
    if options.text_model not in files.manifest["files"]:
        extra = " --per-channel" if options.text_model == "model.pc.onnx" else ""
        raise ArtefactError(
            f"{files.directory}: no {options.text_model} (stages.embedding.text_model): {BUILD_HINT}{extra}"
        )
    return TextEncoder(files.path(options.text_model), files.path("tokenizer.json"), threads=options.threads)
