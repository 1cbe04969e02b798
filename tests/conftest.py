"""Fixtures shared by every layer of tests: the repository, bundled settings and taxonomy, GIF bytes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from gifcat.config import Settings, load_settings
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy
from tests.support.models import shared_build_roots

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
# The reference dev set beside the checkout (as CI lays it out), else the copy gifcat ships as its
# labelled examples: the same records.
_SHARED_DEV = ROOT.parent / "shared" / "data" / "dev.jsonl"
DEV_DATA = _SHARED_DEV if _SHARED_DEV.is_file() else ROOT / "layers/gifcat/gifcat/config/examples.jsonl"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def model_roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Real MiniLM artefacts and MiniLM + a tiny random CLIP, built once for the whole run."""
    return shared_build_roots(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def minilm_root(model_roots: tuple[Path, Path]) -> Path:
    return model_roots[0]


@pytest.fixture(scope="session")
def clip_root(model_roots: tuple[Path, Path]) -> Path:
    return model_roots[1]


def make_gif(frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    images = [Image.new("P", size, i * 40) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buf.getvalue()


@pytest.fixture
def gif() -> Callable[..., bytes]:
    return make_gif


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))
