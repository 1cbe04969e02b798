"""The evaluation report: `report.json`, `operating_curve.png` and one self-contained `report.html`.

    paths = write_report(summary, Path("out/"))   # summary as gifcat.evaluation builds it
    print(render_text(summary))

The HTML embeds the curve as a data URI and carries its own CSS, so it can be mailed or attached to a
CI run as a single file. Every key except `n`/`accuracy` is optional: a summary from `--until triage`
has no LLM stage, no curve and no baselines, and the report says so instead of failing.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
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


# -- the curve ---------------------------------------------------------------------------------------
def plot_operating_curve(summary: Mapping[str, Any], path: Path) -> Path:
    """Accuracy against LLM share (the cost driver), the chosen point, and the baselines for reference."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and Lambda have no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    try:
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
                    label="chosen operating point")
            label = f"chosen: accuracy {y:.3f}\nLLM share {x:.1%}"
            if _num(point.get("threshold")) is not None:
                label += f"\nthreshold {float(point['threshold']):.3g}"
            ax.annotate(
                label, (x, y), xytext=(18, -38), textcoords="offset points", fontsize=8,
                arrowprops={"arrowstyle": "->", "color": "#555"},
                bbox={"boxstyle": "round", "fc": "white", "ec": "#aaa"},
            )
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
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)  # pyplot keeps figures alive otherwise; eval may write many reports
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
    # Gold rows never include "undecided"; predicted columns do. Rows follow the matrix as given.
    row_labels = [str(x) for x in conf.get("row_labels") or labels[: len(matrix)]]
    headers = ["gold \\ predicted", *labels, "total"]
    rows = []
    for gold, counts in zip(row_labels, matrix, strict=False):
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


def render_html(summary: Mapping[str, Any], png: bytes | None) -> str:
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
    cost_rows = _cost_rows(summary)
    if cost_rows:
        parts += ["<h2>Cost per 1,000 GIFs</h2>", _table(["item", "USD"], cost_rows)]
    parts += ["<h2>Confusion matrix (primary category)</h2>", _confusion_html(summary)]
    parts.append("<h2>Operating curve</h2>")
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="accuracy against LLM share" src="data:image/png;base64,{data}">')
    point = summary.get("operating_point") or {}
    if point:
        parts.append(
            f"<p>Chosen operating point: threshold {_esc(_fixed(point.get('threshold'), 3))}, "
            f"LLM share {_esc(_pct(point.get('llm_share')))}, "
            f"accuracy {_esc(_fixed(point.get('accuracy')))}.</p>"
        )
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
    """Write report.json, operating_curve.png and report.html into out_dir; returns them by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "png": out_dir / "operating_curve.png",
        "html": out_dir / "report.html",
    }
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
    paths["json"].write_text(text + "\n", encoding="utf-8")
    plot_operating_curve(summary, paths["png"])
    paths["html"].write_text(render_html(summary, paths["png"].read_bytes()), encoding="utf-8")
    return paths


def render_text(summary: Mapping[str, Any]) -> str:
    """The terminal version: headline, per-stage table, cost, baselines (no confusion matrix: too wide)."""
    lines = ["  ".join(f"{k}: {v}" for k, v in _headline(summary))]
    stage_rows = _stage_rows(summary)
    if stage_rows:
        lines.append("")
        headers = ["stage", "decided", "share", "acc", "micro-F1", "p50 ms", "p95 ms"]
        lines.append(_text_table(headers, stage_rows))
    cost_rows = _cost_rows(summary)
    if cost_rows:
        lines += ["", _text_table(["cost / 1,000 GIFs", "USD"], cost_rows)]
    if _baselines(summary):
        headers = ["system", "acc", "micro-F1", "LLM share", "cost / 1,000"]
        lines += ["", _text_table(headers, _baseline_rows(summary))]
    point = summary.get("operating_point") or {}
    if point:
        lines += ["", f"operating point: threshold {_fixed(point.get('threshold'))}  "
                      f"LLM share {_pct(point.get('llm_share'))}  accuracy {_fixed(point.get('accuracy'))}"]
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
