"""The learning job (`gifcat learn`, the scheduled LearnFunction): relearn the embedding stage from the
results table and publish the new artefact only when it is not worse than the one in force.

    gather (results of the current taxonomy, finished) -> examples by source, and the gate on LLM answers
    -> split (a seeded hash of each result's key holds a share out, never trained on)
    -> per category: too few new examples keeps the current artefact's examples of it
    -> fit (Trainer.fit: memory, head, margin) -> compare with the current artefact on the held-out
    examples (Scorecard.not_worse_than) -> publish as the next version, or keep and say why.

What is learned, as `gifcat stream` learns it (README "Learning from results"): people's answers always;
the tag and rule stages' answers (certified under a 3% error bound; `learn.triage_examples`); the LLM's
answers only when the gate admits them. The gate is chosen on the LLM answers a person later corrected
or confirmed (`corrected_from` with decided_by llm), scored from the stored stage traces: a weak LLM's
mistakes would otherwise be learned.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, takewhile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from gifcat.application.ports import ArtefactStore, RecentResults, Trainer
from gifcat.config import LearnSettings, Settings
from gifcat.domain.artefact import BUNDLED, ArtefactManifest, PublishedArtefact
from gifcat.domain.learning import (
    Fitted,
    Gate,
    GatePair,
    Scorecard,
    llm_agrees,
    llm_answer,
    llm_support,
    split_held_out,
)
from gifcat.domain.memory import ExampleFields, Learned
from gifcat.domain.model import StageName, Status
from gifcat.domain.records import LabelledRecord
from gifcat.domain.result import HUMAN, ResultItem, now
from gifcat.domain.taxonomy import Taxonomy

SOURCES = ("human", "llm", "tags", "rules")
EXAMPLE_PREFIX = "learned:"  # a LabelledRecord's difficulty says where the example came from
KEPT = "kept"  # ...or that it is the current artefact's own example of a sparse category


@dataclass(frozen=True)
class Gathered:
    """What the results table teaches: examples (id = the result's key), the gate, and what was left."""

    examples: list[LabelledRecord]
    gate: Gate
    items: int
    skipped: dict[str, int]
    refused_llm: int  # LLM answers the gate did not admit

    def by_source(self) -> dict[str, int]:
        counts = Counter(source_of(e) for e in self.examples)
        return {s: counts.get(s, 0) for s in SOURCES}


def source_of(example: LabelledRecord) -> str:
    return (example.difficulty or "").removeprefix(EXAMPLE_PREFIX)


def _example(item: ResultItem, source: str, labels: Sequence[str], primary: str) -> LabelledRecord:
    return LabelledRecord(
        id=item.pk, title=item.title or "", tags=list(item.tags or []), description=item.description or "",
        labels=list(dict.fromkeys([primary, *labels])), primary=primary,
        difficulty=f"{EXAMPLE_PREFIX}{source}",
    )


def gate_pair(item: ResultItem) -> GatePair | None:
    """An LLM answer a person corrected or confirmed: the gate's evidence."""
    machine = item.corrected_from
    if item.decided_by != HUMAN or machine is None or machine.decided_by != StageName.LLM.value:
        return None
    answer = llm_answer(item.stages, StageName.LLM.value, machine.primary)
    if answer is None:
        return None
    return GatePair(llm_support(item.stages, answer), llm_agrees(item.stages, answer), answer in item.labels)


def learn_gate(options: LearnSettings, pairs: Sequence[GatePair], choose: Callable[..., Gate]) -> Gate:
    """The gate on LLM answers as a learn run chooses it: `choose` (gifcat.adapters.training.choose_gate,
    through the Trainer port) under the settings' target, confidence and minimum of checked answers."""
    return choose(pairs, target=options.gate_target, confidence=options.gate_confidence,
                  min_pairs=options.gate_min_pairs)


def learnable_results(
    results: RecentResults, version: str, max_items: int, since: datetime | None = None
) -> Iterator[ResultItem]:
    """What a learn run reads: people's answers of the taxonomy version, however old (they are few, and
    worth most), then its newest results up to `max_items` (and none written before `since`), each once."""
    seen: set[str] = set()
    newest: Iterable[ResultItem] = results.newest(version, max_items)
    if since is not None:  # newest first: the first older one ends the read
        newest = takewhile(lambda item: item.updated_at >= since, newest)
    for item in chain(results.corrected(version), newest):
        if item.pk not in seen:
            seen.add(item.pk)
            yield item


@dataclass(frozen=True)
class _Candidate:
    """What gathering keeps of a usable result (its example, not the result with its stage traces):
    gathering reads every result before the gate is chosen, and a run reads many."""

    example: LabelledRecord
    updated_at: float
    support: float = 0.0  # an LLM answer's, for the gate
    agrees: bool = False


def gather(
    items: Iterable[ResultItem],
    taxonomy: Taxonomy,
    options: LearnSettings,
    choose_gate: Callable[[Sequence[GatePair]], Gate],
) -> Gathered:
    """Examples from finished results of `taxonomy`'s version: people's answers always, the tag and rule
    stages' (with `options.triage_examples`), the LLM's when the gate chosen on `items` admits them. One
    pass: each result is reduced to its example as it is read."""
    skipped: Counter[str] = Counter()
    names = set(taxonomy.names)
    candidates: list[_Candidate] = []
    pairs: list[GatePair] = []
    n = 0
    for item in items:
        n += 1
        if item.status in (Status.PENDING, Status.FAILED, Status.UNDECIDED):
            skipped["unfinished"] += 1
            continue
        if item.taxonomy_version != taxonomy.version:
            skipped["other_taxonomy"] += 1
            continue
        if item.status is not Status.CLASSIFIED or not item.primary or item.primary not in names:
            skipped["no_answer"] += 1  # skipped uploads, or an answer outside the taxonomy
            continue
        if not (item.title or item.tags or item.description):
            skipped["no_text"] += 1  # nothing for the encoder to read
            continue
        if item.reused_from:
            skipped["reused"] += 1  # another upload's answer, for the same text: learned from that one
            continue
        if (pair := gate_pair(item)) is not None:
            pairs.append(pair)
        primary = item.primary
        labels = [lbl for lbl in item.labels if lbl in names]
        decider = str(item.decided_by) if item.decided_by else None
        at = item.updated_at.timestamp()
        if decider == HUMAN:
            candidates.append(_Candidate(_example(item, "human", labels, primary), at))
        elif decider in (StageName.TAGS.value, StageName.RULES.value):
            if options.triage_examples:
                candidates.append(_Candidate(_example(item, decider, labels, primary), at))
            else:
                skipped["triage_not_learned"] += 1
        elif decider == StageName.LLM.value:
            answer = llm_answer(item.stages, decider, primary)
            candidates.append(_Candidate(_example(item, "llm", labels, primary), at,
                                         llm_support(item.stages, answer), llm_agrees(item.stages, answer)))
        else:
            skipped["embedding"] += 1  # the stage's own answers teach it nothing new
    gate = choose_gate(pairs)
    picked = [c for c in candidates if source_of(c.example) != "llm" or gate.admits(c.support, c.agrees)]
    refused = len(candidates) - len(picked)
    examples = _capped(picked, options.max_per_category)
    if len(examples) < len(picked):
        skipped["over_category_cap"] = len(picked) - len(examples)
    return Gathered(examples, gate, n, dict(sorted(skipped.items())), refused)


# Which examples a category's cap keeps first: people's answers, then the LLM's (both are of records the
# cheap stages left), then the tag and rule stages' (which those stages decide again anyway).
_CAP_ORDER = {"human": 0, "llm": 1, "tags": 2, "rules": 2}


def _capped(picked: Sequence[_Candidate], cap: int | None) -> list[LabelledRecord]:
    """At most `cap` examples of each category, in `_CAP_ORDER`, the newest first within a source."""
    if cap is None:
        return [c.example for c in picked]
    ranked = sorted(picked, key=lambda c: (_CAP_ORDER[source_of(c.example)], -c.updated_at))
    kept: Counter[str | None] = Counter()
    out = []
    for c in ranked:
        if kept[c.example.primary] < cap:
            kept[c.example.primary] += 1
            out.append(c.example)
    return out


def examples_digest(examples: Sequence[LabelledRecord]) -> str:
    """What the examples say (keys, text, labels), order aside: equal digests, nothing new to learn."""
    rows = sorted(
        json.dumps([e.id, e.title, e.tags, e.description, e.primary, sorted(e.labels)], ensure_ascii=False)
        for e in examples
    )
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()[:16]


def memory_examples(
    learned: Learned, category: str, fallback: Mapping[str, ExampleFields] | None = None
) -> list[LabelledRecord]:
    """The artefact's own examples of `category`, to keep a sparse category as it is (or the shipped
    ones beside the learned ones), with the title, tags and description the memory keeps for each. An
    artefact made before it kept them gives those of `fallback` (the bundled memory's, by id) or, for an
    id it lacks, the text MiniLM saw as a title (re-embedding it gives the same vector). The fields
    matter to `fit`: it calibrates the margin on the examples the tag and rule stages leave; with its tags
    folded into a title every example is left, the easy ones those stages decide among them, and the
    margin came out permissive."""
    memory = learned.memory
    out = []
    for i in range(len(memory)):
        if memory.primaries[i] != category:
            continue
        fields = memory.fields[i] if memory.fields is not None else (fallback or {}).get(memory.ids[i])
        if fields is None:
            fields = {"title": memory.texts[i], "tags": [], "description": ""}
        out.append(LabelledRecord(
            id=memory.ids[i], title=fields["title"], tags=list(fields["tags"]),
            description=fields["description"], labels=list(memory.labels[i]), primary=memory.primaries[i],
            difficulty=KEPT,
        ))
    return out


class LearnReport(BaseModel):
    """What a learning run did and why, with the figures (the CLI's --json, the function's log)."""

    outcome: Literal["published", "kept"]
    reason: str
    version: str | None = None  # the artefact in force after the run (a published version, or bundled)
    parent: str | None = None  # the artefact the new one was compared with
    dry_run: bool = False
    taxonomy_version: str
    items: int = 0  # result items read
    skipped: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, int] = Field(default_factory=dict)  # by source, and total / train / held_out
    categories: dict[str, int] = Field(default_factory=dict)  # new training examples per category
    kept_categories: list[str] = Field(default_factory=list)
    gate: dict[str, Any] = Field(default_factory=dict)
    refused_llm: int = 0
    scorecards: dict[str, dict[str, Any]] = Field(default_factory=dict)  # "new", "current"
    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    examples_digest: str | None = None


