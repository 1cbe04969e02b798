"""Model artefacts for tests: the real MiniLM and a tiny random CLIP, built once into a directory."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from filelock import FileLock

REPO = Path(__file__).resolve().parents[2]


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
    """<base>/text-only (MiniLM) and <base>/with-clip (MiniLM + tiny CLIP); reused when already built.

    Pass pytest's session base temp (tmp_path_factory.getbasetemp() / "gifcat-models") so every test
    of a run shares one build.
    """
    text_only, with_clip = base / "text-only", base / "with-clip"
    if not (text_only / "minilm" / "manifest.json").exists():
        load_script("build_models").build(text_only, per_channel=True, log=lambda *_: None)
    if not (with_clip / "clip" / "manifest.json").exists():
        with_clip.mkdir(parents=True, exist_ok=True)
        if not (with_clip / "minilm").exists():
            (with_clip / "minilm").symlink_to(text_only / "minilm", target_is_directory=True)
        load_script("export_clip").build_random(with_clip, "tiny")
    return text_only, with_clip


def shared_build_roots(basetemp: Path) -> tuple[Path, Path]:
    """build_roots() once per test run: under pytest-xdist every worker has its own basetemp, so they
    share its parent, and a file lock lets one worker build while the others wait for it."""
    base = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    target = base / "gifcat-models"
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target / ".build.lock")):
        return build_roots(target)
