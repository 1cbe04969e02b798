"""Everything gifcat learns from labelled records, fitted so that it can be measured honestly.

- the embedding stage's memory (labelled examples, embedded) and its trained classifier head
  (multinomial logistic regression over MiniLM vectors, scikit-learn here, numpy in the Lambda),
  with a temperature fitted out of fold;
- each stage's decision threshold, chosen on out-of-fold scores so that a one-sided 95% Clopper-Pearson
  upper bound of the error on what the stage decides stays under the stage's `target` (selective
  classification with guaranteed risk, after Geifman & El-Yaniv 2017; every candidate threshold is
  tried, without their Bonferroni split, so the bound is a little optimistic: README reports the
  out-of-fold check).

`fit(records)` returns a `Fitted` (the learned arrays and the thresholds); `gifcat eval --cv` fits one per
fold on the other folds only, `gifcat calibrate` fits on the whole file and writes the settings, and
`scripts/build_models.py` writes the bundled examples' memory artefact.
Tooling only (scikit-learn, scipy): nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gifcat.config import Settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.memory import Learned, LinearHead, Memory
from gifcat.domain.model import Classification, Status
from gifcat.domain.records import LabelledRecord
from gifcat.domain.stages.embedding import EmbeddingStage
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import Taxonomy

DEFAULT_TARGETS = {"tags": 0.03, "rules": 0.03, "embedding": 0.10}
CONFIDENCE = 0.95


# -- guaranteed-risk thresholds ---------------------------------------------------------------------
def clopper_pearson_upper(errors: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of an error rate from `errors` of `n` (exact binomial)."""
    if n == 0:
        return 1.0
    if errors >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, errors + 1, n - errors))


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float  # decide when confidence >= threshold (math.inf: never)
    decided: int
    errors: int
    n: int
    upper_bound: float
    target: float

    @property
    def coverage(self) -> float:
        return self.decided / self.n if self.n else 0.0

    @property
    def met(self) -> bool:
        return self.decided > 0 and self.upper_bound <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": None if math.isinf(self.threshold) else round(self.threshold, 6),
            "decided": self.decided,
            "errors": self.errors,
            "n": self.n,
            "coverage": round(self.coverage, 4),
            "error_upper_bound": round(self.upper_bound, 4),
            "target": self.target,
            "met": self.met,
        }


def choose_threshold(
    outcomes: Sequence[tuple[float, bool]], target: float, confidence: float = CONFIDENCE
) -> ThresholdChoice:
    """The lowest threshold (most coverage) whose decided part has an error bound under `target`.

    `outcomes`: (confidence score, correct) per record; -inf means the stage never decides it. Every
    distinct score is tried as a threshold; the bound is the one-sided Clopper-Pearson bound at
    `confidence` for the records at or above it. (Trying many thresholds on one sample makes the bound a
    little optimistic; the out-of-fold and held-out figures in README are the check.)
    """
    n = len(outcomes)
    ordered = sorted((o for o in outcomes if math.isfinite(o[0])), key=lambda o: -o[0])
    best = ThresholdChoice(math.inf, 0, 0, n, 1.0, target)
    errors = 0
    for i, (score, ok) in enumerate(ordered):
        errors += not ok
        if i + 1 < len(ordered) and ordered[i + 1][0] == score:
            continue  # a threshold takes every record with that score
        bound = clopper_pearson_upper(errors, i + 1, confidence)
        if bound <= target:
            best = ThresholdChoice(score, i + 1, errors, n, bound, target)
    return best


# -- the embedding stage's memory and classifier ------------------------------------------------------
class CachingEncoder:
    """A TextEncoder that remembers what it embedded: cross-validation embeds each text once."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._cache: dict[str, np.ndarray] = {}
        self.dim = encoder.dim

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for text, vec in zip(todo, self._encoder.encode(todo, batch_size), strict=True):
                self._cache[text] = vec
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def fit_head(
    vectors: np.ndarray, primaries: Sequence[str], categories: Sequence[str], *, c: float = 1.0, seed: int = 0
) -> LinearHead | None:
    """Multinomial logistic regression; its temperature fitted on out-of-fold logits (NLL)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.array(primaries)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        return None
    model = LogisticRegression(C=c, max_iter=3000).fit(vectors, y)
    temperature = 1.0
    folds = min(5, int(counts.min()))
    if folds >= 2:
        logits = np.zeros((len(y), len(classes)))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(vectors, y):
            inner = LogisticRegression(C=c, max_iter=3000).fit(vectors[tr], y[tr])
            cols = np.searchsorted(classes, inner.classes_)
            logits[np.ix_(te, cols)] = inner.predict_log_proba(vectors[te])  # logits up to a row constant
        gold = np.searchsorted(classes, y)

        def nll(t: float) -> float:
            z = logits / t
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return float(-logp[np.arange(len(y)), gold].mean())

        temperature = min((0.25 * 1.1**i for i in range(40)), key=nll)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: softmax needs both
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    known = [c_ for c_ in model.classes_ if c_ in set(categories)]
    rows = [list(model.classes_).index(c_) for c_ in known]
    return LinearHead(
        categories=list(known),
        coef=coef[rows].astype(np.float32),
        intercept=intercept[rows].astype(np.float32),
        temperature=round(float(temperature), 4),
    )


