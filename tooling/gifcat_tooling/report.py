"""The evaluation report: `report.json`, three PNGs (`operating_curve.png`, `reliability.png`,
`kinds.png`) and one self-contained `report.html`.

    paths = write_report(summary, Path("out/"))   # an EvalSummary, as gifcat_tooling.evaluation builds it
    print(render_text(summary))

The HTML is a jinja2 template (`gifcat_tooling/templates/report.html.j2`, autoescaped: every string from the
summary is escaped by jinja2, none is marked safe); it embeds the plots as data URIs and carries its own
CSS, so it can be mailed or attached to a CI run as a single file. A summary from `--until triage` has no
LLM stage, no curve and no baselines, records may carry no kind: the optional parts of EvalSummary are
None or empty, and the report says so.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gifcat_tooling.evaluation import (
    BaselineSummary,
    CurvePoint,
    EvalSummary,
    KindSummary,
    OperatingPoint,
    StageReliability,
    StageSummary,
)

STAGE_ORDER = ("tags", "rules", "embedding", "llm")
BASELINE_COLOURS = ("#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")

# -- formatting helpers ----------------------------------------------------------------------------
def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _fixed(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _int(value: float | None) -> str:
    return "-" if value is None else str(int(value))


def _in_stage_order(names: Iterable[str]) -> list[str]:
    """Stages in cascade order first, then any unknown ones (a future stage still shows up)."""
    names = list(names)
    return [s for s in STAGE_ORDER if s in names] + sorted(s for s in names if s not in STAGE_ORDER)


def _stages(summary: EvalSummary) -> list[tuple[str, StageSummary]]:
    return [(name, summary.stages[name]) for name in _in_stage_order(summary.stages)]


STAGE_COLOURS = {"tags": "#1f77b4", "rules": "#17becf", "embedding": "#2ca02c", "llm": "#9467bd"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and Lambda have no display
    import matplotlib.pyplot as plt

    return plt


def _kinds(summary: EvalSummary) -> list[tuple[str, KindSummary]]:
    return list(summary.kinds.items())


def _reliability(summary: EvalSummary) -> list[tuple[str, StageReliability]]:
    return [(name, summary.reliability[name]) for name in _in_stage_order(summary.reliability)]


def _stage_names(kinds: Sequence[tuple[str, KindSummary]]) -> list[str]:
    return _in_stage_order({name for _, k in kinds for name in k.stages})


@contextmanager
def _figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """A pyplot figure written to `path` as PNG when the block ends, and closed whatever happens."""
    plt = _pyplot()
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)  # pyplot keeps figures alive otherwise; eval may write many reports


def _no_data(ax: Any, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888")


# -- accuracy by kind --------------------------------------------------------------------------------
def plot_kinds(summary: EvalSummary, path: Path) -> Path:
    """Accuracy per record kind, each bar split by the stage that gave the right answers."""
    kinds = _kinds(summary)
    with _figure(path, figsize=(7.5, max(2.4, 0.45 * len(kinds) + 1.4)), dpi=110) as (_, ax):
        if not kinds:
            _no_data(ax, "no record carries a kind")
            return path
        ys = list(range(len(kinds)))[::-1]  # first kind on top
        left = [0.0] * len(kinds)
        for stage in _stage_names(kinds):
            widths = []
            for _, k in kinds:
                st = k.stages.get(stage)
                right = st.decided * st.accuracy if st else 0.0
                # accuracy is rounded; right answers are whole
                widths.append(round(right) / k.n if k.n else 0.0)
            ax.barh(ys, widths, left=left, color=STAGE_COLOURS.get(stage, "#7f7f7f"),
                    label=f"right, by {stage}")
            left = [a + b for a, b in zip(left, widths, strict=True)]
        for y, (_, k) in zip(ys, kinds, strict=True):
            label = f"{_fixed(k.accuracy)} (n {k.n})"
            ax.text(k.accuracy + 0.01, y, label, va="center", fontsize=8,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
        ax.axvline(summary.accuracy, color="#555", linestyle="--", linewidth=1, label="all records")
        ax.set_yticks(ys, [name for name, _ in kinds])
        ax.set_xlim(0.0, 1.2)  # room for the labels right of a full bar
        ax.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_xlabel("accuracy")
        ax.set_title("Accuracy by kind")
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    return path


# -- reliability -------------------------------------------------------------------------------------
def plot_reliability(summary: EvalSummary, path: Path) -> Path:
    """Per stage: observed accuracy against mean confidence per bin (on the diagonal: calibrated) above
    the count per bin; what the stage decided (filled), and every item it scored (hollow, dashed)."""
    stages = _reliability(summary)
    cols = max(len(stages), 1)
    with _figure(path, 2, cols, figsize=(3.3 * cols + 0.6, 5.4), dpi=110, squeeze=False, sharex=True,
                 gridspec_kw={"height_ratios": [3, 1.2]}) as (_, axes):
        if not stages:
            _no_data(axes[0][0], "no stage scored anything")
            axes[1][0].set_axis_off()
            return path
        for col, (name, rel) in enumerate(stages):
            top, bottom = axes[0][col], axes[1][col]
            colour = STAGE_COLOURS.get(name, "#7f7f7f")
            top.plot([0, 1], [0, 1], color="#aaa", linestyle=":", linewidth=1)
            for data, decided, label in ((rel.reached, False, "reached"), (rel, True, "decided")):
                bins = data.bins
                if not bins:
                    continue
                top.plot([b.confidence for b in bins], [b.accuracy for b in bins], "-" if decided else "--",
                         marker="o", color=colour, markersize=4, linewidth=1.3,
                         markerfacecolor=colour if decided else "white",
                         label=f"{label} (n {data.n}, ECE {_fixed(data.ece)})")
                bottom.bar([(b.lo + b.hi) / 2 for b in bins], [b.n for b in bins],
                           width=0.09 if decided else 0.1, color=colour if decided else "none",
                           edgecolor=colour, linestyle="-" if decided else "--")
            title = f"ECE {_fixed(rel.ece)}" if rel.ece is not None else "decided nothing"
            top.set_title(f"{name}: {title}", fontsize=10)
            top.set_xlim(0.0, 1.0)
            top.set_ylim(0.0, 1.02)
            top.grid(True, alpha=0.3)
            if top.get_legend_handles_labels()[0]:
                top.legend(loc="upper left", fontsize=6.5)
            bottom.set_xlabel("confidence")
            bottom.grid(True, alpha=0.3)
            if col == 0:
                top.set_ylabel("observed accuracy")
                bottom.set_ylabel("items per bin")
    return path


# -- the curve ---------------------------------------------------------------------------------------
def plot_operating_curve(summary: EvalSummary, path: Path) -> Path:
    """Accuracy against LLM share (the cost driver), the chosen point, each fold's fitted threshold under
    cross-validation, and the baselines for reference."""
    from matplotlib.ticker import PercentFormatter

    with _figure(path, figsize=(7.5, 4.8), dpi=110) as (_, ax):
        curve = sorted(summary.operating_curve or [], key=lambda p: p.llm_share)
        if curve:
            ax.plot([p.llm_share for p in curve], [p.accuracy for p in curve], "-o", color="#1f77b4",
                    markersize=3.5, linewidth=1.5, label="cascade (threshold sweep)")
        point = _chosen_point(summary, curve)
        if point is not None:
            x, y = point.llm_share, point.accuracy
            ax.plot([x], [y], marker="*", markersize=16, color="#ff7f0e", zorder=5,
                    label="the run (fitted thresholds)" if point.fold_thresholds
                    else "chosen operating point")
            label = f"chosen: accuracy {y:.3f}\nLLM share {x:.1%}"
            if point.threshold is not None:
                label += f"\nthreshold {point.threshold:.3g}"
            elif point.fold_thresholds:
                where = "each fold at its" if len(point.fold_thresholds) > 1 else "at the fitted"
                label = f"the run, {where} threshold\naccuracy {y:.3f}\nLLM share {x:.1%}"
            ax.annotate(
                label, (x, y), xytext=(18, -38), textcoords="offset points", fontsize=8,
                arrowprops={"arrowstyle": "->", "color": "#555"},
                bbox={"boxstyle": "round", "fc": "white", "ec": "#aaa"},
            )
        for i, m in enumerate(summary.operating_folds or []):
            ax.plot([m.llm_share], [m.accuracy], marker="v", markersize=8, linestyle="none",
                    color="#ffbb78", zorder=4, markeredgecolor="#333",
                    label="a fold's threshold, pooled curve" if i == 0 else None)
            # staggered: folds often fit nearby thresholds
            ax.annotate(f"fold {m.fold}", (m.llm_share, m.accuracy), xytext=(-8, 8 + 8 * (i % 3)),
                        textcoords="offset points", fontsize=7, color="#555")
        for (name, base), colour in zip(_baselines(summary), BASELINE_COLOURS * 4, strict=False):
            ax.plot([base.llm_share], [base.accuracy], marker="D", markersize=7, linestyle="none",
                    color=colour, label=f"baseline: {name}")
        ax.set_xlabel("LLM share of records (cost)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(0.0, 1.02)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(True, alpha=0.3)
        ax.set_title("Accuracy against LLM share")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no operating curve in this summary", ha="center", va="center",
                    transform=ax.transAxes, color="#888")
    return path


def _chosen_point(summary: EvalSummary, curve: Sequence[CurvePoint]) -> OperatingPoint | None:
    """The run's point on the curve; without a curve, the summary's own figures are where it ran."""
    if summary.operating_point is not None:
        return summary.operating_point
    if not curve:
        return OperatingPoint(llm_share=summary.llm_share, accuracy=summary.accuracy)
    return None


def _baselines(summary: EvalSummary) -> list[tuple[str, BaselineSummary]]:
    return list((summary.baselines or {}).items())


# -- HTML --------------------------------------------------------------------------------------------
def _headline(summary: EvalSummary) -> list[tuple[str, str]]:
    return [
        ("records", str(summary.n)),
        ("accuracy", _fixed(summary.accuracy)),
        ("micro-F1", _fixed(summary.micro_f1)),
        ("cost / 1,000 GIFs", _usd(summary.cost.per_1000_usd if summary.cost else None)),
        ("LLM share", _pct(summary.llm_share)),
        ("undecided", str(summary.undecided)),
        *_handoff(summary),
        *_llm_vs_earlier(summary),
    ]


def _handoff(summary: EvalSummary) -> list[tuple[str, str]]:
    h = summary.handoff
    if h is None:
        return []
    return [
        ("left by the cheap stages: first candidate right", f"{h.top_right} / {h.ranked} of {h.left}"),
        ("...a gold label in their top 2 / 4 / none recorded",  # not counted in summaries before it
         f"{h.within(2)} / {h.within(4)} / {h.gold_rank[-1]}" if h.gold_rank else "-"),
    ]


def _llm_vs_earlier(summary: EvalSummary) -> list[tuple[str, str]]:
    v = summary.llm_vs_earlier
    if v is None:
        return []
    return [
        ("LLM answer = earlier first candidate", f"{v.same_as_earlier_top} / {v.answered}"),
        ("LLM accuracy / that candidate's", f"{_fixed(v.accuracy)} / {_fixed(v.earlier_top_accuracy)}"),
    ]


def _stage_rows(summary: EvalSummary) -> list[list[str]]:
    return [
        [
            name, str(s.decided), _pct(s.share), _fixed(s.accuracy), _fixed(s.micro_f1),
            _fixed(s.latency_ms.p50, 2), _fixed(s.latency_ms.p95, 2),
        ]
        for name, s in _stages(summary)
    ]


def _confusion(summary: EvalSummary) -> dict[str, Any] | None:
    labels, matrix = summary.confusion.labels, summary.confusion.matrix
    if not labels or not matrix:
        return None
    # The matrix is square over every label; a row with no record is not a gold category (undecided, or
    # a category only ever predicted): rows are the gold categories only.
    rows = []
    for gold, counts in zip(labels, matrix, strict=True):
        if not any(counts):
            continue
        cells = [
            (str(count), "diag" if col == gold and count else ("zero" if not count else ""))
            for col, count in zip(labels, counts, strict=True)
        ]
        rows.append({"gold": gold, "cells": cells, "total": str(sum(counts))})
    return {"headers": ["gold \\ predicted", *labels, "total"], "rows": rows}


def _baseline_rows(summary: EvalSummary) -> list[list[str]]:
    rows = [[
        "cascade (this run)", _fixed(summary.accuracy), _fixed(summary.micro_f1), _pct(summary.llm_share),
        _usd(summary.cost_per_1000_usd),
    ]]
    for name, b in _baselines(summary):
        rows.append(
            [name, _fixed(b.accuracy), _fixed(b.micro_f1), _pct(b.llm_share), _usd(b.cost_per_1000_usd)]
        )
    return rows


def _cost_rows(summary: EvalSummary) -> list[list[str]]:
    cost = summary.cost
    if cost is None:
        return []
    rows = [
        ["total", _usd(cost.per_1000_usd)],
        ["LLM", _usd(cost.llm_per_1000_usd)],
        ["Lambda", _usd(cost.lambda_per_1000_usd)],
        ["Step Functions", _usd(cost.stepfunctions_per_1000_usd)],
    ]
    rows += [[f"LLM: {model}", _usd(usd)] for model, usd in cost.by_model_per_1000_usd.items()]
    return rows


def _kind_table(summary: EvalSummary) -> tuple[list[str], list[list[str]]]:
    """Per kind: records, accuracy, then per stage "decided (accuracy on them)", then undecided, then how
    often the cheap stages' first candidate is right on what they left (what the last step starts from)."""
    kinds = _kinds(summary)
    names = _stage_names(kinds)
    rows = []
    for kind, k in kinds:
        cells = [kind, str(k.n), _fixed(k.accuracy)]
        for name in names:
            st = k.stages.get(name)
            cells.append(f"{st.decided} ({_fixed(st.accuracy)})" if st else "-")
        cells.append(str(k.n - sum(st.decided for st in k.stages.values())))
        cells.append(f"{k.handoff.top_right} of {k.handoff.left}" if k.handoff else "-")
        rows.append(cells)
    return ["kind", "records", "accuracy", *names, "undecided", "first candidate right, of left"], rows


