"""Artefact building, manifests with sha256, verification on re-run, location rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gifcat.adapters.embeddings import artefacts
from gifcat.adapters.embeddings.artefacts import ArtefactError, locate_clip, locate_minilm, verify_manifest
from tests.unit.embeddings.conftest import load_script


def test_build_writes_manifest_and_identity(minilm_root: Path) -> None:
    manifest = json.loads((minilm_root / "minilm" / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"model.onnx", "tokenizer.json"}
    assert manifest["files"]["model.onnx"]["sha256"].startswith("8199be6f")  # the package's pinned sha256
    files = locate_minilm(minilm_root)
    assert files.identity == "minilm-l6-v2-int8@8199be6f"


def test_rerun_verifies_and_repairs(tmp_path: Path, minilm_root: Path) -> None:
    build = load_script("build_models").build
    root = tmp_path / "models"
    shutil.copytree(minilm_root / "minilm", root / "minilm")
    logs: list[str] = []
    build(root, log=logs.append)
    assert "up to date" in logs[-1]
    (root / "minilm" / "tokenizer.json").write_text("{}")  # tampered
    with pytest.raises(ArtefactError, match=r"tokenizer\.json"):
        verify_manifest(root / "minilm")
    build(root, log=logs.append)
    assert "rebuilding" in logs[-2]
    verify_manifest(root / "minilm")


def test_check_mode_fails_on_mismatch(tmp_path: Path, minilm_root: Path) -> None:
    main = load_script("build_models").main
    shutil.copytree(minilm_root / "minilm", tmp_path / "minilm")
    assert main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "minilm" / "tokenizer.json").write_text("{}")
    assert main(["--check", "--out", str(tmp_path)]) == 1


def test_missing_minilm_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match=r"scripts/build_models\.py"):
        locate_minilm(tmp_path)
    assert locate_clip(tmp_path) is None


def test_models_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIFCAT_MODELS_DIR", str(tmp_path / "env"))
    assert artefacts.models_dir(tmp_path / "arg") == tmp_path / "arg"
    assert artefacts.models_dir() == tmp_path / "env"
    monkeypatch.delenv("GIFCAT_MODELS_DIR")
    assert artefacts.models_dir().parts[-2:] == (".artifacts", "models")


def test_clip_manifest(clip_root: Path) -> None:
    files = locate_clip(clip_root)
    assert files is not None and files.identity.startswith("clip-tiny-random@")
