"""The taxonomy as data: categories with descriptions, tag aliases, rules and example phrases.

Loaded from the bundled taxonomy.yaml, a path or an S3 object; a malformed file fails at load with a
message naming the bad entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import cached_property

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gifcat.config import (
    ConfigError,
    UriReader,
    bundled_text,
    describe_validation_error,
    parse_yaml,
    read_text,
)
from gifcat.domain.normalise import fold_pattern, normalise_tag

RULE_FIELDS = ("title", "tags", "description")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")  # an ISO 639 code: "ko", "fil"


class Rule(BaseModel):
    """A regular expression over some of the item's text fields, with the weight of a match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    pattern: str = Field(min_length=1)  # an empty pattern would match every text
    fields: tuple[str, ...] = RULE_FIELDS
    weight: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in fields if f not in RULE_FIELDS]
        if unknown or not fields:
            raise ValueError(f"fields must be some of {RULE_FIELDS}, got {list(fields)}")
        return fields

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            regex.compile(fold_pattern(pattern))
        except regex.error as exc:
            raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
        return pattern

    @cached_property
    def regex(self) -> regex.Pattern[str]:
        # Rules match normalised text (case folded, accents folded), so they are written in lower case;
        # their non-ASCII letters are folded as the text is (ß as ss, ё as е, ㅋ as the text's ᄏ).
        # The `regex` package, not `re`: its searches take a timeout, and a pattern that backtracks
        # without end ("^(a|aa)+$") must not hold an upload until the function times out.
        return regex.compile(fold_pattern(self.pattern))


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1, pattern=r"\S")  # the text prototype and the LLM prompt read it
    aliases: tuple[str, ...] = ()  # tags that name the category outright, as users type them
    # The same in other languages, by ISO 639 code (`ko: [사랑해, 사랑]` in the YAML): aliases like the
    # others for the tag and rule stages, kept apart so that a team sees which language a word is from
    # and the embedding stage's prototypes, which read `aliases`, stay in MiniLM's English. Pairs, not a
    # dict, so that a category stays hashable.
    aliases_by_language: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rules: tuple[Rule, ...] = ()
    examples: tuple[str, ...] = ()  # example phrases: the text prototype and the LLM prompt use them
    image_prompts: tuple[str, ...] = ()  # CLIP prompts ("a GIF of ..."); default from the name

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"category name {name!r} must be lower_snake_case")
        return name

    @field_validator("aliases_by_language", mode="before")
    @classmethod
    def _by_language(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        unknown = [code for code in value if not (isinstance(code, str) and _LANGUAGE.match(code))]
        if unknown:
            raise ValueError(f"languages are ISO 639 codes in lower case (\"es\", \"ko\"), got {unknown}")
        return tuple(value.items())

    @property
    def every_alias(self) -> tuple[str, ...]:
        """`aliases`, then those of every other language."""
        return self.aliases + tuple(word for _, words in self.aliases_by_language for word in words)

    @cached_property
    def normalised_aliases(self) -> frozenset[str]:
        return frozenset(n for a in self.every_alias if (n := normalise_tag(a)))

    def prompts(self) -> tuple[str, ...]:
        return self.image_prompts or (f"a GIF of {self.name.replace('_', ' ')}",)


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, pattern=r"\S")  # results record it: backfill --stale-only compares it
    generic_tags: tuple[str, ...] = ()  # tags that carry no evidence: #gif, #viral, #fyp...
    categories: tuple[Category, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Taxonomy:
        if len(self.categories) < 2:  # one category would be every GIF's answer, and none has no answer
            raise ValueError(f"{len(self.categories)} categories: a taxonomy needs at least 2")
        seen: set[str] = set()
        rule_ids: set[str] = set()
        owner: dict[str, str] = {}  # normalised alias -> its category
        written: dict[tuple[str, str], str] = {}  # (category, normalised alias) -> the alias as written
        for cat in self.categories:
            if cat.name in seen:
                raise ValueError(f"category {cat.name!r} is listed twice")
            seen.add(cat.name)
            for rule in cat.rules:
                if rule.id in rule_ids:
                    raise ValueError(f"rule id {rule.id!r} (category {cat.name!r}) is used twice")
                rule_ids.add(rule.id)
            for typed in cat.every_alias:
                written.setdefault((cat.name, normalise_tag(typed)), typed)
            for alias in cat.normalised_aliases:
                if owner.setdefault(alias, cat.name) != cat.name:
                    # The tag would count for both, and the tie go to the file's order.
                    first, second = written[(owner[alias], alias)], written[(cat.name, alias)]
                    same = "" if first == second == alias else f" ({first!r} and {second!r} normalise to it)"
                    raise ValueError(
                        f"alias {alias!r} is given to both {owner[alias]!r} and {cat.name!r}{same}"
                    )
        names = {normalise_tag(name): name for name in seen}
        for alias, cat_name in owner.items():
            if alias in names and names[alias] != cat_name:
                raise ValueError(f"alias {alias!r} of {cat_name!r} is the name of category {names[alias]!r}")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def get(self, name: str) -> Category:
        for cat in self.categories:
            if cat.name == name:
                return cat
        raise KeyError(name)

    @cached_property
    def normalised_generic_tags(self) -> frozenset[str]:
        return frozenset(n for t in self.generic_tags if (n := normalise_tag(t)))


def category_name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """Any of these category names as a whole word, in any case (the longest first, so "movies_tv"
    is not read as a shorter name); None when there are none."""
    ordered = sorted({n for n in names if n}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, ordered)) + r")(?![^\W_])", re.IGNORECASE)


def parse_taxonomy(text: str, what: str = "taxonomy") -> Taxonomy:
    data = parse_yaml(text, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: expected a mapping with 'version' and 'categories'")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        message = describe_validation_error(what, exc)
        # Name the category, not only its index: "categories.3" becomes "categories.3 (sad)".
        cats = data.get("categories")
        if isinstance(cats, list):
            for i, cat in enumerate(cats):
                if isinstance(cat, dict) and "name" in cat:
                    message = re.sub(rf"\bcategories\.{i}\b", f"categories.{i} ({cat['name']})", message)
        raise ConfigError(message) from exc


def load_taxonomy(source: str | None = None, *, read_uri: UriReader | None = None) -> Taxonomy:
    """The bundled taxonomy unless `source` (or GIFCAT_TAXONOMY) is a path or s3://bucket/key (read
    with `read_uri`)."""
    source = source or os.environ.get("GIFCAT_TAXONOMY") or None
    if source in (None, "", "bundled"):
        return parse_taxonomy(bundled_text("taxonomy.yaml"), "bundled taxonomy.yaml")
    return parse_taxonomy(read_text(source, read_uri), f"taxonomy {source}")