def _reliability_rows(summary: EvalSummary) -> list[list[str]]:
    return [
        [name, str(rel.n), _fixed(rel.ece), str(rel.reached.n), _fixed(rel.reached.ece)]
        for name, rel in _reliability(summary)
    ]


STAGE_HEADERS = ["stage", "decided", "share", "accuracy (decided)", "micro-F1", "p50 ms", "p95 ms"]
RELIABILITY_HEADERS = ["stage", "decided", "ECE (decided)", "reached", "ECE (reached)"]
BIN_HEADERS = ["stage", "confidence", "items", "mean confidence", "accuracy"]


def _bin_rows(summary: EvalSummary) -> list[list[str]]:
    return [
        [name, f"{_fixed(b.lo, 1)}-{_fixed(b.hi, 1)}", str(b.n), _fixed(b.confidence), _fixed(b.accuracy)]
        for name, rel in _reliability(summary) for b in rel.bins
    ]


def _fold_rows(summary: EvalSummary) -> list[list[str]]:
    """Each fold's own figures and fitted margin, and where that margin sits on the pooled curve."""
    marks = {m.fold: m for m in summary.operating_folds or []}
    rows = []
    for f in summary.folds or []:
        mark = marks.get(f.fold)
        margin = f.thresholds.get("embedding", {}).get("min_margin")
        rows.append([
            str(f.fold), str(f.n), _fixed(f.accuracy), _fixed(margin),
            _pct(mark.llm_share if mark else None), _fixed(mark.accuracy if mark else None),
        ])
    return rows


