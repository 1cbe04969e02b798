"""Fixtures for the embedding tests: real MiniLM artefacts and a tiny random CLIP, built once per session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def load_script(name: str) -> ModuleType:
    """scripts/*.py are scripts, not a package: import one by path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_roots(base: Path) -> tuple[Path, Path]:
    """<base>/text-only (MiniLM) and <base>/with-clip (MiniLM + tiny CLIP); reused within a session."""
    text_only, with_clip = base / "text-only", base / "with-clip"
    if not (text_only / "minilm" / "manifest.json").exists():
        load_script("build_models").build(text_only, per_channel=True, log=lambda *_: None)
    if not (with_clip / "clip" / "manifest.json").exists():
        with_clip.mkdir(parents=True, exist_ok=True)
        if not (with_clip / "minilm").exists():
            (with_clip / "minilm").symlink_to(text_only / "minilm", target_is_directory=True)
        load_script("export_clip").build_random(with_clip, "tiny")
    return text_only, with_clip


@pytest.fixture(scope="session")
def model_roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # getbasetemp() is shared by the whole session, so unit and integration tests build once between them.
    return build_roots(tmp_path_factory.getbasetemp() / "gifcat-models")


@pytest.fixture(scope="session")
def minilm_root(model_roots: tuple[Path, Path]) -> Path:
    return model_roots[0]


@pytest.fixture(scope="session")
def clip_root(model_roots: tuple[Path, Path]) -> Path:
    return model_roots[1]
