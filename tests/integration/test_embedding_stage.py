"""The embedding stage on the labelled dev set (bundled taxonomy, real MiniLM, leave-one-out kNN) and
from_settings with the tiny CLIP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.embeddings.text import TextEncoder
from gifcat.adapters.training import embedding_outcomes, fit, learn, stratified_folds
from gifcat.config import Settings, load_settings
from gifcat.domain.model import Classification, GifItem, GifMetadata, StageName, Status
from gifcat.domain.records import LabelledRecord
from gifcat.domain.taxonomy import load_taxonomy
from tests.conftest import DEV_DATA
from tests.support.batteries import as_metadata, battery

SPIN = "session.intra_op.allow_spinning"


def _dev_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEV_DATA.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_out_of_fold_decisions_hold_their_target(model_roots: tuple[Path, Path]) -> None:
    # Fitted on four fifths of dev (memory, classifier, threshold), judged on the fifth it never saw.
    # Triage is held off so that the stage is calibrated and judged on every record, not on the
    # harder part triage leaves (too few records in one fold to certify a 10% bound on).
    records = [LabelledRecord.model_validate(r) for r in _dev_records()]
    settings, taxonomy = load_settings(), load_taxonomy()
    base = build_embedding_stage(settings, taxonomy, models_dir=model_roots[0], labelled=[])
    train, test = stratified_folds(records, 5, seed=0)[0]
    off = {"min_score": 1.0, "min_margin": 0.0}
    fitted = fit(train, settings, taxonomy, base, triage={"tags": off, "rules": off})
    assert not {r.id for r in test} & set(fitted.learned.memory.ids)
    stage = base.with_learned(fitted.learned)
    margin = fitted.thresholds["embedding"]["min_margin"]
    outcomes = embedding_outcomes(stage, test)
    decided = [ok for score, ok in outcomes if score >= margin]
    # Measured 32/64 decided at 100% (Dec 2026); the bounds leave room for the machine's int8 kernels.
    assert len(decided) >= 0.3 * len(test)
    assert sum(decided) / len(decided) >= 0.85
    out = stage.score(test[0].item(), Classification(status=Status.PENDING))
    assert len(out.candidates) == len(taxonomy.names)
    assert out.neighbours and all(n.id not in {r.id for r in test} for n in out.neighbours)


@pytest.mark.slow
def test_memory_artefact_means_nothing_is_embedded_at_start(
    model_roots: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, taxonomy = load_settings(), load_taxonomy()
    base = build_embedding_stage(settings, taxonomy, models_dir=model_roots[0], labelled=[])
    records = [LabelledRecord.model_validate(r) for r in _dev_records()[:40]]
    artefact = tmp_path / "memory.npz"
    learn(base, records).save(artefact)
    calls: list[int] = []
    original = TextEncoder.encode
    monkeypatch.setattr(
        TextEncoder, "encode", lambda self, texts, *a: calls.append(len(texts)) or original(self, texts, *a)
    )
    with_memory = settings.model_copy(deep=True)
    with_memory.stages["embedding"].memory = str(artefact)  # type: ignore[attr-defined]
    stage = build_embedding_stage(with_memory, taxonomy, models_dir=model_roots[0])
    assert calls == []  # prototypes and examples both come from the file
    assert stage.labelled is not None and len(stage.labelled.ids) == 40 and stage.head is not None
    out = stage.score(records[0].item(), Classification(status=Status.PENDING))
    # One batch: the item's text (no description to read apart) and, as it names "food", the same text
    # without the category names (`names_need_the_rest`).
    assert records[0].description == "" and "food" in records[0].tags and calls == [2]
    assert records[0].id not in {n.id for n in out.neighbours}  # an example never votes for itself


@pytest.mark.slow
def test_from_settings_with_tiny_clip(
    model_roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from PIL import Image

    frames = [Image.new("RGB", (33, 17), (40 * i, 255 - 40 * i, 90)) for i in range(5)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    # as in the embed function at 2,048 MB: CPU time for 1.16 vCPUs, whatever cores it sees
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
    stage = build_embedding_stage(load_settings(), load_taxonomy(), models_dir=model_roots[1])
    item = GifItem(id="x", metadata={"title": "Pizza party"}, gif=buf.getvalue())
    out = stage.score(item, Classification(status=Status.PENDING))
    assert out.error is None and out.usage["frames"] == 4
    assert out.model and "clip-tiny-random-int8@" in out.model
    # stages.embedding's spin, threads and image_threads reach every onnxruntime session the stage
    # holds: by default no spinning, and "auto" threads (one here); numbers are kept as given
    overridden = build_embedding_stage(
        load_settings(overrides={"stages": {"embedding": {"spin": True, "threads": 1, "image_threads": 2}}}),
        load_taxonomy(), models_dir=model_roots[1],
    )
    for built, spin, threads in ((stage, "0", (1, 1, 1)), (overridden, "1", (1, 2, 2))):
        clip = built.clip
        assert clip is not None
        sessions = (built.text.session, clip.image_session, clip.text_session)
        assert [s.get_session_options().get_session_config_entry(SPIN) for s in sessions] == [spin] * 3
        assert tuple(s.get_session_options().intra_op_num_threads for s in sessions) == threads


def test_a_category_name_beside_a_scene_of_another_decides_nothing(model_roots: tuple[Path, Path]) -> None:
    # The bundled stage: a name set beside a scene that reads as another category is evidence of nothing
    # (`names_need_the_rest`), where a name the scene agrees with still counts.
    settings, taxonomy = load_settings(), load_taxonomy()
    stage = build_embedding_stage(settings, taxonomy, models_dir=model_roots[0])
    pending = Classification(status=Status.PENDING)

    def read(description: str, checked: Any = stage) -> Any:
        return checked.score(GifItem(id="t", metadata=GifMetadata(description=description)), pending)

    flood = "Flood waters sweep through a village — food"
    out = read(flood)
    assert out.abstained and out.abstained.startswith("category names decide it: without them the text")
    assert out.abstained.endswith(", not food")
    assert max(out.candidates, key=lambda c: c.score).category == "food"
    for agreed in ("Grandma's lasagna comes out of the oven, food heaven",
                   "The crowd goes wild after the buzzer-beater — sports at its best"):
        assert read(agreed).abstained is None, agreed
    data = settings.model_dump(by_alias=True)
    data["stages"]["embedding"]["names_need_the_rest"] = False
    off = build_embedding_stage(Settings.model_validate(data), taxonomy, models_dir=model_roots[0])
    assert read(flood, off).abstained is None


def test_names_beside_scenes_of_another_category_are_not_answered(model_roots: tuple[Path, Path]) -> None:
    # tests/data/injections/i: 100 bare category names set beside scenes of other categories, and 100
    # honest captions naming their own, written after the check by someone who had not seen it. The
    # tag, rule and embedding stages as shipped answered 26 attacks with the forced name without the
    # check and 2 with it, and decided 72 honest captions, all right (88 without it).
    from gifcat_tooling.pipeline import LocalPipeline

    pipeline = LocalPipeline(load_settings(), load_taxonomy(), StageName.EMBEDDING)
    forced = [row["text"] for i, row in enumerate(battery("i", "attacks"))
              if (a := pipeline.classify(GifItem(id=f"a{i}", metadata=as_metadata(row)))).decided
              and a.primary == row["forces"]]
    assert len(forced) <= 5, forced
    honest = [(pipeline.classify(GifItem(id=f"b{i}", metadata=as_metadata(row))), row["category"])
              for i, row in enumerate(battery("i", "benign"))]
    decided = [(a.primary, gold) for a, gold in honest if a.decided]
    assert len(decided) >= 65
    assert sum(primary == gold for primary, gold in decided) >= len(decided) - 2


def test_text_minilm_cannot_read_decides_nothing_and_hands_on_the_taxonomy_s_words(
    model_roots: tuple[Path, Path],
) -> None:
    # MiniLM's vocabulary is English: a Russian, Korean or Turkish caption reads as noise to it (most
    # land near "greetings"). The stage abstains there, and the taxonomy's words in the caption's
    # language (`aliases_by_language`) order the ranking it hands on.
    settings, taxonomy = load_settings(), load_taxonomy()
    stage = build_embedding_stage(settings, taxonomy, models_dir=model_roots[0])
    pending = Classification(status=Status.PENDING)

    def read(title: str, tags: tuple[str, ...], description: str = "", checked: Any = stage) -> Any:
        item = GifItem(id="t", metadata=GifMetadata(title=title, tags=tags, description=description))
        return checked.score(item, pending)

    for (title, tags, description), category in [
        (("Котик спит", ("котик", "сон"), ""), "animals"),
        (("", ("하키", "결승골"), "선수가 마지막 순간에 골을 넣는다"), "sports"),
        (("Çok sinirliyim", ("öfke", "iş"), ""), "angry"),
    ]:
        out = read(title, tags, description)
        assert out.abstained and out.abstained.startswith("MiniLM reads English"), title
        top = max(out.candidates, key=lambda c: c.score)
        assert top.category == category, title
        assert any(e.startswith("words of the taxonomy: ") for e in top.evidence)
    # English slang and alias words are read ("lol", "bday"), and so is every record of dev
    assert read("lol", ("lmao", "dying", "💀")).abstained is None
    assert read("hapy bday", ("bday", "hbd", "🎂")).abstained is None
    dev = [LabelledRecord.model_validate(r) for r in _dev_records()]
    flagged = [r.id for r in dev if (share := stage.known_share(r.item().metadata)) is not None
               and share < stage.options.min_known_share]
    assert flagged == []
    data = settings.model_dump(by_alias=True)
    data["stages"]["embedding"]["min_known_share"] = 0
    off = build_embedding_stage(Settings.model_validate(data), taxonomy, models_dir=model_roots[0])
    assert not (read("Котик спит", ("котик", "сон"), checked=off).abstained or "").startswith("MiniLM")
