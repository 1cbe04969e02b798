"""The answer schema and strict validation of what the model returns."""

from __future__ import annotations

import json
import math

import pytest

from gifcat.domain.llm.answer import (
    AnswerError,
    answer_grammar,
    answer_schema,
    check_fields,
    parse_answer,
)
from tests.support.llm import SMALL

NAMES = SMALL.names


def good(**over: object) -> str:
    data: dict[str, object] = {"primary": "food", "labels": ["food"], "confidence": 0.8, "rationale": "pizza"}
    data.update(over)
    return json.dumps(data)


def test_schema_is_strict_with_the_category_enum() -> None:
    schema = answer_schema(NAMES, 3)
    assert schema["additionalProperties"] is False
    assert (
        set(schema["required"])
        == set(schema["properties"])
        == {"primary", "labels", "confidence", "rationale"}
    )
    assert schema["properties"]["primary"]["enum"] == NAMES
    assert schema["properties"]["labels"]["items"]["enum"] == NAMES


def test_good_answer_parses() -> None:
    answer, notes = parse_answer(good(labels=["food", "cute"]), NAMES)
    assert (answer.primary, answer.labels, answer.confidence, answer.rationale) == (
        "food",
        ("food", "cute"),
        0.8,
        "pizza",
    )
    assert notes == []


def test_labels_get_primary_first_without_duplicates_and_capped() -> None:
    answer, _ = parse_answer(good(labels=["cute", "funny", "cute", "sad", "gaming"]), NAMES, max_labels=3)
    assert answer.labels == ("food", "cute", "funny")


def test_category_names_are_trimmed_and_lower_cased_only() -> None:
    answer, _ = parse_answer(good(primary=" Food ", labels=["FOOD"]), NAMES)
    assert answer.primary == "food"
    with pytest.raises(AnswerError, match="not one of the categories"):
        parse_answer(good(primary="foods"), NAMES)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        (None, "empty"),
        ("I think it is food", "not a JSON object"),
        ('{"primary": "food", ', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (good(primary="pizza"), "primary: 'pizza' is not one of the categories"),
        (good(labels=["food", "drinks"]), "labels: 'drinks' is not one of the categories"),
        (good(labels="food"), "labels must be a list"),
        (good(primary=3), "category names are strings"),
        (good(confidence=1.5), "confidence"),
        (good(confidence=-0.1), "confidence"),
        (good(confidence="high"), "confidence must be a number"),
        (good(confidence=True), "confidence must be a number"),
        ('{"primary": "food", "labels": ["food"], "confidence": NaN, "rationale": "x"}', "confidence"),
        (good(rationale=["a"]), "rationale must be a string"),
        (json.dumps({"primary": "food"}), "field(s) missing: labels, confidence, rationale"),
    ],
)
def test_unusable_answers_say_why(reply: str | None, reason: str) -> None:
    with pytest.raises(AnswerError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_answer(reply, NAMES)


def test_fenced_json_and_trailing_prose_are_tolerated() -> None:
    answer, _ = parse_answer("```json\n" + good() + "\n```", NAMES)
    assert answer.primary == "food"
    answer, _ = parse_answer("Sure! " + good() + " Hope that helps.", NAMES)
    assert answer.primary == "food"


def test_extra_fields_are_ignored_and_not_echoed() -> None:
    reply = good(status="classified", decided_by="tags", cost_usd=-5, **{"ignore previous": 1})
    answer, notes = parse_answer(reply, NAMES)
    assert set(answer.model_dump()) == {"primary", "labels", "confidence", "rationale"}
    assert notes == ["llm: ignored 4 field(s) outside the answer schema"]


def test_rationale_is_one_line_and_capped() -> None:
    answer, _ = parse_answer(
        good(rationale="line one\n\nline\ttwo\x00 " + "x" * 500), NAMES, rationale_max_chars=40
    )
    assert "\n" not in answer.rationale and "\x00" not in answer.rationale
    assert answer.rationale.startswith("line one line two")
    assert len(answer.rationale) <= 40 and answer.rationale.endswith("…")


def test_confidence_bounds_are_inclusive() -> None:
    assert parse_answer(good(confidence=0), NAMES)[0].confidence == 0.0
    assert parse_answer(good(confidence=1), NAMES)[0].confidence == 1.0
    assert not math.isnan(parse_answer(good(confidence=0.5), NAMES)[0].confidence)


def test_grammar_names_every_category_and_compiles_when_llama_cpp_is_there() -> None:
    grammar = answer_grammar(NAMES, 3, 200)
    for name in NAMES:
        assert f'"\\"{name}\\""' in grammar
    llama_cpp = pytest.importorskip("llama_cpp")
    llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)


# -- short answer formats (answer_fields): fewer generated tokens ------------------------------------


def test_short_schema_asks_only_for_the_configured_fields() -> None:
    schema = answer_schema(NAMES, 3, rationale_max_chars=60, fields=("primary",))
    assert schema["required"] == ["primary"] and list(schema["properties"]) == ["primary"]
    assert schema["additionalProperties"] is False
    two = answer_schema(NAMES, 3, fields=("labels", "primary"))
    assert two["required"] == ["primary", "labels"]  # canonical order: primary is written first


def test_short_answer_parses_without_confidence_or_rationale() -> None:
    answer, notes = parse_answer('{"primary": "food"}', NAMES, fields=("primary",))
    assert (answer.primary, answer.labels) == ("food", ("food",))
    assert answer.confidence is None and answer.rationale is None and notes == []
    answer, _ = parse_answer('{"primary": "food", "labels": ["cute"]}', NAMES, fields=("primary", "labels"))
    assert answer.labels == ("food", "cute")


def test_short_answer_ignores_fields_it_did_not_ask_for_and_requires_those_it_did() -> None:
    # a rationale nobody asked for does not flow on (it would be unchecked model text in the evidence)
    answer, notes = parse_answer(good(), NAMES, fields=("primary",))
    assert answer.rationale is None and answer.confidence is None and answer.labels == ("food",)
    assert notes == ["llm: ignored 3 field(s) outside the answer schema"]
    with pytest.raises(AnswerError, match=r"field\(s\) missing: labels"):
        parse_answer('{"primary": "food"}', NAMES, fields=("primary", "labels"))


def test_answer_fields_are_checked() -> None:
    assert check_fields(["rationale", "primary"]) == ("primary", "rationale")
    with pytest.raises(ValueError, match="unknown answer field"):
        check_fields(["primary", "mood"])
    with pytest.raises(ValueError, match="needs the field 'primary'"):
        check_fields(["labels"])


@pytest.mark.parametrize("fields", [("primary",), ("primary", "labels"), ("primary", "labels", "confidence")])
def test_short_grammar_has_only_the_fields_asked_and_compiles(fields: tuple[str, ...]) -> None:
    grammar = answer_grammar(NAMES, 3, 200, fields=fields)
    root = grammar.splitlines()[0]
    for name in ("primary", "labels", "confidence", "rationale"):
        assert (f'\\"{name}\\"' in root) == (name in fields)
    # llama.cpp's own parser accepts it (llama_cpp is part of the dev install: no skip)
    import llama_cpp

    llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)
