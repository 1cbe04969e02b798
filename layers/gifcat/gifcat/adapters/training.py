"""Everything gifcat learns from labelled records, fitted so that it can be measured honestly.

- the embedding stage's memory (labelled examples, embedded) and its trained classifier head
  (multinomial logistic regression over MiniLM vectors, scikit-learn here, numpy in the Lambda),
  with a temperature fitted out of fold;
- each stage's decision threshold, chosen on out-of-fold scores so that a one-sided 95% Clopper-Pearson
  upper bound of the error on what the stage decides stays under the stage's `target` (selective
  classification with guaranteed risk, after Geifman & El-Yaniv 2017). Two searches, a setting per
  stage (`search`): `lowest` tries every candidate threshold and keeps the lowest that passes, without a
  Bonferroni split, so the bound is a little optimistic (README reports the out-of-fold check);
  `fixed_sequence` tests them from the most conservative down and stops at the first that fails, which
  keeps the 95% guarantee whole (fixed-sequence testing, as in Learn then Test, Angelopoulos et al.
  2021) at a cost in coverage.

`fit(records)` returns a `Fitted` (the learned arrays and the thresholds); `gifcat eval --cv` fits one per
fold on the other folds only, `gifcat calibrate` fits on the whole file and writes the settings, and
`scripts/build_models.py` writes the bundled examples' memory artefact.
Tooling only (scikit-learn, scipy): nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gifcat.config import THRESHOLD_SEARCHES, Settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.learning import (
    GATE_CONFIDENCE,
    GATE_MIN_PAIRS,
    GATE_TARGET,
    MIN_EXAMPLES,
    Fitted,
    Gate,
    GatePair,
    Scorecard,
    ThresholdChoice,
)
from gifcat.domain.memory import Learned, LinearHead, Memory
from gifcat.domain.model import Classification, Status
from gifcat.domain.records import LabelledRecord
from gifcat.domain.stages.embedding import EmbeddingStage
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import Taxonomy

DEFAULT_TARGETS = {"tags": 0.03, "rules": 0.03, "embedding": 0.10}
CONFIDENCE = 0.95
INNER_FOLDS = 5  # fit's out-of-fold calibration of the embedding stage's margin


def check_fittable(records: Sequence[LabelledRecord], folds: int = INNER_FOLDS) -> None:
    """ValueError, saying why, when `records` are too few for `fit` (one per inner fold at least)."""
    if len(records) < folds:
        raise ValueError(
            f"{len(records)} labelled record(s) to fit on; fitting needs at least {folds} (the embedding "
            f"stage's margin is calibrated on out-of-fold scores over {folds} inner folds)"
        )


# -- guaranteed-risk thresholds ---------------------------------------------------------------------
def clopper_pearson_upper(errors: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of an error rate from `errors` of `n` (exact binomial)."""
    if n == 0:
        return 1.0
    if errors >= n:
        return 1.0
    # The Beta quantile (scipy.stats.beta.ppf, to the bit) without importing scipy.stats (1.2 s).
    from scipy.special import betaincinv

    return float(betaincinv(errors + 1, n - errors, confidence))


