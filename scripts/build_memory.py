"""Embed the bundled labelled examples and train the embedding stage's classifier, at build time.

    python scripts/build_memory.py [--out .artifacts/models] [--data FILE.jsonl]

Writes <out>/memory/memory.npz (gifcat.domain.memory): the examples' MiniLM vectors for the kNN vote
and the LLM's few-shot examples, and the logistic-regression head with its out-of-fold temperature. The
embed function loads it instead of embedding the examples at every cold start. Needs scikit-learn
(build time only) and the MiniLM artefacts (scripts/build_models.py first). Deterministic: same data,
same encoder, same file contents.
"""

from __future__ import annotations

import argparse
import sys

from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.training import learn
from gifcat.config import load_settings
from gifcat.domain.memory import ARTEFACT
from gifcat.domain.records import load_labelled
from gifcat.domain.taxonomy import load_taxonomy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="models directory (default: $GIFCAT_MODELS_DIR or .artifacts/models)")
    parser.add_argument("--data", default="bundled", help='labelled JSONL, or "bundled" (the default)')
    args = parser.parse_args(argv)
    root = models_dir(args.out)
    settings = load_settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    stage = build_embedding_stage(settings, taxonomy, models_dir=root, labelled=[])
    records = load_labelled(args.data)
    learned = learn(stage, records)
    path = root / ARTEFACT
    learned.save(path)
    head = learned.head
    print(
        f"{path}: {len(learned.memory)} examples, encoder {learned.encoder}, "
        f"classifier over {len(head.categories) if head else 0} categories "
        f"(T={head.temperature if head else '-'})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
