"""`gifcat summary`, `show`, `correct`, `rerun`, `redrive` and `backfill`: a deployed stack, or the local
embedded AWS (`--endpoint`), seen and operated from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys

from gifcat.application.sweep import STUCK_AFTER_S
from gifcat_tooling.cli.common import (
    add_config_options,
    add_stack_options,
    aws_client,
    load_config,
    local_stack,
    non_negative_int,
    percentage,
    point_in_time,
    positive_int,
    positive_seconds,
    read_settings,
    results_table_name,
    start_rate,
    state_machine_arn,
    taxonomy_for,
)


def cmd_backfill(args: argparse.Namespace) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.operations.backfill import BackfillRequest, render, run_backfill

    arn = state_machine_arn(args, "backfill", "BackfillStateMachine", "BackfillStateMachineArn",
                             "BACKFILL_STATE_MACHINE_ARN")
    table = results_table_name(args)
    # Before the run starts: on AWS a run doomed by a missing bucket or table ends failed (raising the
    # backfill alarm), and here it would first be waited for (--timeout, an hour by default).
    aws_client("s3", args.endpoint).head_bucket(Bucket=args.bucket)
    aws_client("dynamodb", args.endpoint).describe_table(TableName=table)
    summary = run_backfill(
        sfn=aws_client("stepfunctions", args.endpoint),
        s3=aws_client("s3", args.endpoint),
        table=ResultsTable(table, aws_client("dynamodb", args.endpoint)),
        state_machine_arn=arn,
        request=BackfillRequest(
            bucket=args.bucket,
            prefix=args.prefix,
            stale_only=args.stale_only,
            max_concurrency=args.max_concurrency,
            tolerated_failure_percentage=args.tolerated_failure_percentage,
        ),
        suffix=args.suffix,
        timeout_s=args.timeout,
    )
    print(json.dumps(summary.as_dict(), indent=2) if args.json else render(summary))
    return 0 if summary.complete else 1


def cmd_rerun(args: argparse.Namespace) -> int:
    """Classify again the objects whose result failed or is stuck pending (operations.rerun)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.domain.result import now
    from gifcat_tooling.operations.rerun import from_table, matching, render, rerun

    arn = state_machine_arn(args, "rerun", "ClassifyStateMachine", "StateMachineArn", "STATE_MACHINE_ARN")
    table = ResultsTable(results_table_name(args), aws_client("dynamodb", args.endpoint))
    at = now()
    found = from_table(table, args.which, since=args.since, stuck_after_s=args.stuck_after, at=at,
                       scan=args.scan)
    chosen = matching(found, args.which, since=args.since, prefix=args.prefix, reason=args.reason,
                      stuck_after_s=args.stuck_after, at=at)
    report = rerun(chosen, aws_client("stepfunctions", args.endpoint), arn, args.which,
                   dry_run=args.dry_run, rate=args.rate)
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    """Send the triage function's dead-lettered uploads back to it (operations.redrive)."""
    from gifcat_tooling.operations.redrive import redrive, render

    queue = args.queue or os.environ.get("TRIAGE_DLQ_URL")
    if not queue and args.endpoint:
        queue = local_stack().queue_url("TriageDeadLetterQueue", args.endpoint)
    if not queue:
        raise SystemExit("gifcat redrive: name the queue with --queue (the stack's TriageDeadLetterQueueUrl "
                         "output) or TRIAGE_DLQ_URL")
    report = redrive(
        aws_client("sqs", args.endpoint), aws_client("lambda", args.endpoint), queue, dry_run=args.dry_run
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.adapters.s3 import S3Objects
    from gifcat.application.ports import SourceUnavailable
    from gifcat_tooling.operations.corrections import (
        CorrectionError,
        checked_labels,
        correct,
        parse_s3_uri,
        spread,
    )

    settings = read_settings(args.settings)
    taxonomy = taxonomy_for(args, settings)
    labels = [s.strip() for s in (args.labels or "").split(",") if s.strip()]
    try:
        parse_s3_uri(args.uri)  # what can be refused here is, before any AWS client is made
        checked_labels(taxonomy, args.category, labels)
        store = ResultsTable(results_table_name(args), aws_client("dynamodb", args.endpoint))
        written = correct(
            args.uri,
            args.category,
            labels,
            taxonomy=taxonomy,
            source=S3Objects(aws_client("s3", args.endpoint)),
            store=store,
            version_id=args.version_id,
            by=args.by,
        )
    except CorrectionError as exc:
        print(f"gifcat correct: {exc}", file=sys.stderr)
        return 2
    code = 0
    if not args.this_only:
        try:
            written["same_content"] = spread(written["pk"], store)
        except SourceUnavailable as exc:
            print(f"gifcat correct: recorded, but the other results of the same bytes and metadata could "
                  f"not be read, and keep their answers: {exc}", file=sys.stderr)
            code = 1
    print(json.dumps(written, ensure_ascii=False, indent=2, default=str))
    return code


def cmd_show(args: argparse.Namespace) -> int:
    """One upload's decision as the results table holds it (operations.show)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.operations.corrections import CorrectionError, parse_s3_uri
    from gifcat_tooling.operations.show import render_item

    try:
        bucket, key = parse_s3_uri(args.uri)  # refused before any AWS client is made
    except CorrectionError as exc:
        print(f"gifcat show: {exc}", file=sys.stderr)
        return 2
    table = results_table_name(args)
    item = ResultsTable(table, aws_client("dynamodb", args.endpoint)).get(f"s3://{bucket}/{key}")
    if item is None:
        print(f"gifcat show: no result for s3://{bucket}/{key} in {table} (not uploaded under the "
              "stack's prefix, or not classified yet)", file=sys.stderr)
        return 1
    print(item.model_dump_json(indent=2, exclude_none=True) if args.json else render_item(item))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    """The results a person should answer first (operations.review)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.adapters.training import choose_gate
    from gifcat.application.learn import learn_gate, learnable_results
    from gifcat_tooling.operations.review import build_review, render_text

    settings, taxonomy = load_config(args)
    table = results_table_name(args)
    o = settings.learn
    report = build_review(
        learnable_results(ResultsTable(table, aws_client("dynamodb", args.endpoint)), taxonomy.version,
                          args.max_items or o.max_items, args.since),
        table=table, taxonomy_version=taxonomy.version, limit=args.limit, check_every=args.check_every,
        seed=args.seed,
        choose_gate=lambda pairs: learn_gate(o, pairs, choose_gate),
    )
    print(report.model_dump_json(indent=2) if args.json else render_text(report))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """What the cascade did with the uploads in the results table (operations.summary)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.operations.summary import render_text, summarise

    _, taxonomy = load_config(args)
    table = results_table_name(args)
    results = ResultsTable(table, aws_client("dynamodb", args.endpoint))
    summary = summarise(
        results.items(),
        table=table,
        taxonomy_version=taxonomy.version,
        stuck_after_s=args.stuck_after,
        since=args.since,
    )
    summary = summary.model_copy(update={"unreadable": results.unreadable})
    print(summary.model_dump_json(indent=2) if args.json else render_text(summary))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """This group's commands, with their arguments."""
    p = sub.add_parser(
        "backfill", help="classify the objects under a prefix with the backfill state machine, and wait"
    )
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="", help="only keys under this prefix (default: the whole bucket)")
    p.add_argument(
        "--stale-only", action="store_true",
        help="only objects whose result is missing, failed, or made with another taxonomy version",
    )
    p.add_argument("--max-concurrency", type=non_negative_int,
                   help="children at once (default 10; 0: no limit)")
    p.add_argument("--tolerated-failure-percentage", type=percentage, help="default 5")
    p.add_argument("--suffix", default=".gif", help="keys that are uploads (the stack's UploadSuffix)")
    p.add_argument("--state-machine", help="its ARN (default: BACKFILL_STATE_MACHINE_ARN, or the local one)")
    add_stack_options(p)
    p.add_argument("--timeout", type=positive_seconds, default=3600.0, help="seconds to wait for the run")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser(
        "rerun", help="classify again the objects whose result failed, or is stuck pending, from the table"
    )
    p.add_argument("which", choices=["failed", "stuck"],
                   help="failed results, or results pending for longer than --stuck-after")
    p.add_argument("--since", type=point_in_time, metavar="WHEN",
                   help="only results written since then (30m, 24h, 7d, or an ISO 8601 date or time)")
    p.add_argument("--prefix", default="", help="only keys under this prefix")
    p.add_argument("--reason", default="", help="only results whose reason holds this text (any case)")
    p.add_argument("--stuck-after", type=positive_seconds, default=STUCK_AFTER_S, metavar="SECONDS",
                   help=f"pending for longer than this is stuck (default {STUCK_AFTER_S:g})")
    p.add_argument("--rate", type=start_rate, default=10.0, help="runs started a second (default 10)")
    p.add_argument("--dry-run", action="store_true", help="count what would be run again; start nothing")
    p.add_argument("--scan", action="store_true",
                   help="read the whole table, not its index of failed and pending results (for results "
                        "written before the index existed)")
    p.add_argument("--state-machine", help="the upload machine's ARN (default: STATE_MACHINE_ARN, or the "
                                           "local one)")
    add_stack_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser(
        "redrive", help="invoke the triage function again with the uploads in its dead-letter queue"
    )
    p.add_argument("--queue", help="the queue's URL (default: TRIAGE_DLQ_URL, or the local stack's)")
    p.add_argument("--dry-run", action="store_true", help="list what would be redriven; change nothing")
    add_stack_options(p, table=False)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_redrive)

    p = sub.add_parser(
        "correct", help="record a person's answer for one object (decided_by: human) on its result item"
    )
    p.add_argument("uri", help="s3://BUCKET/KEY of the object")
    p.add_argument("--category", required=True, help="the primary category (one of the taxonomy's)")
    p.add_argument("--labels", help="all the labels, comma-separated (the category is always one)")
    p.add_argument("--version-id", help="the object version the answer is for (versioned buckets)")
    p.add_argument("--by", help="who corrects (recorded as corrected_by)")
    p.add_argument("--this-only", action="store_true",
                   help="leave the other results of the same bytes and metadata as they are (by default "
                        "they take the answer too)")
    add_stack_options(p)
    add_config_options(p)
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser(
        "review", help="the results a person should answer first (with gifcat correct): what no stage "
        "decided, the LLM answers the learner will not learn, and checks of those it will"
    )
    p.add_argument("--limit", type=positive_int, default=20, help="lines shown (default 20)")
    p.add_argument("--check-every", type=non_negative_int, default=4, metavar="N",
                   help="every Nth line checks an LLM answer the learner admits (default 4; 0: none)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="which admitted answers are checked")
    p.add_argument("--since", type=point_in_time, metavar="WHEN",
                   help="only results written since then (30m, 24h, 7d, or an ISO 8601 date or time); "
                        "people's answers of any age still choose the gate")
    p.add_argument("--max-items", type=positive_int, metavar="N",
                   help="read at most the N newest results (default: learn.max_items, as a learn run "
                        "reads)")
    add_stack_options(p)
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="print the queue as JSON")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "show", help="one upload's decision: the stage that made it, each stage's candidates and evidence"
    )
    p.add_argument("uri", help="s3://BUCKET/KEY of the object")
    add_stack_options(p)
    p.add_argument("--json", action="store_true", help="print the result item as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "summary",
        help="what the cascade did with the uploads in the results table: stages, corrections, cost",
    )
    add_stack_options(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--since", type=point_in_time, metavar="WHEN",
                   help="only the items written since then: 30m, 24h, 7d ago, or an ISO 8601 date or time")
    p.add_argument("--stuck-after", type=positive_seconds, default=STUCK_AFTER_S, metavar="SECONDS",
                   help="a pending item older than this is counted as stuck: its run ended without "
                        f"recording (default {STUCK_AFTER_S:.0f}, twice the longest a run lasts)")
    add_config_options(p)
    p.set_defaults(func=cmd_summary)

