"""The `gifcat` command: classify a file, run the local demo, evaluate and calibrate on labelled data."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from gifcat.application.ingest import RejectedUpload, sniff_gif
from gifcat.config import ConfigError, load_settings
from gifcat.domain.cascade import TRIAGE
from gifcat.domain.model import GifItem, GifMetadata, StageName, Status
from gifcat.domain.taxonomy import load_taxonomy

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
    from gifcat_tooling.pipeline import LocalPipeline

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


BASELINES = ("tags", "embedding", "llm")


def _baseline_pipeline(name: str, settings: Any, taxonomy: Any, labelled: Any) -> Any:
    """The single-model baselines a team would otherwise pick: one stage, always answering."""
    from gifcat.config import merge
    from gifcat_tooling.pipeline import LocalPipeline

    if name == "tags":
        return LocalPipeline(settings, taxonomy, StageName.TAGS)
    if name == "embedding":  # embeddings alone: the top category, whatever the margin
        always = settings.model_copy(
            update={
                "stages": merge(
                    settings.stages,
                    {
                        "embedding": settings.stages["embedding"].model_copy(
                            update={"min_score": 0.0, "min_margin": 0.0}
                        )
                    },
                )
            }
        )
        return LocalPipeline(always, taxonomy, StageName.EMBEDDING, skip=TRIAGE, labelled=labelled)
    return LocalPipeline(settings, taxonomy, StageName.LLM, skip=(*TRIAGE, StageName.EMBEDDING))


def cmd_eval(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from gifcat.domain.records import read_records
    from gifcat_tooling.evaluation import cv_operating_curve, evaluate, operating_curve
    from gifcat_tooling.llama_server import local_llm_endpoint, wants_local_server
    from gifcat_tooling.pipeline import LocalPipeline

    overrides: dict[str, Any] = {}
    if args.llm_cache:
        overrides = {"stages": {"llm": {"cache_path": args.llm_cache}}}
    settings = load_settings(args.settings, overrides=overrides)
    taxonomy = load_taxonomy(args.taxonomy or settings.taxonomy)
    records = read_records(args.data)
    baselines = [b for b in (args.baseline or "").split(",") if b]
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise SystemExit(f"gifcat eval: unknown baseline(s) {sorted(unknown)}; choose from {BASELINES}")
    if args.report and not baselines and not (args.cv or args.train):  # no baselines fitted per fold
        baselines = list(BASELINES)
    needs_llm = args.until == "llm" or "llm" in baselines

    def progress(label: str) -> Any:
        if args.json or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return lambda items: tqdm(items, desc=label, unit="record", file=sys.stderr)

    with ExitStack() as stack:
        if needs_llm and wants_local_server(settings):
            # One local server for every pipeline of this run.
            endpoint = stack.enter_context(local_llm_endpoint(settings))
            settings = load_settings(
                args.settings,
                overrides={
                    "stages": {
                        "llm": {
                            **overrides.get("stages", {}).get("llm", {}),
                            "base_url": endpoint.base_url,
                            "model": endpoint.model,
                        }
                    }
                },
            )

        def run(pipeline: Any, label: str) -> Any:
            with pipeline:
                return evaluate(records, lambda r: pipeline.classify(r.item()), progress(label)), pipeline

        if args.cv or args.train:  # honest figures: everything learned is fitted away from the test records
            report, summary = _fitted_eval(args, records, settings, taxonomy, overrides, progress)
            if args.report and args.until == "llm":  # the curve from the out-of-fold traces
                with LocalPipeline(
                    settings, taxonomy, StageName.LLM, skip=(*TRIAGE, StageName.EMBEDDING)
                ) as only_llm:
                    llm_correct = _llm_answers(report, only_llm.stage(StageName.LLM), progress("llm (curve)"))
                summary |= cv_operating_curve(report, llm_correct, summary["folds"])
        elif args.baseline and not args.report:  # one baseline instead of the cascade
            report, _ = run(_baseline_pipeline(baselines[0], settings, taxonomy, args.labelled), baselines[0])
            summary = {"baseline": baselines[0], **report.summary(settings)}
        else:
            cascade = LocalPipeline(settings, taxonomy, STAGE_CHOICES[args.until], labelled=args.labelled)
            with cascade:
                report = evaluate(records, lambda r: cascade.classify(r.item()), progress("cascade"))
                summary = report.summary(settings)
                if args.report and args.until == "llm":
                    llm_correct = _llm_answers(report, cascade.stage(StageName.LLM), progress("llm (curve)"))
                    emb = settings.thresholds("embedding")
                    curve, point = operating_curve(report, llm_correct, emb.min_score, emb.min_margin)
                    summary |= {"operating_curve": curve, "operating_point": point}
            if args.report:
                summary["baselines"] = {}
                for name in baselines:
                    base, _ = run(_baseline_pipeline(name, settings, taxonomy, args.labelled), name)
                    b = base.summary(settings)
                    summary["baselines"][name] = {
                        "accuracy": b["accuracy"],
                        "micro_f1": b["micro_f1"],
                        "llm_share": b["llm_share"],
                        "cost_per_1000_usd": b["cost_per_1000_usd"],
                        "cost": b["cost"],
                    }
        summary["command"] = "gifcat " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("gifcat") else None
    if args.predictions:
        report.write_predictions(Path(args.predictions))
    if args.report:
        from gifcat_tooling.report import render_text, write_report

        paths = write_report(summary, Path(args.report))
        print(f"report: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
        if not args.json:
            print(render_text(summary))
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.report:
        print(
            f"records: {summary['n']}  accuracy: {summary['accuracy']:.3f}"
            f"  micro-F1: {summary['micro_f1']:.3f}  cost per 1,000: ${summary['cost_per_1000_usd']:.4f}"
        )
        for stage, s in summary["stages"].items():
            print(
                f"  {stage:<10} decided {s['decided']:>4} ({s['share']:.1%})  accuracy {s['accuracy']:.3f}"
                f"  p50 {s['latency_ms']['p50']:.2f} ms"
            )
        print(f"  undecided  {summary['undecided']:>4}   reached the LLM: {summary['llm_share']:.1%}")
    return 0


def _fitted_eval(
    args: argparse.Namespace, records: list[Any], settings: Any, taxonomy: Any, overrides: dict[str, Any],
    progress: Any,
) -> tuple[Any, dict[str, Any]]:
    """`--cv K`: each fold classified by a cascade fitted on the other folds. `--train B`: the records
    classified by a cascade fitted on B. Fitting (gifcat_tooling.training.fit) learns the embedding memory, the
    classifier and every stage's threshold; the LLM stage learns nothing and is shared."""
    from gifcat.config import merge
    from gifcat.domain.records import read_records
    from gifcat.domain.stages.embedding import EmbeddingStage
    from gifcat_tooling.evaluation import Report, evaluate, fold_spread
    from gifcat_tooling.pipeline import LocalPipeline
    from gifcat_tooling.training import CachingEncoder, fit, stratified_folds

    until = STAGE_CHOICES[args.until]
    base = EmbeddingStage.from_settings(settings, taxonomy, labelled=[])
    base.text = CachingEncoder(base.text)  # type: ignore[assignment]  # each text is embedded once
    llm = None
    if until is StageName.LLM:
        with LocalPipeline(settings, taxonomy, StageName.LLM) as probe:
            llm = probe.stage(StageName.LLM)
    if args.train:
        splits = [(read_records(args.train), records)]
    else:
        try:
            splits = stratified_folds(records, args.cv, seed=args.seed)
        except ValueError as exc:
            raise SystemExit(f"gifcat eval: {exc}") from None
    report = Report()
    folds = []
    for i, (train, test) in enumerate(splits):
        fitted = fit(train, settings, taxonomy, base, seed=args.seed)
        fold_settings = load_settings(args.settings, overrides=merge(overrides, fitted.settings_overrides()))
        if until is StageName.LLM:  # the local server's endpoint, as the caller's settings have it
            fold_settings = fold_settings.model_copy(
                update={"stages": {**fold_settings.stages, "llm": settings.stages["llm"]}}
            )
        pipeline = LocalPipeline(
            fold_settings, taxonomy, until, embedding=base.with_learned(fitted.learned), llm=llm
        )
        part = evaluate(test, lambda r, p=pipeline: p.classify(r.item()), progress(f"fold {i + 1}"))
        report.predictions += part.predictions
        fold = part.summary(fold_settings)
        folds.append({
            "fold": i + 1, "n": fold["n"], "accuracy": fold["accuracy"], "stages": fold["stages"],
            "thresholds": fitted.thresholds,
            "calibration": {k: c.as_dict() for k, c in fitted.choices.items()},
        })
    summary = report.summary(settings)
    summary["fitting"] = (
        {"train": args.train, "n_train": len(splits[0][0])} if args.train
        else {"cv": args.cv, "seed": args.seed}
    )
    summary["folds"] = folds
    if not args.train:
        summary["fold_spread"] = fold_spread(folds)
    return report, summary


