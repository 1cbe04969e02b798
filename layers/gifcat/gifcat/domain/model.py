"""The domain's data: what a stage sees, what it returns, and the result the cascade records.

Nothing here knows about AWS; adapters translate these models to and from S3, DynamoDB and events.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field


class StageName(StrEnum):
    """Every stage that can decide, cheapest first. `decided_by` holds one of these."""

    TAGS = "tags"
    RULES = "rules"
    EMBEDDING = "embedding"
    LLM = "llm"


class Status(StrEnum):
    CLASSIFIED = "classified"  # a stage decided
    UNDECIDED = "undecided"  # the stages that ran found no confident answer (e.g. eval --until triage)
    PENDING = "pending"  # handed to the state machine; a later stage will decide
    FAILED = "failed"  # the input or a stage failed; `reason` says why
    SKIPPED = "skipped"  # deliberately not classified (not a GIF, empty object...); `reason` says why
    DELETED = "deleted"  # the object was deleted or expired: the result is its tombstone, until it expires


class GifMetadata(BaseModel):
    """What the uploader said about the GIF. All of it is untrusted user text."""

    model_config = ConfigDict(frozen=True)

    title: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    # What reading it cut to fit the limits ("tags: the first 100 of 130 kept"), for the result item.
    # Not part of the metadata's identity: excluded from dumps (and so from its digest).
    cut: tuple[str, ...] = Field(default=(), exclude=True)

    @property
    def is_empty(self) -> bool:
        return not (self.title.strip() or self.description.strip() or any(t.strip() for t in self.tags))


class GifItem(BaseModel):
    """One thing to classify. `gif` is the raw GIF when the image path may look at it."""

    model_config = ConfigDict(frozen=True)

    id: str
    metadata: GifMetadata = GifMetadata()
    gif: bytes | None = Field(default=None, repr=False)


class Candidate(BaseModel):
    """One category a stage considers, with a score in [0, 1] and the evidence behind it."""

    category: str
    score: float
    evidence: list[str] = Field(default_factory=list)


class Neighbour(BaseModel):
    """A labelled example close to the item (the embedding stage's memory): the LLM's few-shot examples."""

    id: str
    text: str
    primary: str
    labels: list[str] = Field(default_factory=list)
    similarity: float


class StageOutput(BaseModel):
    """What a stage returns: candidates (any order; the cascade sorts) plus what it cost and used.

    A stage that gives a final answer by construction (the LLM) still returns candidates; whether they
    are confident enough is the cascade's call, made with that stage's thresholds.
    """

    stage: StageName
    candidates: list[Candidate] = Field(default_factory=list)
    model: str | None = None  # model identity and version, e.g. "minilm-l6-v2-int8@sha256:..."
    prompt_version: str | None = None
    cost_usd: float = 0.0
    usage: dict[str, int] = Field(default_factory=dict)  # e.g. LLM tokens
    notes: list[str] = Field(default_factory=list)  # e.g. "image: no CLIP artefacts, text only"
    rationale: str | None = None
    error: str | None = None  # the stage ran but could not score (the cascade records it and moves on)
    neighbours: list[Neighbour] = Field(default_factory=list)  # nearest labelled examples, closest first
    # The stage declines to decide whatever its scores (e.g. its signals disagree); it says why.
    abstained: str | None = None
    # The learned artefact the stage scored with ("bundled", or a published "v000003"); None: it has none.
    artefact_version: str | None = None
    # No stage can classify the item (no text and no image model): the result is `skipped` with this
    # reason and the cascade stops.
    skipped: str | None = None


class StageTrace(BaseModel):
    """A stage's output as recorded in the result: top candidates, decision, timing and cost."""

    stage: StageName
    decided: bool
    elapsed_ms: float
    cost_usd: float = 0.0
    candidates: list[Candidate] = Field(default_factory=list)  # sorted, best first, trimmed to top-k
    model: str | None = None
    prompt_version: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    rationale: str | None = None
    error: str | None = None
    neighbours: list[Neighbour] = Field(default_factory=list)
    abstained: str | None = None
    artefact_version: str | None = None


class Classification(BaseModel):
    """The cascade's answer for one item, so far. Serialised between Lambdas and into the result."""

    status: Status
    primary: str | None = None
    labels: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    decided_by: StageName | None = None
    confidence: float = 0.0
    evidence: list[str] = Field(default_factory=list)
    reason: str | None = None
    taxonomy_version: str | None = None
    stages: list[StageTrace] = Field(default_factory=list)
    # Text addressed to a classifier, cut out of the metadata before any stage read it.
    removed_text: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def suspicious_text(self) -> bool:
        return bool(self.removed_text)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def artefact_version(self) -> str | None:
        """The learned artefact the embedding stage scored with; None when that stage did not run (or
        failed before scoring)."""
        for trace in reversed(self.stages):
            if trace.stage is StageName.EMBEDDING and trace.artefact_version:
                return trace.artefact_version
        return None

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.stages)

    @property
    def decided(self) -> bool:
        return self.status is Status.CLASSIFIED

    def neighbours(self, k: int = 4) -> list[Neighbour]:
        """The nearest labelled examples an earlier stage found (the embedding stage's memory)."""
        for trace in reversed(self.stages):
            if trace.neighbours:
                return trace.neighbours[:k]
        return []

    def top_candidates(self, k: int = 5) -> list[Candidate]:
        """The latest stage's best candidates: what the next stage is told earlier stages found."""
        for trace in reversed(self.stages):
            if trace.candidates:
                return trace.candidates[:k]
        return []

    def models(self) -> dict[str, str]:
        return {t.stage.value: t.model for t in self.stages if t.model}

    def to_public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
