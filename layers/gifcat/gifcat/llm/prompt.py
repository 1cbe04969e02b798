"""Prompts from versioned files, and the messages built from them for one item.

The uploader's text is untrusted. It goes into the prompt only JSON-encoded, inside marked tags, with
`<`, `>` and `&` escaped so no title or tag can close the tag and pose as instructions; the system
text says the tagged content is data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gifcat.model import Candidate, GifItem
from gifcat.taxonomy import Taxonomy

_SECTION = re.compile(r"^=== (\w+) ===$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_VERSION = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SECTIONS = ("system", "user", "repair")

Message = dict[str, str]


class PromptError(ValueError):
    """A prompt file that cannot be used."""


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str
    repair: str


def parse_prompt(text: str, version: str) -> PromptTemplate:
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    missing = [s for s in SECTIONS if not sections.get(s, "").strip()]
    if missing:
        raise PromptError(f"prompt {version}: missing section(s) {missing}")
    return PromptTemplate(version=version, **{s: sections[s] for s in SECTIONS})


def load_prompt(name: str) -> PromptTemplate:
    """`name` is a bundled prompt version (gifcat/prompts/<name>.txt) or a path to a .txt file."""
    if name.endswith(".txt"):
        path = Path(name)
        return parse_prompt(path.read_text(encoding="utf-8"), path.stem)
    if not _VERSION.match(name):
        raise PromptError(f"prompt {name!r}: not a prompt version name")
    try:
        text = resources.files("gifcat.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompt {name!r}: no gifcat/prompts/{name}.txt") from None
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


def render_categories(taxonomy: Taxonomy, examples_per_category: int) -> str:
    lines = []
    for cat in taxonomy.categories:
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

    @property
    def version(self) -> str:
        return self.template.version

    def system_text(self) -> str:
        return fill(
            self.template.system,
            categories=render_categories(self.taxonomy, self.examples_per_category),
            max_labels=str(self.max_labels),
        )

    def messages(self, item: GifItem, earlier: list[Candidate]) -> list[Message]:
        user = fill(
            self.template.user,
            earlier=render_earlier(earlier, set(self.taxonomy.names)),
            item=render_item(item, max_field_chars=self.max_field_chars, max_tags=self.max_tags),
        )
        if self.system_in_user:
            return [{"role": "user", "content": self.system_text() + "\n\n" + user}]
        return [{"role": "system", "content": self.system_text()}, {"role": "user", "content": user}]

    def repair(self, messages: list[Message], bad_reply: str | None, error: str) -> list[Message]:
        """The conversation plus the unusable reply and what was wrong with it, for one more try."""
        return [
            *messages,
            {"role": "assistant", "content": (bad_reply or "")[:2000]},
            {"role": "user", "content": fill(self.template.repair, error=error)},
        ]
