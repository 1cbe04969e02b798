"""The `gifcat` command as a user runs it: a real subprocess, real files, a real HTTP LLM endpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from gifcat.config import load_settings
from tests.conftest import DEV_DATA, make_gif
from tests.support.fake_openai import FakeOpenAI

GIFCAT = [sys.executable, "-m", "gifcat_tooling.cli"]

RECORDS = [
    {
        "id": "r1",
        "title": "Pizza GIF",
        "tags": ["pizza", "food", "yum"],
        "labels": ["food"],
        "primary": "food",
    },
    {"id": "r2", "title": "Kiss", "tags": ["kiss", "love", "mwah"], "labels": ["love"], "primary": "love"},
    {
        "id": "r3",
        "title": "",
        "tags": [],
        "description": "A herd of cows turns to stare at the camera.",
        "labels": ["animals"],
        "primary": "animals",
    },
    {
        "id": "r4",
        "title": "Mood",
        "tags": ["#mood"],
        "description": "He sprays coffee across the table.",
        "labels": ["surprised"],
        "primary": "surprised",
    },
]


def gifcat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GIFCAT, *args], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def llm_env() -> Iterator[dict[str, str]]:
    with FakeOpenAI(model="gpt-4o-mini") as server:
        overrides = {"stages": {"llm": {"base_url": server.base_url, "model": "gpt-4o-mini"}}}
        yield {"GIFCAT_OVERRIDES": json.dumps(overrides)}


def test_classify_a_gif_by_its_tags(tmp_path: Path) -> None:
    path = tmp_path / "pizza time.gif"
    path.write_bytes(make_gif())
    run = gifcat("classify", str(path), "--title", "Pizza GIF", "--tags", "pizza,cheese,food")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["status"], result["primary"], result["decided_by"]) == ("classified", "food", "tags")


def test_classify_runs_the_image_path_on_a_real_gif(tmp_path: Path, clip_root: Path) -> None:
    path = tmp_path / "odd.gif"  # odd size, alpha, disposal 2: what Pillow hands CLIP is not the file
    frames = [Image.new("RGBA", (17, 91), (255, 0, 0, i * 60)) for i in range(3)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], transparency=0, disposal=2)
    run = gifcat(
        "classify",
        str(path),
        "--description",
        "A herd of cows turns to stare at the camera.",
        "--until",
        "embedding",
        env={"GIFCAT_MODELS_DIR": str(clip_root)},
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    decision = (result["status"], result["decided_by"], result["primary"])
    assert decision == ("classified", "embedding", "animals")
    emb = result["stages"][-1]
    assert emb["stage"] == "embedding" and emb["error"] is None
    # The image stage ran: every frame of the GIF through CLIP, a cosine per category, CLIP in the model.
    assert emb["usage"] == {"frames": 3}
    assert ",clip-tiny-random-int8@" in emb["model"]
    assert emb["candidates"] and all(
        any(re.fullmatch(r"image -?\d\.\d\d", e) for e in c["evidence"]) for c in emb["candidates"]
    )
    assert not any(note.startswith("image:") for note in emb["notes"])  # no "text only" fallback


def test_classify_refuses_what_is_not_a_gif(tmp_path: Path) -> None:
    path = tmp_path / "notes.gif"
    path.write_text("not a gif at all")
    run = gifcat("classify", str(path))
    assert run.returncode == 2
    assert json.loads(run.stdout)["status"] == "skipped"
    assert "not a GIF" in run.stderr


def test_eval_json_and_predictions(data: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "pred.jsonl"
    run = gifcat(
        "eval", "--data", str(data), "--until", "triage", "--json", "--predictions", str(predictions)
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert {"n", "accuracy", "micro_f1", "stages", "undecided", "llm_share"} <= set(summary)
    assert summary["n"] == 4 and summary["llm_share"] == 0.0
    assert summary["stages"]["tags"]["decided"] == 2 and summary["stages"]["tags"]["accuracy"] == 1.0
    assert summary["undecided"] == 2 and summary["accuracy"] == 0.5
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["r1", "r2", "r3", "r4"]
    assert set(lines[0]) == {
        "id", "primary", "labels", "decided_by", "confidence", "status", "artefact_version", "earlier_top",
        "earlier_candidates",
    }
    # --until triage: no embedding stage ran, so no learned artefact was used
    assert {line["artefact_version"] for line in lines} == {None}
    assert lines[2]["status"] == "undecided" and lines[2]["primary"] is None
    # Where the cheap stages left an item, what they ranked first: r3's description names cows, which
    # the tag stage ranks but does not decide on (a sentence defers triage); r4's "#mood" ranks nothing.
    assert [line["earlier_top"] for line in lines] == [None, None, "animals", None]
    # ...with the scores it ranked them by, best first; none where a stage decided.
    ranked = lines[2]["earlier_candidates"]
    assert ranked[0]["category"] == "animals"  # scored 0: triage deferred to a stage that reads sentences
    assert [c["score"] for c in ranked] == sorted((c["score"] for c in ranked), reverse=True)
    assert lines[0]["earlier_candidates"] is None and lines[3]["earlier_candidates"] == []


def test_eval_records_the_command_that_reproduces_it(tmp_path: Path) -> None:
    # An override that changes the figures, and a path a shell would split: the recorded line, run as
    # it stands, must give the same figures, and it must not carry a key.
    folder = tmp_path / "with space"
    folder.mkdir()
    data = folder / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    override = {"GIFCAT_OVERRIDES": '{"stages": {"tags": {"min_score": 1.0}}}', "OPENAI_API_KEY": "sk-secret"}
    first = gifcat("eval", "--data", str(data), "--until", "triage", "--json", env=override)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["stages"]["tags"]["decided"] == 0  # the override held: no tag score reaches 1.0
    command = summary["command"]
    assert "sk-secret" not in command and "OPENAI_API_KEY" not in command
    bin_dir = str(Path(sys.executable).parent)  # where the `gifcat` script is installed
    env = {k: v for k, v in os.environ.items() if k not in ("GIFCAT_OVERRIDES", "OPENAI_API_KEY")}
    again = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=600,
        env={**env, "PATH": bin_dir + os.pathsep + env.get("PATH", "")},
    )
    assert again.returncode == 0, again.stderr
    replay = json.loads(again.stdout)
    assert replay["command"] == command
    for key in ("n", "accuracy", "undecided", "confusion"):
        assert replay[key] == summary[key]
    for name, stage in summary["stages"].items():
        assert (replay["stages"][name]["decided"], replay["stages"][name]["accuracy"]) == (
            stage["decided"], stage["accuracy"]
        )


def test_eval_llm_baseline_counts_cost(data: Path, llm_env: dict[str, str]) -> None:
    run = gifcat("eval", "--data", str(data), "--baseline", "llm", "--json", env=llm_env)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["llm_share"] == 1.0 and summary["stages"]["llm"]["reached"] == 4
    assert summary["cost"]["llm_tokens"]["prompt"] > 0
    assert (
        summary["cost"]["by_model_per_1000_usd"]["gpt-4.1-mini"]
        > summary["cost"]["by_model_per_1000_usd"]["gpt-4o-mini"]
        > 0
    )


def test_eval_report_renders_the_numbers(data: Path, tmp_path: Path, llm_env: dict[str, str]) -> None:
    out = tmp_path / "report"
    cache = tmp_path / "llm-cache.jsonl"
    run = gifcat(
        "eval", "--data", str(data), "--report", str(out), "--llm-cache", str(cache), "--json", env=llm_env
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "report.json").read_text())
    assert set(summary["baselines"]) == {"tags", "embedding", "llm"}
    assert summary["operating_point"]["threshold"] == load_settings().thresholds("embedding").min_margin
    assert any(point["chosen"] for point in summary["operating_curve"])
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page
    # The headline shows the accuracy to three places (report._fixed), beside its label.
    assert re.search(rf">{summary['accuracy']:.3f}<[^>]*>[^>]*>accuracy<", page)
    assert (out / "operating_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cache.read_text().strip(), "LLM answers were cached"
    # Offline, with the endpoint gone, the cache replays the same report.
    dead = {
        "stages": {"llm": {"base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini", "max_attempts": 1}}
    }
    replay = gifcat(
        "eval",
        "--data",
        str(data),
        "--until",
        "llm",
        "--llm-cache",
        str(cache),
        "--json",
        env={"GIFCAT_OVERRIDES": json.dumps(dead)},
    )
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    assert (again["accuracy"], again["llm_share"]) == (summary["accuracy"], summary["llm_share"])
    assert again["stages"]["llm"]["decided"] == summary["stages"]["llm"]["decided"] >= 1


def test_calibrate_writes_settings_that_load(tmp_path: Path) -> None:
    out = tmp_path / "calibrated.yaml"
    run = gifcat("calibrate", "--data", str(DEV_DATA), "--write", str(out))
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    emb = found["calibration"]["embedding"]
    # The bound holds on what the chosen threshold decides, out of fold, and the settings carry it.
    assert emb["met"] and emb["error_upper_bound"] <= emb["target"] == 0.10
    assert 1 - emb["errors"] / emb["decided"] >= 0.9
    settings = load_settings(str(out))
    assert settings.thresholds("embedding").min_margin == found["thresholds"]["embedding"]["min_margin"]
    assert settings.thresholds("tags").min_score == found["thresholds"]["tags"]["min_score"]
    assert found["calibration"]["tags"]["met"]


def test_calibrate_with_a_fixed_sequence_search_writes_it_and_decides_no_more(tmp_path: Path) -> None:
    out = tmp_path / "fixed.yaml"
    run = gifcat("calibrate", "--data", str(DEV_DATA), "--search", "fixed_sequence", "--write", str(out))
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)["calibration"]
    assert {c["search"] for c in found.values()} == {"fixed_sequence"}
    settings = load_settings(str(out))
    assert {settings.thresholds(s).search for s in ("tags", "rules", "embedding")} == {"fixed_sequence"}
    # The bundled margin was searched for with `lowest` on the same records: stopping at the first
    # failure can only keep a margin as high or higher, and so decide as much or less.
    bundled = load_settings().thresholds("embedding")
    assert bundled.search == "lowest"
    assert settings.thresholds("embedding").min_margin >= bundled.min_margin
    assert found["embedding"]["met"] and found["embedding"]["error_upper_bound"] <= 0.10


def _dev_sample(tmp_path: Path, n: int, kinds: bool = False) -> Path:
    lines = DEV_DATA.read_text(encoding="utf-8").splitlines()[:n]
    records = [json.loads(line) for line in lines if line.strip()]
    if kinds:
        for i, r in enumerate(records):
            r["kind"] = ("homonym", "made-up-kind")[i % 2]  # an unknown kind is reported, not rejected
    path = tmp_path / f"sample-{n}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_eval_cv_fits_each_fold_on_the_others(tmp_path: Path) -> None:
    data = _dev_sample(tmp_path, 60, kinds=True)
    run = gifcat("eval", "--data", str(data), "--cv", "3", "--until", "embedding", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["n"] == 60 and summary["fitting"] == {"cv": 3, "seed": 0}
    assert [f["n"] for f in summary["folds"]] == [20, 20, 20]
    for fold in summary["folds"]:  # thresholds fitted per fold, with their error bound
        assert set(fold["thresholds"]) == {"tags", "rules", "embedding"}
        emb = fold["calibration"]["embedding"]
        if emb["met"]:
            assert emb["error_upper_bound"] <= emb["target"] and emb["decided"] > 0
        else:  # no threshold keeps the bound: the fold's margin (1.0) lets the stage decide nothing
            assert (emb["threshold"], emb["decided"]) == (None, 0)
            assert fold["thresholds"]["embedding"]["min_margin"] == 1.0
    assert set(summary["fold_spread"]["accuracy"]) == {"mean", "std", "min", "max"}
    assert set(summary["kinds"]) == {"homonym", "made-up-kind"}
    assert sum(k["n"] for k in summary["kinds"].values()) == 60


def test_eval_train_fits_on_another_file(tmp_path: Path, data: Path) -> None:
    train = _dev_sample(tmp_path, 40)
    run = gifcat("eval", "--data", str(data), "--train", str(train), "--until", "embedding", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["fitting"] == {"train": str(train), "n_train": 40}
    assert summary["n"] == len(RECORDS)


def test_eval_cv_with_fewer_records_than_folds_is_a_clear_error(data: Path) -> None:
    run = gifcat("eval", "--data", str(data), "--cv", "5", "--until", "triage", "--json")
    assert run.returncode != 0
    assert "only 4 records" in run.stderr


def test_eval_repeats_reports_every_seed_as_its_own_run_would(tmp_path: Path) -> None:
    # Fitted on part of dev (140 records: a third of the fitting time of all 320), the seed draws the
    # inner folds that calibrate the thresholds; evaluated on other dev records.
    lines = DEV_DATA.read_text(encoding="utf-8").splitlines()
    data, train = tmp_path / "some.jsonl", tmp_path / "train.jsonl"
    data.write_text("\n".join(lines[200:260]) + "\n", encoding="utf-8")
    train.write_text("\n".join(lines[:140]) + "\n", encoding="utf-8")
    common = ("eval", "--data", str(data), "--train", str(train), "--until", "embedding", "--json")
    run = gifcat(*common, "--seed", "0", "--repeats", "2")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    alone = json.loads(gifcat(*common, "--seed", "1").stdout)
    repeats = summary["repeats"]
    assert [r["seed"] for r in repeats["seeds"]] == [0, 1]
    # The summary's own figures are the first seed's; the second seed's are what a run with it gives,
    # and here they differ (the embedding stage's threshold moves with the draw).
    first, second = repeats["seeds"]
    assert first["accuracy"] == summary["accuracy"] and second["accuracy"] == alone["accuracy"]
    assert first["stages"]["embedding"] != second["stages"]["embedding"]
    for name, stage in alone["stages"].items():
        assert second["stages"][name] == {
            "decided": stage["decided"], "right": round(stage["decided"] * stage["accuracy"])
        }
        pooled = repeats["stages"][name]
        assert pooled["pooled_decided"] == first["stages"][name]["decided"] + stage["decided"]
        assert pooled["decided"]["min"] == min(first["stages"][name]["decided"], stage["decided"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--repeats", "2"), "--repeats needs --cv or --train"),
        (("--cv", "2", "--repeats", "0"), "argument --repeats: expected a whole number of 1 or more"),
    ],
)
def test_eval_repeats_without_fitting_or_below_one_is_a_clear_error(
    data: Path, extra: tuple[str, ...], message: str
) -> None:
    run = gifcat("eval", "--data", str(data), "--until", "triage", *extra)
    assert run.returncode != 0
    assert message in run.stderr
