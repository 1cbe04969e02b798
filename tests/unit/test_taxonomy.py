from __future__ import annotations

import re
from pathlib import Path

import pytest

from gifcat.config import ConfigError, StageOptions, load_settings
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.model import StageName
from gifcat.domain.stages.embedding import EmbeddingOptions
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.stages.triage import TriageWeights
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
        ("version: x\ncategories: []", "0 categories: a taxonomy needs at least 2"),
        # One category would be every GIF's answer.
        ("version: x\ncategories:\n  - {name: a, description: d}", "1 categories: a taxonomy needs"),
        # A tag two categories claim, or one that names another category, is decided by the file's order.
        ("version: x\ncategories:\n  - {name: a, description: d, aliases: [cat]}\n"
         "  - {name: b, description: d, aliases: ['#Cats']}",
         "alias 'cat' is given to both 'a' and 'b' \\('cat' and '#Cats' normalise to it\\)"),
        ("version: x\ncategories:\n  - {name: funny, description: d, aliases: [sports]}\n"
         "  - {name: sports, description: d}", "alias 'sport' of 'funny' is the name of category 'sports'"),
        ("version: x\ncategories:\n  - {name: a, description: '  '}\n  - {name: b, description: d}",
         "description: String should match pattern"),
        ("version: ''\ncategories:\n  - {name: a, description: d}\n  - {name: b, description: d}",
         "version: String should have at least 1 character"),
        ("version: x\ncategories:\n  - {name: a, description: d, rules: [{id: r, pattern: ''}]}\n"
         "  - {name: b, description: d}", "pattern: String should have at least 1 character"),
        # PyYAML keeps the last of two keys: a second `categories` replaced the whole list.
        ("version: x\ncategories:\n  - {name: a, description: d}\ncategories: []",
         "not valid YAML at line 4, column 1: key 'categories' is written twice in one mapping"),
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
        ("version: x\ncategories:\n  - {name: a, description: d, aliases: [gato]}\n"
         "  - {name: b, description: d, aliases_by_language: {es: [gato]}}",
         "alias 'gato' is given to both 'a' and 'b'"),
        ("version: x\ncategories:\n  - {name: a, description: d, aliases_by_language: {Spanish: [gato]}}\n"
         "  - {name: b, description: d}", "languages are ISO 639 codes"),
        ("- just a list", "expected a mapping"),
        ("version: [unclosed", "not valid YAML"),
    ],
)
def test_malformed_taxonomies_are_named(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_taxonomy(text)


def test_taxonomy_override_by_path_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("version: mine-1\ncategories:\n  - {name: memes, description: memes, aliases: [meme]}\n"
                    "  - {name: other, description: everything else}\n")
    assert load_taxonomy(str(path)).names == ["memes", "other"]
    monkeypatch.setenv("GIFCAT_TAXONOMY", str(path))
    assert load_taxonomy().version == "mine-1"


def test_a_config_file_that_cannot_be_read_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read: No such file"):
        load_taxonomy(str(missing))
    monkeypatch.setenv("GIFCAT_SETTINGS", str(missing))  # as a Lambda's environment names it
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read: No such file"):
        load_settings()
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read: 'utf-8' codec"):
        load_taxonomy(str(binary))


def test_settings_overrides_merge_and_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIFCAT_OVERRIDES", '{"stages": {"tags": {"min_score": 0.95}}}')
    settings = load_settings()
    assert settings.thresholds("tags").min_score == 0.95
    assert settings.thresholds("tags").min_margin == load_settings(overrides={}).thresholds("tags").min_margin
    monkeypatch.setenv("GIFCAT_OVERRIDES", '{"stages": {"tags": {"min_score": 7}}}')
    # The bad value is the override's: the message says the file was read with it.
    with pytest.raises(ConfigError, match=r"^bundled settings\.yaml with GIFCAT_OVERRIDES: stages\.tags"):
        load_settings()
    with pytest.raises(ConfigError, match=r"^bundled settings\.yaml with GIFCAT_OVERRIDES and the caller's "):
        load_settings(overrides={"stages": {"rules": {"min_score": 0.9}}})
    monkeypatch.delenv("GIFCAT_OVERRIDES")
    with pytest.raises(ConfigError, match=r"^bundled settings\.yaml with the caller's overrides: stages\."):
        load_settings(overrides={"stages": {"embedding": {"target": 2}}})
    monkeypatch.setenv("GIFCAT_OVERRIDES", '{"stages": {"tags": {"min_score": 7}}}')
    monkeypatch.setenv("GIFCAT_OVERRIDES", "{not json")
    with pytest.raises(ConfigError, match="GIFCAT_OVERRIDES"):
        load_settings()


@pytest.mark.parametrize(
    ("stage", "model", "knob"),
    [
        ("tags", TriageWeights, "tag_wieght"),
        ("embedding", EmbeddingOptions, "frame"),
        ("llm", LlmOptions, "modle"),
        ("rules", StageOptions, "min_margn"),  # thresholds only: the rule stage reads the tags' weights
    ],
)
def test_every_stage_reads_its_options_one_way(stage: str, model: type[StageOptions], knob: str) -> None:
    """A misspelt knob in any stage's section is a ConfigError naming the stage and the knob."""
    settings = load_settings()
    assert isinstance(settings.options(stage, model), model)
    bad = load_settings(overrides={"stages": {stage: {knob: 1}}})
    with pytest.raises(ConfigError, match=rf"settings: stages\.{stage}: {knob}: Extra inputs are not"):
        bad.options(stage, model)


def test_a_misspelt_rules_knob_fails_where_the_stages_are_built(taxonomy: Taxonomy) -> None:
    bad = load_settings(overrides={"stages": {"rules": {"min_margn": 0.3}}})
    with pytest.raises(ConfigError, match=r"stages\.rules: min_margn"):
        triage_stages(bad, taxonomy)


@pytest.mark.parametrize(
    ("overrides", "labelled", "words"),
    [
        ({"stages": {"embedding": {"min_margn": 0.3}}}, None, r"stages\.embedding: min_margn"),
        ({"stages": {"llm": {"modle": "x"}}}, None, r"stages\.llm: modle"),
        ({}, "no/such/examples.jsonl", r"labelled examples no/such/examples\.jsonl: no such file"),
        ({"stages": {"embedding": {"labelled": "no/such.jsonl"}}}, None, r"no/such\.jsonl: no such file"),
    ],
)
def test_the_local_pipeline_refuses_what_its_later_stages_would_fail_on(
    taxonomy: Taxonomy, overrides: dict, labelled: str | None, words: str
) -> None:
    # Built lazily, a later stage would fail on every item it reached (each a `failed` result, the
    # run's figures wrong and its exit 0): the pipeline checks what they read before the first item.
    from gifcat_tooling.pipeline import LocalPipeline

    with pytest.raises(ConfigError, match=words):
        LocalPipeline(load_settings(overrides=overrides), taxonomy, labelled=labelled)
    LocalPipeline(load_settings(overrides=overrides), taxonomy, until=StageName.RULES, labelled=labelled)


def test_a_misspelt_triage_weight_fails_where_the_stages_are_built(taxonomy: Taxonomy) -> None:
    bad = load_settings(overrides={"stages": {"tags": {"hashtag_wieght": 0.2}}})
    with pytest.raises(ConfigError, match=r"stages\.tags: hashtag_wieght"):
        triage_stages(bad, taxonomy)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"stages": {"embedding": {"min_margin": True}}}, r"embedding\.min_margin: Value error, a number"),
        ({"stages": {"tags": {"tag_weight": -0.8}}}, r"stages\.tags: tag_weight: Input should be greater"),
        ({"stages": {"tags": {"tag_weight": 50}}}, r"stages\.tags: tag_weight: Input should be less"),
        ({"stages": {"embedding": {"weights": {"txt": 0.4}}}}, r"stages\.embedding: weights\.txt"),
        ({"stages": {"embedding": {"weights": {"text": -1}}}}, r"stages\.embedding: weights\.text"),
    ],
)
def test_settings_that_would_silently_change_the_figures_are_refused(overrides: dict, expected: str) -> None:
    # `true` read as 1.0 (a stage that never decides), weights that break the scores, a misspelt signal
    # that drops out of the mix: each measured as lower accuracy with no word said.
    with pytest.raises(ConfigError, match=expected):
        settings = load_settings(overrides=overrides)
        settings.options("tags", TriageWeights)
        settings.options("embedding", EmbeddingOptions)


