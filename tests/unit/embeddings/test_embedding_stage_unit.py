"""EmbeddingStage on real ONNX sessions: text only, with the tiny CLIP, hostile GIFs, leave-one-out kNN."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gifcat.adapters.embeddings.artefacts import ArtefactError, locate_clip, sha256_file
from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.config import ConfigError, Settings, load_settings
from gifcat.domain.model import Classification, GifItem, GifMetadata, StageName, StageOutput, Status
from gifcat.domain.records import LabelledRecord
from gifcat.domain.stages.embedding import EmbeddingStage, item_text
from gifcat.domain.taxonomy import Category, Taxonomy
from tests.unit.embeddings.gif_factory import colour_frames, pillow_gif, raw_gif

TAXONOMY = Taxonomy(
    version="test-1",
    generic_tags=("gif", "viral"),
    categories=(
        Category(
            name="food",
            description="food, drink, cooking, eating",
            examples=("a pizza with melting cheese", "someone cooking pasta"),
            image_prompts=("a plate of food",),
        ),
        Category(
            name="animals",
            description="animals or wildlife as the subject",
            examples=("a cat sleeping", "a dog running in the park"),
        ),
        Category(
            name="sports",
            description="athletes, matches, goals, dunks",
            examples=("a basketball dunk", "a football goal celebration"),
        ),
    ),
)
LABELLED = [
    LabelledRecord.model_validate(r)
    for r in [
        {
            "id": "l1",
            "title": "Pizza",
            "tags": ["pizza"],
            "description": "",
            "labels": ["food"],
            "primary": "food",
        },
        {
            "id": "l2",
            "title": "Burger time",
            "tags": [],
            "description": "",
            "labels": ["food"],
            "primary": "food",
        },
        {
            "id": "l3",
            "title": "Dog chasing ball",
            "tags": [],
            "description": "",
            "labels": ["animals"],
            "primary": "animals",
        },
    ]
]
SO_FAR = Classification(status=Status.PENDING)


def settings_with(**options: Any) -> Settings:
    data = load_settings().model_dump(by_alias=True)
    data["stages"]["embedding"].update({"threads": 1, **options})
    return Settings.model_validate(data)


def item(
    title: str = "",
    tags: tuple[str, ...] = (),
    description: str = "",
    gif: bytes | None = None,
    id: str = "u1",
) -> GifItem:
    return GifItem(id=id, metadata=GifMetadata(title=title, tags=tags, description=description), gif=gif)


@pytest.fixture(scope="module")
def text_stage(minilm_root: Path) -> EmbeddingStage:
    return build_embedding_stage(settings_with(), TAXONOMY, models_dir=minilm_root, labelled=LABELLED)


@pytest.fixture(scope="module")
def clip_stage(clip_root: Path) -> EmbeddingStage:
    return build_embedding_stage(settings_with(), TAXONOMY, models_dir=clip_root, labelled=LABELLED)


def test_text_only_scores_every_category(text_stage: EmbeddingStage, minilm_root: Path) -> None:
    out = text_stage.score(item("Cheesy pizza slice", ("#foodporn", "#viral")), SO_FAR)
    assert out.stage is StageName.EMBEDDING and out.error is None
    assert {c.category for c in out.candidates} == {"food", "animals", "sports"}
    assert all(0.0 <= c.score <= 1.0 for c in out.candidates)
    assert abs(sum(c.score for c in out.candidates) - 1.0) < 1e-5
    best = max(out.candidates, key=lambda c: c.score)
    assert best.category == "food"
    assert any(e.startswith("text≈") for e in best.evidence)
    assert any(e.startswith("knn: ") for e in best.evidence)
    assert "image: no CLIP artefacts, text only" in out.notes
    # the per-channel graph the settings name, identified by the file the build wrote
    graph = minilm_root / "minilm" / "model.pc.onnx"
    assert out.model == f"minilm-l6-v2-int8pc@{sha256_file(graph)[:8]}"


def test_the_gif_is_read_only_for_clip(text_stage: EmbeddingStage, clip_stage: EmbeddingStage) -> None:
    # The embed step downloads the GIF when its stage wants it: without CLIP every GIF was read for nothing.
    assert not text_stage.wants_gif(item("a dog")) and clip_stage.wants_gif(item("a dog"))


def test_leave_one_out(text_stage: EmbeddingStage) -> None:
    # Scored as l3 itself, the only 'animals' example may not vote for itself.
    own = text_stage.score(item("Dog chasing ball", id="l3"), SO_FAR)
    other = text_stage.score(item("Dog chasing ball", id="new"), SO_FAR)
    animals_own = next(c for c in own.candidates if c.category == "animals")
    animals_other = next(c for c in other.candidates if c.category == "animals")
    assert not any(e.startswith("knn") for e in animals_own.evidence)
    assert any(e.startswith("knn: 1/") for e in animals_other.evidence)


def test_with_clip_and_gif(clip_stage: EmbeddingStage) -> None:
    out = clip_stage.score(item("a dog", gif=pillow_gif(colour_frames(8))), SO_FAR)
    assert out.error is None and out.usage["frames"] == 4
    assert (
        out.model and out.model.startswith("minilm-l6-v2-int8pc@") and ",clip-tiny-random-int8@" in out.model
    )
    assert all(any(e.startswith("image ") for e in c.evidence) for c in out.candidates)
    assert not any(n.startswith("image:") for n in out.notes)


def test_with_clip_but_no_gif(clip_stage: EmbeddingStage) -> None:
    out = clip_stage.score(item("a dog"), SO_FAR)
    assert "image: no GIF bytes, text only" in out.notes
    assert out.model and "clip" not in out.model


@pytest.mark.parametrize(
    ("gif", "reason"),
    [
        (b"GIF89a\x10\x00\x10\x00" + b"\xff" * 30, "corrupt"),
        (raw_gif(frames=0), "no_frames"),
        (raw_gif(50000, 50000), "too_large"),
    ],
)
def test_bad_gif_is_a_note_not_a_crash(clip_stage: EmbeddingStage, gif: bytes, reason: str) -> None:
    out = clip_stage.score(item("pizza", gif=gif), SO_FAR)
    assert out.error is None and out.candidates
    assert any(n.startswith("image: ") and n.endswith("text only") for n in out.notes), out.notes


def test_long_gif_is_sampled_from_a_prefix(clip_stage: EmbeddingStage) -> None:
    out = clip_stage.score(item("pizza", gif=raw_gif(16, 16, frames=5000)), SO_FAR)
    assert out.usage["frames"] == 4
    assert any("sampled the first 300 of 5000 frames" in n for n in out.notes)


def test_gif_only_item_uses_image(clip_stage: EmbeddingStage) -> None:
    out = clip_stage.score(item(gif=pillow_gif(colour_frames(2))), SO_FAR)
    assert out.error is None and len(out.candidates) == 3
    assert "text: no usable title, tags or description" in out.notes


def test_nothing_to_embed_is_an_error(text_stage: EmbeddingStage) -> None:
    out = text_stage.score(item(tags=("#gif",)), SO_FAR)
    assert out.error and not out.candidates


def test_missing_minilm_artefacts(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match=r"build_models\.py"):
        build_embedding_stage(settings_with(), TAXONOMY, models_dir=tmp_path)


def test_missing_per_channel_variant_says_how_to_build(minilm_root: Path, tmp_path: Path) -> None:
    # A build without --per-channel: the shipped graph, its tokenizer and a manifest of just those.
    plain = tmp_path / "minilm"
    plain.mkdir()
    manifest = json.loads((minilm_root / "minilm" / "manifest.json").read_text())
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(minilm_root / "minilm" / name, plain / name)
    manifest["files"].pop("model.pc.onnx")
    (plain / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtefactError, match="--per-channel"):
        build_embedding_stage(settings_with(text_model="model.pc.onnx"), TAXONOMY, models_dir=tmp_path)


def test_unknown_option_is_rejected(minilm_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"settings: stages\.embedding: wieghts: Extra inputs"):
        build_embedding_stage(settings_with(wieghts={}), TAXONOMY, models_dir=minilm_root)


def test_item_text_drops_generic_tags_and_brand_suffix() -> None:
    text = item_text(
        "Happy Dance GIF by Originals",
        ["#HappyDance", "#gif", "viral", "party"],
        "",
        TAXONOMY.normalised_generic_tags,
    )
    assert text == "Happy Dance. happy dance, party"


def test_image_graph_is_a_setting(clip_root: Path) -> None:
    from gifcat.adapters.embeddings.frames import sample_frames
    from gifcat.adapters.embeddings.image import ClipEncoder

    files = locate_clip(clip_root)
    assert files is not None and {"image.onnx", "image.int8.onnx"} <= set(files.manifest["files"])
    frames = sample_frames(pillow_gif(colour_frames(8)), 4).frames
    fp32 = ClipEncoder(files, image_model="image.onnx").encode_frames(frames)
    int8 = ClipEncoder(files, image_model="image.int8.onnx").encode_frames(frames)
    assert float((fp32 * int8).sum()) > 0.98  # quantised tower, same direction
    with pytest.raises(ArtefactError, match=r"image\.fp16\.onnx"):
        ClipEncoder(files, image_model="image.fp16.onnx")


def llm_images(images: bool | str, model: str = "gpt-4o-mini") -> Settings:
    data = settings_with().model_dump(by_alias=True)
    data["stages"]["llm"].update({"images": images, "model": model})
    return Settings.model_validate(data)


@pytest.mark.parametrize(("images", "model"), [(False, "gpt-4o-mini"), ("auto", "gemma-3-270m-q4_k_m")])
def test_no_text_and_no_clip_is_skipped_when_the_llm_reads_no_images(
    minilm_root: Path, images: bool | str, model: str
) -> None:
    settings = llm_images(images, model)
    stage = build_embedding_stage(settings, TAXONOMY, models_dir=minilm_root, labelled=LABELLED)
    out = stage.score(item(gif=pillow_gif(colour_frames(2))), SO_FAR)
    assert out.skipped == "no text and no image model"
    assert out.error is None and not out.candidates


def test_no_text_and_no_clip_is_left_to_an_llm_that_reads_frames(minilm_root: Path) -> None:
    stage = build_embedding_stage(llm_images("auto"), TAXONOMY, models_dir=minilm_root, labelled=LABELLED)
    out = stage.score(item(gif=pillow_gif(colour_frames(2))), SO_FAR)
    assert out.skipped is None and out.error is None and not out.candidates
    assert out.abstained == "no text, and no CLIP artefacts to look at the frames"
    assert "image: no CLIP artefacts; the LLM step reads the frames" in out.notes


def test_no_text_with_clip_reads_the_frames_whatever_the_llm(clip_root: Path) -> None:
    stage = build_embedding_stage(llm_images(False), TAXONOMY, models_dir=clip_root, labelled=LABELLED)
    out = stage.score(item(gif=pillow_gif(colour_frames(2))), SO_FAR)
    assert out.skipped is None and out.error is None and len(out.candidates) == 3


def test_a_category_without_labelled_examples_is_never_decided(
    text_stage: EmbeddingStage, minilm_root: Path
) -> None:
    # LABELLED holds food and animals only: sports ranks first here on its prototype alone.
    assert text_stage.learned_categories == {"food", "animals"}
    dunk = text_stage.score(item("Slam dunk at the buzzer", ("basketball", "nba")), SO_FAR)
    assert max(dunk.candidates, key=lambda c: c.score).category == "sports"
    assert (dunk.abstained or "").startswith("no labelled example of sports yet")
    pizza = text_stage.score(item("Cheesy pizza slice", ("pizza",)), SO_FAR)
    assert pizza.abstained is None
    # With no memory and no classifier the prototypes are all there is: nothing to hold a category to.
    prototypes_only = settings_with(labelled=None, memory="none")
    bare = build_embedding_stage(prototypes_only, TAXONOMY, models_dir=minilm_root)
    assert bare.learned_categories is None
    assert bare.score(item("Slam dunk at the buzzer", ("basketball", "nba")), SO_FAR).abstained is None


def read_alone(out: StageOutput) -> bool:
    return any(e.startswith("description alone") for c in out.candidates for e in c.evidence)


def test_the_description_read_alone_can_outvote_the_tags(minilm_root: Path) -> None:
    # Food words in the title and tags, a match in the description: the whole text reads as food, the
    # description alone as sports, and mixed in at `description_weight` it turns the ranking round.
    ironic = item("Hot dog", ("hot dog", "pizza", "burger", "fries"), "he dunks the basketball")
    ranked = {}
    for weight in (0.0, 0.5):
        stage = build_embedding_stage(
            settings_with(description_weight=weight), TAXONOMY, models_dir=minilm_root, labelled=LABELLED
        )
        out = stage.score(ironic, SO_FAR)
        ranked[weight] = sorted(out.candidates, key=lambda c: -c.score)
        assert read_alone(out) == (weight > 0)
    assert ranked[0.0][0].category == "food"
    assert ranked[0.5][0].category == "sports"
    assert any(e.startswith("description alone") for e in ranked[0.5][0].evidence)
    assert abs(sum(c.score for c in ranked[0.5]) - 1.0) < 1e-5


def test_a_description_alone_is_not_read_twice(text_stage: EmbeddingStage) -> None:
    out = text_stage.score(item(description="a dog runs after a ball in the park"), SO_FAR)
    assert max(out.candidates, key=lambda c: c.score).category == "animals"
    assert not read_alone(out)


def test_a_removed_category_is_neither_remembered_nor_taught(text_stage: EmbeddingStage) -> None:
    # Examples written under an older taxonomy: "space" is gone, so its record teaches its other label,
    # and a record with no label of this taxonomy is left out; no fitted classifier could learn "space".
    older = [
        LabelledRecord(id="o1", title="Rocket snack", labels=["space", "food"], primary="space"),
        LabelledRecord(id="o2", title="Moon landing", labels=["space"], primary="space"),
        LabelledRecord(id="o3", title="Cat nap", labels=["animals"]),
    ]
    memory = text_stage.embed_labelled(older)
    assert memory.ids == ["o1", "o3"]
    assert memory.primaries == ["food", "animals"]
    assert memory.labels == [("food",), ("animals",)]
