"""A published embedding artefact: what `gifcat learn` made, described by its manifest.

The artefact itself is a memory file (gifcat.domain.memory.Learned: kNN examples and the classifier
head); the manifest says which version it is, what it was made from and with, and the thresholds
calibrated with it (settings overrides: a head and its margin are only sound together).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

BUNDLED = "bundled"  # the artefact version of the memory that ships with the image
# The version of a memory learned in this process and never published (eval --cv folds, gifcat stream).
IN_PROCESS = "in-process"


class ArtefactManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str  # "v000001", ...: ordered, assigned by the store at publication
    created_at: datetime
    encoder: str  # the MiniLM identity the vectors were made with (a mismatch fails at load)
    taxonomy_version: str
    parent: str | None = None  # the version it was compared with and replaced (None: the bundled one)
    # Overrides for `stages`, e.g. {"embedding": {"min_margin": 0.31}}: calibrated with this artefact.
    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    # What it learned from and how it compared (gifcat.application.learn writes these).
    report: dict[str, Any] = Field(default_factory=dict)


class PublishedArtefact(BaseModel):
    """A version in the store, by its manifest; the file is fetched separately (it may be large)."""

    version: str
    manifest: ArtefactManifest
