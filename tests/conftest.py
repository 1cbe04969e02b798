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


LAYER_ORDER = {"e2e": 0, "integration": 1, "unit": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the long tests first: those that start servers or models, then end-to-end, integration, unit.

    pytest-xdist hands out tests as workers free up, but a worker that was given a run of long tests
    keeps them: in collection order one worker once sat idle for the last 100 s of a 285 s run."""

    def rank(item: pytest.Item) -> tuple[bool, int]:
        layer = item.path.relative_to(ROOT / "tests").parts[0]
        return item.get_closest_marker("slow") is None, LAYER_ORDER.get(layer, len(LAYER_ORDER))

    items.sort(key=rank)  # stable: within a rank, tests keep their order


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
