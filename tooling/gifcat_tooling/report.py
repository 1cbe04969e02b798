"""The evaluation report: `report.json`, three PNGs (`operating_curve.png`, `reliability.png`,
`kinds.png`) and one self-contained `report.html`.

    paths = write_report(summary, Path("out/"))   # summary as gifcat_tooling.evaluation builds it
    print(render_text(summary))

The HTML embeds the plots as data URIs and carries its own CSS, so it can be mailed or attached to a
CI run as a single file. Every key except `n`/`accuracy` is optional: a summary from `--until triage`
has no LLM stage, no curve and no baselines, records may carry no kind, and the report says so instead
of failing.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STAGE_ORDER = ("tags", "rules", "embedding", "llm")
BASELINE_COLOURS = ("#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.headline{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.kpi .v{font-size:1.6rem;font-weight:600}.kpi .k{color:#666;font-size:.85rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
td.diag{background:#e3f2e3;font-weight:600}td.zero{color:#bbb}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;white-space:pre-wrap}
.muted{color:#888}img{max-width:100%}
"""


# -- formatting helpers ----------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _pct(value: Any, digits: int = 1) -> str:
    v = _num(value)
    return "-" if v is None else f"{v * 100:.{digits}f}%"


def _fixed(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "-" if v is None else f"{v:.{digits}f}"


def _usd(value: Any) -> str:
    v = _num(value)
    return "-" if v is None else f"${v:.4f}"


def _int(value: Any) -> str:
    v = _num(value)
    return "-" if v is None else str(int(v))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _stages(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Stages in cascade order first, then any unknown ones (a future stage still shows up)."""
    stages = summary.get("stages") or {}
    names = [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]
    return [(name, stages[name] or {}) for name in names]


def _latency(stage: Mapping[str, Any]) -> Mapping[str, Any]:
    lat = stage.get("latency_ms")
    return lat if isinstance(lat, Mapping) else {}


STAGE_COLOURS = {"tags": "#1f77b4", "rules": "#17becf", "embedding": "#2ca02c", "llm": "#9467bd"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and Lambda have no display
    import matplotlib.pyplot as plt

    return plt


def _kinds(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    kinds = summary.get("kinds") or {}
    return [(str(k), v) for k, v in kinds.items() if isinstance(v, Mapping)]


def _reliability(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    rel = summary.get("reliability") or {}
    names = [s for s in STAGE_ORDER if s in rel] + [s for s in rel if s not in STAGE_ORDER]
    return [(name, rel[name]) for name in names if isinstance(rel[name], Mapping)]


def _stage_names(kinds: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    seen = {name for _, k in kinds for name in (k.get("stages") or {})}
    return [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))


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
def plot_kinds(summary: Mapping[str, Any], path: Path) -> Path:
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
                st = (k.get("stages") or {}).get(stage) or {}
                n = _num(k.get("n")) or 0.0
                right = (_num(st.get("decided")) or 0.0) * (_num(st.get("accuracy")) or 0.0)
                widths.append(round(right) / n if n else 0.0)  # accuracy is rounded; right answers are whole
            ax.barh(ys, widths, left=left, color=STAGE_COLOURS.get(stage, "#7f7f7f"),
                    label=f"right, by {stage}")
            left = [a + b for a, b in zip(left, widths, strict=True)]
        for y, (_, k) in zip(ys, kinds, strict=True):
            label = f"{_fixed(k.get('accuracy'))} (n {_int(k.get('n'))})"
            ax.text((_num(k.get("accuracy")) or 0.0) + 0.01, y, label, va="center", fontsize=8,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
        if _num(summary.get("accuracy")) is not None:
            ax.axvline(float(summary["accuracy"]), color="#555", linestyle="--", linewidth=1,
                       label="all records")
        ax.set_yticks(ys, [name for name, _ in kinds])
        ax.set_xlim(0.0, 1.2)  # room for the labels right of a full bar
        ax.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_xlabel("accuracy")
        ax.set_title("Accuracy by kind")
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    return path


# -- reliability -------------------------------------------------------------------------------------
def plot_reliability(summary: Mapping[str, Any], path: Path) -> Path:
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
            reached = rel.get("reached") if isinstance(rel.get("reached"), Mapping) else {}
            for data, decided, label in ((reached, False, "reached"), (rel, True, "decided")):
                bins = [b for b in data.get("bins") or [] if _num(b.get("confidence")) is not None]
                if not bins:
                    continue
                xs = [float(b["confidence"]) for b in bins]
                top.plot(xs, [float(b.get("accuracy") or 0.0) for b in bins], "-" if decided else "--",
                         marker="o", color=colour, markersize=4, linewidth=1.3,
                         markerfacecolor=colour if decided else "white",
                         label=f"{label} (n {_int(data.get('n'))}, ECE {_fixed(data.get('ece'))})")
                bottom.bar([(float(b["lo"]) + float(b["hi"])) / 2 for b in bins],
                           [b.get("n") or 0 for b in bins], width=0.09 if decided else 0.1,
                           color=colour if decided else "none", edgecolor=colour,
                           linestyle="-" if decided else "--")
            title = f"ECE {_fixed(rel.get('ece'))}" if _num(rel.get("ece")) is not None else "decided nothing"
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
def plot_operating_curve(summary: Mapping[str, Any], path: Path) -> Path:
    """Accuracy against LLM share (the cost driver), the chosen point, each fold's fitted threshold under
    cross-validation, and the baselines for reference."""
    from matplotlib.ticker import PercentFormatter

    with _figure(path, figsize=(7.5, 4.8), dpi=110) as (_, ax):
        curve = [p for p in summary.get("operating_curve") or [] if _num(p.get("llm_share")) is not None]
        curve.sort(key=lambda p: float(p["llm_share"]))
        if curve:
            xs = [float(p["llm_share"]) for p in curve]
            ys = [float(p.get("accuracy") or 0.0) for p in curve]
            ax.plot(xs, ys, "-o", color="#1f77b4", markersize=3.5, linewidth=1.5,
                    label="cascade (threshold sweep)")
        point = _chosen_point(summary, curve)
        if point is not None:
            x, y = float(point["llm_share"]), float(point.get("accuracy") or 0.0)
            ax.plot([x], [y], marker="*", markersize=16, color="#ff7f0e", zorder=5,
                    label="the run (fitted thresholds)" if point.get("fold_thresholds")
                    else "chosen operating point")
            label = f"chosen: accuracy {y:.3f}\nLLM share {x:.1%}"
            if _num(point.get("threshold")) is not None:
                label += f"\nthreshold {float(point['threshold']):.3g}"
            elif point.get("fold_thresholds"):
                where = "each fold at its" if len(point["fold_thresholds"]) > 1 else "at the fitted"
                label = f"the run, {where} threshold\naccuracy {y:.3f}\nLLM share {x:.1%}"
            ax.annotate(
                label, (x, y), xytext=(18, -38), textcoords="offset points", fontsize=8,
                arrowprops={"arrowstyle": "->", "color": "#555"},
                bbox={"boxstyle": "round", "fc": "white", "ec": "#aaa"},
            )
        marks = [m for m in summary.get("operating_folds") or [] if _num(m.get("llm_share")) is not None]
        for i, m in enumerate(marks):
            x, y = float(m["llm_share"]), float(m.get("accuracy") or 0.0)
            ax.plot([x], [y], marker="v", markersize=8, linestyle="none", color="#ffbb78", zorder=4,
                    markeredgecolor="#333", label="a fold's threshold, pooled curve" if i == 0 else None)
            # staggered: folds often fit nearby thresholds
            ax.annotate(f"fold {m.get('fold')}", (x, y), xytext=(-8, 8 + 8 * (i % 3)),
                        textcoords="offset points", fontsize=7, color="#555")
        for (name, base), colour in zip(_baselines(summary), BASELINE_COLOURS * 4, strict=False):
            acc, share = _num(base.get("accuracy")), _num(base.get("llm_share"))
            if acc is None:
                continue
            if share is None:  # no cost position known: a horizontal reference line
                ax.axhline(acc, color=colour, linestyle="--", linewidth=1, label=f"baseline: {name}")
            else:
                ax.plot([share], [acc], marker="D", markersize=7, linestyle="none", color=colour,
                        label=f"baseline: {name}")
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


def _chosen_point(summary: Mapping[str, Any], curve: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    point = summary.get("operating_point")
    if isinstance(point, Mapping) and _num(point.get("llm_share")) is not None:
        return point
    chosen = [p for p in curve if p.get("chosen")]
    if chosen:
        return chosen[0]
    # No explicit point: the summary's own numbers are where the cascade ran.
    if _num(summary.get("llm_share")) is not None and _num(summary.get("accuracy")) is not None:
        return {"llm_share": summary["llm_share"], "accuracy": summary["accuracy"]}
    return None


def _baselines(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    baselines = summary.get("baselines") or {}
    return [(str(k), v) for k, v in baselines.items() if isinstance(v, Mapping)]


# -- HTML --------------------------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1, raw: bool = False) -> str:
    """Cells are escaped here unless `raw` (then the caller built and escaped the <td>s itself)."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        if raw:
            body.append("<tr>" + "".join(row) + "</tr>")
        else:
            body.append(
                "<tr>"
                + "".join(f'<td class="{"l" if i < left else ""}">{_esc(c)}</td>' for i, c in enumerate(row))
                + "</tr>"
            )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _headline(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    cost = summary.get("cost") or {}
    return [
        ("records", _int(summary.get("n"))),
        ("accuracy", _fixed(summary.get("accuracy"))),
        ("micro-F1", _fixed(summary.get("micro_f1"))),
        ("cost / 1,000 GIFs", _usd(cost.get("per_1000_usd"))),
        ("LLM share", _pct(summary.get("llm_share"))),
        ("undecided", _int(summary.get("undecided"))),
    ]


def _stage_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, s in _stages(summary):
        lat = _latency(s)
        rows.append([
            name, _int(s.get("decided")), _pct(s.get("share")), _fixed(s.get("accuracy")),
            _fixed(s.get("micro_f1")), _fixed(lat.get("p50"), 2), _fixed(lat.get("p95"), 2),
        ])
    return rows


def _confusion_html(summary: Mapping[str, Any]) -> str:
    conf = summary.get("confusion") or {}
    labels = [str(x) for x in conf.get("labels") or []]
    matrix = conf.get("matrix") or []
    if not labels or not matrix:
        return '<p class="muted">No confusion matrix in this summary.</p>'
    # The matrix is square over every label; a row with no record is not a gold category (undecided, or
    # a category only ever predicted): rows are the gold categories only.
    row_labels = [str(x) for x in conf.get("row_labels") or labels[: len(matrix)]]
    headers = ["gold \\ predicted", *labels, "total"]
    rows = []
    for gold, counts in zip(row_labels, matrix, strict=False):
        if not any(_num(c) for c in counts):
            continue
        cells = [f'<th class="l">{_esc(gold)}</th>']
        for col, count in zip(labels, counts, strict=False):
            cls = "diag" if col == gold and count else ("zero" if not count else "")
            cells.append(f'<td class="{cls}">{_esc(_int(count))}</td>')
        total = sum(c for c in counts if _num(c) is not None)
        cells.append(f"<td>{_esc(_int(total))}</td>")
        rows.append(cells)
    return _table(headers, rows, raw=True)


def _baseline_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    cost = summary.get("cost") or {}
    rows = [[
        "cascade (this run)", _fixed(summary.get("accuracy")), _fixed(summary.get("micro_f1")),
        _pct(summary.get("llm_share")), _usd(cost.get("per_1000_usd")),
    ]]
    for name, b in _baselines(summary):
        rows.append([
            name, _fixed(b.get("accuracy")), _fixed(b.get("micro_f1")), _pct(b.get("llm_share")),
            _usd(b.get("cost_per_1000_usd", b.get("per_1000_usd"))),
        ])
    return rows


def _cost_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    cost = summary.get("cost") or {}
    rows = [[label, _usd(cost.get(key))] for label, key in (
        ("total", "per_1000_usd"), ("LLM", "llm_per_1000_usd"), ("Lambda", "lambda_per_1000_usd"),
    ) if key in cost]
    for model, usd in (cost.get("by_model_per_1000_usd") or {}).items():
        rows.append([f"LLM: {model}", _usd(usd)])
    return rows


def _kind_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per kind: records, accuracy, then per stage "decided (accuracy on them)", then undecided."""
    kinds = _kinds(summary)
    names = _stage_names(kinds)
    rows = []
    for kind, k in kinds:
        stages = k.get("stages") or {}
        cells = [kind, _int(k.get("n")), _fixed(k.get("accuracy"))]
        decided = 0
        for name in names:
            st = stages.get(name) or {}
            decided += int(_num(st.get("decided")) or 0)
            cells.append(f"{_int(st.get('decided'))} ({_fixed(st.get('accuracy'))})" if st else "-")
        n = _num(k.get("n"))
        cells.append(_int(n - decided) if n is not None else "-")
        rows.append(cells)
    return ["kind", "records", "accuracy", *names, "undecided"], rows


def _reliability_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, rel in _reliability(summary):
        reached = rel.get("reached") if isinstance(rel.get("reached"), Mapping) else {}
        rows.append([name, _int(rel.get("n")), _fixed(rel.get("ece")), _int(reached.get("n")),
                     _fixed(reached.get("ece"))])
    return rows


RELIABILITY_HEADERS = ["stage", "decided", "ECE (decided)", "reached", "ECE (reached)"]


def _bin_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    return [
        [name, f"{_fixed(b.get('lo'), 1)}-{_fixed(b.get('hi'), 1)}", _int(b.get("n")),
         _fixed(b.get("confidence")), _fixed(b.get("accuracy"))]
        for name, rel in _reliability(summary) for b in rel.get("bins") or [] if isinstance(b, Mapping)
    ]


def _fold_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Each fold's own figures and fitted margin, and where that margin sits on the pooled curve."""
    marks = {m.get("fold"): m for m in summary.get("operating_folds") or [] if isinstance(m, Mapping)}
    rows = []
    for f in summary.get("folds") or []:
        if not isinstance(f, Mapping):
            continue
        emb = ((f.get("thresholds") or {}).get("embedding")) or {}
        mark = marks.get(f.get("fold")) or {}
        rows.append([
            str(f.get("fold", "-")), _int(f.get("n")), _fixed(f.get("accuracy")),
            _fixed(emb.get("min_margin")), _pct(mark.get("llm_share")), _fixed(mark.get("accuracy")),
        ])
    return rows


FOLD_HEADERS = ["fold", "records", "accuracy", "embedding margin", "LLM share at it", "accuracy at it"]


def _spread_text(summary: Mapping[str, Any]) -> str | None:
    acc = (summary.get("fold_spread") or {}).get("accuracy") or {}
    if _num(acc.get("mean")) is None:
        return None
    return (f"accuracy across folds: mean {_fixed(acc.get('mean'))}, sd {_fixed(acc.get('std'))}, "
            f"min {_fixed(acc.get('min'))}, max {_fixed(acc.get('max'))}")


def _point_text(point: Mapping[str, Any]) -> str:
    thresholds = point.get("fold_thresholds")
    if isinstance(thresholds, list) and len(thresholds) > 1:
        where = "thresholds per fold " + ", ".join(_fixed(t) for t in thresholds)
    elif isinstance(thresholds, list):  # --train: one fitted threshold
        where = f"fitted threshold {_fixed(thresholds[0] if thresholds else None)}"
    else:
        where = f"threshold {_fixed(point.get('threshold'))}"
    return f"{where}, LLM share {_pct(point.get('llm_share'))}, accuracy {_fixed(point.get('accuracy'))}"


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render_html(
    summary: Mapping[str, Any], png: bytes | None, images: Mapping[str, bytes] | None = None
) -> str:
    """`png` is the operating curve; `images` may hold the `kinds` and `reliability` plots."""
    images = images or {}
    kpis = "".join(
        f'<div class="kpi"><div class="v">{_esc(v)}</div><div class="k">{_esc(k)}</div></div>'
        for k, v in _headline(summary)
    )
    overall = summary.get("latency_ms") or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gifcat evaluation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>gifcat evaluation report</h1>",
    ]
    if summary.get("generated_at"):
        parts.append(f'<p class="muted">generated {_esc(summary["generated_at"])}</p>')
    parts.append(f'<div class="headline">{kpis}</div>')
    if overall:
        parts.append(
            f'<p>Latency per record: p50 {_esc(_fixed(overall.get("p50"), 2))} ms, '
            f'p95 {_esc(_fixed(overall.get("p95"), 2))} ms.</p>'
        )
    parts.append("<h2>Stages</h2>")
    stage_rows = _stage_rows(summary)
    stage_headers = ["stage", "decided", "share", "accuracy (decided)", "micro-F1", "p50 ms", "p95 ms"]
    parts.append(
        _table(stage_headers, stage_rows) if stage_rows else '<p class="muted">No stage decided anything.</p>'
    )
    parts.append("<h2>Accuracy by kind</h2>")
    kind_headers, kind_rows = _kind_table(summary)
    if kind_rows:
        parts += [
            '<p class="muted">Per stage: records it decided (accuracy on them).</p>',
            _table(kind_headers, kind_rows),
            _img(images.get("kinds"), "accuracy by kind"),
        ]
    else:
        parts.append('<p class="muted">No record carries a kind.</p>')
    parts.append("<h2>Reliability (confidence against observed accuracy)</h2>")
    rel_rows = _reliability_rows(summary)
    if rel_rows:
        parts += [
            '<p class="muted">Per stage, its confidence in equal-width bins: decided, what it decided; '
            "reached, every item it scored, by its best candidate. ECE: the count-weighted mean gap "
            "between confidence and accuracy.</p>",
            _table(RELIABILITY_HEADERS, rel_rows),
            _img(images.get("reliability"), "reliability diagram per stage"),
            "<details><summary>bins (decided)</summary>",
            _table(["stage", "confidence", "items", "mean confidence", "accuracy"], _bin_rows(summary)),
            "</details>",
        ]
    else:
        parts.append('<p class="muted">No reliability figures in this summary.</p>')
    cost_rows = _cost_rows(summary)
    if cost_rows:
        parts += ["<h2>Cost per 1,000 GIFs</h2>", _table(["item", "USD"], cost_rows)]
    parts += ["<h2>Confusion matrix (primary category)</h2>", _confusion_html(summary)]
    parts.append("<h2>Operating curve</h2>")
    parts.append(_img(png, "accuracy against LLM share"))
    point = summary.get("operating_point") or {}
    if point:
        what = "Operating point of the run" if point.get("fold_thresholds") else "Chosen operating point"
        parts.append(f"<p>{what}: {_esc(_point_text(point))}.</p>")
    fold_rows = _fold_rows(summary)
    if fold_rows:
        parts += [
            "<h2>Folds</h2>",
            '<p class="muted">Each fold classified by a cascade fitted on the others; the last two columns '
            "are the pooled curve at the fold's margin.</p>",
            _table(FOLD_HEADERS, fold_rows),
        ]
        if spread := _spread_text(summary):
            parts.append(f"<p>{_esc(spread)}.</p>")
    parts += [
        "<h2>Baselines</h2>",
        _table(["system", "accuracy", "micro-F1", "LLM share", "cost / 1,000"], _baseline_rows(summary)),
    ]
    if summary.get("command"):
        parts += ["<h2>Reproduce</h2>", f"<pre>{_esc(summary['command'])}</pre>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- entry points ------------------------------------------------------------------------------------
def write_report(summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
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
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
    paths["json"].write_text(text + "\n", encoding="utf-8")
    plot_operating_curve(summary, paths["png"])
    plot_reliability(summary, paths["reliability_png"])
    plot_kinds(summary, paths["kinds_png"])
    images = {"kinds": paths["kinds_png"].read_bytes(), "reliability": paths["reliability_png"].read_bytes()}
    paths["html"].write_text(render_html(summary, paths["png"].read_bytes(), images), encoding="utf-8")
    return paths


def render_text(summary: Mapping[str, Any]) -> str:
    """The terminal version: headline, per-stage table, accuracy by kind, reliability, cost, baselines,
    operating point and folds (no confusion matrix: too wide)."""
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
    point = summary.get("operating_point") or {}
    if point:
        lines += ["", f"operating point: {_point_text(point)}"]
    fold_rows = _fold_rows(summary)
    if fold_rows:
        lines += ["", _text_table(FOLD_HEADERS, fold_rows)]
        if spread := _spread_text(summary):
            lines.append(spread)
    if summary.get("command"):
        lines += ["", f"command: {summary['command']}"]
    return "\n".join(lines) + "\n"


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])
