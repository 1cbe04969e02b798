"""The cascade: runs stages cheapest first and stops at the first whose answer passes its thresholds.

It composes stages and thresholds, after one shared pre-step: text addressed to a classifier is cut
out of the item (gifcat.domain.instructions) so that no stage reads it. What a stage knows stays in the stage.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gifcat.config import LabelPolicy, Settings, Thresholds
from gifcat.domain.instructions import InstructionScreen
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput, StageTrace, Status
from gifcat.domain.stages import Stage
from gifcat.domain.taxonomy import Taxonomy

TRACE_TOP_K = 5
NEIGHBOURS_KEPT = 8  # nearest labelled examples kept in the trace: the LLM step's few-shot examples
TRIAGE = (StageName.TAGS, StageName.RULES)


@dataclass(frozen=True)
class Step:
    stage: Stage
    thresholds: Thresholds


def passes(candidates: Sequence[Candidate], thresholds: Thresholds) -> bool:
    """Strong and unambiguous: the best clears min_score and beats the runner-up by min_margin."""
    if not candidates:
        return False
    best = candidates[0].score
    runner_up = candidates[1].score if len(candidates) > 1 else 0.0
    return best >= thresholds.min_score and best - runner_up >= thresholds.min_margin


def labels_for(candidates: Sequence[Candidate], policy: LabelPolicy) -> list[str]:
    if not candidates:
        return []
    floor = candidates[0].score * policy.ratio
    return [c.category for c in candidates[: policy.max] if c.score >= floor]


class Cascade:
    def __init__(
        self,
        steps: Iterable[Step],
        labels: LabelPolicy,
        taxonomy_version: str,
        screen: InstructionScreen | None = None,
    ) -> None:
        self.steps = list(steps)
        self.labels = labels
        self.taxonomy_version = taxonomy_version
        self.screen = screen or InstructionScreen()

    @classmethod
    def from_settings(cls, settings: Settings, stages: Iterable[Stage], taxonomy: Taxonomy) -> Cascade:
        """The cascade of `stages` under the settings' thresholds; its screen knows the taxonomy's names
        (a planted instruction naming one is recognised by it)."""
        steps = [Step(stage, settings.thresholds(stage.name.value)) for stage in stages]
        return cls(steps, settings.labels, taxonomy.version, InstructionScreen(taxonomy.names))

    def start(self) -> Classification:
        return Classification(status=Status.UNDECIDED, taxonomy_version=self.taxonomy_version)

    def run(
        self,
        item: GifItem,
        so_far: Classification | None = None,
        only: Iterable[StageName] | None = None,
    ) -> Classification:
        """Run the steps in order (only those named in `only`, if given), continuing from `so_far`."""
        wanted = set(only) if only is not None else None
        result = (so_far or self.start()).model_copy(deep=True)
        if result.decided or result.status is Status.SKIPPED:
            return result
        # Instructions planted for a classifier are evidence of nothing: no stage sees them.
        screened = self.screen.screen(item.metadata)
        if screened.suspicious:
            item = item.model_copy(update={"metadata": screened.metadata})
            if not result.removed_text:
                result.removed_text = list(screened.removed)
        for step in self.steps:
            if wanted is not None and step.stage.name not in wanted:
                continue
            started = time.perf_counter()
            try:
                step.stage.prepare()  # one-time loading (models, servers) is not the item's latency
                started = time.perf_counter()
                output = step.stage.score(item, result)
            except Exception as exc:  # a stage that breaks is recorded; later stages may still decide
                output = StageOutput(stage=step.stage.name, error=f"{type(exc).__name__}: {exc}")
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            result = self._record(result, output, step.thresholds, elapsed_ms)
            if result.decided or result.status is Status.SKIPPED:
                return result
        return result

    def _record(
        self, result: Classification, output: StageOutput, thresholds: Thresholds, elapsed_ms: float
    ) -> Classification:
        ranked = sorted(output.candidates, key=lambda c: (-c.score, c.category))
        decided = (
            output.error is None
            and output.abstained is None
            and output.skipped is None
            and passes(ranked, thresholds)
        )
        trace = StageTrace(
            stage=output.stage,
            decided=decided,
            elapsed_ms=round(elapsed_ms, 3),
            cost_usd=output.cost_usd,
            candidates=ranked[:TRACE_TOP_K],
            model=output.model,
            prompt_version=output.prompt_version,
            usage=output.usage,
            notes=output.notes,
            rationale=output.rationale,
            error=output.error,
            neighbours=output.neighbours[:NEIGHBOURS_KEPT],
            abstained=output.abstained or output.skipped,
            artefact_version=output.artefact_version,
        )
        update: dict[str, Any] = {"stages": [*result.stages, trace]}
        if decided:
            best = ranked[0]
            update |= {
                "status": Status.CLASSIFIED,
                "primary": best.category,
                "labels": labels_for(ranked, self.labels),
                "scores": {c.category: round(c.score, 4) for c in ranked},
                "decided_by": output.stage,
                "confidence": round(best.score, 4),
                "evidence": best.evidence,
                "reason": None,
            }
        elif output.skipped is not None:
            update |= {"status": Status.SKIPPED, "reason": output.skipped}
        elif output.error is not None:
            update |= {"status": Status.FAILED, "reason": f"{output.stage.value} stage: {output.error}"}
        else:
            update |= {"status": Status.UNDECIDED, "reason": None}
        return result.model_copy(update=update)
