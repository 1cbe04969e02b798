"""Time the learning job on labelled records as people's answers, in-process (an in-memory results table
and artefact store, MiniLM, the bundled memory as the artefact to beat): README "Learning from results".

    python scripts/measure_learn.py --data ../shared/data/dev.jsonl --data ../shared/data/dev-hard.jsonl \\
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.training import EmbeddingTrainer
from gifcat.application.learn import LearnJob
from gifcat.config import load_settings
from gifcat.domain.artefact import ArtefactManifest, PublishedArtefact
from gifcat.domain.model import Status
from gifcat.domain.records import read_records
from gifcat.domain.result import ResultItem
from gifcat.domain.taxonomy import load_taxonomy


class Table:
    """The results table in memory, read as `gifcat learn` reads it: one taxonomy version, newest first."""

    def __init__(self, items: list[ResultItem]) -> None:
        self._items = items

    def newest(self, taxonomy_version: str, limit: int) -> Iterable[ResultItem]:
        mine = [i for i in self._items if i.taxonomy_version == taxonomy_version]
        return sorted(mine, key=lambda i: i.updated_at, reverse=True)[:limit]

    def corrected(self, taxonomy_version: str) -> Iterable[ResultItem]:
        return []  # its people's answers are written as results, not corrections: newest() reads them


class NoStore:
    """Nothing published yet; a publication is only counted."""

    def current(self) -> PublishedArtefact | None:
        return None

    def fetch(self, version: str, into: Path) -> Path:
        raise LookupError(version)

    def publish(self, artefact: Path, manifest: ArtefactManifest) -> PublishedArtefact:
        published = manifest.model_copy(update={"version": "v000001"})
        return PublishedArtefact(version="v000001", manifest=published)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    settings, taxonomy = load_settings(), load_taxonomy()
    stage = build_embedding_stage(settings, taxonomy)
    at = datetime(2026, 12, 2, tzinfo=UTC)
    items = [
        ResultItem(pk=f"s3://uploads/{r.id}.gif", bucket="uploads", key=f"{r.id}.gif", object_seq="-",
                   status=Status.CLASSIFIED, primary=r.primary or r.labels[0], labels=r.labels,
                   decided_by="human", taxonomy_version=taxonomy.version, title=r.title or None,
                   tags=r.tags or None, description=r.description or None, updated_at=at)
        for path in args.data for r in read_records(path)
    ]
    for seed in args.seeds:
        run_settings = settings.model_copy(update={"learn": settings.learn.model_copy(update={"seed": seed})})
        job = LearnJob(run_settings, taxonomy, Table(items), NoStore(),
                       EmbeddingTrainer(run_settings, taxonomy, stage))
        start = time.perf_counter()
        report = job.run()
        print(json.dumps({"seed": seed, "seconds": round(time.perf_counter() - start, 1),
                          "outcome": report.outcome, "reason": report.reason, "examples": report.examples,
                          "scorecards": report.scorecards}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
