"""`gifcat ...` with Gemma's hidden states added to the embedding stage's classifier: a probe of what
building the second encoder would give the whole stage (README "A lead: Gemma's hidden states beside
MiniLM"), not the feature.

The stage, its fitting and its calibration run as they are; three seams are wrapped in this process
only. MiniLM's encoder remembers which text each vector it returns came from; the classifier's fit and
its probabilities read [MiniLM vector, 0.05 x standardised Gemma vector of the same text] instead of the
MiniLM vector alone (Gemma: the local LLM's GGUF, mean-pooled; standardised with the mean and spread of
dev's texts). Prototypes and neighbours are unchanged. Gemma's vectors are cached in
$GIFCAT_CACHE/probe-gemma-vectors.pkl (195 ms a text on a 2-core Intel Xeon).

    python scripts/probe_second_encoder_stage.py eval --data ../shared/data/dev.jsonl --cv \\
        --until embedding --repeats 5 [--json]
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import gifcat.adapters.embeddings.text as text_module
import gifcat.adapters.training as training
import gifcat.domain.memory as memory_module
from gifcat.config import load_settings
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.records import read_records
from gifcat.domain.stages.embedding import item_text
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.llama_server import ensure_model_file

SCALE = 0.05  # as scripts/measure_second_encoder.py
STANDARDISE_ON = Path(__file__).resolve().parents[1] / "../shared/data/dev.jsonl"


class GemmaVectors:
    """Gemma 3 270M's mean-pooled hidden state of a text, unit length, cached on disk."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.vectors: dict[str, np.ndarray] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
        self._model: Any = None

    def __call__(self, text: str) -> np.ndarray:
        if text not in self.vectors:
            if self._model is None:
                from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

                gguf = ensure_model_file(load_settings().options("llm", LlmOptions).local)
                self._model = Llama(str(gguf), embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN,
                                    n_ctx=512, n_threads=2, verbose=False)
            vector = np.asarray(self._model.embed(text), dtype=np.float32)
            self.vectors[text] = vector / np.linalg.norm(vector)
        return self.vectors[text]

    def save(self) -> None:
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        self.cache.write_bytes(pickle.dumps(self.vectors))


def install(gemma: GemmaVectors, mean: np.ndarray, spread: np.ndarray) -> Callable[[], int]:
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
                out.append(SCALE * (gemma(text) - mean) / spread)
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

    cache_root = Path(os.environ.get("GIFCAT_CACHE") or Path.home() / ".cache" / "gifcat")
    gemma = GemmaVectors(cache_root / "probe-gemma-vectors.pkl")
    taxonomy = load_taxonomy()
    dev = [item_text(r.title, r.tags, r.description, taxonomy.normalised_generic_tags)
           for r in read_records(STANDARDISE_ON)]
    matrix = np.stack([gemma(t) for t in dev])
    unknown = install(gemma, matrix.mean(axis=0), matrix.std(axis=0) + 1e-6)
    try:
        return gifcat(sys.argv[1:])
    finally:
        gemma.save()
        print(f"probe: {unknown()} classifier rows without a known text", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
