"""Prompts from versioned files, and the messages built from them for one item.

The uploader's text is untrusted. It goes into the prompt only JSON-encoded, inside marked tags, with
`<`, `>` and `&` escaped so no title or tag can close the tag and pose as instructions; the system
text says the tagged content is data. The labelled examples shown as few-shot examples are other
uploaders' text: they are screened for planted instructions and encoded the same way.

The system text depends on settings only, never on the item: it comes first and is byte-identical
across calls, so providers' prompt caching and llama.cpp's prefix reuse skip it after the first call.
Everything that varies (examples, choices, earlier candidates, the item) comes after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from gifcat.domain.instructions import InstructionScreen
from gifcat.domain.llm.answer import ANSWER_FIELDS, check_fields
from gifcat.domain.model import Candidate, GifItem, Neighbour
from gifcat.domain.ports import Message
from gifcat.domain.taxonomy import Taxonomy

_SECTION = re.compile(r"^=== (\w+) ===$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_VERSION = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_FIELD_LINE = re.compile(r"^(\w+):\s*(.+)$")
SECTIONS = ("system", "user", "repair")
OPTIONAL_SECTIONS = ("fields", "frames")


class PromptError(ValueError):
    """A prompt file that cannot be used."""


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str
    repair: str
    # What each answer field means ("name: text" lines), for prompts whose answer format is a setting.
    # Empty: the prompt's wording names the four fields itself and only supports the full answer.
    fields: tuple[tuple[str, str], ...] = ()
    # The user turn for a GIF with no text, sent beside its sampled frames; empty: the prompt has none.
    frames: str = ""

    def supports(self, fields: tuple[str, ...]) -> bool:
        described = {name for name, _ in self.fields}
        return set(fields) <= described if self.fields else fields == ANSWER_FIELDS


def _parse_fields(text: str, version: str) -> tuple[tuple[str, str], ...]:
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _FIELD_LINE.match(line.strip())
        if not match or match.group(1) not in ANSWER_FIELDS:
            raise PromptError(f"prompt {version}: fields: {line.strip()!r} is not 'field: meaning'")
        found.append((match.group(1), match.group(2)))
    if "primary" not in {name for name, _ in found}:
        raise PromptError(f"prompt {version}: fields: 'primary' is not described")
    return tuple(found)


def parse_prompt(text: str, version: str) -> PromptTemplate:
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    missing = [s for s in SECTIONS if not sections.get(s, "").strip()]
    if missing:
        raise PromptError(f"prompt {version}: missing section(s) {missing}")
    unknown = [s for s in sections if s not in SECTIONS + OPTIONAL_SECTIONS]
    if unknown:
        raise PromptError(f"prompt {version}: unknown section(s) {unknown}")
    fields = _parse_fields(sections["fields"], version) if "fields" in sections else ()
    frames = sections.get("frames", "")
    return PromptTemplate(version=version, fields=fields, frames=frames, **{s: sections[s] for s in SECTIONS})


def load_prompt(name: str) -> PromptTemplate:
    """`name` is a bundled prompt version (gifcat/config/prompts/<name>.txt) or a path to a .txt file."""
    if name.endswith(".txt"):
        path = Path(name)
        return parse_prompt(path.read_text(encoding="utf-8"), path.stem)
    if not _VERSION.match(name):
        raise PromptError(f"prompt {name!r}: not a prompt version name")
    try:
        text = resources.files("gifcat.config.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompt {name!r}: no gifcat/config/prompts/{name}.txt") from None
    return parse_prompt(text, name)


def fill(template: str, **values: str) -> str:
    """Replace {{name}} placeholders. Single pass: a value containing "{{x}}" is not expanded again."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise PromptError(f"prompt placeholder {{{{{key}}}}} has no value")
        return values[key]

    return _PLACEHOLDER.sub(sub, template)


def encode_data(value: Any) -> str:
    """JSON that cannot close or open a tag: `<`, `>` and `&` become \\u escapes (still valid JSON)."""
    text = json.dumps(value, ensure_ascii=False, indent=None)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_categories(
    taxonomy: Taxonomy, examples_per_category: int, only: tuple[str, ...] | None = None
) -> str:
    """One line per category (description, examples); `only`: just these, in the taxonomy's order."""
    lines = []
    for cat in taxonomy.categories:
        if only is not None and cat.name not in only:
            continue
        description = cat.description.strip()
        line = f"- {cat.name}: {description}{'' if description.endswith(('.', '!', '?')) else '.'}"
        examples = [e for e in cat.examples if e.strip()][:examples_per_category]
        if examples:
            line += " Examples: " + "; ".join(json.dumps(e, ensure_ascii=False) for e in examples) + "."
        lines.append(line)
    return "\n".join(lines)


def render_item(item: GifItem, *, max_field_chars: int, max_tags: int) -> str:
    meta = item.metadata
    tags = [_cut(t, max_field_chars) for t in meta.tags if t.strip()][:max_tags]
    data = {
        "title": _cut(meta.title, max_field_chars),
        "tags": tags,
        "description": _cut(meta.description, max_field_chars),
    }
    return encode_data(data)


def select_examples(
    neighbours: list[Neighbour],
    *,
    exclude_id: str,
    limit: int,
    categories: set[str],
    screen: InstructionScreen,
) -> list[tuple[str, str]]:
    """(text, primary) of the nearest labelled examples to show, closest first.

    The item itself is never its own example (a labelled set may hold it: leave-one-out by id); an
    example whose category is not in this taxonomy, or with no text left once planted instructions
    are cut out, is not shown.
    """
    shown: list[tuple[str, str]] = []
    for n in neighbours:
        if len(shown) >= limit:
            break
        if n.id == exclude_id or n.primary not in categories:
            continue
        text, _ = screen.clean_text(n.text)
        if text.strip():
            shown.append((text.strip(), n.primary))
    return shown


