"""A new category in an afternoon: a taxonomy entry with a description and a few example phrases (no
aliases, no rules, no labelled examples) is offered to the LLM at once, and the embedding stage takes it
over once labelled examples of it exist. Uses the real MiniLM and the bundled memory artefact."""

from __future__ import annotations

from typing import Any

import pytest

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.llm.factory import build_llm_stage
from gifcat.config import Settings, load_settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.model import GifItem, GifMetadata, StageName, Status
from gifcat.domain.records import LabelledRecord, load_labelled
from gifcat.domain.stages.embedding import EmbeddingStage
from gifcat.domain.stages.llm import LlmStage
from gifcat.domain.taxonomy import Taxonomy

SPACE = {
    "name": "space",
    "description": "space flight and astronomy: rockets, astronauts, planets, the moon and the stars",
    "examples": [
        "a rocket launch at the end of the countdown",
        "an astronaut floating inside the space station",
        "the planets of the solar system turning",
    ],
}
ITEM = GifItem(
    id="new-1",
    metadata=GifMetadata(
        title="Liftoff", tags=("#nasa",), description="The rocket clears the tower at ignition"
    ),
)
# What a few days of answers would give: people's corrections and confident LLM answers, exported.
SPACE_EXAMPLES = [
    ("Falcon landing", ["spacex", "booster"], "the first stage lands upright on the drone ship"),
    ("Moonwalk", ["apollo", "moon"], "an astronaut bounces across the lunar surface"),
    ("Saturn rings", ["planets", "telescope"], "the rings of saturn through a backyard telescope"),
    ("ISS flyover", ["iss", "orbit"], "the space station crosses the night sky"),
    ("Launch day", ["rocket", "launch"], "a rocket lifts off in a cloud of smoke and fire"),
    ("Mars rover", ["mars", "rover"], "the rover drives over red martian dust"),
]


@pytest.fixture(scope="module")
def with_space(taxonomy: Taxonomy) -> Taxonomy:
    doc = taxonomy.model_dump()
    return Taxonomy.model_validate(
        {**doc, "version": f"{taxonomy.version}+space", "categories": [*doc["categories"], SPACE]}
    )


def llm_stage(taxonomy: Taxonomy, model: str = "m") -> LlmStage:
    endpoint = {"base_url": "http://127.0.0.1:9/v1", "model": model}
    return build_llm_stage(load_settings(overrides={"stages": {"llm": endpoint}}), taxonomy)


def embedded(settings: Settings, taxonomy: Taxonomy, labelled: Any = None) -> tuple[EmbeddingStage, Any]:
    stage = build_embedding_stage(settings, taxonomy, labelled=labelled)
    cascade = Cascade.from_settings(settings, [stage], taxonomy)
    return stage, cascade.run(ITEM, cascade.start(), only=(StageName.EMBEDDING,))


def test_a_new_category_is_offered_to_the_llm_at_once(settings: Settings, with_space: Taxonomy) -> None:
    stage, result = embedded(settings, with_space)  # the bundled memory and classifier: no space in them
    assert stage.head is not None and "space" not in stage.head.categories
    # No example of it yet: the embedding stage ranks it first but abstains, whatever its margin, because
    # the memory and the classifier cannot vote for it; the LLM decides.
    assert result.status is Status.UNDECIDED
    assert result.top_candidates(1)[0].category == "space"
    assert stage.learned_categories is not None and "space" not in stage.learned_categories
    assert (stage.score(ITEM).abstained or "").startswith("no labelled example of space yet")
    llm = llm_stage(with_space)
    choices = llm.choices(result)
    assert choices == tuple(with_space.names)  # the configured model may name any category, the new one too
    # The local model is held to the embedding stage's top 4, where the new category's prototype put it.
    local = llm_stage(with_space, load_settings().options("llm", LlmOptions).local.model_name).choices(result)
    assert "space" in local and len(local) == 4
    system = llm.prompt.messages(ITEM, result.top_candidates(), [], choices)[0]["content"]
    assert f"- space: {SPACE['description']}" in system and SPACE["examples"][0] in system
    assert result.taxonomy_version == with_space.version  # the result names the taxonomy it was made with


def test_the_embedding_stage_takes_it_over_once_examples_exist(
    settings: Settings, with_space: Taxonomy
) -> None:
    records = load_labelled("bundled") + [
        LabelledRecord(id=f"space-{i}", title=t, tags=tags, description=d, labels=["space"], primary="space")
        for i, (t, tags, d) in enumerate(SPACE_EXAMPLES)
    ]
    stage, result = embedded(settings, with_space, labelled=records)
    out = stage.score(ITEM)
    assert out.abstained is None
    assert (result.status, result.decided_by, result.primary) == (
        Status.CLASSIFIED, StageName.EMBEDDING, "space"
    )
    space = next(c for c in out.candidates if c.category == "space")
    assert any(e.startswith("knn:") for e in space.evidence)  # its own examples voted for it


def test_the_readme_walkthroughs_category_loads_as_written(taxonomy: Taxonomy) -> None:
    # README's step 1 is pasted under `categories:` of a copy of the taxonomy: as written, it must
    # load (an unquoted "a: b" inside a description once broke it) and be this test's category.
    import re
    import textwrap
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    walkthrough = readme.split("### A new category in an afternoon", 1)[1]
    step = walkthrough.split("# 1. ", 1)[1].split("\ngifcat ", 1)[0]
    snippet = textwrap.dedent("\n".join(re.sub(r"^#", "", line) for line in step.splitlines()[1:]))
    (category,) = yaml.safe_load(snippet)
    assert category["name"] == SPACE["name"] and category["description"] == SPACE["description"]
    assert set(category["examples"]) <= set(SPACE["examples"])
    doc = taxonomy.model_dump()
    added = Taxonomy.model_validate({**doc, "categories": [*doc["categories"], category]})
    assert "space" in added.names


def test_a_category_removed_from_the_taxonomy_leaves_the_bundled_memory_usable(
    settings: Settings, taxonomy: Taxonomy
) -> None:
    # The bundled memory holds dance examples. With dance removed, its vote raised KeyError('dance') on
    # every item whose neighbours were dancers (111 of dev's 293 other records): each a failed result.
    doc = taxonomy.model_dump()
    without = Taxonomy.model_validate({**doc, "version": f"{taxonomy.version}-dance",
                                       "categories": [c for c in doc["categories"] if c["name"] != "dance"]})
    stage = build_embedding_stage(settings, without)
    assert stage.labelled is not None and "dance" not in {lbl for row in stage.labelled.labels for lbl in row}
    dancer = GifItem(id="d-1", metadata=GifMetadata(title="moonwalk", tags=("dance", "moves"),
                                                    description="a man moonwalks across the stage"))
    out = stage.score(dancer)
    assert out.error is None and out.candidates and "dance" not in {c.category for c in out.candidates}
