"""Fitting what gifcat learns: guaranteed-risk thresholds, folds, the classifier head, the memory file."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gifcat.adapters.training import (
    choose_threshold,
    clopper_pearson_upper,
    fit,
    fit_head,
    stratified_folds,
    zero_error_count,
)
from gifcat.config import ConfigError, load_settings
from gifcat.domain.memory import Learned, Memory, MemoryArtefactError
from gifcat.domain.records import LabelledRecord


def test_clopper_pearson_bounds() -> None:
    # 0 errors in 99: the "rule of three" region; the exact bound is 1 - 0.05 ** (1 / 99).
    assert clopper_pearson_upper(0, 99) == pytest.approx(1 - 0.05 ** (1 / 99), rel=1e-6)
    assert clopper_pearson_upper(1, 100) > clopper_pearson_upper(0, 100)
    assert clopper_pearson_upper(0, 0) == 1.0
    assert clopper_pearson_upper(5, 5) == 1.0


def test_threshold_keeps_the_error_bound_under_target() -> None:
    # 300 right answers at high confidence, then errors mixed in below 0.5.
    outcomes = [(0.5 + i / 1000, True) for i in range(300)]
    outcomes += [(0.5 - i / 1000, i % 3 != 0) for i in range(1, 200)]
    choice = choose_threshold(outcomes, target=0.03)
    assert choice.met and choice.upper_bound <= 0.03
    decided = [ok for s, ok in outcomes if s >= choice.threshold]
    assert len(decided) == choice.decided and decided.count(False) == choice.errors
    # The most covering threshold: one step lower breaks the bound.
    lower = max(s for s, _ in outcomes if s < choice.threshold)
    below = [ok for s, ok in outcomes if s >= lower]
    assert clopper_pearson_upper(below.count(False), len(below)) > 0.03


def test_no_threshold_when_the_sample_cannot_certify_the_target() -> None:
    choice = choose_threshold([(0.9, True)] * 50, target=0.03)  # 0 errors in 50 bounds only 5.8%
    assert not choice.met and math.isinf(choice.threshold) and choice.decided == 0
    assert choose_threshold([(-math.inf, False)] * 10, target=0.1).decided == 0


def _early_error_then_clean(target: float) -> list[tuple[float, bool]]:
    """Right answers, one error just below the first count that can certify, then many right ones."""
    first = zero_error_count(target)
    scores = [1.0 - i / 1000 for i in range(400)]
    return [(s, i != first) for i, s in enumerate(scores)]  # the (first + 1)-th record is wrong


def test_zero_error_count_is_the_first_count_that_can_pass() -> None:
    n = zero_error_count(0.10)
    assert clopper_pearson_upper(0, n) <= 0.10 < clopper_pearson_upper(0, n - 1)


def test_fixed_sequence_stops_at_the_first_failure_where_lowest_goes_on() -> None:
    outcomes = _early_error_then_clean(0.10)
    first = zero_error_count(0.10)
    lowest = choose_threshold(outcomes, target=0.10)
    fixed = choose_threshold(outcomes, target=0.10, search="fixed_sequence")
    # lowest passes far below the early error (1 wrong in 400 bounds well under 10%)
    assert lowest.decided == 400 and lowest.errors == 1 and lowest.search == "lowest"
    # fixed_sequence certifies the clean top, then meets the error and stops there for good
    assert fixed.decided == first and fixed.errors == 0 and fixed.upper_bound <= 0.10
    assert fixed.threshold == outcomes[first - 1][0] and fixed.as_dict()["search"] == "fixed_sequence"


def test_fixed_sequence_agrees_with_lowest_when_the_bound_only_falls() -> None:
    outcomes = [(1.0 - i / 1000, True) for i in range(300)]
    outcomes += [(0.5 - i / 1000, i % 3 != 0) for i in range(200)]
    lowest = choose_threshold(outcomes, target=0.03)
    fixed = choose_threshold(outcomes, target=0.03, search="fixed_sequence")
    assert (fixed.threshold, fixed.decided, fixed.errors) == (lowest.threshold, lowest.decided, lowest.errors)


def test_fixed_sequence_decides_nothing_when_an_error_comes_before_the_first_count() -> None:
    first = zero_error_count(0.10)
    outcomes = [(1.0 - i / 1000, i != 0) for i in range(first + 1)]  # the top record is wrong
    assert choose_threshold(outcomes, target=0.10, search="fixed_sequence").decided == 0


def test_an_unknown_search_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold search 'bisect'"):
        choose_threshold([(0.9, True)], target=0.1, search="bisect")
    with pytest.raises(ConfigError, match="search"):
        load_settings(overrides={"stages": {"embedding": {"search": "bisect"}}})


def _records(n: int) -> list[LabelledRecord]:
    cats = ["funny", "cute", "sad"]
    return [
        LabelledRecord(id=f"r{i}", title=f"t{i}", labels=[cats[i % 3]], primary=cats[i % 3]) for i in range(n)
    ]


def test_stratified_folds_partition_the_records() -> None:
    records = _records(30)
    folds = stratified_folds(records, 5, seed=1)
    tests = [r.id for _, test in folds for r in test]
    assert sorted(tests) == sorted(r.id for r in records)  # each record tested exactly once
    for train, test in folds:
        assert not {r.id for r in train} & {r.id for r in test}
        assert {r.primary for r in test} == {"funny", "cute", "sad"}  # stratified
    assert [[r.id for r in t] for _, t in folds] == [
        [r.id for r in t] for _, t in stratified_folds(records, 5, 1)
    ]


def test_a_repeated_gif_falls_in_one_fold() -> None:
    # The same metadata under another id, case, spacing and tag order: split across folds, the kNN
    # memory would find the test record's twin.
    records = _records(30)
    twin = records[4].model_copy(update={"id": "twin", "title": f"  {records[4].title.upper()} "})
    tagged = [r.model_copy(update={"tags": ["b", "a"]}) for r in records[:2]]
    tagged_twin = tagged[0].model_copy(update={"id": "tagged-twin", "tags": ["A", "b"]})
    everything = [*tagged, *records[2:], twin, tagged_twin]
    for seed in range(5):
        for _, test in stratified_folds(everything, 5, seed):
            ids = {r.id for r in test}
            assert ("r4" in ids) == ("twin" in ids)
            assert ("r0" in ids) == ("tagged-twin" in ids)
    # Without repeats the folds are what they were before groups existed (README's figures keep).
    # (the folds main gave at 76c01be, before records were grouped)
    assert [[r.id for r in t] for _, t in stratified_folds(records, 5, 1)] == [
        ["r0", "r2", "r7", "r11", "r21", "r25"],
        ["r3", "r5", "r13", "r16", "r23", "r27"],
        ["r6", "r8", "r17", "r22", "r24", "r28"],
        ["r1", "r9", "r18", "r19", "r20", "r26"],
        ["r4", "r10", "r12", "r14", "r15", "r29"],
    ]
    with pytest.raises(ValueError, match=r"only 4 distinct records \(5 with repeats\)"):
        stratified_folds([*records[:4], twin.model_copy(update={"title": records[0].title})], 5)


def test_folds_need_enough_records() -> None:
    with pytest.raises(ValueError, match="only 3 records"):
        stratified_folds(_records(3), 5)
    with pytest.raises(ValueError, match="at least 2 folds"):
        stratified_folds(_records(10), 1)


def test_fitting_needs_a_record_per_inner_fold() -> None:
    # Refused before anything is embedded: the stage argument is never reached.
    with pytest.raises(ValueError, match=r"4 labelled record\(s\) to fit on; fitting needs at least 5"):
        fit(_records(4), load_settings(), None, None)  # type: ignore[arg-type]


def test_head_learns_separable_classes_and_fits_a_temperature() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 4
    x = np.concatenate([c + rng.normal(0, 0.5, (20, 8)) for c in centres])
    y = ["a"] * 20 + ["b"] * 20 + ["c"] * 20
    head = fit_head(x, y, ["a", "b", "c", "d"])
    assert head is not None and head.categories == ["a", "b", "c"]
    probs = head.proba(centres)
    assert [head.categories[i] for i in probs.argmax(axis=1)] == ["a", "b", "c"]
    assert np.allclose(probs.sum(axis=1), 1.0) and head.temperature > 0


def test_memory_file_round_trips_and_refuses_another_encoder(tmp_path: Path) -> None:
    memory = Memory(
        ids=["a", "b"],
        texts=["x", "y"],
        labels=[("cute",), ("sad", "funny")],
        primaries=["cute", "sad"],
        vectors=np.eye(2, 4, dtype=np.float32),
        fields=[{"title": "x", "tags": ["kitten"], "description": ""},
                {"title": "y", "tags": [], "description": "tears at a wedding"}],
    )
    head = fit_head(np.array([[1.0, 0], [0, 1.0]] * 4), ["cute", "sad"] * 4, ["cute", "sad"])
    path = tmp_path / "memory" / "memory.npz"
    Learned(memory, head, "minilm@1", "tax-1", {"records": 2}).save(path)
    loaded = Learned.load(path, encoder="minilm@1")
    assert loaded.memory.ids == ["a", "b"] and loaded.memory.labels[1] == ("sad", "funny")
    assert loaded.memory.fields == memory.fields  # what learn refits on, beside the text MiniLM saw
    assert loaded.memory.restricted_to({"sad"}).fields == memory.fields[1:]
    # An artefact made before memories kept fields loads without them.
    old = tmp_path / "old.npz"
    Learned(replace(memory, fields=None), head, "minilm@1", "tax-1", {}).save(old)
    assert Learned.load(old).memory.fields is None
    assert np.array_equal(loaded.memory.vectors, memory.vectors)
    assert loaded.head is not None and np.allclose(loaded.head.coef, head.coef)
    with pytest.raises(MemoryArtefactError, match="encoder"):
        Learned.load(path, encoder="minilm@2")
