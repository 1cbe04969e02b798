"""`gifcat ...` with a second encoder's vectors added to the embedding stage's classifier: a probe of
what building the second encoder would give the whole stage (docs/results/README.md, "Gemma's hidden
states beside MiniLM"), not the feature.

The stage, its fitting and its calibration run as they are; three seams are wrapped in this process
only. MiniLM's encoder remembers which text each vector it returns came from; the classifier's fit and
its probabilities read [MiniLM vector, 0.05 x standardised second vector of the same text] instead of the
MiniLM vector alone (`--encoder gemma`, the default: the local LLM's GGUF, mean-pooled; `--encoder e5`:
multilingual-e5-small; see scripts/second_encoders.py; standardised with the mean and spread of dev's
texts). Prototypes and neighbours are unchanged. The vectors are cached in
$GIFCAT_CACHE/probe-ENCODER-vectors.pkl (Gemma: 195 ms a text on a 2-core Intel Xeon).

    python scripts/probe_second_encoder_stage.py [--encoder gemma|e5] eval --data ../shared/data/dev.jsonl \\
        --cv --until embedding --repeats 5 [--json]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import second_encoders

import gifcat.adapters.embeddings.text as text_module
import gifcat.adapters.training as training
import gifcat.domain.memory as memory_module
from gifcat.domain.records import read_records
from gifcat.domain.stages.embedding import item_text
from gifcat.domain.taxonomy import load_taxonomy

SCALE = 0.05  # as scripts/measure_second_encoder.py
STANDARDISE_ON = Path(__file__).resolve().parents[1] / "../shared/data/dev.jsonl"


class CachedVectors:
    """A second encoder's unit vector of a text (scripts/second_encoders.py), cached on disk."""

    def __init__(self, encoder: str, cache: Path) -> None:
        self.encode, self.cache = second_encoders.load(encoder), cache
        self.vectors: dict[str, np.ndarray] = pickle.loads(cache.read_bytes()) if cache.exists() else {}

    def __call__(self, text: str) -> np.ndarray:
        if text not in self.vectors:
            self.vectors[text] = self.encode(text)
        return self.vectors[text]

    def save(self) -> None:
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        self.cache.write_bytes(pickle.dumps(self.vectors))


def install(second: CachedVectors, mean: np.ndarray, spread: np.ndarray) -> Callable[[], int]:
    """Wrap the three seams; returns how many classifier rows had no known text (0 expected)."""
    text_of: dict[bytes, str] = {}
    unknown = [0]

    def extra(rows: np.ndarray) -> np.ndarray:
        out = []
        for row in np.atleast_2d(rows):
            text = text_of.get(np.asarray(row, dtype=np.float32).tobytes())
            if text is None:
                unknown[0] += 1
                out.append(np.zeros_like(mean))
            else:
                out.append(SCALE * (second(text) - mean) / spread)
        return np.stack(out).astype(np.float32)

    encode = text_module.TextEncoder.encode

    def remembering_encode(self: Any, texts: Sequence[str]) -> np.ndarray:
        vectors = encode(self, texts)
        for text, vector in zip(texts, vectors, strict=True):
            text_of[np.asarray(vector, dtype=np.float32).tobytes()] = text
        return vectors

    proba = memory_module.LinearHead.proba

    def widened_proba(self: memory_module.LinearHead, vec: np.ndarray) -> np.ndarray:
        if self.coef.shape[1] == np.shape(vec)[-1]:
            return proba(self, vec)
        out = proba(self, np.hstack([np.atleast_2d(vec), extra(vec)]))
        return out[0] if np.ndim(vec) == 1 else out

    fit_head = training.fit_head

    def widened_fit_head(vectors: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        return fit_head(np.hstack([vectors, extra(vectors)]), *args, **kwargs)

    text_module.TextEncoder.encode = remembering_encode  # type: ignore[method-assign]
    memory_module.LinearHead.proba = widened_proba  # type: ignore[method-assign]
    training.fit_head = widened_fit_head
    return lambda: unknown[0]


def main() -> int:
    from gifcat_tooling.cli import main as gifcat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=second_encoders.ENCODERS, default="gemma")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the gifcat command line to run")
    args = parser.parse_args()
    cache_root = Path(os.environ.get("GIFCAT_CACHE") or Path.home() / ".cache" / "gifcat")
    second = CachedVectors(args.encoder, cache_root / f"probe-{args.encoder}-vectors.pkl")
    taxonomy = load_taxonomy()
    dev = [item_text(r.title, r.tags, r.description, taxonomy.normalised_generic_tags)
           for r in read_records(STANDARDISE_ON)]
    matrix = np.stack([second(t) for t in dev])
    unknown = install(second, matrix.mean(axis=0), matrix.std(axis=0) + 1e-6)
    try:
        return gifcat(args.command)
    finally:
        second.save()
        print(f"probe: {unknown()} classifier rows without a known text", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
