"""The `gifcat` command: classify a file, run the local demo, evaluate and calibrate on labelled data,
find candidate new categories."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gifcat.application.ingest import RejectedUpload, sniff_gif
from gifcat.application.sweep import STUCK_AFTER_S
from gifcat.config import THRESHOLD_SEARCHES, ConfigError, Settings, UriReader, load_settings
from gifcat.domain.cascade import TRACE_TOP_K, TRIAGE
from gifcat.domain.model import GifItem, GifMetadata, StageName, Status
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:  # imported where used: `gifcat classify` needs none of the evaluation
    from gifcat.domain.model import Classification
    from gifcat.domain.records import LabelledRecord
    from gifcat_tooling.evaluation import EvalSummary, PromptSizes, Report, VsAllLlm
    from gifcat_tooling.local.template import Stack
    from gifcat_tooling.pipeline import LocalPipeline

STAGE_CHOICES = {"triage": StageName.RULES, "embedding": StageName.EMBEDDING, "llm": StageName.LLM}


def find_root(start: Path | None = None) -> Path:
    """The checkout holding template.yaml: from the working directory up, else beside the package."""
    candidates = [start or Path.cwd(), Path(__file__).resolve().parents[2]]  # tooling/gifcat_tooling/cli.py
    for base in candidates:
        for folder in (base, *base.parents):
            if (folder / "template.yaml").is_file() and (folder / "functions").is_dir():
                return folder
    raise SystemExit("gifcat: no template.yaml found; run from a gifcat checkout")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", help="settings YAML (path or s3://); default: bundled")
    parser.add_argument("--taxonomy", help="taxonomy YAML (path or s3://); default: bundled")


def _read_s3(uri: str) -> str:
    from gifcat.adapters.s3 import read_s3_uri  # only when asked: keeps boto3 off the local path

    return read_s3_uri(uri)


READ_URI: UriReader = _read_s3  # --settings and --taxonomy may name s3:// objects


def _settings(source: str | None, overrides: dict[str, Any] | None = None) -> Settings:
    return load_settings(source, overrides, read_uri=READ_URI)


def _taxonomy(source: str | None) -> Taxonomy:
    return load_taxonomy(source, read_uri=READ_URI)


def _taxonomy_for(args: argparse.Namespace, settings: Settings) -> Taxonomy:
    """--taxonomy, else GIFCAT_TAXONOMY, else the settings' `taxonomy`: the order the Lambdas read it
    in (gifcat.runtime), so a command checks categories against the taxonomy the stack uses."""
    return _taxonomy(args.taxonomy or os.environ.get("GIFCAT_TAXONOMY", "").strip() or settings.taxonomy)


# What a run reads from the environment that changes its figures (GIFCAT_CACHE only says where the
# models are; keys are never written down).
RESULT_ENV = ("GIFCAT_SETTINGS", "GIFCAT_TAXONOMY", "GIFCAT_OVERRIDES")


def reproducible_command(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The shell line that runs this again: the settings it read from the environment, then
    `gifcat` and its arguments, each quoted so that a JSON override or a path with spaces survives."""
    env = [f"{name}={shlex.quote(environ[name])}" for name in RESULT_ENV if environ.get(name, "").strip()]
    return " ".join([*env, shlex.join(["gifcat", *argv])])


def _load(args: argparse.Namespace) -> tuple[Settings, Taxonomy]:
    settings = _settings(args.settings)
    return settings, _taxonomy_for(args, settings)


def _output_file(path: str, command: str) -> Path:
    """A file the command writes at its end, checked (and its folder made) before the work starts."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SystemExit(f"gifcat {command}: cannot write {path}: a part of its folder is a file") from None
    except OSError as exc:
        raise SystemExit(f"gifcat {command}: cannot write {path}: {exc.strerror or exc}") from None
    if out.is_dir():
        raise SystemExit(f"gifcat {command}: cannot write {path}: it is a folder")
    existed = out.exists()
    try:  # opened for appending, so an existing file is left as it is until the end
        with out.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise SystemExit(f"gifcat {command}: cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        out.unlink(missing_ok=True)
    return out


def _report_folder(path: str, command: str) -> Path:
    """The folder a `--report` is written into at the command's end, made before the work starts: a
    report that cannot be written must not cost a whole run (an evaluation with the LLM takes minutes)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # a folder that is there is not yet one we may write in
            pass
        return out
    except FileExistsError:
        why = "it is a file"
    except NotADirectoryError:
        why = "a part of it is a file"
    except OSError as exc:
        why = exc.strerror or str(exc)
    raise SystemExit(f"gifcat {command}: cannot write a report into {path}: {why}")