def zero_error_count(target: float, confidence: float = CONFIDENCE) -> int:
    """The fewest decisions whose error bound can be under `target`: all of them right."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - target))


def choose_threshold(
    outcomes: Sequence[tuple[float, bool]],
    target: float,
    confidence: float = CONFIDENCE,
    search: str = "lowest",
) -> ThresholdChoice:
    """The lowest threshold (most coverage) whose decided part has an error bound under `target`.

    `outcomes`: (confidence score, correct) per record; -inf means the stage never decides it. Every
    distinct score is a candidate threshold; the bound is the one-sided Clopper-Pearson bound at
    `confidence` for the records at or above it.
    - `lowest`: the lowest candidate that passes, wherever it is. Trying many thresholds on one sample
      makes the bound a little optimistic; the out-of-fold and held-out figures in README are the check.
    - `fixed_sequence`: candidates are tested in a fixed order, from the most conservative down, starting
      at the first that holds `zero_error_count` records (no fewer can pass), and the search stops at the
      first that fails. Each test is at the full `confidence` and the family-wise guarantee holds
      (fixed-sequence testing): the bound is not optimistic, but one early error ends the search.
    """
    if search not in THRESHOLD_SEARCHES:
        raise ValueError(f"threshold search {search!r}: expected one of {', '.join(THRESHOLD_SEARCHES)}")
    sequential = search == "fixed_sequence"
    first = zero_error_count(target, confidence) if sequential else 1
    n = len(outcomes)
    ordered = sorted((o for o in outcomes if math.isfinite(o[0])), key=lambda o: -o[0])
    best = ThresholdChoice(math.inf, 0, 0, n, 1.0, target, search)
    errors = 0
    for i, (score, ok) in enumerate(ordered):
        errors += not ok
        if i + 1 < len(ordered) and ordered[i + 1][0] == score:
            continue  # a threshold takes every record with that score
        if i + 1 < first:
            continue
        bound = clopper_pearson_upper(errors, i + 1, confidence)
        if bound <= target:
            best = ThresholdChoice(score, i + 1, errors, n, bound, target, search)
        elif sequential:
            break
    return best


# -- the embedding stage's memory and classifier ------------------------------------------------------
class CachingEncoder:
    """A TextEncoder that remembers what it embedded: cross-validation embeds each text once."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._cache: dict[str, np.ndarray] = {}
        self.dim = encoder.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for text, vec in zip(todo, self._encoder.encode(todo), strict=True):
                self._cache[text] = vec
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def known_words(self, text: str) -> list[tuple[str, bool]]:
        return self._encoder.known_words(text)


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
    memory: Memory = stage.embed_labelled(records)
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
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)
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
    folds: int = INNER_FOLDS,
    seed: int = 0,
    targets: dict[str, float] | None = None,
    triage: dict[str, dict[str, float]] | None = None,
) -> Fitted:
    """Fit memory, head and thresholds on `records` only (nothing else is looked at).

    `triage`: the tag and rule stages' thresholds to keep as they are (a stream's examples are mostly
    what those stages left or decided themselves, and cannot calibrate them); the embedding stage is
    then calibrated on what they leave. None: they are chosen on the records too."""
    check_fittable(records, folds)
    configured = {k: t.target for k, t in settings.stages.items() if t.target}
    targets = {**DEFAULT_TARGETS, **configured, **(targets or {})}
    searches = {k: t.search for k, t in settings.stages.items()}
    if not isinstance(stage.text, CachingEncoder):  # every fold embeds the same texts: each once
        stage = copy.copy(stage)
        stage.text = CachingEncoder(stage.text)
    choices: dict[str, ThresholdChoice] = {}
    thresholds: dict[str, dict[str, float]] = {}

    # Triage: its scores are not learned, so thresholds are chosen on the records directly; the rule
    # stage's on what the tag stage leaves.
    tri = triage_outcomes(records, settings, taxonomy)
    left = list(range(len(records)))
    for name in ("tags", "rules"):
        if triage is not None:
            thresholds[name] = dict(triage[name])
            if thresholds[name].get("min_margin", 0.0):  # the outcomes hold the top score, not the margin
                raise ValueError(f"fit: cannot keep a {name} threshold with a min_margin above 0")
            left = [i for i in left if tri[name][i][0] < thresholds[name]["min_score"]]
            continue
        choice = choose_threshold(
            [tri[name][i] for i in left], targets[name], search=searches.get(name, "lowest")
        )
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
    emb_choice = choose_threshold(
        outcomes, targets["embedding"], search=searches.get("embedding", "lowest")
    )
    choices["embedding"] = emb_choice
    margin = emb_choice.threshold if math.isfinite(emb_choice.threshold) else 1.0
    thresholds["embedding"] = {"min_score": 0.0, "min_margin": round(min(max(margin, 0.0), 1.0), 6)}
    return Fitted(learn(stage, records), thresholds, choices)


