"""Fixtures for the embedding tests: real MiniLM artefacts and a tiny random CLIP, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import build_roots


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
