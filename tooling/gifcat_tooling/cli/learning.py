"""`gifcat learn`, `stream`, `export` and `discover`: what the cascade learns from answers, and the
categories its items suggest."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from gifcat.config import ConfigError
from gifcat.domain.model import StageName, Status
from gifcat_tooling.cli.common import (
    STAGE_CHOICES,
    add_config_options,
    add_stack_options,
    aws_client,
    error_bound,
    holdout_share,
    load_config,
    local_stack,
    non_negative_int,
    positive_int,
    read_labelled,
    read_settings,
    reproducible_command,
    results_table_name,
    taxonomy_for,
    unit_share,
    writable_file,
    writable_folder,
)

if TYPE_CHECKING:
    from gifcat.domain.records import LabelledRecord


def cmd_export(args: argparse.Namespace) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.domain.records import from_results
    from gifcat.domain.result import DECIDERS

    decided_by = [s.strip() for s in (args.decided_by or "").split(",") if s.strip()]
    unknown = [d for d in decided_by if d not in DECIDERS]
    if unknown:  # would match nothing: an empty file after a whole scan
        raise SystemExit(
            f"gifcat export: no decider is called {', '.join(map(repr, unknown))}: "
            f"choose from {', '.join(DECIDERS)}"
        )
    out = writable_file(args.out, "export")  # before the scan
    table = ResultsTable(results_table_name(args), aws_client("dynamodb", args.endpoint))
    records = from_results(table.scan(), decided_by or None)
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(record.model_dump_json(exclude_none=True) + "\n")
    print(f"wrote {len(records)} labelled records to {args.out}", file=sys.stderr)
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    """Cluster the items' embeddings; name each cluster, give its nearest category, flag new ones."""
    from gifcat.adapters.embeddings.factory import build_embedding_stage
    from gifcat.domain.instructions import InstructionScreen
    from gifcat.domain.records import RecordError, iter_records
    from gifcat.domain.stages.embedding import item_text
    from gifcat_tooling.discovery import (
        DiscoveryError,
        DiscoveryOptions,
        check_item_count,
        discover,
        items_from_metadata,
        metadata_of_result,
        render_text,
        write_report,
    )

    settings, taxonomy = load_config(args)
    try:
        options = DiscoveryOptions.from_mapping(settings.discovery)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    report_folder = writable_folder(args.report, "discover") if args.report else None
    if args.table:
        from gifcat.adapters.dynamodb import ResultsTable

        table = ResultsTable(args.table, aws_client("dynamodb", args.endpoint))
        results = table.scan()
        # A deleted object's result holds no text, and is no upload now; a repost's text is the result's
        # it took (README "Uploads seen before"): one item, once.
        gone = sum(r.status is Status.DELETED for r in results)
        reposts = sum(r.status is not Status.DELETED and r.reused_from is not None for r in results)
        rows = [(r.pk, metadata_of_result(r)) for r in results
                if r.status is not Status.DELETED and r.reused_from is None]
        for count, what in ((gone, "results of deleted objects"),
                            (reposts, "results that took another upload's (the same bytes and text)")):
            if count:
                print(f"gifcat discover: left out {count} {what}", file=sys.stderr)
    else:
        try:
            rows = [(r.id, r.item().metadata) for r in iter_records(args.data, require_labels=False)]
        except (OSError, RecordError) as exc:
            print(f"gifcat discover: {exc}", file=sys.stderr)
            return 2
        except UnicodeDecodeError as exc:
            print(f"gifcat discover: {args.data}: not UTF-8 text ({exc.reason})", file=sys.stderr)
            return 2
    generic = taxonomy.normalised_generic_tags
    items, skipped = items_from_metadata(
        rows, lambda m: item_text(m.title, m.tags, m.description, generic), InstructionScreen(taxonomy.names)
    )
    for s in skipped:
        print(f"gifcat discover: skipped {s['id']}: {s['reason']}", file=sys.stderr)
    try:
        if len(items) < 2 or (args.clusters is not None and args.clusters > len(items)):
            raise DiscoveryError(  # said before the models load
                f"{len(items)} item(s) with text from {len(rows)} read: too few to cluster"
                + (f" into {args.clusters} clusters" if args.clusters is not None else " (at least 2)")
            )
        check_item_count(len(items), options)  # before the models load
        stage = build_embedding_stage(settings, taxonomy, labelled=[])
        result = discover(items, stage, options, n_clusters=args.clusters, skipped=skipped)
    except DiscoveryError as exc:
        print(f"gifcat discover: {exc}", file=sys.stderr)
        return 2
    if report_folder is not None:
        paths = write_report(result, report_folder)
        print(f"report: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    print(json.dumps(result.to_public(), indent=2, ensure_ascii=False) if args.json else render_text(result))
    return 0


def _artefacts_location(args: argparse.Namespace) -> str:
    """--artefacts, else GIFCAT_ARTEFACTS, else (with --endpoint) the local stack's, as the template
    gives the functions: s3://<ArtefactsBucket>/embedding."""
    if args.artefacts or os.environ.get("GIFCAT_ARTEFACTS"):
        return str(args.artefacts or os.environ["GIFCAT_ARTEFACTS"])
    if args.endpoint:
        return f"s3://{local_stack().physical_name('ArtefactsBucket')}/embedding"
    raise SystemExit("gifcat learn: name the artefacts location with --artefacts s3://BUCKET/embedding "
                     "(the stack's ArtefactsBucketName output) or GIFCAT_ARTEFACTS")


def cmd_learn(args: argparse.Namespace) -> int:
    """The learning job (gifcat.application.learn) against AWS, or the local embedded AWS (--endpoint):
    the same code the scheduled LearnFunction runs."""
    from botocore.exceptions import ClientError

    from gifcat.adapters.artefact_store import S3ArtefactStore, parse_location
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.adapters.embeddings.factory import build_embedding_stage
    from gifcat.adapters.training import EmbeddingTrainer
    from gifcat.application.learn import LearnJob
    from gifcat.application.ports import PublishConflict, SourceUnavailable

    location = _artefacts_location(args)
    try:
        parse_location(location)
    except ValueError as exc:
        print(f"gifcat learn: {exc}", file=sys.stderr)
        return 2
    table = results_table_name(args)
    settings, taxonomy = load_config(args)
    stage = build_embedding_stage(settings, taxonomy)
    job = LearnJob(
        settings, taxonomy,
        ResultsTable(table, aws_client("dynamodb", args.endpoint)),
        S3ArtefactStore(location, aws_client("s3", args.endpoint)),
        EmbeddingTrainer(settings, taxonomy, stage),
    )
    try:
        report = job.run(dry_run=args.dry_run)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            print(f"gifcat learn: no results table {table!r} ({exc})", file=sys.stderr)
            return 2
        raise
    except SourceUnavailable as exc:
        if "NoSuchBucket" in str(exc):
            print(f"gifcat learn: no artefacts bucket at {location}: {exc}", file=sys.stderr)
            return 2
        raise
    except PublishConflict as exc:
        print(f"gifcat learn: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(render_learn(report))
    return 0


def render_learn(report: Any) -> str:
    """The report for a person: the outcome and why, then where the examples came from."""
    ex = report.examples
    lines = [
        f"{report.outcome}: {report.version} ({report.reason})",
        f"results read: {report.items}; skipped: "
        + (", ".join(f"{k} {v}" for k, v in report.skipped.items()) or "none"),
        f"examples: {ex.get('total', 0)} (human {ex.get('human', 0)}, llm {ex.get('llm', 0)}, "
        f"tags {ex.get('tags', 0)}, rules {ex.get('rules', 0)}); train {ex.get('train', '-')}, "
        f"held out {ex.get('held_out', '-')}",
        f"gate: {report.gate.get('rule')}"
        + (f" >= {report.gate['threshold']}" if report.gate.get("threshold") is not None else "")
        + f" on {report.gate.get('pairs', 0)} checked LLM answers; {report.refused_llm} LLM answers refused",
    ]
    lines += report.kept_categories
    for name, card in report.scorecards.items():
        lines.append(f"{name}: top-1 {card['accuracy']:.1%}, decides {card['decided']}/{card['n']} "
                     f"with {card['errors']} errors")
    return "\n".join(lines)


def cmd_stream(args: argparse.Namespace) -> int:
    """Replay labelled records in file order through the cascade, relearning every window
    (gifcat_tooling.stream)."""
    from contextlib import ExitStack

    from gifcat.adapters.embeddings.factory import build_embedding_stage
    from gifcat.adapters.llm.factory import build_llm_stage
    from gifcat.adapters.training import CachingEncoder
    from gifcat.domain.records import load_labelled
    from gifcat_tooling.llama_server import local_llm_endpoint, wants_local_server
    from gifcat_tooling.stream import StreamOptions, check_unique_ids, plot_stream, run_stream

    overrides: dict[str, Any] = {}
    if args.llm_cache:
        overrides = {"stages": {"llm": {"cache_path": args.llm_cache}}}
    settings = read_settings(args.settings, overrides=overrides)
    taxonomy = taxonomy_for(args, settings)
    records: list[LabelledRecord] = []
    files = []  # where each file starts in the replay (the report marks it)
    predictions = writable_file(args.predictions, "stream") if args.predictions else None
    report_folder = writable_folder(args.report, "stream") if args.report else None
    for path in args.data:
        part = read_labelled(path, "stream", taxonomy)
        files.append({"path": path, "start": len(records), "n": len(part)})
        records += part
    try:
        options = StreamOptions(
            window=args.window, learn=args.learn, corrections=args.corrections, review=args.review,
            seed=args.seed, start=args.start, until=STAGE_CHOICES[args.until], holdout=args.holdout,
            gate_target=args.gate_target, learn_triage=not args.no_triage_examples,
        )
        check_unique_ids(records)  # before any model loads
    except ValueError as exc:
        raise SystemExit(f"gifcat stream: {exc}") from None
    if args.start == "bundled":
        stage = build_embedding_stage(settings, taxonomy)
        base = load_labelled("bundled")
    else:
        stage = build_embedding_stage(settings, taxonomy, labelled=[])
        base = []
    stage.text = CachingEncoder(stage.text)  # each text is embedded once

    def progress(items: Any, label: str) -> Any:
        if args.json or not sys.stderr.isatty():
            return items
        from tqdm import tqdm

        return tqdm(items, desc=label, unit="record", file=sys.stderr)

    with ExitStack() as stack:
        llm = None
        if options.until is StageName.LLM:
            if wants_local_server(settings):  # one local server for the whole replay
                endpoint = stack.enter_context(local_llm_endpoint(settings, taxonomy=taxonomy))
                llm = build_llm_stage(settings, taxonomy, base_url=endpoint.base_url, model=endpoint.model)
            else:
                llm = build_llm_stage(settings, taxonomy)
        try:
            run = run_stream(records, settings, taxonomy, stage, llm, options, base_examples=base,
                             progress=progress)
        except ValueError as exc:
            raise SystemExit(f"gifcat stream: {exc}") from None
    summary = run.summary()
    summary["data"] = files
    summary["command"] = reproducible_command(args.argv, os.environ)
    if predictions:
        with predictions.open("w", encoding="utf-8") as fh:
            for seen in run.seen:
                fh.write(json.dumps(seen.line(), ensure_ascii=False) + "\n")
    if report_folder is not None:
        out = report_folder
        (out / "stream.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        png = plot_stream(summary, out / "stream.png")
        print(f"report: {out / 'stream.json'}, {png}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"records: {summary['n']}  accuracy: {summary['accuracy']:.3f}  "
              f"LLM share: {summary['llm_share']:.1%}  corrections: {summary['corrections']}")
        for w in summary["windows"]:
            print(f"  window at {w['start']:>4}: n {w['n']:>3}  accuracy {w['accuracy']:.3f}  "
                  f"LLM share {w['llm_share']:.1%}  embedding margin {w['embedding_margin']:.3f}  "
                  f"examples {w['examples']}")
        if "goal" in summary:
            goal = summary["goal"]
            print(f"  last/first LLM share: {goal['llm_share_ratio']}  accuracy drop: "
                  f"{goal['accuracy_drop']:+.3f}  goal met: {goal['met']}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """This group's commands, with their arguments."""
    p = sub.add_parser(
        "export", help="write classified results from the table as labelled JSONL (kNN examples)"
    )
    add_stack_options(p)
    p.add_argument("--out", required=True, help="JSON Lines file to write")
    p.add_argument("--decided-by", help="keep only these deciders, comma-separated (e.g. llm)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "discover",
        help="cluster items' embeddings, name the clusters, flag those far from every category as new",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="JSON Lines of items (the TAXONOMY.md record format; labels unused)")
    source.add_argument("--table", help="the results table")
    p.add_argument("--endpoint", help="with --table: AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--json", action="store_true", help="print {\"clusters\": [...]} as JSON")
    p.add_argument("--report", metavar="DIR", help="write map.png, index.md, index.html, discovery.json")
    p.add_argument(
        "--clusters", type=positive_int, metavar="K",
        help="exactly K clusters instead of the settings' distance threshold (discovery.distance_threshold)",
    )
    add_config_options(p)
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser(
        "learn",
        help="relearn the embedding stage from the results table; publish the artefact if not worse",
    )
    add_stack_options(p)
    p.add_argument("--artefacts", metavar="S3_URI",
                   help="s3://BUCKET/embedding (default: GIFCAT_ARTEFACTS, or the local stack's)")
    p.add_argument("--dry-run", action="store_true", help="gather, fit and compare, but publish nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_options(p)
    p.set_defaults(func=cmd_learn)

    p = sub.add_parser(
        "stream",
        help="replay labelled records in order through the cascade, relearning every window; print the "
        "learning curve",
    )
    p.add_argument("--data", required=True, action="append",
                   help="JSON Lines of labelled records; repeat to replay several files one after another")
    p.add_argument("--learn", action="store_true",
                   help="relearn the embedding stage (memory, classifier, margin) after every window")
    p.add_argument("--window", type=positive_int, default=50, help="records per window (default 50)")
    p.add_argument("--corrections", type=unit_share, default=0.0, metavar="RATE",
                   help="share of LLM-bound records a person answers with the gold label (default 0)")
    p.add_argument("--review", choices=["random", "queue"], default="random",
                   help="which LLM-bound records the person answers: random (drawn as each arrives; "
                   "default) or queue (at each window's end, the first in `gifcat review`'s order)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of the corrections draw and of fitting")
    p.add_argument("--start", choices=["empty", "bundled"], default="empty",
                   help="empty: no memory, no classifier, no certified margin (default); bundled: the "
                   "shipped memory (the dev set: in-sample on dev)")
    p.add_argument("--until", choices=["embedding", "llm"], default="llm",
                   help="embedding: no LLM calls, the LLM-bound records stay undecided (fast)")
    p.add_argument("--holdout", type=holdout_share, default=0.0, metavar="SHARE",
                   help="hold this share of examples out and adopt a relearned artefact only when it is "
                   "not worse on them (default 0: always adopt)")
    p.add_argument("--no-triage-examples", action="store_true",
                   help="learn from human and gated LLM answers only, not from what the tag and rule "
                   "stages decided")
    p.add_argument("--gate-target", type=error_bound, default=0.15,
                   help="error bound of the LLM answers the gate admits for learning (default 0.15)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", metavar="DIR", help="write stream.json and stream.png (LLM share, accuracy)")
    p.add_argument("--predictions", metavar="FILE", help="write one JSON line per record here")
    p.add_argument("--llm-cache", metavar="FILE", help="cache LLM answers by prompt hash in FILE")
    add_config_options(p)
    p.set_defaults(func=cmd_stream)