def _labelled_records(path: str, command: str, taxonomy: Taxonomy) -> list[LabelledRecord]:
    """The labelled records in `path`, or a one-line error naming the file (and the line, for a bad
    record): a file that is missing, unreadable or not UTF-8 text, a bad record, no record at all, or
    labels that are not categories of `taxonomy` (no stage can give them, so every figure measured
    against them, and every threshold fitted on them, would be wrong without saying why)."""
    from gifcat.domain.records import RecordError, foreign_labels, read_records

    try:
        records = read_records(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SystemExit(f"gifcat {command}: cannot read {path}: {reason}") from None
    except RecordError as exc:
        raise SystemExit(f"gifcat {command}: {exc}") from None
    if not records:
        raise SystemExit(f"gifcat {command}: {path} holds no records")
    first: dict[str, int] = {}
    for n, record in enumerate(records, 1):
        # A repeated id could sit in a training fold and its own test fold, and the kNN vote leaves out
        # examples with the item's id: either way a figure would be wrong without saying why.
        if record.id in first:
            raise SystemExit(
                f"gifcat {command}: {path}: record {n} repeats the id {record.id!r} of record "
                f"{first[record.id]}: ids must be unique"
            )
        first[record.id] = n
    foreign = foreign_labels(records, taxonomy.names)
    if foreign:
        count = len({i for ids in foreign.values() for i in ids})
        named = "; ".join(
            f"{label!r} ({len(ids)}: {', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})"
            for label, ids in sorted(foreign.items())
        )
        raise SystemExit(
            f"gifcat {command}: {path}: {count} record(s) carry labels that taxonomy {taxonomy.version} "
            f"does not have: {named}; its categories are {', '.join(taxonomy.names)}"
        )
    return records


def _check_fitting(
    records: list[LabelledRecord], training: list[LabelledRecord] | None, args: argparse.Namespace
) -> None:
    """`gifcat eval`'s fitting, checked before any model loads: every part fitted on must be fittable."""
    from gifcat.adapters.training import check_fittable, stratified_folds

    try:
        splits = [(training, records)] if training is not None else stratified_folds(
            records, args.cv, seed=args.seed  # the parts' sizes do not vary with the seed
        )
    except ValueError as exc:
        raise SystemExit(f"gifcat eval: {exc}") from None
    where = f"--train {args.train}" if training is not None else (
        f"--cv {args.cv} on {len(records)} records, a fold's training part"
    )
    try:
        for train, _ in splits:
            check_fittable(train)
    except ValueError as exc:
        raise SystemExit(f"gifcat eval: {where}: {exc}") from None
    twins = _also_in_training(records, training)
    if twins:  # said, and kept in the summary's `fitting`: these figures are not out of sample
        more = ", ..." if len(twins) > 3 else ""
        print(f"gifcat eval: {len(twins)} record(s) of {args.data} have the same title, tags and description "
              f"as a record of --train {args.train} ({', '.join(twins[:3])}{more}): their figures are "
              "in-sample", file=sys.stderr)


def _also_in_training(records: list[LabelledRecord], training: list[LabelledRecord] | None) -> list[str]:
    """The ids of `records` whose content (`content_key`) a training record repeats."""
    if training is None:
        return []
    trained = {r.content_key() for r in training}
    return [r.id for r in records if r.content_key() in trained]


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

    from gifcat_tooling.evaluation import BaselineSummary, cv_operating_curve, evaluate, operating_curve
    from gifcat_tooling.llama_server import local_llm_endpoint, wants_local_server
    from gifcat_tooling.pipeline import LocalPipeline
    from gifcat_tooling.report import repeats_text

    overrides: dict[str, Any] = {}
    if args.llm_cache:
        overrides = {"stages": {"llm": {"cache_path": args.llm_cache}}}
    settings = _settings(args.settings, overrides=overrides)
    taxonomy = _taxonomy_for(args, settings)
    predictions = _output_file(args.predictions, "eval") if args.predictions else None
    report_folder = _report_folder(args.report, "eval") if args.report else None
    records = _labelled_records(args.data, "eval", taxonomy)
    training = _labelled_records(args.train, "eval", taxonomy) if args.train else None
    baselines = [b.strip() for b in (args.baseline or "").split(",") if b.strip()]
    if args.baseline is not None and not baselines:
        raise SystemExit(f"gifcat eval: --baseline names no baseline; choose from {BASELINES}")
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise SystemExit(f"gifcat eval: unknown baseline(s) {sorted(unknown)}; choose from {BASELINES}")
    if args.report and not baselines and not (args.cv or args.train):  # no baselines fitted per fold
        baselines = list(BASELINES)
    needs_llm = args.until == "llm" or "llm" in baselines
    if args.repeats > 1 and not (args.cv or args.train):
        raise SystemExit("gifcat eval: --repeats needs --cv or --train (without fitting, every seed "
                         "gives the same figures)")

    if args.cv or training is not None:  # refused now, not after the local LLM server has started
        _check_fitting(records, training, args)

    def progress(label: str) -> Any:
        if args.json or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return lambda items: tqdm(items, desc=label, unit="record", file=sys.stderr)

    with ExitStack() as stack:
        if needs_llm and wants_local_server(settings):
            # One local server for every pipeline of this run.
            endpoint = stack.enter_context(local_llm_endpoint(settings, taxonomy=taxonomy))
            settings = _settings(
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
            report, summary = _fitted_eval(args, records, training, settings, taxonomy, overrides, progress)
            if args.report and args.until == "llm":  # the curve from the out-of-fold traces
                with LocalPipeline(
                    settings, taxonomy, StageName.LLM, skip=(*TRIAGE, StageName.EMBEDDING)
                ) as only_llm:
                    llm_correct = _llm_answers(report, only_llm.stage(StageName.LLM), progress("llm (curve)"))
                curve, point, marks = cv_operating_curve(report, llm_correct, summary.folds or [])
                summary = summary.model_copy(
                    update={"operating_curve": curve, "operating_point": point, "operating_folds": marks}
                )
        elif args.baseline and not args.report:  # one baseline instead of the cascade
            report, _ = run(_baseline_pipeline(baselines[0], settings, taxonomy, args.labelled), baselines[0])
            report.prompt_sizes = _prompt_sizes(report, settings, taxonomy)
            summary = report.summary(settings).model_copy(update={"baseline": baselines[0]})
        else:
            cascade = LocalPipeline(settings, taxonomy, STAGE_CHOICES[args.until], labelled=args.labelled)
            with cascade:
                report = evaluate(records, lambda r: cascade.classify(r.item()), progress("cascade"))
                report.prompt_sizes = _prompt_sizes(report, settings, taxonomy)
                summary = report.summary(settings)
                if args.report and args.until == "llm":
                    llm_correct = _llm_answers(report, cascade.stage(StageName.LLM), progress("llm (curve)"))
                    emb = settings.thresholds("embedding")
                    curve, point = operating_curve(report, llm_correct, emb.min_score, emb.min_margin)
                    summary = summary.model_copy(update={"operating_curve": curve, "operating_point": point})
            if args.report:
                compared = {}
                for name in baselines:
                    base, _ = run(_baseline_pipeline(name, settings, taxonomy, args.labelled), name)
                    b = base.summary(settings)
                    compared[name] = BaselineSummary(
                        accuracy=b.accuracy,
                        micro_f1=b.micro_f1,
                        llm_share=b.llm_share,
                        cost_per_1000_usd=b.cost_per_1000_usd,
                        cost=b.cost,
                    )
                summary = summary.model_copy(update={"baselines": compared})
        summary = summary.model_copy(update={"command": reproducible_command(args.argv, os.environ)})
    if predictions:
        report.write_predictions(predictions)
    if report_folder is not None:
        from gifcat_tooling.report import render_text, write_report

        paths = write_report(summary, report_folder)
        print(f"report: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
        if not args.json:
            print(render_text(summary))
    if args.json:
        print(summary.to_json())
    elif not args.report:
        print(
            f"records: {summary.n}  accuracy: {summary.accuracy:.3f}"
            f"  micro-F1: {summary.micro_f1:.3f}  cost per 1,000: ${summary.cost_per_1000_usd or 0.0:.4f}"
        )
        for stage, s in summary.stages.items():
            print(
                f"  {stage:<10} decided {s.decided:>4} ({s.share:.1%})  accuracy {s.accuracy:.3f}"
                f"  p50 {s.latency_ms.p50:.2f} ms"
            )
        print(f"  undecided  {summary.undecided:>4}   reached the LLM: {summary.llm_share:.1%}")
        if (h := summary.handoff) is not None:
            print(f"  left by the cheap stages {h.left}: their first candidate right on"
                  f" {h.top_right}/{h.ranked} ranked ({h.top_accuracy:.1%});"
                  f" a gold label in their top 2/4 on {h.within(2)}/{h.within(4)},"
                  f" not in the top {TRACE_TOP_K} recorded on {h.gold_rank[-1]}")
        if (v := summary.llm_vs_earlier) is not None:
            print(f"  LLM answers the earlier stages' first candidate {v.same_as_earlier_top}/{v.answered}"
                  f"  LLM accuracy {v.accuracy:.3f} against that candidate's {v.earlier_top_accuracy:.3f}")
        if summary.cost is not None and summary.cost.vs_all_llm is not None:
            print(vs_all_llm_lines(summary.cost.vs_all_llm, settings))
        if (repeats := repeats_text(summary)) is not None:
            print(f"\n{repeats}")
    return 0


def vs_all_llm_lines(vs: VsAllLlm, settings: Any) -> str:
    """The cascade beside every GIF sent to the LLM, per 1,000 GIFs, at each non-free model's prices."""
    call, tokens = vs.llm_call, vs.prompt_tokens_per_1000
    kind = "measured" if call.calls else "projected"
    lines = [
        f"  vs every GIF to the LLM ({kind}; {vs.share_reaching_llm:.1%} reach it; prompt tokens per"
        f" 1,000 GIFs {tokens['cascade']:,} vs {tokens['all_llm']:,}; {call.latency_ms:.0f} ms a call):"
    ]
    for model, figures in vs.by_model.items():
        price = settings.prices.llm[model]
        if not (price.input_per_million or price.output_per_million):
            continue
        c, a = figures.cascade, figures.all_llm
        ratio = "n/a" if figures.ratio is None else f"{figures.ratio:.3f}"
        lines.append(
            f"    {model:<14} cascade ${c.per_1000_usd:.4f} (orchestration"
            f" {c.stepfunctions_per_1000_usd:.4f}, Lambda {c.lambda_per_1000_usd:.4f},"
            f" LLM {c.llm_per_1000_usd:.4f}) vs ${a.per_1000_usd:.4f}: ratio {ratio}"
        )
    return "\n".join(lines)


def _fitted_eval(
    args: argparse.Namespace, records: list[Any], training: list[Any] | None, settings: Any, taxonomy: Any,
    overrides: dict[str, Any], progress: Any,
) -> tuple[Report, EvalSummary]:
    """`--cv K`: each fold classified by a cascade fitted on the other folds. `--train B`: the records
    classified by a cascade fitted on `training`, B's records. Fitting (gifcat.adapters.training.fit)
    learns the embedding memory, the classifier and every stage's threshold; the LLM stage learns
    nothing and is shared.
    `--repeats R`: the same under R seeds from `--seed` on; the report and the figures are the first
    seed's, and the summary's `repeats` holds every seed's."""
    from gifcat.adapters.embeddings.factory import build_embedding_stage
    from gifcat.adapters.training import CachingEncoder, fit, stratified_folds
    from gifcat.config import merge
    from gifcat_tooling.evaluation import (
        Calibration,
        Fitting,
        FoldSummary,
        Report,
        evaluate,
        fold_spread,
        repeat_summary,
    )
    from gifcat_tooling.pipeline import LocalPipeline

    until = STAGE_CHOICES[args.until]
    base = build_embedding_stage(settings, taxonomy, labelled=[])
    base.text = CachingEncoder(base.text)  # each text is embedded once
    llm = None
    if until is StageName.LLM:
        with LocalPipeline(settings, taxonomy, StageName.LLM) as probe:
            llm = probe.stage(StageName.LLM)

    def run(seed: int) -> tuple[Report, EvalSummary]:
        if training is not None:
            splits = [(training, records)]
        else:
            try:
                splits = stratified_folds(records, args.cv, seed=seed)
            except ValueError as exc:
                raise SystemExit(f"gifcat eval: {exc}") from None
        label = f"seed {seed}, fold" if args.repeats > 1 else "fold"
        report = Report()
        folds = []
        for i, (train, test) in enumerate(splits):
            fitted = fit(train, settings, taxonomy, base, seed=seed)
            fold_settings = _settings(args.settings, overrides=merge(overrides, fitted.settings_overrides()))
            if until is StageName.LLM:  # the local server's endpoint, as the caller's settings have it
                fold_settings = fold_settings.model_copy(
                    update={"stages": {**fold_settings.stages, "llm": settings.stages["llm"]}}
                )
            pipeline = LocalPipeline(
                fold_settings, taxonomy, until, embedding=base.with_learned(fitted.learned), llm=llm
            )
            part = evaluate(test, partial(_classify, pipeline), progress(f"{label} {i + 1}"))
            report.predictions += part.predictions
            fold = part.summary(fold_settings)
            folds.append(FoldSummary(
                fold=i + 1, n=fold.n, accuracy=fold.accuracy, stages=fold.stages,
                thresholds=fitted.thresholds,
                calibration={k: Calibration.model_validate(c.as_dict()) for k, c in fitted.choices.items()},
            ))
        twins = _also_in_training(records, training) or None
        fitting = Fitting(
            train=args.train, n_train=len(splits[0][0]), also_in_train=twins
        ) if args.train else Fitting(
            cv=args.cv, seed=seed
        )
        report.prompt_sizes = _prompt_sizes(report, settings, taxonomy)
        summary = report.summary(settings).model_copy(update={
            "fitting": fitting, "folds": folds, "fold_spread": None if args.train else fold_spread(folds)
        })
        return report, summary

    report, summary = run(args.seed)
    if args.repeats > 1:
        others = [(seed, run(seed)[1]) for seed in range(args.seed + 1, args.seed + args.repeats)]
        summary = summary.model_copy(update={"repeats": repeat_summary([(args.seed, summary), *others])})
    return report, summary


def _classify(pipeline: LocalPipeline, record: LabelledRecord) -> Classification:
    return pipeline.classify(record.item())


def _prompt_sizes(report: Any, settings: Any, taxonomy: Any) -> PromptSizes | None:
    """Each record's LLM prompt, in characters, as the configured prompt builds it for the configured
    model: sent alone (no earlier stage, any category), and, for records the embedding stage left in a
    run that stopped there, as the cascade's LLM step would send it. Prices the LLM side of
    `cost.vs_all_llm`; None when the settings configure no usable prompt."""
    from gifcat.adapters.llm.factory import prompt_builder
    from gifcat.domain.instructions import InstructionScreen
    from gifcat.domain.llm.options import LlmOptions
    from gifcat.domain.stages.llm import NEIGHBOURS_READ, LlmStage, prompt_chars
    from gifcat_tooling.evaluation import PromptSizes

    try:
        builder = prompt_builder(settings, taxonomy)
        opts = settings.options("llm", LlmOptions)
        choose = opts.choose_from_top_for(opts.model)  # the configured model: what the projection prices
        held = LlmStage(None, builder, choose_from_top=choose)  # type: ignore[arg-type]  # no calls made
    except ConfigError:
        return None
    screen = InstructionScreen()  # prompts are built from the screened metadata, as the cascade does
    sizes = PromptSizes()
    for p in report.predictions:
        item = p.record.item()
        item = item.model_copy(update={"metadata": screen.screen(item.metadata).metadata})
        sizes.alone[p.record.id] = prompt_chars(builder.messages(item, [], [], ()))
        so_far = p.result
        if so_far.status is Status.UNDECIDED and p.trace(StageName.EMBEDDING) and not p.trace(StageName.LLM):
            messages = builder.messages(
                item, so_far.top_candidates(), so_far.neighbours(NEIGHBOURS_READ), held.choices(so_far)
            )
            sizes.cascade[p.record.id] = prompt_chars(messages)
    return sizes


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


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit on the labelled file (gifcat.adapters.training.fit): thresholds with an error bound under each
    stage's target, chosen on out-of-fold scores; writes them into a settings file."""
    import yaml

    from gifcat.adapters.embeddings.factory import build_embedding_stage
    from gifcat.adapters.training import check_fittable, fit
    from gifcat.config import bundled_text, read_text

    overrides: dict[str, Any] = {}
    if args.target is not None:
        overrides = {"stages": {"embedding": {"target": args.target}}}
    if args.triage_target is not None:
        overrides.setdefault("stages", {}).update(
            {"tags": {"target": args.triage_target}, "rules": {"target": args.triage_target}}
        )
    if args.search is not None:
        for name in ("tags", "rules", "embedding"):
            overrides.setdefault("stages", {}).setdefault(name, {})["search"] = args.search
    settings = _settings(args.settings, overrides=overrides)
    taxonomy = _taxonomy_for(args, settings)
    records = _labelled_records(args.data, "calibrate", taxonomy)
    out = _output_file(args.write, "calibrate")  # before the fit, which takes minutes
    try:
        check_fittable(records)
    except ValueError as exc:
        raise SystemExit(f"gifcat calibrate: {args.data}: {exc}") from None
    stage = build_embedding_stage(settings, taxonomy, labelled=[])
    fitted = fit(records, settings, taxonomy, stage, seed=args.seed)
    source = args.settings
    doc = yaml.safe_load(read_text(source, READ_URI) if source else bundled_text("settings.yaml"))
    for name, chosen in fitted.thresholds.items():
        doc["stages"][name].update(chosen)
        doc["stages"][name]["target"] = settings.stages[name].target
        doc["stages"][name]["search"] = settings.stages[name].search
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
    from gifcat.domain.result import DECIDERS

    decided_by = [s.strip() for s in (args.decided_by or "").split(",") if s.strip()]
    unknown = [d for d in decided_by if d not in DECIDERS]
    if unknown:  # would match nothing: an empty file after a whole scan
        raise SystemExit(
            f"gifcat export: no decider is called {', '.join(map(repr, unknown))}: "
            f"choose from {', '.join(DECIDERS)}"
        )
    out = _output_file(args.out, "export")  # before the scan
    table = ResultsTable(_results_table_name(args), _aws_client("dynamodb", args.endpoint))
    records = from_results(table.scan(), decided_by or None)
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(record.model_dump_json(exclude_none=True) + "\n")
    print(f"wrote {len(records)} labelled records to {args.out}", file=sys.stderr)
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    """Cluster the items' embeddings; name each cluster, give its nearest category, flag new ones."""
    from gifcat.adapters.embeddings.factory import build_embedding_stage
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

    settings, taxonomy = _load(args)
    try:
        options = DiscoveryOptions.from_mapping(settings.discovery)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    report_folder = _report_folder(args.report, "discover") if args.report else None
    if args.table:
        from gifcat.adapters.dynamodb import ResultsTable

        table = ResultsTable(args.table, _aws_client("dynamodb", args.endpoint))
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
        rows, lambda m: item_text(m.title, m.tags, m.description, generic)
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


def _aws_client(service: str, endpoint: str | None) -> Any:
    """A client whose calls end: botocore's defaults wait 60 s to read each answer, and retry, so an
    endpoint that accepts and never answers held a command silent for minutes."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 3})
    return boto3.client(service, endpoint_url=endpoint, config=config)


def _local_stack() -> Stack:
    """template.yaml as the embedded AWS deploys it: the names a command takes by default with --endpoint."""
    from gifcat_tooling.local.template import Stack, load_template

    root = find_root()
    return Stack(load_template(root / "template.yaml"), root)


def _results_table_name(args: argparse.Namespace) -> str:
    """--table, else RESULTS_TABLE, else (with --endpoint) the local stack's table from template.yaml."""
    if args.table or os.environ.get("RESULTS_TABLE"):
        return str(args.table or os.environ["RESULTS_TABLE"])
    if args.endpoint:
        return _local_stack().physical_name("ResultsTable")
    raise SystemExit("gifcat: name the results table with --table (or RESULTS_TABLE)")


def _state_machine_arn(
    args: argparse.Namespace, command: str, logical_id: str, output: str, variable: str
) -> str:
    """--state-machine, else the environment variable, else (with --endpoint) the local stack's."""
    arn = args.state_machine or os.environ.get(variable)
    if not arn and args.endpoint:
        arn = _local_stack().arn(logical_id)
    if not arn:
        raise SystemExit(f"gifcat {command}: name the state machine with --state-machine (the stack's "
                         f"{output} output) or {variable}")
    return str(arn)


def cmd_backfill(args: argparse.Namespace) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.backfill import BackfillRequest, render, run_backfill

    arn = _state_machine_arn(args, "backfill", "BackfillStateMachine", "BackfillStateMachineArn",
                             "BACKFILL_STATE_MACHINE_ARN")
    table = _results_table_name(args)
    # Before the run starts: on AWS a run doomed by a missing bucket or table ends failed (raising the
    # backfill alarm), and here it would first be waited for (--timeout, an hour by default).
    _aws_client("s3", args.endpoint).head_bucket(Bucket=args.bucket)
    _aws_client("dynamodb", args.endpoint).describe_table(TableName=table)
    summary = run_backfill(
        sfn=_aws_client("stepfunctions", args.endpoint),
        s3=_aws_client("s3", args.endpoint),
        table=ResultsTable(table, _aws_client("dynamodb", args.endpoint)),
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
    """Classify again the objects whose result failed or is stuck pending (gifcat_tooling.rerun)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.domain.result import now
    from gifcat_tooling.rerun import from_table, matching, render, rerun

    arn = _state_machine_arn(args, "rerun", "ClassifyStateMachine", "StateMachineArn", "STATE_MACHINE_ARN")
    table = ResultsTable(_results_table_name(args), _aws_client("dynamodb", args.endpoint))
    at = now()
    found = from_table(table, args.which, since=args.since, stuck_after_s=args.stuck_after, at=at,
                       scan=args.scan)
    chosen = matching(found, args.which, since=args.since, prefix=args.prefix, reason=args.reason,
                      stuck_after_s=args.stuck_after, at=at)
    report = rerun(chosen, _aws_client("stepfunctions", args.endpoint), arn, args.which,
                   dry_run=args.dry_run, rate=args.rate)
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    """Send the triage function's dead-lettered uploads back to it (gifcat_tooling.redrive)."""
    from gifcat_tooling.redrive import redrive, render

    queue = args.queue or os.environ.get("TRIAGE_DLQ_URL")
    if not queue and args.endpoint:
        queue = _local_stack().queue_url("TriageDeadLetterQueue", args.endpoint)
    if not queue:
        raise SystemExit("gifcat redrive: name the queue with --queue (the stack's TriageDeadLetterQueueUrl "
                         "output) or TRIAGE_DLQ_URL")
    report = redrive(
        _aws_client("sqs", args.endpoint), _aws_client("lambda", args.endpoint), queue, dry_run=args.dry_run
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.adapters.s3 import S3Objects
    from gifcat.application.ports import SourceUnavailable
    from gifcat_tooling.corrections import CorrectionError, checked_labels, correct, parse_s3_uri, spread

    settings = _settings(args.settings)
    taxonomy = _taxonomy_for(args, settings)
    labels = [s.strip() for s in (args.labels or "").split(",") if s.strip()]
    try:
        parse_s3_uri(args.uri)  # what can be refused here is, before any AWS client is made
        checked_labels(taxonomy, args.category, labels)
        store = ResultsTable(_results_table_name(args), _aws_client("dynamodb", args.endpoint))
        written = correct(
            args.uri,
            args.category,
            labels,
            taxonomy=taxonomy,
            source=S3Objects(_aws_client("s3", args.endpoint)),
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
    """One upload's decision as the results table holds it (gifcat_tooling.show)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.corrections import CorrectionError, parse_s3_uri
    from gifcat_tooling.show import render_item

    try:
        bucket, key = parse_s3_uri(args.uri)  # refused before any AWS client is made
    except CorrectionError as exc:
        print(f"gifcat show: {exc}", file=sys.stderr)
        return 2
    table = _results_table_name(args)
    item = ResultsTable(table, _aws_client("dynamodb", args.endpoint)).get(f"s3://{bucket}/{key}")
    if item is None:
        print(f"gifcat show: no result for s3://{bucket}/{key} in {table} (not uploaded under the "
              "stack's prefix, or not classified yet)", file=sys.stderr)
        return 1
    print(item.model_dump_json(indent=2, exclude_none=True) if args.json else render_item(item))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """What the cascade did with the uploads in the results table (gifcat_tooling.summary)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.summary import render_text, summarise

    _, taxonomy = _load(args)
    table = _results_table_name(args)
    results = ResultsTable(table, _aws_client("dynamodb", args.endpoint))
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


def _artefacts_location(args: argparse.Namespace) -> str:
    """--artefacts, else GIFCAT_ARTEFACTS, else (with --endpoint) the local stack's, as the template
    gives the functions: s3://<ArtefactsBucket>/embedding."""
    if args.artefacts or os.environ.get("GIFCAT_ARTEFACTS"):
        return str(args.artefacts or os.environ["GIFCAT_ARTEFACTS"])
    if args.endpoint:
        return f"s3://{_local_stack().physical_name('ArtefactsBucket')}/embedding"
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
    table = _results_table_name(args)
    settings, taxonomy = _load(args)
    stage = build_embedding_stage(settings, taxonomy)
    job = LearnJob(
        settings, taxonomy,
        ResultsTable(table, _aws_client("dynamodb", args.endpoint)),
        S3ArtefactStore(location, _aws_client("s3", args.endpoint)),
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
    settings = _settings(args.settings, overrides=overrides)
    taxonomy = _taxonomy_for(args, settings)
    records: list[LabelledRecord] = []
    files = []  # where each file starts in the replay (the report marks it)
    predictions = _output_file(args.predictions, "stream") if args.predictions else None
    report_folder = _report_folder(args.report, "stream") if args.report else None
    for path in args.data:
        part = _labelled_records(path, "stream", taxonomy)
        files.append({"path": path, "start": len(records), "n": len(part)})
        records += part
    try:
        options = StreamOptions(
            window=args.window, learn=args.learn, corrections=args.corrections, seed=args.seed,
            start=args.start, until=STAGE_CHOICES[args.until], holdout=args.holdout,
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


def _bounded(
    kind: Callable[[str], Any], accepts: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse type: the text read with `kind` and held to `accepts`; else the usage says `expected`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


# A seed, or a concurrency where 0 means no limit.
_whole_number = _bounded(int, lambda v: v >= 0, "a whole number of 0 or more")
# 0 must not mean "no folds": it once ran an in-sample evaluation as if --cv were absent.
_fold_count = _bounded(int, lambda v: v >= 2, "2 folds or more")
# What a stage or the LLM gate is held under (NaN fails every comparison, so it is refused too).
_error_bound = _bounded(float, lambda v: 0.0 < v < 1.0, "an error rate above 0 and below 1")
_percentage = _bounded(float, lambda v: 0.0 <= v <= 100.0, "a percentage from 0 to 100")
_seconds = _bounded(float, lambda v: v > 0.0, "a number of seconds over 0")
_count = _bounded(int, lambda v: v >= 1, "a whole number of 1 or more")
_rate = _bounded(float, lambda v: 0.0 < v <= 1000.0, "a number of starts a second over 0, at most 1000")
_share = _bounded(float, lambda v: 0.0 <= v <= 1.0, "a share from 0 to 1")
_holdout_share = _bounded(float, lambda v: 0.0 <= v < 1.0, "a share from 0 up to (not including) 1")
_AGO = {"m": 60, "h": 3600, "d": 86400}


def _since(text: str) -> datetime:
    """A point in time: "30m", "24h", "7d" ago, or an ISO 8601 date or time (UTC unless it says)."""
    number, unit = text[:-1], text[-1:].lower()
    if unit in _AGO and number.isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(number) * _AGO[unit])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time ago (30m, 24h, 7d) or an ISO 8601 date or time, got {text!r}"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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
        "--cv", type=_fold_count, nargs="?", const=5, default=None, metavar="K",
        help="cross-validate: K stratified folds (default 5), each classified by a cascade fitted on the "
        "others (memory, classifier, thresholds)",
    )
    p.add_argument("--train", metavar="FILE", help="fit on FILE (labelled JSONL), evaluate on --data")
    p.add_argument("--seed", type=_whole_number, default=0, help="seed of the folds and of fitting")
    p.add_argument(
        "--repeats", type=_count, default=1, metavar="R",
        help="with --cv or --train: run R times, seeds --seed to --seed+R-1, and report how far each "
        "stage's figures move with the draw and what they are pooled over the seeds",
    )
    p.add_argument(
        "--llm-cache", metavar="FILE", help="cache LLM answers by prompt hash in FILE (replayable)"
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="run the whole flow locally: embedded AWS, sample uploads, results")
    p.add_argument("--timeout", type=_seconds, default=300.0, help="seconds to wait for every result")
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

    p = sub.add_parser(
        "calibrate", help="choose each stage's threshold with an error bound on labelled data, write settings"
    )
    p.add_argument("--data", required=True)
    p.add_argument("--target", type=_error_bound,
                   help="embedding stage's error bound (default: settings, 0.10)")
    p.add_argument("--triage-target", type=_error_bound,
                   help="tag and rule stages' error bound (default 0.03)")
    p.add_argument("--search", choices=THRESHOLD_SEARCHES,
                   help="how every stage's threshold is searched for (default: settings, lowest): "
                        "fixed_sequence keeps the 95%% guarantee whole at a cost in coverage")
    p.add_argument("--seed", type=_whole_number, default=0)
    p.add_argument("--write", default="gifcat-settings.yaml", help="settings file to write")
    _common(p)
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser(
        "export", help="write classified results from the table as labelled JSONL (kNN examples)"
    )
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
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
        "--clusters", type=_count, metavar="K",
        help="exactly K clusters instead of the settings' distance threshold (discovery.distance_threshold)",
    )
    _common(p)
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser(
        "backfill", help="classify the objects under a prefix with the backfill state machine, and wait"
    )
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="", help="only keys under this prefix (default: the whole bucket)")
    p.add_argument(
        "--stale-only", action="store_true",
        help="only objects whose result is missing, failed, or made with another taxonomy version",
    )
    p.add_argument("--max-concurrency", type=_whole_number, help="children at once (default 10; 0: no limit)")
    p.add_argument("--tolerated-failure-percentage", type=_percentage, help="default 5")
    p.add_argument("--suffix", default=".gif", help="keys that are uploads (the stack's UploadSuffix)")
    p.add_argument("--state-machine", help="its ARN (default: BACKFILL_STATE_MACHINE_ARN, or the local one)")
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    p.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds to wait for the run")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser(
        "rerun", help="classify again the objects whose result failed, or is stuck pending, from the table"
    )
    p.add_argument("which", choices=["failed", "stuck"],
                   help="failed results, or results pending for longer than --stuck-after")
    p.add_argument("--since", type=_since, metavar="WHEN",
                   help="only results written since then (30m, 24h, 7d, or an ISO 8601 date or time)")
    p.add_argument("--prefix", default="", help="only keys under this prefix")
    p.add_argument("--reason", default="", help="only results whose reason holds this text (any case)")
    p.add_argument("--stuck-after", type=_seconds, default=STUCK_AFTER_S, metavar="SECONDS",
                   help=f"pending for longer than this is stuck (default {STUCK_AFTER_S:g})")
    p.add_argument("--rate", type=_rate, default=10.0, help="runs started a second (default 10)")
    p.add_argument("--dry-run", action="store_true", help="count what would be run again; start nothing")
    p.add_argument("--scan", action="store_true",
                   help="read the whole table, not its index of failed and pending results (for results "
                        "written before the index existed)")
    p.add_argument("--state-machine", help="the upload machine's ARN (default: STATE_MACHINE_ARN, or the "
                                           "local one)")
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser(
        "redrive", help="invoke the triage function again with the uploads in its dead-letter queue"
    )
    p.add_argument("--queue", help="the queue's URL (default: TRIAGE_DLQ_URL, or the local stack's)")
    p.add_argument("--dry-run", action="store_true", help="list what would be redriven; change nothing")
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
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
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    _common(p)
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser(
        "show", help="one upload's decision: the stage that made it, each stage's candidates and evidence"
    )
    p.add_argument("uri", help="s3://BUCKET/KEY of the object")
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    p.add_argument("--json", action="store_true", help="print the result item as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "summary",
        help="what the cascade did with the uploads in the results table: stages, corrections, cost",
    )
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--since", type=_since, metavar="WHEN",
                   help="only the items written since then: 30m, 24h, 7d ago, or an ISO 8601 date or time")
    p.add_argument("--stuck-after", type=_seconds, default=STUCK_AFTER_S, metavar="SECONDS",
                   help="a pending item older than this is counted as stuck: its run ended without "
                        f"recording (default {STUCK_AFTER_S:.0f}, twice the longest a run lasts)")
    _common(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "learn",
        help="relearn the embedding stage from the results table; publish the artefact if not worse",
    )
    p.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    p.add_argument("--artefacts", metavar="S3_URI",
                   help="s3://BUCKET/embedding (default: GIFCAT_ARTEFACTS, or the local stack's)")
    p.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")
    p.add_argument("--dry-run", action="store_true", help="gather, fit and compare, but publish nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _common(p)
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
    p.add_argument("--window", type=_count, default=50, help="records per window (default 50)")
    p.add_argument("--corrections", type=_share, default=0.0, metavar="RATE",
                   help="share of LLM-bound records a person answers with the gold label (default 0)")
    p.add_argument("--seed", type=_whole_number, default=0,
                   help="seed of the corrections draw and of fitting")
    p.add_argument("--start", choices=["empty", "bundled"], default="empty",
                   help="empty: no memory, no classifier, no certified margin (default); bundled: the "
                   "shipped memory (the dev set: in-sample on dev)")
    p.add_argument("--until", choices=["embedding", "llm"], default="llm",
                   help="embedding: no LLM calls, the LLM-bound records stay undecided (fast)")
    p.add_argument("--holdout", type=_holdout_share, default=0.0, metavar="SHARE",
                   help="hold this share of examples out and adopt a relearned artefact only when it is "
                   "not worse on them (default 0: always adopt)")
    p.add_argument("--no-triage-examples", action="store_true",
                   help="learn from human and gated LLM answers only, not from what the tag and rule "
                   "stages decided")
    p.add_argument("--gate-target", type=_error_bound, default=0.15,
                   help="error bound of the LLM answers the gate admits for learning (default 0.15)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", metavar="DIR", help="write stream.json and stream.png (LLM share, accuracy)")
    p.add_argument("--predictions", metavar="FILE", help="write one JSON line per record here")
    p.add_argument("--llm-cache", metavar="FILE", help="cache LLM answers by prompt hash in FILE")
    _common(p)
    p.set_defaults(func=cmd_stream)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # `eval` and `stream` record the command that reproduces their figures
    # Signal handlers belong to the main thread; main() called from elsewhere (tests) leaves them alone.
    handle = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in STOP_SIGNALS} if handle else {}
    try:
        return int(args.func(args))
    except SystemExit as exc:
        if not isinstance(exc.code, str):  # the argument parser's 2, a signal's 128 + n
            raise
        # A command's one-line refusal of its input: exit status 2, as the parser's refusals.
        print(exc.code, file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"gifcat: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # The local LLM server could not start (not installed, no model, a build that crashes): its
        # message says why and what to do. Looked up, not imported: a run without it never loads it.
        # Or S3 could not be read (no credentials, an endpoint that does not answer): as other AWS calls.
        local_server = sys.modules.get("gifcat_tooling.llama_server")
        ports = sys.modules.get("gifcat.application.ports")
        if ports is not None and isinstance(exc, ports.SourceUnavailable):
            print(f"gifcat: AWS: {exc}", file=sys.stderr)
            return 2
        if local_server is None or not isinstance(exc, local_server.LocalLlmError):
            raise
        print(f"gifcat: the local LLM server cannot run: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        ports = sys.modules.get("gifcat.application.ports")
        if ports is not None and isinstance(exc, ports.UnreadableResult):  # `show` or `correct` of one
            print(f"gifcat: results table item {exc}", file=sys.stderr)
            return 2
        # An AWS call that cannot be made (no region, no credentials, a missing table or bucket): the
        # SDK's message says which. Looked up, not imported: commands without AWS never load botocore.
        aws = sys.modules.get("botocore.exceptions")
        if aws is None or not isinstance(exc, (aws.BotoCoreError, aws.ClientError)):
            raise
        print(f"gifcat: AWS: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