def render_examples(examples: list[tuple[str, str]], max_chars: int) -> str:
    """One JSON object a line, the closest last: next to the item it is compared with."""
    if not examples:
        return "(no labelled examples)"
    return "\n".join(encode_data({"gif": _cut(t, max_chars), "primary": p}) for t, p in reversed(examples))


def render_earlier(candidates: list[Candidate], categories: set[str]) -> str:
    # Only category and score: evidence strings quote the uploader's text, which is already in the item.
    found = [
        {"category": c.category, "score": round(float(c.score), 2)}
        for c in candidates
        if c.category in categories
    ]
    return encode_data(found) if found else "[] (no suggestions)"


@dataclass(frozen=True)
class PromptBuilder:
    template: PromptTemplate
    taxonomy: Taxonomy
    max_labels: int = 3
    examples_per_category: int = 2
    max_field_chars: int = 500
    max_tags: int = 20
    # Gemma's chat template has no system role: the instructions then open the user turn
    system_in_user: bool = False
    answer_fields: tuple[str, ...] = ANSWER_FIELDS
    few_shot: int = 0  # nearest labelled examples shown with the item
    example_chars: int = 200
    screen: InstructionScreen = field(default_factory=InstructionScreen, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = check_fields(self.answer_fields)
        if not self.template.supports(fields):
            raise PromptError(
                f"prompt {self.version}: does not describe the answer field(s) {list(fields)}"
                + ("" if self.template.fields else " (it is written for the full four-field answer)")
            )
        object.__setattr__(self, "answer_fields", fields)
        if not self.screen.categories:  # the examples are screened knowing the taxonomy's names
            object.__setattr__(self, "screen", InstructionScreen(self.taxonomy.names))

    @property
    def version(self) -> str:
        return self.template.version

    def answer_format(self) -> str:
        meaning = dict(self.template.fields)
        lines = [f'- "{name}": {meaning[name]}' for name in self.answer_fields]
        return fill("\n".join(lines), max_labels=str(self.max_labels))

    @cached_property
    def _system(self) -> str:
        return fill(
            self.template.system,
            categories=render_categories(self.taxonomy, self.examples_per_category),
            max_labels=str(self.max_labels),
            answer_format=self.answer_format() if self.template.fields else "",
            field_names=_names(self.answer_fields),
        )

    def system_text(self) -> str:
        """The static part: the same for every item (built once), so prefix caches apply."""
        return self._system

    def examples(self, item: GifItem, neighbours: list[Neighbour]) -> list[tuple[str, str]]:
        """The few-shot examples shown with `item`: (text, primary), closest first."""
        return select_examples(
            neighbours,
            exclude_id=item.id,
            limit=self.few_shot,
            categories=set(self.taxonomy.names),
            screen=self.screen,
        )

    def messages(
        self,
        item: GifItem,
        earlier: list[Candidate],
        neighbours: list[Neighbour] | None = None,
        choices: tuple[str, ...] = (),
    ) -> list[Message]:
        categories = set(self.taxonomy.names)
        allowed = tuple(choices or self.taxonomy.names)
        user = fill(
            self.template.user,
            earlier=render_earlier(earlier, categories),
            examples=render_examples(self.examples(item, neighbours or []), self.example_chars),
            choices=encode_data(list(allowed)),
            # Prompts that describe only the allowed categories do it here (classify-v3), not in the
            # static system text: a call held to the earlier stages' top 4 reads 4 descriptions, not all.
            allowed_categories=render_categories(self.taxonomy, self.examples_per_category, only=allowed),
            item=render_item(item, max_field_chars=self.max_field_chars, max_tags=self.max_tags),
        )
        if self.system_in_user:
            return [{"role": "user", "content": self.system_text() + "\n\n" + user}]
        return [{"role": "system", "content": self.system_text()}, {"role": "user", "content": user}]

    def frame_messages(
        self,
        earlier: list[Candidate],
        images: Sequence[str],
        choices: tuple[str, ...] = (),
        detail: str = "low",
    ) -> list[Message]:
        """The messages for a GIF with no text: the prompt's `frames` turn, then its frames as image
        parts (`images`: data: URLs). The system text is the text path's, so prefix caches still apply."""
        if not self.template.frames:
            raise PromptError(f"prompt {self.version}: no 'frames' section for GIFs with no text")
        categories = set(self.taxonomy.names)
        allowed = tuple(choices or self.taxonomy.names)
        text = fill(
            self.template.frames,
            earlier=render_earlier(earlier, categories),
            choices=encode_data(list(allowed)),
            allowed_categories=render_categories(self.taxonomy, self.examples_per_category, only=allowed),
            frames=str(len(images)),
        )
        if self.system_in_user:
            text = self.system_text() + "\n\n" + text
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
        parts += [{"type": "image_url", "image_url": {"url": url, "detail": detail}} for url in images]
        user: Message = {"role": "user", "content": parts}
        if self.system_in_user:
            return [user]
        return [{"role": "system", "content": self.system_text()}, user]

    def repair(self, messages: list[Message], bad_reply: str | None, error: str) -> list[Message]:
        """The conversation plus the unusable reply and what was wrong with it, for one more try."""
        return [
            *messages,
            {"role": "assistant", "content": (bad_reply or "")[:2000]},
            {
                "role": "user",
                "content": fill(self.template.repair, error=error, field_names=_names(self.answer_fields)),
            },
        ]


def _names(fields: tuple[str, ...]) -> str:
    quoted = [f'"{f}"' for f in fields]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