def test_an_llm_endpoint_that_is_not_a_url_fails_at_load() -> None:
    # GIFCAT_LLM_BASE_URL="not a url" passed the cold start; every LLM-bound item then failed four times.
    settings = load_settings(overrides={"stages": {"llm": {"base_url": "not a url"}}})
    with pytest.raises(ConfigError, match=r"stages\.llm: base_url: String should match pattern"):
        settings.options("llm", LlmOptions)


def test_a_config_object_s3_cannot_serve_is_a_config_error_naming_it() -> None:
    from gifcat.config import read_text

    def reader(uri: str) -> str:
        raise RuntimeError("NoSuchBucket: The specified bucket does not exist")

    with pytest.raises(ConfigError, match=r"^s3://gone/settings\.yaml: cannot read: RuntimeError: NoSuch"):
        read_text("s3://gone/settings.yaml", reader)


def test_a_taxonomy_whose_prompt_the_local_model_cannot_read_is_refused_before_the_first_item(
    taxonomy: Taxonomy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 114 categories the prompt's fixed part alone is past Gemma's 4,096-token context: every call
    # would fail, and every item that reached the LLM would end `failed`.
    from gifcat_tooling.pipeline import LocalPipeline

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no key, no base_url: the local model
    more = [c.model_copy(update={"name": f"{c.name}_{i}", "aliases": [], "rules": []})
            for i in range(100) for c in taxonomy.categories[i % 14 : i % 14 + 1]]
    large = taxonomy.model_copy(update={"categories": [*taxonomy.categories, *more]})
    with pytest.raises(ConfigError, match=r"stages\.llm\.local\.n_ctx: 4096 tokens cannot hold a call: the "
                                          r"prompt's fixed part \(instructions and 114 categories\)"):
        LocalPipeline(load_settings(), large)
    LocalPipeline(load_settings(), taxonomy)  # the bundled fourteen fit
    roomy = load_settings(overrides={"stages": {"llm": {"local": {"n_ctx": 16384}}}})
    LocalPipeline(roomy, large)