FOLD_HEADERS = ["fold", "records", "accuracy", "embedding margin", "LLM share at it", "accuracy at it"]


def _spread_text(summary: EvalSummary) -> str | None:
    acc = summary.fold_spread.accuracy if summary.fold_spread else None
    if acc is None:
        return None
    return (f"accuracy across folds: mean {_fixed(acc.mean)}, sd {_fixed(acc.std)}, "
            f"min {_fixed(acc.min)}, max {_fixed(acc.max)}")


def _repeat_rows(summary: EvalSummary) -> list[list[str]]:
    """Under --repeats: per stage, what it decided and its accuracy from the least to the most over the
    seeds, and pooled over them."""
    if summary.repeats is None:
        return []
    rows = []
    for name, s in summary.repeats.stages.items():
        acc = s.accuracy
        rows.append([
            name, f"{s.decided.min:.0f}", f"{s.decided.max:.0f}",
            _fixed(acc.min if acc else None), _fixed(acc.max if acc else None),
            f"{s.pooled_right}/{s.pooled_decided}", _fixed(s.pooled_accuracy),
        ])
    return rows


REPEAT_HEADERS = ["stage", "decided: fewest", "most", "accuracy: lowest", "highest", "pooled right",
                  "pooled accuracy"]


def _repeats_line(summary: EvalSummary) -> str | None:
    if summary.repeats is None:
        return None
    seeds = [r.seed for r in summary.repeats.seeds]
    acc = summary.repeats.accuracy
    return (f"over {len(seeds)} seeds ({', '.join(map(str, seeds))}); accuracy: mean {_fixed(acc.mean)}, "
            f"sd {_fixed(acc.std)}, min {_fixed(acc.min)}, max {_fixed(acc.max)}")