def learn(stage: EmbeddingStage, records: Sequence[LabelledRecord], *, c: float = 1.0) -> Learned:
    """The memory and head for these records, made with the stage's encoder."""
    memory: Memory = stage.embed_labelled([r.model_dump() for r in records])
    head = fit_head(memory.vectors, memory.primaries, stage.taxonomy.names, c=c)
    return Learned(
        memory=memory,
        head=head,
        encoder=stage.text_identity,
        taxonomy_version=stage.taxonomy.version,
        meta={"records": len(records), "c": c},
        phrases=list(stage.phrases),
        phrase_vectors=stage.phrase_vectors,
    )


# -- fitting a whole cascade --------------------------------------------------------------------------
@dataclass
class Fitted:
    learned: Learned
    thresholds: dict[str, dict[str, float]]  # stage -> {min_score, min_margin}
    choices: dict[str, ThresholdChoice] = field(default_factory=dict)

    def settings_overrides(self) -> dict[str, Any]:
        return {"stages": self.thresholds}


def _top(candidates: Sequence[Any]) -> tuple[str | None, float, float]:
    ranked = sorted(candidates, key=lambda c: (-c.score, c.category))
    if not ranked:
        return None, -math.inf, -math.inf
    second = ranked[1].score if len(ranked) > 1 else 0.0
    return ranked[0].category, ranked[0].score, ranked[0].score - second


def triage_outcomes(
    records: Sequence[LabelledRecord], settings: Settings, taxonomy: Taxonomy
) -> dict[str, list[tuple[float, bool]]]:
    """Per triage stage and record, the stage's best score and whether its category is right."""
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
    out: dict[str, list[tuple[float, bool]]] = {step.stage.name.value: [] for step in cascade.steps}
    for r in records:
        item = r.item()
        item = item.model_copy(update={"metadata": cascade.screen.screen(item.metadata).metadata})
        for step in cascade.steps:
            cat, score, _ = _top(step.stage.score(item, cascade.start()).candidates)
            out[step.stage.name.value].append((score, cat in r.labels))
    return out


def embedding_outcomes(
    stage: EmbeddingStage, records: Sequence[LabelledRecord], so_far: dict[str, Classification] | None = None
) -> list[tuple[float, bool]]:
    """Per record, the embedding stage's margin (-inf when it abstains or cannot score) and correctness."""
    out = []
    for r in records:
        start = (so_far or {}).get(r.id) or Classification(status=Status.UNDECIDED)
        output = stage.score(r.item(), start)
        cat, _, margin = _top(output.candidates)
        if output.error or output.abstained or cat is None:
            out.append((-math.inf, False))
        else:
            out.append((margin, cat in r.labels))
    return out


def fit(
    records: Sequence[LabelledRecord],
    settings: Settings,
    taxonomy: Taxonomy,
    stage: EmbeddingStage,
    *,
    folds: int = 5,
    seed: int = 0,
    targets: dict[str, float] | None = None,
) -> Fitted:
    """Fit memory, head and thresholds on `records` only (nothing else is looked at)."""
    configured = {k: t.target for k, t in settings.stages.items() if t.target}
    targets = {**DEFAULT_TARGETS, **configured, **(targets or {})}
    choices: dict[str, ThresholdChoice] = {}
    thresholds: dict[str, dict[str, float]] = {}

    # Triage: its scores are not learned, so thresholds are chosen on the records directly; the rule
    # stage's on what the tag stage leaves.
    tri = triage_outcomes(records, settings, taxonomy)
    left = list(range(len(records)))
    for name in ("tags", "rules"):
        choice = choose_threshold([tri[name][i] for i in left], targets[name])
        choices[name] = choice
        threshold = min(choice.threshold, 1.0) if math.isfinite(choice.threshold) else 1.0
        thresholds[name] = {"min_score": round(threshold, 6), "min_margin": 0.0}
        # a threshold of 1.0 that was never met decides nothing (scores reach 1.0 only in theory)
        left = [i for i in left if not (math.isfinite(choice.threshold) and tri[name][i][0] >= threshold)]
    residue = [records[i] for i in left]

    # Embedding: out-of-fold margins on what triage leaves, each fold scored by a stage that learned
    # from the other folds only.
    outcomes: list[tuple[float, bool]] = []
    residue_ids = {r.id for r in residue}
    for train, test in stratified_folds(records, folds, seed):
        inner = stage.with_learned(learn(stage, train))
        outcomes += embedding_outcomes(inner, [r for r in test if r.id in residue_ids])
    emb_choice = choose_threshold(outcomes, targets["embedding"])
    choices["embedding"] = emb_choice
    margin = emb_choice.threshold if math.isfinite(emb_choice.threshold) else 1.0
    thresholds["embedding"] = {"min_score": 0.0, "min_margin": round(min(max(margin, 0.0), 1.0), 6)}
    return Fitted(learn(stage, records), thresholds, choices)


def stratified_folds(
    records: Sequence[LabelledRecord], k: int, seed: int = 0
) -> list[tuple[list[LabelledRecord], list[LabelledRecord]]]:
    """K stratified folds by primary category (seeded): [(train, test), ...]."""
    if k < 2:
        raise ValueError(f"--cv needs at least 2 folds, got {k}")
    if len(records) < k:
        raise ValueError(f"--cv {k}: only {len(records)} records; need at least one per fold")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(r.primary or r.labels[0], []).append(i)
    fold_of = np.zeros(len(records), dtype=int)
    offset = 0
    for cls in sorted(by_class):
        idx = np.array(by_class[cls])
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            fold_of[i] = (offset + j) % k
        offset += len(idx)
    return [
        (
            [r for i, r in enumerate(records) if fold_of[i] != f],
            [r for i, r in enumerate(records) if fold_of[i] == f],
        )
        for f in range(k)
    ]

