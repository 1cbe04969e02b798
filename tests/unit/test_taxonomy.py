from __future__ import annotations

from pathlib import Path

import pytest

from gifcat.config import ConfigError, load_settings
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy, parse_taxonomy

REFERENCE = [
    "funny",
    "cute",
    "love",
    "sad",
    "angry",
    "celebration",
    "surprised",
    "animals",
    "sports",
    "dance",
    "food",
    "gaming",
    "movies_tv",
    "greetings",
]


def test_bundled_taxonomy_has_the_reference_categories(taxonomy: Taxonomy) -> None:
    assert taxonomy.names == REFERENCE
    for cat in taxonomy.categories:
        assert cat.description and cat.aliases and cat.rules and cat.examples, cat.name


def test_no_alias_names_two_categories(taxonomy: Taxonomy) -> None:
    owner: dict[str, str] = {}
    clashes = []
    for cat in taxonomy.categories:
        for key in cat.normalised_aliases:
            if key in owner and owner[key] != cat.name:
                clashes.append((key, owner[key], cat.name))
            owner[key] = cat.name
    assert clashes == []


def test_generic_tags_are_not_aliases(taxonomy: Taxonomy) -> None:
    aliases = set().union(*(c.normalised_aliases for c in taxonomy.categories))
    assert not aliases & taxonomy.normalised_generic_tags


BAD = """
version: "t1"
categories:
  - name: funny
    description: lol
    aliases: [lol]
  - name: sad
    description: tears
    rules:
      - {id: sad-1, pattern: '(unclosed', fields: [title]}
"""


def test_bad_rule_fails_at_load_naming_the_category() -> None:
    with pytest.raises(ConfigError) as err:
        parse_taxonomy(BAD, "taxonomy t.yaml")
    message = str(err.value)
    assert "categories.1 (sad)" in message
    assert "does not compile" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: x\ncategories: []", "no categories"),
        ("version: x\ncategories:\n  - {name: Funny, description: d}", "lower_snake_case"),
        (
            "version: x\ncategories:\n  - {name: a, description: d}\n  - {name: a, description: d}",
            "listed twice",
        ),
        ("version: x\ncategories:\n  - {name: a, description: d, colour: red}", "colour"),
        (
            "version: x\ncategories:\n  - {name: a, description: d,"
            " rules: [{id: r, pattern: x, fields: [body]}]}",
            "fields must be some of",
        ),
        ("- just a list", "expected a mapping"),
        ("version: [unclosed", "not valid YAML"),
    ],
)
def test_malformed_taxonomies_are_named(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_taxonomy(text)


def test_taxonomy_override_by_path_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("version: mine-1\ncategories:\n  - {name: memes, description: memes, aliases: [meme]}\n")
    assert load_taxonomy(str(path)).names == ["memes"]
    monkeypatch.setenv("GIFCAT_TAXONOMY", str(path))
    assert load_taxonomy().version == "mine-1"


def test_settings_overrides_merge_and_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIFCAT_OVERRIDES", '{"stages": {"tags": {"min_score": 0.95}}}')
    settings = load_settings()
    assert settings.thresholds("tags").min_score == 0.95
    assert settings.thresholds("tags").min_margin == load_settings(overrides={}).thresholds("tags").min_margin
    monkeypatch.setenv("GIFCAT_OVERRIDES", '{"stages": {"tags": {"min_score": 7}}}')
    with pytest.raises(ConfigError, match=r"stages\.tags\.min_score"):
        load_settings()
    monkeypatch.setenv("GIFCAT_OVERRIDES", "{not json")
    with pytest.raises(ConfigError, match="GIFCAT_OVERRIDES"):
        load_settings()