def repeats_text(summary: EvalSummary) -> str | None:
    """The --repeats part of the terminal output: the seeds, the accuracy's spread, the stage table."""
    line = _repeats_line(summary)
    return None if line is None else line + "\n" + _text_table(REPEAT_HEADERS, _repeat_rows(summary))


def _point_text(point: OperatingPoint) -> str:
    thresholds = point.fold_thresholds
    if thresholds is not None and len(thresholds) > 1:
        where = "thresholds per fold " + ", ".join(_fixed(t) for t in thresholds)
    elif thresholds is not None:  # --train: one fitted threshold
        where = f"fitted threshold {_fixed(thresholds[0] if thresholds else None)}"
    else:
        where = f"threshold {_fixed(point.threshold)}"
    return f"{where}, LLM share {_pct(point.llm_share)}, accuracy {_fixed(point.accuracy)}"


def _data_uri(png: bytes | None) -> str | None:
    return f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}" if png else None


@functools.cache
def _template() -> Any:
    # jinja2 is tooling (the `local` extra), imported only when a page is rendered: render_text and the
    # plots do without it.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gifcat_tooling", "templates"),
        autoescape=True,  # the template is HTML whatever its suffix (select_autoescape goes by ".html")
        undefined=jinja2.StrictUndefined,  # a name the context lacks fails, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _html_context(summary: EvalSummary, png: bytes | None, images: Mapping[str, bytes]) -> dict[str, Any]:
    """Everything the template shows, as formatted strings (it formats nothing itself)."""
    overall = summary.latency_ms
    kind_headers, kind_rows = _kind_table(summary)
    point = summary.operating_point
    what = "Operating point of the run" if point and point.fold_thresholds else "Chosen operating point"
    return {
        "headline": _headline(summary),
        "latency": {"p50": _fixed(overall.p50, 2), "p95": _fixed(overall.p95, 2)},
        "stages": {"headers": STAGE_HEADERS, "rows": _stage_rows(summary)},
        "kinds": {"headers": kind_headers, "rows": kind_rows},
        "reliability": {"headers": RELIABILITY_HEADERS, "rows": _reliability_rows(summary),
                        "bin_headers": BIN_HEADERS, "bins": _bin_rows(summary)},
        "cost_rows": _cost_rows(summary),
        "confusion": _confusion(summary),
        "images": {"curve": _data_uri(png), "kinds": _data_uri(images.get("kinds")),
                   "reliability": _data_uri(images.get("reliability"))},
        "point": {"what": what, "text": _point_text(point)} if point else None,
        "folds": {"headers": FOLD_HEADERS, "rows": _fold_rows(summary), "spread": _spread_text(summary)},
        "repeats": {"headers": REPEAT_HEADERS, "rows": _repeat_rows(summary), "text": _repeats_line(summary)},
        "baselines": _baseline_rows(summary),
        "command": summary.command,
    }