def stratified_folds(
    records: Sequence[LabelledRecord], k: int, seed: int = 0
) -> list[tuple[list[LabelledRecord], list[LabelledRecord]]]:
    """K stratified folds by primary category (seeded): [(train, test), ...].

    Records with the same content (`content_key`: a GIF posted twice) fall in one fold: split across
    folds, the kNN memory would find the test record's twin and the figures would be in-sample."""
    if k < 2:
        raise ValueError(f"--cv needs at least 2 folds, got {k}")
    groups: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r.content_key(), []).append(i)
    if len(groups) < k:
        repeats = f" ({len(records)} with repeats)" if len(groups) < len(records) else ""
        noun = "distinct records" if repeats else "records"
        raise ValueError(f"--cv {k}: only {len(groups)} {noun}{repeats}; need at least one per fold")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[list[int]]] = {}
    for members in groups.values():  # a group goes where its first record's category sends it
        first = records[members[0]]
        by_class.setdefault(first.primary or first.labels[0], []).append(members)
    fold_of = np.zeros(len(records), dtype=int)
    offset = 0
    for cls in sorted(by_class):
        order = np.arange(len(by_class[cls]))
        rng.shuffle(order)
        for j, g in enumerate(order):
            for i in by_class[cls][g]:
                fold_of[i] = (offset + j) % k
        offset += len(order)
    return [
        (
            [r for i, r in enumerate(records) if fold_of[i] != f],
            [r for i, r in enumerate(records) if fold_of[i] == f],
        )
        for f in range(k)
    ]



# -- relearning from answers (gifcat learn, gifcat stream) -------------------------------------------
def choose_gate(
    pairs: Sequence[GatePair],
    *,
    target: float = GATE_TARGET,
    confidence: float = GATE_CONFIDENCE,
    min_pairs: int = GATE_MIN_PAIRS,
) -> Gate:
    """The gate for LLM answers, chosen on the LLM answers that also have a human answer.

    Two rules are judged on them: a threshold on support (choose_threshold: the lowest one whose
    admitted pairs have an error bound under `target`), and agreement with the embedding stage's top
    candidate. Of the rules that keep the bound, the one admitting more pairs wins. When none does, the
    gate closes, unless fewer than `min_pairs` pairs exist: that is too little evidence to overturn the
    prior, and agreement stays (with no human answers at all it is the only rule there is).
    """
    n = len(pairs)
    met: list[Gate] = []
    if pairs:
        choice: ThresholdChoice = choose_threshold(
            [(p.support, p.correct) for p in pairs], target, confidence
        )
        if choice.met:
            met.append(Gate("threshold", choice.threshold, n, choice.decided, choice.errors,
                            choice.upper_bound, target))
        agreeing = [p for p in pairs if p.agrees]
        if agreeing:
            errors = sum(not p.correct for p in agreeing)
            bound = clopper_pearson_upper(errors, len(agreeing), confidence)
            if bound <= target:
                met.append(Gate("agreement", None, n, len(agreeing), errors, bound, target))
    if met:
        # more admitted pairs first; a threshold before agreement on a tie (it is the measured rule)
        return max(met, key=lambda g: (g.admitted_pairs, g.rule == "threshold"))
    if n < min_pairs:
        agreeing = [p for p in pairs if p.agrees]
        errors = sum(not p.correct for p in agreeing)
        prior_bound = clopper_pearson_upper(errors, len(agreeing), confidence) if agreeing else None
        return Gate("agreement", None, n, len(agreeing), errors, prior_bound, target)
    return Gate("closed", None, n, 0, 0, None, target)


def learn_from(
    examples: Sequence[LabelledRecord],
    settings: Settings,
    taxonomy: Taxonomy,
    stage: EmbeddingStage,
    *,
    seed: int = 0,
    min_examples: int = MIN_EXAMPLES,
) -> Fitted | None:
    """A new embedding artefact (memory and head) and its margin threshold, fitted on `examples` only
    (fit). None when there are too few to fit (fewer than `min_examples`, or a single category): the
    caller keeps what it has. The tag and rule thresholds are kept as `settings` has them (the examples
    are what triage left or decided itself, so they cannot calibrate it) and the margin is calibrated
    on the examples they leave; `thresholds` and `choices` hold the embedding stage's alone."""
    categories = {r.primary or r.labels[0] for r in examples}
    if len(examples) < max(min_examples, INNER_FOLDS) or len(categories) < 2:
        return None
    import warnings

    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # One BLAS thread: these are small matrices, and on 2 shared cores threaded BLAS made each logistic
    # regression ~10x slower. Early windows have classes with one or two examples: scikit-learn warns,
    # the fit is still sound.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        triage = {name: {"min_score": settings.stages[name].min_score,
                         "min_margin": settings.stages[name].min_margin} for name in ("tags", "rules")}
        fitted = fit(examples, settings, taxonomy, stage, seed=seed, triage=triage)
    return Fitted(
        fitted.learned,
        {"embedding": fitted.thresholds["embedding"]},
        {"embedding": fitted.choices["embedding"]},
    )


