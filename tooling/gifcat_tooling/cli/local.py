"""`gifcat classify` (one GIF, in-process) and `gifcat demo` (the whole flow on the embedded AWS)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gifcat.application.ingest import RejectedUpload, sniff_gif
from gifcat.domain.model import GifItem, GifMetadata, Status
from gifcat_tooling.cli.common import (
    STAGE_CHOICES,
    add_config_options,
    find_root,
    load_config,
    positive_seconds,
)


def cmd_classify(args: argparse.Namespace) -> int:
    from gifcat_tooling.pipeline import LocalPipeline

    settings, taxonomy = load_config(args)
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


def cmd_demo(args: argparse.Namespace) -> int:
    if args.serve and args.scenario != "samples":
        raise SystemExit("gifcat demo: --serve keeps the samples scenario's stack up, not the "
                         f"{args.scenario} scenario's")
    if args.scenario == "hostile":
        from gifcat_tooling.local.hostile import run_hostile

        return run_hostile(find_root(), timeout_s=args.timeout, verbose=args.verbose)
    if args.scenario == "backfill":
        from gifcat_tooling.local.demo_backfill import run_backfill_demo

        return run_backfill_demo(find_root(), timeout_s=args.timeout, verbose=args.verbose)
    from gifcat_tooling.local.demo import run_demo

    return run_demo(find_root(), timeout_s=args.timeout, verbose=args.verbose, serve=args.serve)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """This group's commands, with their arguments."""
    p = sub.add_parser("classify", help="classify one GIF in-process and print the result as JSON")
    p.add_argument("file")
    p.add_argument("--title", default="")
    p.add_argument("--tags", default="", help="comma-separated")
    p.add_argument("--description", default="")
    p.add_argument("--until", choices=list(STAGE_CHOICES), default="llm")
    add_config_options(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("demo", help="run the whole flow locally: embedded AWS, sample uploads, results")
    p.add_argument("--timeout", type=positive_seconds, default=300.0, help="seconds to wait for every result")
    p.add_argument("--verbose", action="store_true", help="show the handlers' log lines and metrics")
    p.add_argument(
        "--scenario",
        choices=["samples", "hostile", "backfill"],
        default="samples",
        help="samples: the sample uploads; hostile: those plus every hostile case (re-uploads, bogus "
        "metadata, huge frames, a dripping LLM endpoint...), checked for lost or stale results; "
        "backfill: the samples put with the upload trigger off, then classified by the backfill",
    )
    p.add_argument(
        "--serve", action="store_true",
        help="after the samples, keep the embedded AWS up until Ctrl-C and print how to reach it "
        "(uploads from another shell are classified; summary, show, correct... take its --endpoint)",
    )
    p.set_defaults(func=cmd_demo)

