#!/usr/bin/env python3
"""Embedding-stage benchmarks: MiniLM latency/throughput/RSS, CLIP image path, import + model load.

    python benchmarks/bench_embedding.py [--dev ../shared/data/dev.jsonl] [--skip-vit]

Needs scripts/build_models.py artefacts (run with --per-channel to compare the per-channel variant) and
torch (to export the tiny and ViT-B/32-sized random CLIP into a temp dir). Not run by the tests.
Prints a table and writes benchmarks/results/embedding.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "layers" / "gifcat"))

import numpy as np  # noqa: E402

from gifcat.adapters.embeddings.artefacts import locate_clip, locate_minilm, models_dir  # noqa: E402
from gifcat.adapters.embeddings.frames import sample_frames  # noqa: E402
from gifcat.adapters.embeddings.image import ClipEncoder  # noqa: E402
from gifcat.adapters.embeddings.text import TextEncoder  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any, repeat: int) -> float:
    """Median milliseconds of `repeat` calls (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def dev_texts(path: Path) -> list[str]:
    from gifcat.domain.stages.embedding import item_text

    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [item_text(r["title"], r["tags"], r["description"], frozenset()) for r in recs]


def bench_minilm(root: Path, texts: list[str], variant: str) -> list[dict[str, Any]]:
    files = locate_minilm(root)
    if variant not in files.manifest["files"]:
        return []
    rows = []
    for threads in (1, 2):
        before = rss_mb()
        start = time.perf_counter()
        enc = TextEncoder(files.path(variant), files.path("tokenizer.json"), threads=threads)
        created = (time.perf_counter() - start) * 1000
        enc.encode(texts[:16])
        one = timed(lambda enc=enc: [enc.encode_one(t) for t in texts[:100]], 3) / 100
        batch = timed(lambda enc=enc: enc.encode(texts, batch_size=32), 3) / len(texts)
        rows.append({"model": files.identity_of(variant), "threads": threads, "session_ms": round(created, 1),
                     "per_record_ms": round(one, 3), "batched_per_record_ms": round(batch, 3),
                     "throughput_rps": round(1000 / batch, 1), "rss_delta_mb": round(rss_mb() - before, 1)})
        del enc
    return rows


def gif4() -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (480, 270), (i * 50, 100, 200 - i * 40)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


def bench_clip(root: Path, label: str) -> list[dict[str, Any]]:
    files = locate_clip(root)
    assert files is not None
    data = gif4()
    rows = []
    for graph in ("image.onnx", "image.int8.onnx"):
        for threads in (1, 2):
            clip = ClipEncoder(files, threads=threads, image_model=graph)
            decode = timed(lambda: sample_frames(data, 4), 5)
            frames = sample_frames(data, 4).frames
            embed = timed(lambda clip=clip, frames=frames: clip.encode_frames(frames), 5)
            total = timed(lambda clip=clip: clip.encode_frames(sample_frames(data, 4).frames), 5)
            rows.append({"model": f"{label} {graph}", "threads": threads, "decode_ms": round(decode, 2),
                         "embed_ms": round(embed, 2), "gif_total_ms": round(total, 2)})
    return rows


def import_and_load(root: Path) -> dict[str, float]:
    """A fresh interpreter: import the stage module, then build it from settings (cold start minus I/O)."""
    code = (
        "import time,sys; t=time.perf_counter(); sys.path.insert(0,'layers/gifcat');"
        "from gifcat.domain.stages.embedding import EmbeddingStage; from gifcat.config import load_settings;"
        "from gifcat.domain.taxonomy import load_taxonomy; i=time.perf_counter();"
        f"EmbeddingStage.from_settings(load_settings(), load_taxonomy(), models_dir={str(root)!r});"
        "l=time.perf_counter(); print((i-t)*1000,(l-i)*1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imp, load = map(float, out.stdout.split()[-2:])
    return {"import_ms": round(imp, 1), "load_ms": round(load, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", type=Path, default=REPO.parent / "shared" / "data" / "dev.jsonl")
    parser.add_argument("--skip-vit", action="store_true", help="skip the ViT-B/32-sized export (~40 s)")
    args = parser.parse_args()
    root = models_dir()
    texts = dev_texts(args.dev)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    results: dict[str, Any] = {"machine": machine}
    results["minilm"] = bench_minilm(root, texts, "model.onnx") + bench_minilm(root, texts, "model.pc.onnx")
    results["import_and_load"] = import_and_load(root)

    spec = importlib.util.spec_from_file_location("export_clip", REPO / "scripts" / "export_clip.py")
    assert spec and spec.loader
    export_clip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_clip)
    results["clip"] = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny"
        export_clip.build_random(tiny, "tiny")
        results["clip"] += bench_clip(tiny, "clip-tiny-random")
        if not args.skip_vit:
            vit = Path(tmp) / "vit"
            export_clip.build_random(vit, "vit-b32")
            results["clip"] += bench_clip(vit, "clip-vit-b32-random")

    print(f"{'MiniLM':34} {'thr':>3} {'session':>8} {'1 rec':>7} {'batched':>8} {'rec/s':>7} {'RSS+':>6}")
    for r in results["minilm"]:
        print(f"{r['model']:34} {r['threads']:>3} {r['session_ms']:>6.0f}ms {r['per_record_ms']:>5.2f}ms "
              f"{r['batched_per_record_ms']:>6.2f}ms {r['throughput_rps']:>7.0f} {r['rss_delta_mb']:>4.0f}MB")
    print(f"\n{'CLIP (4-frame 480x270 GIF)':34} {'thr':>3} {'decode':>8} {'embed':>8} {'total':>8}")
    for r in results["clip"]:
        print(f"{r['model']:34} {r['threads']:>3} {r['decode_ms']:>6.1f}ms {r['embed_ms']:>6.1f}ms "
              f"{r['gif_total_ms']:>6.1f}ms")
    il = results["import_and_load"]
    print(f"\nimport {il['import_ms']:.0f} ms, from_settings (text only) {il['load_ms']:.0f} ms")
    out = REPO / "benchmarks" / "results" / "embedding.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