@dataclass(frozen=True)
class Current:
    """The artefact in force: a published version, or the bundled memory with the settings' margin."""

    version: str
    fitted: Fitted | None
    manifest: ArtefactManifest | None = None


class LearnJob:
    """gather -> split -> fit -> compare -> publish or keep (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        taxonomy: Taxonomy,
        results: RecentResults,
        store: ArtefactStore,
        trainer: Trainer,
        *,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.settings, self.taxonomy = settings, taxonomy
        self.options = settings.learn
        self.results, self.store, self.trainer, self.clock = results, store, trainer, clock

    def _gate(self, pairs: Sequence[GatePair]) -> Gate:
        return learn_gate(self.options, pairs, self.trainer.gate)

    def current(self, workdir: Path) -> Current:
        """The artefact in force: the newest published one, unless it was made for another taxonomy
        version or by another encoder (a rebuilt image's MiniLM, another `text_model`): the embed
        function refuses it and runs the shipped one, so that is what to beat, and "nothing new" must
        not keep it for ever. Loading it against this encoder failed every run until someone deleted
        it by hand."""
        published = self.store.current()
        if (published is not None and published.manifest.taxonomy_version == self.taxonomy.version
                and published.manifest.encoder == self.trainer.encoder):
            return self._published(published, workdir)
        learned = self.trainer.bundled()
        emb = self.settings.stages["embedding"]
        thresholds = {"embedding": {"min_score": emb.min_score, "min_margin": emb.min_margin}}
        return Current(BUNDLED, Fitted(learned, thresholds) if learned is not None else None)

    def _published(self, published: PublishedArtefact, workdir: Path) -> Current:
        learned = Learned.load(self.store.fetch(published.version, workdir), encoder=self.trainer.encoder)
        emb = self.settings.stages["embedding"]
        thresholds = {"embedding": {"min_score": emb.min_score, "min_margin": emb.min_margin,
                                    **published.manifest.thresholds.get("embedding", {})}}
        return Current(published.version, Fitted(learned, thresholds), published.manifest)

    def _results(self) -> Iterator[ResultItem]:
        return learnable_results(self.results, self.taxonomy.version, self.options.max_items)

    def run(self, *, dry_run: bool = False) -> LearnReport:
        with tempfile.TemporaryDirectory(prefix="gifcat-learn-") as tmp:
            return self._run(Path(tmp), dry_run)

    def _run(self, workdir: Path, dry_run: bool) -> LearnReport:
        o = self.options
        gathered = gather(self._results(), self.taxonomy, o, self._gate)
        examples = gathered.examples
        current = self.current(workdir)
        digest = examples_digest(examples)
        report = LearnReport(
            outcome="kept", reason="", version=current.version, parent=current.version, dry_run=dry_run,
            taxonomy_version=self.taxonomy.version, items=gathered.items, skipped=gathered.skipped,
            examples={**gathered.by_source(), "total": len(examples)}, gate=gathered.gate.as_dict(),
            refused_llm=gathered.refused_llm, examples_digest=digest,
        )

        def keep(reason: str) -> LearnReport:
            return report.model_copy(update={"outcome": "kept", "reason": reason})

        categories = {e.primary for e in examples}
        if len(examples) < o.min_examples or len(categories) < 2:
            return keep(f"too few examples: {len(examples)} in {len(categories)} categories "
                        f"(at least {o.min_examples} in 2 needed); {current.version} stays")
        if (current.manifest is not None and current.manifest.report.get("examples_digest") == digest
                and current.fitted is not None and current.fitted.learned.memory.fields is not None):
            # (An artefact made before memories kept their fields is refitted: its margin was
            # calibrated on its examples' texts alone, which the tag stage could not read.)
            return keep(f"nothing new since {current.version}: the same {len(examples)} examples")

        train, held = split_held_out(examples, o.holdout, o.seed)
        held_ids = {e.id for e in held}
        per_category = Counter(e.primary for e in train)
        report.categories = {name: per_category.get(name, 0) for name in self.taxonomy.names}
        train, report.kept_categories = self._keep_sparse(train, per_category, current, held_ids)
        shipped = self._shipped(train, held_ids)
        report.examples.update(train=len(train), shipped=len(shipped), held_out=len(held))
        train += shipped

        fitted = self.trainer.fit(train, seed=o.seed, min_examples=o.min_examples)
        if fitted is None:
            return keep(f"too few training examples to fit ({len(train)}); {current.version} stays")
        report.thresholds = fitted.thresholds
        if not held:
            return keep(f"no held-out example (holdout {o.holdout} of {len(examples)}): nothing to compare "
                        f"on; {current.version} stays")
        # Judged on what neither artefact was fitted on: a held-out example whose text either memory
        # holds (the bundled memory is the dev set; results may describe the same GIFs, and the shipped
        # examples kept beside the learned ones may repeat one) would score that artefact in-sample.
        judged = self.trainer.unseen(fitted, held)
        if current.fitted is not None:
            judged = self.trainer.unseen(current.fitted, judged)
        report.examples["judged"] = len(judged)
        if not judged:
            return keep(f"all {len(held)} held-out examples are in the new or {current.version}'s memory: "
                        f"nothing unseen to compare on; {current.version} stays")
        new_card = self.trainer.scorecard(fitted, judged)
        report.scorecards["new"] = new_card.as_dict()
        if current.fitted is not None:
            current_card = self.trainer.scorecard(current.fitted, judged)
            report.scorecards["current"] = current_card.as_dict()
            target = self.settings.stages["embedding"].target or 0.10
            if not new_card.not_worse_than(current_card, target=target, tolerance=o.tolerance):
                return keep(_worse(new_card, current_card, current.version, len(judged), target))
        if dry_run:
            return report.model_copy(update={
                "outcome": "kept", "reason": f"dry run: not worse than {current.version}, not published"})
        return self._publish(fitted, current, report, workdir)

    def _keep_sparse(
        self, train: list[LabelledRecord], per_category: Counter[str | None], current: Current,
        held_ids: set[str],
    ) -> tuple[list[LabelledRecord], list[str]]:
        """A category with fewer than `min_per_category` new examples keeps the current artefact's
        examples of it (its few new ones stay beside them)."""
        minimum = self.options.min_per_category
        kept: list[str] = []
        extra: list[LabelledRecord] = []
        ids = {e.id for e in train} | held_ids
        fallback = self._shipped_fields()
        for name in self.taxonomy.names:
            n = per_category.get(name, 0)
            if n >= minimum:
                continue
            own = [] if current.fitted is None else [
                e for e in memory_examples(current.fitted.learned, name, fallback) if e.id not in ids
            ]
            extra += own
            kept.append(f"kept current examples for {name}: {n} < {minimum} ({len(own)} from "
                        f"{current.version})")
        return train + extra, kept

    def _shipped(self, train: list[LabelledRecord], held_ids: set[str]) -> list[LabelledRecord]:
        """The shipped (curated) examples to keep beside the learned ones (`learn.keep_shipped`), of the
        categories the taxonomy still has; those already kept for a sparse category count once."""
        shipped = self.trainer.bundled() if self.options.keep_shipped else None
        if shipped is None:
            return []
        ids = {e.id for e in train} | held_ids
        return [e for name in self.taxonomy.names for e in memory_examples(shipped, name) if e.id not in ids]

    def _shipped_fields(self) -> dict[str, ExampleFields]:
        """The bundled memory's fields by id: an artefact published before memories kept their fields
        holds shipped examples too (see memory_examples)."""
        bundled = self.trainer.bundled()
        if bundled is None or bundled.memory.fields is None:
            return {}
        return dict(zip(bundled.memory.ids, bundled.memory.fields, strict=True))

    def _publish(self, fitted: Fitted, current: Current, report: LearnReport, workdir: Path) -> LearnReport:
        path = workdir / "new" / "memory.npz"
        fitted.learned.save(path)
        parent = None if current.version == BUNDLED else current.version
        report = report.model_copy(update={"outcome": "published", "reason": (
            f"not worse than {current.version} on {report.examples.get('judged', 0)} held-out examples"
            if current.fitted is not None else "no current artefact to compare with")})
        manifest = ArtefactManifest(
            version="v000000",  # the store assigns the next one
            created_at=self.clock(),
            encoder=fitted.learned.encoder,
            taxonomy_version=self.taxonomy.version,
            parent=parent,
            thresholds=fitted.thresholds,
            report=report.model_dump(mode="json", exclude={"version"}),
        )
        published = self.store.publish(path, manifest)
        return report.model_copy(update={"version": published.version})


def _worse(new: Scorecard, current: Scorecard, version: str, n: int, target: float) -> str:
    return (
        f"the new artefact is worse than {version} on {n} held-out examples: top-1 {new.accuracy:.1%} "
        f"against {current.accuracy:.1%}, error on what it decides {new.error_rate:.1%} "
        f"({new.errors}/{new.decided}) against {current.error_rate:.1%} ({current.errors}/"
        f"{current.decided}, target {target:.0%}), decided right {new.right} against {current.right}; "
        f"{version} stays"
    )
