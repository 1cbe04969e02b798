"""The LLM's answer: the JSON schema it is held to, and the strict validation of what comes back.

The answer is the only thing the LLM controls. It is parsed into `LlmAnswer` (category enum checked,
extra fields dropped, rationale cleaned and capped) and only its fields flow on, so an injected
instruction can at worst pick a wrong category from the taxonomy.

Which fields the model writes is a setting (`answer_fields`): every generated token costs a full
decoding step, and on a local model held to a grammar that is most of the call's time, so a short
answer (`primary` alone, or with `labels`) is much faster than the four-field one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

ANSWER_FIELDS = ("primary", "labels", "confidence", "rationale")  # the full answer, in this order
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class AnswerError(ValueError):
    """The reply is not a usable answer; the message says why (it is sent back in the repair turn)."""


class LlmAnswer(BaseModel):
    """A validated answer. Validate with `context={"categories": [...], ...}` (see `parse_answer`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    primary: str
    labels: tuple[str, ...] = ()
    # None: the answer format did not ask for it (see `answer_fields`)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    rationale: str | None = None

    @field_validator("primary", mode="before")
    @classmethod
    def _primary_in_enum(cls, value: Any, info: ValidationInfo) -> str:
        return _category(value, info, "primary")

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_in_enum(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("labels must be a list of category names")
        return tuple(_category(v, info, "labels") for v in value)

    @field_validator("confidence", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # bool is an int in Python and a string is not a number: neither is a confidence
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("confidence must be a number from 0 to 1")
        return value

    @field_validator("rationale", mode="before")
    @classmethod
    def _one_line(cls, value: Any, info: ValidationInfo) -> str:
        if not isinstance(value, str):
            raise ValueError("rationale must be a string")
        limit = int((info.context or {}).get("rationale_max_chars", 200))
        text = " ".join(_CONTROL.sub(" ", value).split())
        return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _category(value: Any, info: ValidationInfo, field: str) -> str:
    categories = (info.context or {}).get("categories")
    if not categories:
        raise ValueError("validation needs the categories in the context")  # a programming error
    if not isinstance(value, str):
        raise ValueError(f"{field}: category names are strings")
    name = value.strip().lower()  # "Food " is food; anything else must match exactly
    if name not in categories:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ValueError(f"{field}: {shown!r} is not one of the categories")
    return name


def check_fields(fields: Sequence[str]) -> tuple[str, ...]:
    """The answer's fields in their canonical order; `primary` is always one. Raises ValueError."""
    unknown = [f for f in fields if f not in ANSWER_FIELDS]
    if unknown:
        raise ValueError(f"unknown answer field(s) {unknown}; choose from {list(ANSWER_FIELDS)}")
    if "primary" not in fields:
        raise ValueError("the answer needs the field 'primary'")
    return tuple(f for f in ANSWER_FIELDS if f in fields)


def answer_schema(
    categories: list[str],
    max_labels: int,
    *,
    rationale_max_chars: int | None = None,
    fields: Sequence[str] = ANSWER_FIELDS,
) -> dict[str, Any]:
    """JSON schema for the answer, strict-mode compatible (every field required, no extras).

    Without `rationale_max_chars` it has no length bounds: OpenAI's strict mode does not accept every
    bound, so they are stated in the prompt and checked by `parse_answer`. With it, the rationale and
    the label list are bounded, for servers that compile the schema into a grammar (llama.cpp): an
    unbounded string lets a small model ramble until max_tokens cuts the JSON, slowly.
    """
    enum = {"type": "string", "enum": list(categories)}
    labels: dict[str, Any] = {"type": "array", "items": enum}
    rationale: dict[str, Any] = {"type": "string"}
    if rationale_max_chars is not None:
        labels.update(minItems=1, maxItems=max_labels)
        rationale.update(minLength=1, maxLength=rationale_max_chars)
    properties: dict[str, Any] = {
        "primary": enum,
        "labels": labels,
        "confidence": {"type": "number"},
        "rationale": rationale,
    }
    wanted = check_fields(fields)
    return {
        "type": "object",
        "properties": {f: properties[f] for f in wanted},
        "required": list(wanted),
        "additionalProperties": False,
    }


def answer_grammar(
    categories: list[str], max_labels: int, rationale_max_chars: int, fields: Sequence[str] = ANSWER_FIELDS
) -> str:
    """A GBNF grammar for llama.cpp servers that take `grammar` but no schema (mode `grammar`)."""
    cats = " | ".join(json.dumps(json.dumps(c)) for c in categories)
    more = max(0, max_labels - 1)
    values = {"primary": "category", "labels": "labels", "confidence": "confidence", "rationale": "rationale"}
    members = ' "," ws '.join(f'"\\"{f}\\":" ws {values[f]}' for f in check_fields(fields))
    return "\n".join(
        [
            f'root ::= "{{" ws {members} ws "}}"',
            f"category ::= {cats}",
            f'labels ::= "[" ws (category (ws "," ws category){{0,{more}}})? ws "]"',
            'confidence ::= "0" ("." [0-9]{1,3})? | "1" (".0")?',
            f'rationale ::= "\\"" [^"\\\\\\x00-\\x1f]{{1,{rationale_max_chars}}} "\\""',
            "ws ::= [ \\t\\n]{0,2}",
        ]
    )


def _json_object(text: str) -> dict[str, Any]:
    fenced = _FENCE.match(text)
    if fenced:  # models without structured output like to wrap JSON in a Markdown fence
        text = fenced.group(1)
    start = text.find("{")
    if start < 0:
        raise AnswerError("the reply is not a JSON object")
    try:
        # raw_decode: a weak model may add prose after the object; the first object is the answer
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise AnswerError(f"the reply is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise AnswerError("the reply is not a JSON object")
    return value


def parse_answer(
    text: str | None,
    categories: list[str],
    *,
    max_labels: int = 3,
    rationale_max_chars: int = 200,
    fields: Sequence[str] = ANSWER_FIELDS,
) -> tuple[LlmAnswer, list[str]]:
    """Validate a reply. Returns the answer and notes; raises AnswerError with a reason to repair."""
    wanted = check_fields(fields)
    if text is None or not text.strip():
        raise AnswerError("the reply is empty")
    data = _json_object(text)
    notes: list[str] = []
    missing = [f for f in wanted if f not in data]
    if missing:
        raise AnswerError(f"field(s) missing: {', '.join(missing)}")
    # A field the format did not ask for is ignored like any other extra: only asked fields flow on.
    extra = [k for k in data if k not in wanted]
    if extra:
        # Names are not echoed: they come from the model, possibly steered by the uploader.
        notes.append(f"llm: ignored {len(extra)} field(s) outside the answer schema")
    context = {"categories": set(categories), "rationale_max_chars": rationale_max_chars}
    try:
        answer = LlmAnswer.model_validate({k: data[k] for k in wanted}, context=context)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "answer"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(msg if msg.startswith(where) else f"{where}: {msg}")
        raise AnswerError("; ".join(problems)) from None
    # Primary first, no duplicates, at most max_labels: the cascade's label policy expects that shape.
    labels = [answer.primary, *(lab for lab in answer.labels if lab != answer.primary)]
    labels = list(dict.fromkeys(labels))[:max_labels]
    return answer.model_copy(update={"labels": tuple(labels)}), notes
