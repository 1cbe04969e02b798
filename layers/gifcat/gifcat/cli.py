"""The `gifcat` command: classify a file, run the local demo, evaluate and calibrate on labelled data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gifcat.config import ConfigError, load_settings
from gifcat.ingest import RejectedUpload, sniff_gif
from gifcat.model import GifItem, GifMetadata, StageName, Status
from gifcat.taxonomy import load_taxonomy

STAGE_CHOICES = {"triage": StageName.RULES, "embedding": StageName.EMBEDDING, "llm": StageName.LLM}


def find_root(start: Path | None = None) -> Path:
    """The checkout holding template.yaml: from the working directory up, else beside the package."""
    candidates = [start or Path.cwd(), Path(__file__).resolve().parents[3]]
    for base in candidates:
        for folder in (base, *base.parents):
            if (folder / "template.yaml").is_file() and (folder / "functions").is_dir():
                return folder
    raise SystemExit("gifcat: no template.yaml found; run from a gifcat checkout")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", help="settings YAML (path or s3://); default: bundled")
    parser.add_argument("--taxonomy", help="taxonomy YAML (path or s3://); default: bundled")


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    settings = load_settings(args.settings)
    return settings, load_taxonomy(args.taxonomy or settings.taxonomy)


def cmd_classify(args: argparse.Namespace) -> int:
    from gifcat.pipeline import LocalPipeline

    settings, taxonomy = _load(args)
    path = Path(args.file)
    tags = tuple(t.strip() for t in (args.tags or "").split(",") if t.strip())
    metadata = GifMetadata(title=args.title or "", tags=tags, description=args.description or "")
    try:
        data = path.read_bytes()
        if not data:
            raise RejectedUpload("skipped", "empty file (0 bytes)")
        if len(data) > settings.limits.max_gif_bytes:
            raise RejectedUpload(
                "skipped", f"file is {len(data)} bytes, over the {settings.limits.max_gif_bytes} limit"
            )
        sniff_gif(data[: settings.limits.sniff_bytes])
    except (OSError, RejectedUpload) as exc:
        status = exc.status if isinstance(exc, RejectedUpload) else "failed"
        reason = exc.reason if isinstance(exc, RejectedUpload) else f"cannot read {path}: {exc}"
        print(
            json.dumps({"file": str(path), "status": status, "reason": reason}, ensure_ascii=False, indent=2)
        )
        print(f"gifcat: {reason}", file=sys.stderr)
        return 2
    with LocalPipeline(settings, taxonomy, STAGE_CHOICES[args.until]) as pipeline:
        result = pipeline.classify(GifItem(id=str(path), metadata=metadata, gif=data))
    print(json.dumps({"file": str(path), **result.to_public()}, ensure_ascii=False, indent=2))
    return 0 if result.status is Status.CLASSIFIED else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from gifcat.evaluation import evaluate
    from gifcat.pipeline import LocalPipeline
    from gifcat.records import read_records

    settings, taxonomy = _load(args)
    records = read_records(args.data)
    progress = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        def progress(items: Any) -> Any:
            return tqdm(items, desc="classifying", unit="record", file=sys.stderr)

    with LocalPipeline(settings, taxonomy, STAGE_CHOICES[args.until], labelled=args.labelled) as pipeline:
        report = evaluate(records, lambda r: pipeline.classify(r.item()), progress)
    summary = report.summary()
    if args.predictions:
        report.write_predictions(Path(args.predictions))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"records: {summary['n']}  accuracy: {summary['accuracy']:.3f}"
            f"  micro-F1: {summary['micro_f1']:.3f}"
        )
        for stage, s in summary["stages"].items():
            print(f"  {stage:<10} decided {s['decided']:>4} ({s['share']:.1%})  accuracy {s['accuracy']:.3f}")
        print(f"  undecided  {summary['undecided']:>4}   reached the LLM: {summary['llm_share']:.1%}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gifcat.local.demo import run_demo

    return run_demo(find_root(), timeout_s=args.timeout)


def cmd_calibrate(args: argparse.Namespace) -> int:
    import yaml

    from gifcat.calibration import calibrate_embedding
    from gifcat.cascade import Cascade
    from gifcat.config import bundled_text, read_text
    from gifcat.records import read_records
    from gifcat.stages.embedding import EmbeddingStage
    from gifcat.stages.factory import triage_stages

    settings, taxonomy = _load(args)
    labelled = read_records(args.data)
    # Calibrate on what reaches the stage: the records triage leaves undecided.
    triage = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
    residue = [r.model_dump() for r in labelled if not triage.run(r.item()).decided]
    # The labelled set is also the kNN memory; the stage leaves each record out of its own vote.
    stage = EmbeddingStage.from_settings(settings, taxonomy, labelled=[r.model_dump() for r in labelled])
    found = calibrate_embedding(residue, stage, target=args.target)
    chosen = {"min_score": found["min_score"], "min_margin": found["min_margin"]}
    source = args.settings
    doc = yaml.safe_load(read_text(source) if source else bundled_text("settings.yaml"))
    doc["stages"]["embedding"].update(chosen)
    out = Path(args.write)
    out.write_text(
        f"# Written by gifcat calibrate --data {args.data} --target {args.target}\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    print(json.dumps({k: v for k, v in found.items() if k != "curve"}, indent=2))
    print(
        f"wrote {out}: stages.embedding = {chosen}; use it with --settings {out} or GIFCAT_SETTINGS",
        file=sys.stderr,
    )
    return 0 if found.get("met_target") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gifcat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="classify one GIF in-process and print the result as JSON")
    p.add_argument("file")
    p.add_argument("--title", default="")
    p.add_argument("--tags", default="", help="comma-separated")
    p.add_argument("--description", default="")
    p.add_argument("--until", choices=list(STAGE_CHOICES), default="llm")
    _common(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="classify labelled metadata records and print metrics")
    p.add_argument("--data", required=True, help="JSON Lines in the TAXONOMY.md record format")
    p.add_argument("--until", choices=list(STAGE_CHOICES), default="llm")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--predictions", help="write one JSON line per record here")
    p.add_argument("--labelled", help="labelled JSONL for the embedding stage's nearest-neighbour vote")
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="run the whole flow locally: embedded AWS, sample uploads, results")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every result")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("calibrate", help="sweep the embedding thresholds on labelled data, write settings")
    p.add_argument("--data", required=True)
    p.add_argument("--target", type=float, default=0.90, help="accuracy to reach on what the stage decides")
    p.add_argument("--write", default="gifcat-settings.yaml", help="settings file to write")
    _common(p)
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gifcat: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