def _llm_answers(report: Any, llm: Any, progress: Any) -> dict[str, bool]:
    """The LLM's answer for every item triage left, whichever stage decided it: the curve needs them."""
    from gifcat.domain.instructions import InstructionScreen

    screen = InstructionScreen()
    answers: dict[str, bool] = {}
    todo = []
    for p in report.predictions:
        trace = p.trace(StageName.LLM)
        if trace is not None:
            answers[p.record.id] = p.correct and p.result.decided_by is StageName.LLM
        elif p.result.decided_by not in TRIAGE:
            todo.append(p)
    for p in progress(todo) if progress else todo:
        item = p.record.item()  # screened as the cascade screens it: planted instructions steer nothing
        item = item.model_copy(update={"metadata": screen.screen(item.metadata).metadata})
        out = llm.score(item, p.result)
        best = max(out.candidates, key=lambda c: c.score, default=None)
        answers[p.record.id] = out.error is None and best is not None and best.category in p.record.labels
    return answers


def cmd_demo(args: argparse.Namespace) -> int:
    if args.scenario == "hostile":
        from gifcat_tooling.local.hostile import run_hostile

        return run_hostile(find_root(), timeout_s=args.timeout, verbose=args.verbose)
    from gifcat_tooling.local.demo import run_demo

    return run_demo(find_root(), timeout_s=args.timeout, verbose=args.verbose)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit on the labelled file (gifcat_tooling.training.fit): thresholds with an error bound under each stage's
    target, chosen on out-of-fold scores; writes them into a settings file."""
    import yaml

    from gifcat.config import bundled_text, read_text
    from gifcat.domain.records import read_records
    from gifcat.domain.stages.embedding import EmbeddingStage
    from gifcat_tooling.training import fit

    overrides: dict[str, Any] = {}
    if args.target is not None:
        overrides = {"stages": {"embedding": {"target": args.target}}}
    if args.triage_target is not None:
        overrides.setdefault("stages", {}).update(
            {"tags": {"target": args.triage_target}, "rules": {"target": args.triage_target}}
        )
    settings = load_settings(args.settings, overrides=overrides)
    taxonomy = load_taxonomy(args.taxonomy or settings.taxonomy)
    records = read_records(args.data)
    stage = EmbeddingStage.from_settings(settings, taxonomy, labelled=[])
    fitted = fit(records, settings, taxonomy, stage, seed=args.seed)
    source = args.settings
    doc = yaml.safe_load(read_text(source) if source else bundled_text("settings.yaml"))
    for name, chosen in fitted.thresholds.items():
        doc["stages"][name].update(chosen)
        doc["stages"][name]["target"] = settings.stages[name].target
    out = Path(args.write)
    out.write_text(
        f"# Written by gifcat calibrate --data {args.data}\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    report = {name: choice.as_dict() for name, choice in fitted.choices.items()}
    print(json.dumps({"thresholds": fitted.thresholds, "calibration": report}, indent=2))
    for name, choice in fitted.choices.items():
        if not choice.met:
            print(f"gifcat calibrate: no {name} threshold keeps the error bound under {choice.target}: "
                  f"the {name} stage will not decide", file=sys.stderr)
    print(f"wrote {out}; use it with --settings {out} or GIFCAT_SETTINGS", file=sys.stderr)
    return 0 if any(c.met for c in fitted.choices.values()) else 1


def cmd_export(args: argparse.Namespace) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.domain.records import from_results

    decided_by = [s for s in (args.decided_by or "").split(",") if s]
    records = from_results(ResultsTable(args.table).scan(), decided_by or None)
    with Path(args.out).open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} labelled records to {args.out}", file=sys.stderr)
    return 0


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
    p.add_argument("--labelled", help="labelled JSONL for the embedding stage's kNN vote (default: settings)")
    p.add_argument(
        "--baseline",
        help=f"run a single-model baseline instead ({', '.join(BASELINES)}); "
        "with --report, a comma-separated list to compare against (default: all)",
    )
    p.add_argument(
        "--report", metavar="DIR",
        help="write report.json, report.html and PNGs (operating curve, reliability per stage, accuracy by "
        "kind)",
    )
    p.add_argument(
        "--cv", type=int, nargs="?", const=5, default=None, metavar="K",
        help="cross-validate: K stratified folds (default 5), each classified by a cascade fitted on the "
        "others (memory, classifier, thresholds)",
    )
    p.add_argument("--train", metavar="FILE", help="fit on FILE (labelled JSONL), evaluate on --data")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and of fitting")
    p.add_argument(
        "--llm-cache", metavar="FILE", help="cache LLM answers by prompt hash in FILE (replayable)"
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="run the whole flow locally: embedded AWS, sample uploads, results")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every result")
    p.add_argument("--verbose", action="store_true", help="show the handlers' log lines and metrics")
    p.add_argument(
        "--scenario",
        choices=["samples", "hostile"],
        default="samples",
        help="samples: the sample uploads; hostile: those plus every hostile case (re-uploads, bogus "
        "metadata, huge frames, a dripping LLM endpoint...), checked for lost or stale results",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "calibrate", help="choose each stage's threshold with an error bound on labelled data, write settings"
    )
    p.add_argument("--data", required=True)
    p.add_argument("--target", type=float, help="embedding stage's error bound (default: settings, 0.10)")
    p.add_argument("--triage-target", type=float, help="tag and rule stages' error bound (default 0.03)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", default="gifcat-settings.yaml", help="settings file to write")
    _common(p)
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser(
        "export", help="write classified results from the table as labelled JSONL (kNN examples)"
    )
    p.add_argument("--table", required=True, help="the results table (AWS_ENDPOINT_URL for a local one)")
    p.add_argument("--out", required=True, help="JSON Lines file to write")
    p.add_argument("--decided-by", help="keep only these deciders, comma-separated (e.g. llm)")
    p.set_defaults(func=cmd_export)
    return parser


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP (a timeout, CI, a process manager, a closed terminal): stop the local LLM
    server(s) first, then unwind with exit status 128+signum, as a shell reports a signal death."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)  # a second signal ends the process at once
    local_server = sys.modules.get("gifcat_tooling.llama_server")  # not imported: no server was started
    if local_server is not None:
        local_server.stop_all()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Signal handlers belong to the main thread; main() called from elsewhere (tests) leaves them alone.
    handle = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in STOP_SIGNALS} if handle else {}
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gifcat: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
