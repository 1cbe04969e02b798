#!/usr/bin/env python3
"""ONNX Runtime's intra-op threads busy-waiting between runs (`stages.embedding.spin`), on and off.

    python benchmarks/bench_ort_spin.py [--rounds 3] [--label NAME]

The embedding stage's MiniLM encoder (graph and threads as settings.yaml names them) encodes every dev
record's text one call at a time, as the stage does, once with spinning on (onnxruntime's default) and
once off, in turn, `--rounds` times: first on a quiet machine, then with one CPU-bound process beside
it (a Python busy loop this script starts and stops), as in a Lambda with a share of its second vCPU
or a machine doing other work. Each condition's figure is the run with spinning off as a ratio to the
run with it on, pair by pair (wall time and this process's CPU time).

Writes benchmarks/results/ort_spin.json, or ort_spin-NAME.json with `--label NAME` (a run under a
CPU quota, say: docs/results/README.md "Speed, memory, cold start"), with the CPU model and flags in `meta`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from common import beside_a_busy_process, dev_records, ratio, table, write_result

from gifcat.adapters.cpus import thread_count
from gifcat.adapters.embeddings.artefacts import locate_minilm, models_dir
from gifcat.adapters.embeddings.factory import load_text_encoder
from gifcat.adapters.embeddings.text import TextEncoder
from gifcat.config import load_settings
from gifcat.domain.stages.embedding import EmbeddingOptions, item_text


def encode_all(encoder: TextEncoder, texts: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds to encode every text alone."""
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        encoder.encode_one(text)
    return time.perf_counter() - wall, time.process_time() - cpu


def condition(encoders: dict[bool, TextEncoder], texts: list[str], rounds: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        on, off = encode_all(encoders[True], texts), encode_all(encoders[False], texts)
        runs.append({"spin_wall_s": round(on[0], 3), "spin_cpu_s": round(on[1], 3),
                     "no_spin_wall_s": round(off[0], 3), "no_spin_cpu_s": round(off[1], 3),
                     "wall_ratio": ratio(off[0], on[0], 3), "cpu_ratio": ratio(off[1], on[1], 3)})
    med = statistics.median
    return {
        "runs": runs,
        "ms_per_record": {"spin": round(med(r["spin_wall_s"] for r in runs) / len(texts) * 1000, 3),
                          "no_spin": round(med(r["no_spin_wall_s"] for r in runs) / len(texts) * 1000, 3)},
        "wall_ratio": med(r["wall_ratio"] for r in runs),
        "cpu_ratio": med(r["cpu_ratio"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", help="suffix of the result file: ort_spin-LABEL.json")
    args = parser.parse_args()
    options = load_settings().options("embedding", EmbeddingOptions)
    model, threads = options.text_model, thread_count(options.threads)  # "auto" resolved here
    files = locate_minilm(models_dir())
    encoders = {spin: load_text_encoder(files, options.model_copy(update={"spin": spin}))
                for spin in (True, False)}
    texts = [item_text(r.title, r.tags, r.description, frozenset()) for r in dev_records()]
    for encoder in encoders.values():  # warm-up: onnxruntime allocates its arenas on the first calls
        encode_all(encoder, texts[:20])
    results = {"quiet": condition(encoders, texts, args.rounds)}
    with beside_a_busy_process():
        results["beside_a_busy_process"] = condition(encoders, texts, args.rounds)
    headers = ["condition", "ms/record, spinning", "ms/record, not", "wall: not / spinning",
               "cpu: not / spinning"]
    rows = [[name, r["ms_per_record"]["spin"], r["ms_per_record"]["no_spin"], r["wall_ratio"], r["cpu_ratio"]]
            for name, r in results.items()]
    print(table(headers, rows))
    name = f"ort_spin-{args.label}" if args.label else "ort_spin"
    path = write_result(name, {"args": vars(args), "model": files.identity_of(model), "threads": threads,
                               "records": len(texts), **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
