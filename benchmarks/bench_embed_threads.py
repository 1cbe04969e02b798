#!/usr/bin/env python3
"""One onnxruntime thread against two for the embed function's two models (`stages.embedding.threads`
for MiniLM, `image_threads` for CLIP's image tower).

    python benchmarks/bench_embed_threads.py [--rounds 3] [--gifs 20] [--label NAME]

MiniLM encodes what the stage encodes for each dev record (the whole text, then the description alone
when there is one), one text at a time; the CLIP image tower (a randomly initialised ViT-B/32-sized
tower exported and quantised as scripts/export_clip.py does, in a temp dir: the real one's size, so
its latency) encodes the 4 frames of a 480x270 GIF in one batch, `--gifs` times. Each model runs with
one thread and with two, in turn (the order alternating by round), `--rounds` times: first on a quiet
machine, then beside one CPU-bound process this script starts. The figure is one thread's wall time
as a ratio to two threads', pair by pair. Spinning is as settings.yaml has it (off).

Writes benchmarks/results/embed_threads.json, or embed_threads-NAME.json with `--label NAME` (a run
under a CPU quota, as Lambda gives 2,048 MB: docs/results/README.md "Speed, memory, cold start"),
with the CPU model and flags in `meta`. Needs torch for the export (the dev extras).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_embedding import gif4, script
from common import beside_a_busy_process, dev_records, ratio, table, write_result

from gifcat.adapters.embeddings.artefacts import locate_clip, locate_minilm, models_dir
from gifcat.adapters.embeddings.factory import load_text_encoder
from gifcat.adapters.embeddings.frames import sample_frames
from gifcat.adapters.embeddings.image import ClipEncoder
from gifcat.config import load_settings
from gifcat.domain.stages.embedding import EmbeddingOptions, item_text

THREADS = (1, 2)


def stage_texts() -> list[list[str]]:
    """Per dev record, the texts the stage encodes for it (generic tags kept: close enough for timing)."""
    out = []
    for r in dev_records():
        text = item_text(r.title, r.tags, r.description, frozenset())
        described = r.description.strip()
        out.append([text, described] if described and described != text else [text])
    return out


def timed(run: Callable[[], Any], items: int) -> float:
    """Milliseconds an item."""
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000.0 / items


def condition(runs: dict[str, dict[int, Callable[[], float]]], rounds: int) -> dict[str, Any]:
    """For each model: ms an item with each thread count, in turn, and one thread's over two's."""
    out: dict[str, Any] = {}
    for model, by_threads in runs.items():
        pairs: list[dict[int, float]] = []
        for i in range(rounds):
            order = THREADS if i % 2 == 0 else THREADS[::-1]
            pairs.append({t: by_threads[t]() for t in order})
        med = statistics.median
        out[model] = {
            "runs": [{f"{t}_thread_ms": round(p[t], 3) for t in THREADS} for p in pairs],
            "ms": {str(t): round(med(p[t] for p in pairs), 3) for t in THREADS},
            "one_over_two": med(ratio(p[1], p[2], 3) or 0.0 for p in pairs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gifs", type=int, default=20, help="GIFs the image tower encodes a run")
    parser.add_argument("--label", help="suffix of the result file: embed_threads-LABEL.json")
    args = parser.parse_args()
    options = load_settings().options("embedding", EmbeddingOptions)
    minilm = locate_minilm(models_dir())
    texts = stage_texts()
    frames = sample_frames(gif4(), 4).frames
    export_clip = script("export_clip")
    with tempfile.TemporaryDirectory() as tmp:
        export_clip.build_random(Path(tmp), "vit-b32")
        clip_files = locate_clip(Path(tmp))
        assert clip_files is not None
        text_encoders = {t: load_text_encoder(minilm, options.model_copy(update={"threads": t}))
                         for t in THREADS}
        clips = {t: ClipEncoder(clip_files, threads=t, image_model=options.image_model, spin=options.spin)
                 for t in THREADS}

        def minilm_run(t: int) -> Callable[[], float]:
            return lambda: timed(lambda: [text_encoders[t].encode(batch) for batch in texts], len(texts))

        def clip_run(t: int) -> Callable[[], float]:
            gifs = args.gifs
            return lambda: timed(lambda: [clips[t].encode_frames(frames) for _ in range(gifs)], gifs)

        runs = {"minilm": {t: minilm_run(t) for t in THREADS},
                "clip_image": {t: clip_run(t) for t in THREADS}}
        for by_threads in runs.values():  # warm-up: onnxruntime allocates its arenas on the first runs
            for run in by_threads.values():
                run()
        results = {"quiet": condition(runs, args.rounds)}
        with beside_a_busy_process():
            results["beside_a_busy_process"] = condition(runs, args.rounds)
    headers = ["condition", "model", "ms an item, 1 thread", "2 threads", "1 / 2"]
    rows = [[name, model, r["ms"]["1"], r["ms"]["2"], r["one_over_two"]]
            for name, cond in results.items() for model, r in cond.items()]
    print(table(headers, rows))
    name = f"embed_threads-{args.label}" if args.label else "embed_threads"
    path = write_result(name, {
        "args": vars(args), "spin": options.spin,
        "minilm": {"model": minilm.identity_of(options.text_model), "items": len(texts),
                   "texts": sum(len(b) for b in texts)},
        "clip_image": {"model": f"clip-vit-b32-random {options.image_model}", "frames": len(frames),
                       "gifs": args.gifs},
        **results,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