def render_html(summary: EvalSummary, png: bytes | None, images: Mapping[str, bytes] | None = None) -> str:
    """`png` is the operating curve; `images` may hold the `kinds` and `reliability` plots."""
    page: str = _template().render(_html_context(summary, png, images or {}))
    return page


# -- entry points ------------------------------------------------------------------------------------
def write_report(summary: EvalSummary, out_dir: Path) -> dict[str, Path]:
    """Write report.json, operating_curve.png, reliability.png, kinds.png and report.html into out_dir;
    returns them by kind (`png` is the curve)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "png": out_dir / "operating_curve.png",
        "reliability_png": out_dir / "reliability.png",
        "kinds_png": out_dir / "kinds.png",
        "html": out_dir / "report.html",
    }
    paths["json"].write_text(summary.to_json() + "\n", encoding="utf-8")
    plot_operating_curve(summary, paths["png"])
    plot_reliability(summary, paths["reliability_png"])
    plot_kinds(summary, paths["kinds_png"])
    images = {"kinds": paths["kinds_png"].read_bytes(), "reliability": paths["reliability_png"].read_bytes()}
    paths["html"].write_text(render_html(summary, paths["png"].read_bytes(), images), encoding="utf-8")
    return paths


def render_text(summary: EvalSummary) -> str:
    """The terminal version: headline, per-stage table, accuracy by kind, reliability, cost, baselines,
    operating point, folds and seeds (no confusion matrix: too wide)."""
    lines = ["  ".join(f"{k}: {v}" for k, v in _headline(summary))]
    stage_rows = _stage_rows(summary)
    if stage_rows:
        lines.append("")
        headers = ["stage", "decided", "share", "acc", "micro-F1", "p50 ms", "p95 ms"]
        lines.append(_text_table(headers, stage_rows))
    kind_headers, kind_rows = _kind_table(summary)
    if kind_rows:
        lines += ["", _text_table(kind_headers, kind_rows)]
    rel_rows = _reliability_rows(summary)
    if rel_rows:
        lines += ["", _text_table(RELIABILITY_HEADERS, rel_rows)]
    cost_rows = _cost_rows(summary)
    if cost_rows:
        lines += ["", _text_table(["cost / 1,000 GIFs", "USD"], cost_rows)]
    if _baselines(summary):
        headers = ["system", "acc", "micro-F1", "LLM share", "cost / 1,000"]
        lines += ["", _text_table(headers, _baseline_rows(summary))]
    if summary.operating_point is not None:
        lines += ["", f"operating point: {_point_text(summary.operating_point)}"]
    fold_rows = _fold_rows(summary)
    if fold_rows:
        lines += ["", _text_table(FOLD_HEADERS, fold_rows)]
        if spread := _spread_text(summary):
            lines.append(spread)
    if repeats := repeats_text(summary):
        lines += ["", repeats]
    if summary.command:
        lines += ["", f"command: {summary.command}"]
    return "\n".join(lines) + "\n"


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])
