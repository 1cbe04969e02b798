"""`gifcat eval` and `gifcat calibrate`: figures and thresholds from labelled records, fitted out of
sample (`--cv`, `--train`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from gifcat.config import THRESHOLD_SEARCHES, ConfigError
from gifcat.domain.cascade import TRACE_TOP_K, TRIAGE
from gifcat.domain.model import StageName, Status
from gifcat_tooling.cli.common import (
    STAGE_CHOICES,
    add_config_options,
    error_bound,
    fold_count,
    non_negative_int,
    positive_int,
    read_labelled,
    read_settings,
    reproducible_command,
    settings_text,
    taxonomy_for,
    writable_file,
    writable_folder,
)

if TYPE_CHECKING:
    from gifcat.domain.model import Classification
    from gifcat.domain.records import LabelledRecord
    from gifcat.domain.taxonomy import Taxonomy
    from gifcat_tooling.evaluation import EvalSummary, PromptSizes, Report, VsAllLlm
    from gifcat_tooling.pipeline import LocalPipeline


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
    settings = read_settings(args.settings, overrides=overrides)
    taxonomy = taxonomy_for(args, settings)
    predictions = writable_file(args.predictions, "eval") if args.predictions else None
    report_folder = writable_folder(args.report, "eval") if args.report else None
    records = read_labelled(args.data, "eval", taxonomy)
    training = read_labelled(args.train, "eval", taxonomy) if args.train else None
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
            settings = read_settings(
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
                    llm_correct = _llm_answers(report, only_llm.stage(StageName.LLM), taxonomy,
                                               progress("llm (curve)"))
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
                    llm_correct = _llm_answers(report, cascade.stage(StageName.LLM), taxonomy,
                                               progress("llm (curve)"))
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
            fold_overrides = merge(overrides, fitted.settings_overrides())
            fold_settings = read_settings(args.settings, overrides=fold_overrides)
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
    # Prompts are built from the screened metadata, as the cascade does.
    screen = InstructionScreen(taxonomy.names)
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


def _llm_answers(report: Any, llm: Any, taxonomy: Taxonomy, progress: Any) -> dict[str, bool]:
    """The LLM's answer for every item triage left, whichever stage decided it: the curve needs them."""
    from gifcat.domain.instructions import InstructionScreen

    screen = InstructionScreen(taxonomy.names)
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


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit on the labelled file (gifcat.adapters.training.fit): thresholds with an error bound under each
    stage's target, chosen on out-of-fold scores; writes them into a settings file."""
    import yaml

    from gifcat.adapters.embeddings.factory import build_embedding_stage
    from gifcat.adapters.training import check_fittable, fit

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
    settings = read_settings(args.settings, overrides=overrides)
    taxonomy = taxonomy_for(args, settings)
    records = read_labelled(args.data, "calibrate", taxonomy)
    out = writable_file(args.write, "calibrate")  # before the fit, which takes minutes
    try:
        check_fittable(records)
    except ValueError as exc:
        raise SystemExit(f"gifcat calibrate: {args.data}: {exc}") from None
    stage = build_embedding_stage(settings, taxonomy, labelled=[])
    fitted = fit(records, settings, taxonomy, stage, seed=args.seed)
    source = args.settings
    doc = yaml.safe_load(settings_text(source))
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """This group's commands, with their arguments."""
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
        "--cv", type=fold_count, nargs="?", const=5, default=None, metavar="K",
        help="cross-validate: K stratified folds (default 5), each classified by a cascade fitted on the "
        "others (memory, classifier, thresholds)",
    )
    p.add_argument("--train", metavar="FILE", help="fit on FILE (labelled JSONL), evaluate on --data")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the folds and of fitting")
    p.add_argument(
        "--repeats", type=positive_int, default=1, metavar="R",
        help="with --cv or --train: run R times, seeds --seed to --seed+R-1, and report how far each "
        "stage's figures move with the draw and what they are pooled over the seeds",
    )
    p.add_argument(
        "--llm-cache", metavar="FILE", help="cache LLM answers by prompt hash in FILE (replayable)"
    )
    add_config_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "calibrate", help="choose each stage's threshold with an error bound on labelled data, write settings"
    )
    p.add_argument("--data", required=True)
    p.add_argument("--target", type=error_bound,
                   help="embedding stage's error bound (default: settings, 0.10)")
    p.add_argument("--triage-target", type=error_bound,
                   help="tag and rule stages' error bound (default 0.03)")
    p.add_argument("--search", choices=THRESHOLD_SEARCHES,
                   help="how every stage's threshold is searched for (default: settings, lowest): "
                        "fixed_sequence keeps the 95%% guarantee whole at a cost in coverage")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--write", default="gifcat-settings.yaml", help="settings file to write")
    add_config_options(p)
    p.set_defaults(func=cmd_calibrate)
