"""What `gifcat learn` makes of traffic the tag stage decided: its margin, and how the artefact it would
publish does on records unlike that traffic (README "Learning from results").

The learning job runs in-process (an in-memory results table, MiniLM, the bundled memory as the artefact
to beat) on templated uploads ("At the <place>" with one alias tag of a category) that the tag stage
decides rightly, as a quiet week of tag-decided results would be. The artefact it fits, published or
not, is then scored on `--judge` records (dev-hard: the kinds that fool cheap signals), beside the
bundled artefact: over all of them, and over what triage leaves (what the embedding stage would see).

    python scripts/measure_learn_from_traffic.py --judge ../shared/data/dev-hard.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from measure_learn import NoStore, Table  # the same in-memory table and store as the timing run

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.training import CachingEncoder, EmbeddingTrainer, scorecard, triage_outcomes
from gifcat.application.learn import LearnJob
from gifcat.config import Settings, load_settings
from gifcat.domain.learning import Fitted
from gifcat.domain.model import Status
from gifcat.domain.records import LabelledRecord, read_records
from gifcat.domain.result import ResultItem
from gifcat.domain.stages.embedding import EmbeddingStage
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PLACES = ["beach", "park", "mall", "office", "airport", "station", "museum", "library", "harbour", "market",
          "lake", "garden", "plaza", "bridge", "pier", "square", "campus", "river", "cafe", "hotel"]


def templated(settings: Settings, taxonomy: Taxonomy, n: int) -> list[LabelledRecord]:
    """'At the <place>' with one single-word ASCII alias of each category in turn, kept where the tag
    stage decides it rightly."""
    made = []
    for i in range(40 * n):
        cat = taxonomy.categories[i % len(taxonomy.categories)]
        aliases = [a for a in cat.aliases if a.isascii() and " " not in a]
        alias = aliases[(i // len(taxonomy.categories)) % min(len(aliases), 12)]
        made.append(LabelledRecord(id=f"up-{i:04d}", title=f"At the {PLACES[(i * 7) % len(PLACES)]}",
                                   tags=[alias], labels=[cat.name], primary=cat.name))
    tags = triage_outcomes(made, settings, taxonomy)["tags"]
    decided = settings.stages["tags"].min_score
    return [r for r, (score, right) in zip(made, tags, strict=True) if score >= decided and right][:n]


def judged(stage: EmbeddingStage, fitted: Fitted, records: Sequence[LabelledRecord]) -> dict[str, Any]:
    card = scorecard(stage, fitted, records)
    rate = round(card.errors / card.decided, 3) if card.decided else None
    return {"n": card.n, "decided": card.decided, "errors": card.errors, "error_rate": rate,
            "top1": card.top1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", required=True, help="labelled JSONL the artefacts are scored on")
    parser.add_argument("--uploads", type=int, default=120, help="templated tag-decided uploads")
    args = parser.parse_args()
    settings, taxonomy = load_settings(), load_taxonomy()
    stage = build_embedding_stage(settings, taxonomy)
    stage.text = CachingEncoder(stage.text)
    uploads = [
        ResultItem(pk=f"s3://uploads/{r.id}.gif", bucket="uploads", key=f"{r.id}.gif", object_seq="-",
                   status=Status.CLASSIFIED, primary=r.primary, labels=list(r.labels), decided_by="tags",
                   taxonomy_version=taxonomy.version, title=r.title, tags=list(r.tags), updated_at=AT)
        for r in templated(settings, taxonomy, args.uploads)
    ]
    fits: list[Fitted | None] = []

    class Trainer(EmbeddingTrainer):  # keeps what it fitted, published or not
        def fit(self, examples: Sequence[LabelledRecord], *, seed: int, min_examples: int) -> Fitted | None:
            fits.append(super().fit(examples, seed=seed, min_examples=min_examples))
            return fits[-1]

    trainer = Trainer(settings, taxonomy, stage)
    report = LearnJob(settings, taxonomy, Table(uploads), NoStore(), trainer, clock=lambda: AT).run()
    bundled_learned = trainer.bundled()
    assert bundled_learned is not None, "the embedding stage has no bundled memory"
    margin = settings.stages["embedding"].min_margin
    bundled = Fitted(bundled_learned, {"embedding": {"min_score": 0.0, "min_margin": margin}})
    records = read_records(args.judge)
    tri = triage_outcomes(records, settings, taxonomy)
    left = [r for i, r in enumerate(records)
            if all(tri[name][i][0] < settings.stages[name].min_score for name in ("tags", "rules"))]
    out: dict[str, Any] = {"uploads": len(uploads), "outcome": report.outcome, "examples": report.examples,
                           "margin": {"bundled": margin}, "judge": {"bundled": {}, "learned": {}}}
    for name, fitted in (("bundled", bundled), ("learned", fits[-1] if fits else None)):
        if fitted is None:
            continue
        out["margin"][name] = fitted.thresholds["embedding"]["min_margin"]
        out["judge"][name] = {"all": judged(stage, fitted, records),
                              "left_by_triage": judged(stage, fitted, left)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