def scorecard(stage: EmbeddingStage, fitted: Fitted, held_out: Sequence[LabelledRecord]) -> Scorecard:
    """`fitted` on `held_out`: its ranking (top candidate right, whether or not the stage would decide:
    what the LLM step chooses from), and what it decides (no abstention, margin cleared) with its errors.
    Counting abstentions as wrong would compare how often two artefacts abstain, not how well they rank."""
    margin = float(fitted.thresholds["embedding"]["min_margin"])
    learned = stage.with_learned(fitted.learned)
    top1 = decided = errors = 0
    for r in held_out:
        output = learned.score(r.item(), Classification(status=Status.UNDECIDED))
        cat, _, m = _top(output.candidates)
        right = cat is not None and cat in r.labels
        top1 += right
        if cat is not None and not (output.error or output.abstained) and m >= margin:
            decided += 1
            errors += not right
    return Scorecard(len(held_out), top1, decided, errors)


def not_worse(
    new: Fitted,
    current: Fitted | None,
    held_out: Sequence[LabelledRecord],
    stage: EmbeddingStage,
    *,
    target: float = 0.10,
    tolerance: float = 0.0,
) -> bool:
    """Is `new` at least as good as `current` on records neither was fitted on
    (Scorecard.not_worse_than)? No current artefact: anything is not worse."""
    if not held_out:
        raise ValueError("not_worse needs held-out records: nothing to compare the artefacts on")
    if current is None:
        return True
    return scorecard(stage, new, held_out).not_worse_than(
        scorecard(stage, current, held_out), target=target, tolerance=tolerance
    )


class EmbeddingTrainer:
    """The application's Trainer port (gifcat.application.ports) on this module and one embedding
    stage: the stage's encoder embeds the examples, its bundled memory is the artefact to beat when
    nothing was published."""

    def __init__(self, settings: Settings, taxonomy: Taxonomy, stage: EmbeddingStage) -> None:
        self.settings, self.taxonomy, self.stage = settings, taxonomy, stage

    @property
    def encoder(self) -> str:
        return self.stage.text_identity

    def gate(self, pairs: Sequence[GatePair], *, target: float, confidence: float, min_pairs: int) -> Gate:
        return choose_gate(pairs, target=target, confidence=confidence, min_pairs=min_pairs)

    def fit(self, examples: Sequence[LabelledRecord], *, seed: int, min_examples: int) -> Fitted | None:
        return learn_from(examples, self.settings, self.taxonomy, self.stage, seed=seed,
                          min_examples=min_examples)

    def scorecard(self, fitted: Fitted, held_out: Sequence[LabelledRecord]) -> Scorecard:
        return scorecard(self.stage, fitted, held_out)

    def unseen(self, fitted: Fitted, records: Sequence[LabelledRecord]) -> list[LabelledRecord]:
        """The records whose text (as the encoder reads it) is not in the artefact's memory."""
        texts = set(fitted.learned.memory.texts)
        return [r for r in records if self.stage.text_of(r.item()) not in texts]

    def bundled(self) -> Learned | None:
        """The memory and head the stage was built with (the image's), or None when it has none."""
        stage = self.stage
        if stage.labelled is None or not len(stage.labelled):
            return None
        return Learned(
            memory=stage.labelled, head=stage.head, encoder=stage.text_identity,
            taxonomy_version=self.taxonomy.version, meta={"source": "bundled"},
            phrases=list(stage.phrases), phrase_vectors=stage.phrase_vectors,
        )
