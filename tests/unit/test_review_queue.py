"""Which answers a person should look at first (gifcat_tooling.operations.review): what no stage
decided, then the LLM answers the gate refuses, least supported first, with every Nth slot a check of
one it admits. On the embedded AWS: tests/integration/test_corrections.py."""

from __future__ import annotations

import pytest

from gifcat_tooling.operations.review import Reviewable, review_queue


def items() -> list[Reviewable]:
    refused = [Reviewable(f"r{i}", "funny", support=s) for i, s in enumerate([0.5, 0.1, 0.3, 0.2, 0.4])]
    admitted = [Reviewable(f"a{i}", "cute", support=0.9, admitted=True) for i in range(3)]
    return [*admitted, *refused, Reviewable("u0", None), Reviewable("u1", None)]


def test_undecided_first_then_refused_by_support_with_every_fourth_slot_a_check() -> None:
    queue = review_queue(items(), check_every=4)
    assert [e.why for e in queue] == ["answer", "answer", "teach", "teach", "teach", "check",
                                      "teach", "teach", "check", "check"]
    assert {e.item.key for e in queue[:2]} == {"u0", "u1"}
    teach = [e.item.support for e in queue if e.why == "teach"]
    assert teach == sorted(teach) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert sorted(e.item.key for e in queue) == sorted(i.key for i in items())  # each once


def test_without_checks_the_admitted_come_last_and_a_limit_cuts_the_queue() -> None:
    queue = review_queue(items(), check_every=0)
    assert [e.why for e in queue] == ["answer"] * 2 + ["teach"] * 5 + ["check"] * 3
    assert [e.item.key for e in review_queue(items(), check_every=0, limit=3)] == [
        e.item.key for e in queue[:3]]


def test_which_admitted_answers_are_checked_is_seeded() -> None:
    many = [Reviewable(f"a{i}", "cute", support=0.9, admitted=True) for i in range(30)]
    order = [e.item.key for e in review_queue(many, seed=0)]
    assert order == [e.item.key for e in review_queue(many, seed=0)]
    assert order != [e.item.key for e in review_queue(many, seed=1)]


def test_a_negative_check_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="check_every"):
        review_queue(items(), check_every=-1)
