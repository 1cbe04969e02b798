"""The evaluation report, fed by real summaries: a real cascade of scripted stages runs a few labelled
records through `evaluate`, and `Report.summary` builds what `gifcat eval --report` writes. Scores are
scripted so that the reliability bins, the ECE and the operating points can be worked out by hand."""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gifcat.config import LabelPolicy, Settings, Thresholds
from gifcat.domain.cascade import Cascade, Step
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput
from gifcat.domain.records import LabelledRecord
from gifcat.domain.stages import Stage
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.cli import main
from gifcat_tooling.cli.evaluate import _llm_answers
from gifcat_tooling.evaluation import (
    BaselineSummary,
    Confusion,
    CurvePoint,
    EvalSummary,
    FoldSummary,
    Handoff,
    KindStage,
    KindSummary,
    Report,
    cv_operating_curve,
    evaluate,
    operating_curve,
    reliability,
    repeat_summary,
)
from gifcat_tooling.report import render_html, render_text, write_report

TAGS = Thresholds(min_score=0.6, min_margin=0.0)
LLM = Thresholds(min_score=0.0, min_margin=0.0)
EMB_MARGIN = 0.3  # the embedding stage's chosen margin (fold 1's under cross-validation)
EMB_MARGIN_FOLD2 = 0.5
USAGE = {"prompt_tokens": 900, "completion_tokens": 40}


@dataclass
class Case:
    gold: str
    kind: str | None = None
    tags: dict[str, float] = field(default_factory=dict)
    emb: dict[str, float] | None = None  # None: the stage errors (nothing to embed)
    abstain: bool = False
    llm: dict[str, float] = field(default_factory=dict)  # asked of every item triage leaves


# Worked by hand below: which stage decides each record, at which confidence, right or wrong.
CASES = {
    "r01": Case("food", tags={"food": 0.95}),  # tags, 0.95, right
    "r02": Case("love", "homonym", tags={"love": 0.92}),  # tags, 0.92, right
    "r03": Case("sports", "homonym", tags={"animals": 0.95}),  # tags, 0.95, wrong (the trap)
    "r04": Case("funny", "irony", tags={"funny": 0.65}),  # tags, 0.65, right
    "r05": Case("food", emb={"food": 0.8, "love": 0.25}, llm={"food": 0.9}),  # embedding (margin .55), right
    "r06": Case("love", "irony", emb={"sad": 0.7, "love": 0.35}, llm={"love": 0.8}),  # emb (.35), wrong
    "r07": Case("sports", "homonym", tags={"animals": 0.4},
                emb={"sports": 0.75, "animals": 0.3}, llm={"animals": 0.9}),  # emb (.45), right
    "r08": Case("funny", emb={"funny": 0.9, "sad": 0.1}, abstain=True, llm={"funny": 0.85}),  # llm, right
    "r09": Case("sad", "irony", emb={"sad": 0.5, "funny": 0.4}, llm={"funny": 0.9}),  # llm, wrong
    "r10": Case("<script>", emb={"<script>": 0.55, "food": 0.45}, llm={"<script>": 0.6}),  # llm, right
    "r11": Case("animals", emb=None, llm={"animals": 0.7}),  # embedding fails; llm, right
}


def records(ids: Sequence[str] | None = None) -> list[LabelledRecord]:
    return [
        LabelledRecord(id=i, title=i, labels=[c.gold], primary=c.gold, kind=c.kind)
        for i, c in CASES.items() if ids is None or i in ids
    ]


class Scripted(Stage):
    """A stage answering from CASES by record id, as the real stages answer from the metadata."""

    def __init__(self, name: StageName) -> None:
        self.name = name

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        case = CASES[item.id]
        if self.name is StageName.TAGS:
            scores = case.tags
        elif self.name is StageName.EMBEDDING:
            if case.emb is None:
                return StageOutput(stage=self.name, error="nothing to embed")
            scores = case.emb
        else:
            scores = case.llm
        cands = [Candidate(category=c, score=s) for c, s in scores.items()]
        return StageOutput(
            stage=self.name, candidates=cands,
            abstained="signals disagree" if case.abstain and self.name is StageName.EMBEDDING else None,
            usage=USAGE if self.name is StageName.LLM else {},
            cost_usd=0.0001 if self.name is StageName.LLM else 0.0,
        )


def cascade(margin: float = EMB_MARGIN, until: StageName = StageName.LLM) -> Cascade:
    steps = [
        Step(Scripted(StageName.TAGS), TAGS),
        Step(Scripted(StageName.EMBEDDING), Thresholds(min_score=0.0, min_margin=margin)),
        Step(Scripted(StageName.LLM), LLM),
    ]
    order = [StageName.TAGS, StageName.EMBEDDING, StageName.LLM]
    return Cascade(steps[: order.index(until) + 1], LabelPolicy(ratio=0.6, max=3), "v1")


def run(
    recs: Sequence[LabelledRecord], margin: float = EMB_MARGIN, until: StageName = StageName.LLM
) -> Report:
    c = cascade(margin, until)
    return evaluate(recs, lambda r: c.run(r.item()))


def real_summary(settings: Settings) -> EvalSummary:
    """As `gifcat eval --report` builds it: the run's summary, the curve, the baselines."""
    report = run(records())
    summary = report.summary(settings)
    llm_correct = _llm_answers(report, Scripted(StageName.LLM), load_taxonomy(), None)
    curve, point = operating_curve(report, llm_correct, 0.0, EMB_MARGIN)
    llm_only = Cascade([Step(Scripted(StageName.LLM), LLM)], LabelPolicy(), "v1")
    base = evaluate(records(), lambda r: llm_only.run(r.item())).summary(settings)
    baseline = BaselineSummary(
        accuracy=base.accuracy, micro_f1=base.micro_f1, llm_share=base.llm_share,
        cost_per_1000_usd=base.cost_per_1000_usd,
    )
    return summary.model_copy(update={
        "operating_curve": curve,
        "operating_point": point,
        "baselines": {"llm": baseline},
        "command": "gifcat eval --data dev.jsonl --report out/ --tags '<b>'",
    })


def cv_summary(settings: Settings) -> tuple[EvalSummary, Report]:
    """As `gifcat eval --cv 2 --report` builds it: each fold run with its own fitted margin."""
    report = Report()
    folds = []
    split = [(["r01", "r02", "r03", "r04", "r05", "r06"], EMB_MARGIN),
             (["r07", "r08", "r09", "r10", "r11"], EMB_MARGIN_FOLD2)]
    for i, (ids, margin) in enumerate(split):
        part = run(records(ids), margin)
        report.predictions += part.predictions
        s = part.summary(settings)
        folds.append(FoldSummary(fold=i + 1, n=s.n, accuracy=s.accuracy, stages=s.stages,
                                 thresholds={"tags": {"min_score": 0.6, "min_margin": 0.0},
                                             "embedding": {"min_score": 0.0, "min_margin": margin}}))
    llm_correct = _llm_answers(report, Scripted(StageName.LLM), load_taxonomy(), None)
    curve, point, marks = cv_operating_curve(report, llm_correct, folds)
    summary = report.summary(settings).model_copy(update={
        "folds": folds, "operating_curve": curve, "operating_point": point, "operating_folds": marks
    })
    return summary, report


@pytest.fixture
def summary(settings: Settings) -> EvalSummary:
    return real_summary(settings)


# -- what the summary holds ------------------------------------------------------------------------
def test_the_summary_is_the_run_worked_by_hand(summary: EvalSummary) -> None:
    assert summary.n == 11
    assert summary.accuracy == round(8 / 11, 4)
    assert summary.llm_share == round(4 / 11, 4)
    assert {k: s.decided for k, s in summary.stages.items()} == {"tags": 4, "embedding": 3, "llm": 4}
    assert summary.kinds["homonym"] == KindSummary(
        n=3, accuracy=0.6667,
        stages={"tags": KindStage(decided=2, accuracy=0.5), "embedding": KindStage(decided=1, accuracy=1.0)},
    )
    assert summary.kinds["irony"].accuracy == 0.3333
    assert set(summary.kinds) == {"homonym", "irony"}  # records without a kind are in no group
    # What the cheap stages handed on, per kind: no homonym (all decided early); of irony, r09, whose
    # embedding candidates put its gold "sad" first (the LLM then answered "funny").
    assert summary.kinds["irony"].handoff == Handoff(left=1, ranked=1, top_right=1, top_accuracy=1.0,
                                                     gold_rank=[1, 0])


def test_reliability_bins_and_ece_from_known_predictions(summary: EvalSummary) -> None:
    rel = summary.reliability
    assert rel == reliability(run(records()))
    # tags decided 0.95 right, 0.92 right, 0.95 wrong, 0.65 right
    assert [(b.lo, b.hi, b.n, b.confidence, b.accuracy) for b in rel["tags"].bins] == [
        (0.6, 0.7, 1, 0.65, 1.0),
        (0.9, 1.0, 3, 0.94, 0.6667),
    ]
    assert rel["tags"].ece == pytest.approx((0.35 + 3 * (0.94 - 2 / 3)) / 4, abs=1e-4)
    assert rel["tags"].n == 4
    # embedding decided 0.8 right, 0.7 wrong, 0.75 right
    assert [(b.n, b.confidence, b.accuracy) for b in rel["embedding"].bins] == [
        (2, 0.725, 0.5), (1, 0.8, 1.0)
    ]
    assert rel["embedding"].ece == pytest.approx((2 * 0.225 + 0.2) / 3, abs=1e-4)
    # llm decided 0.6, 0.7, 0.85 right and 0.9 wrong: one per bin
    assert rel["llm"].ece == pytest.approx((0.4 + 0.3 + 0.15 + 0.9) / 4, abs=1e-4)
    # Reached: every item the embedding stage scored, decided or not (the abstention and those it left
    # to the LLM too), by its best candidate; the failed one had nothing to score.
    reached = rel["embedding"].reached
    assert reached.n == 6
    assert sum(b.n for b in reached.bins) == 6
    assert [(b.lo, b.n, b.accuracy) for b in reached.bins][-1] == (0.9, 1, 1.0)  # r08


def test_operating_point_is_where_the_run_landed(summary: EvalSummary) -> None:
    """The curve's chosen point replays the run: an item the embedding stage abstained on went to the
    LLM, whatever its margin (it used to be counted as the embedding stage's answer)."""
    point = summary.operating_point
    assert point is not None and (point.accuracy, point.llm_share) == (summary.accuracy, summary.llm_share)


def test_cv_curve_marks_each_folds_threshold(settings: Settings) -> None:
    summary, _ = cv_summary(settings)
    # The cross-validated point is the run itself: each fold at its own margin.
    point = summary.operating_point
    assert point is not None and (point.accuracy, point.llm_share) == (summary.accuracy, summary.llm_share)
    assert (point.accuracy, point.llm_share) == (round(7 / 11, 4), round(5 / 11, 4))
    assert point.fold_thresholds == [EMB_MARGIN, EMB_MARGIN_FOLD2]
    # Each fold's margin, applied to every out-of-fold item, is a point on the pooled curve.
    marks = {m.fold: (m.threshold, m.accuracy, m.llm_share) for m in summary.operating_folds or []}
    assert marks == {
        1: (0.3, round(8 / 11, 4), round(4 / 11, 4)),
        2: (0.5, round(8 / 11, 4), round(6 / 11, 4)),
    }
    curve = {c.threshold: c for c in summary.operating_curve or []}
    for threshold, acc, share in marks.values():
        assert (curve[threshold].accuracy, curve[threshold].llm_share) == (acc, share)
    shares = [c.llm_share for c in summary.operating_curve or []]
    assert shares == sorted(shares)  # a higher margin never sends fewer items to the LLM


def test_train_split_is_one_fold(settings: Settings) -> None:
    report = run(records(), EMB_MARGIN)
    folds = [
        FoldSummary(
            fold=1, n=11, accuracy=0.0, stages={},
            thresholds={"embedding": {"min_score": 0.0, "min_margin": EMB_MARGIN}},
        )
    ]
    llm_correct = _llm_answers(report, Scripted(StageName.LLM), load_taxonomy(), None)
    cv_curve, cv_point, _ = cv_operating_curve(report, llm_correct, folds)

    def points(curve: list[CurvePoint]) -> list[tuple[Any, ...]]:
        return [(c.threshold, c.llm_share, c.accuracy, c.chosen) for c in curve]

    curve, point = operating_curve(report, llm_correct, 0.0, EMB_MARGIN)
    assert points(cv_curve) == points(curve)
    assert (cv_point.accuracy, cv_point.llm_share) == (point.accuracy, point.llm_share)


def test_cv_curve_refuses_folds_that_do_not_cover_the_predictions(settings: Settings) -> None:
    summary, report = cv_summary(settings)
    with pytest.raises(ValueError, match="11 predictions"):
        cv_operating_curve(report, {}, (summary.folds or [])[:1])


# -- the artefacts ---------------------------------------------------------------------------------
def test_report_renders_every_artefact(tmp_path: Path, summary: EvalSummary) -> None:
    paths = write_report(summary, tmp_path / "out")
    assert set(paths) == {"json", "png", "reliability_png", "kinds_png", "html"}
    assert EvalSummary.model_validate_json(paths["json"].read_text(encoding="utf-8")) == summary
    for key in ("png", "reliability_png", "kinds_png"):
        with Image.open(paths[key]) as img:
            img.verify()
            assert img.format == "PNG"

    page = paths["html"].read_text(encoding="utf-8")
    assert f"{summary.accuracy:.3f}" in page and f"{summary.micro_f1:.3f}" in page
    for stage, decided in (("tags", 4), ("embedding", 3), ("llm", 4)):
        assert re.search(rf'<td class="l">{stage}</td><td class="">{decided}</td>', page)
    assert summary.cost is not None and f"${summary.cost.per_1000_usd:.4f}" in page
    assert "36.4%" in page  # LLM share
    assert ">undecided<" in page
    h = summary.handoff
    assert h is not None and h.gold_rank  # where the gold label stood among what the LLM was shown
    assert f"{h.within(2)} / {h.within(4)} / {h.gold_rank[-1]}" in page


def test_a_summary_saved_before_gold_ranks_were_counted_renders_a_dash(summary: EvalSummary) -> None:
    assert summary.handoff is not None
    old = summary.model_copy(update={"handoff": summary.handoff.model_copy(update={"gold_rank": []})})
    page = render_html(old, None)
    assert '<div class="v">-</div><div class="k">...a gold label in their top 2 / 4 / none recorded' in page


def test_kind_table_in_html_and_text(summary: EvalSummary) -> None:
    page = render_html(summary, None)  # the tables only: no plotting
    table = page.split("Accuracy by kind", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    assert len(rows) == 1 + 2  # header, homonym, irony
    cells = [re.sub(r"<[^>]+>", "|", r).strip("|").split("||") for r in rows[1:]]
    assert cells[0][:3] == ["homonym", "3", "0.667"]
    assert "2 (0.500)" in cells[0] and "1 (1.000)" in cells[0]
    assert cells[1][:3] == ["irony", "3", "0.333"]
    assert (cells[0][-1], cells[1][-1]) == ("-", "1 of 1")  # first candidate right, of what was left
    text = render_text(summary)
    homonym = next(line for line in text.splitlines() if line.startswith("homonym"))
    assert homonym.split()[:3] == ["homonym", "3", "0.667"]
    irony = next(line for line in text.splitlines() if line.startswith("irony"))
    assert irony.split()[-3:] == ["1", "of", "1"]


def test_reliability_table_in_html_and_text(summary: EvalSummary) -> None:
    page = render_html(summary, None)  # the tables only: no plotting
    section = page.split("Reliability", 1)[1]
    # ECE 0.2925, shown to three places
    assert re.search(r'<td class="l">tags</td><td class="">4</td><td class="">0\.292</td>', section)
    assert re.search(r'<td class="l">llm</td><td class="">4</td><td class="">0\.438</td>', section)
    text = render_text(summary)
    assert re.search(r"^tags\s+4\s+0\.292", text, re.M)


def test_cv_report_marks_the_folds(tmp_path: Path, settings: Settings) -> None:
    summary, _ = cv_summary(settings)
    paths = write_report(summary, tmp_path)
    with Image.open(paths["png"]) as img:
        img.verify()
    page = paths["html"].read_text(encoding="utf-8")
    folds = page.split("<h2>Folds", 1)[1].split("</table>", 1)[0]
    # fold 2: 5 records, 3 right, margin 0.5; at 0.5 the pooled curve sends 6 of 11 to the LLM, 8 right
    cells = r'<td class="l">2</td>' + "".join(rf'<td class="">{v}</td>' for v in ("5", r"0\.600", r"0\.500"))
    assert re.search(cells + r'<td class="">54\.5%</td><td class="">0\.727</td>', folds)
    assert "thresholds per fold 0.300, 0.500" in page
    assert "thresholds per fold 0.300, 0.500" in render_text(summary)


def test_html_is_self_contained_with_the_embedded_pngs(tmp_path: Path, summary: EvalSummary) -> None:
    paths = write_report(summary, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    embedded = [base64.b64decode(m) for m in found]
    assert embedded == [paths[k].read_bytes() for k in ("kinds_png", "reliability_png", "png")]
    assert "<style>" in page
    # Nothing fetched from elsewhere: no external scripts, stylesheets or images.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script" not in page


def test_strings_are_escaped(summary: EvalSummary) -> None:
    page = render_html(summary, None)  # the tables only: no plotting
    assert "&lt;script&gt;" in page  # a category name, in the confusion matrix
    assert "<script>" not in page
    assert "--tags &#39;&lt;b&gt;&#39;" in page  # the command, verbatim but escaped


class Page(HTMLParser):
    """What a browser would make of the page: its tags, its text nodes, the text of its h2 headings."""

    def __init__(self, page: str) -> None:
        super().__init__()  # convert_charrefs: text arrives unescaped, as it is shown
        self.tags: list[str] = []
        self.texts: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._in_h2:
            self.headings.append(data)


SECTIONS = [
    "Stages", "Accuracy by kind", "Reliability (confidence against observed accuracy)",
    "Cost per 1,000 GIFs", "Confusion matrix (primary category)", "Operating curve", "Baselines",
    "Reproduce",
]
HOSTILE = """<script>alert("x")</script><img src=x onerror='alert(1)'>"""


def test_hostile_text_is_shown_as_text_and_every_section_remains(summary: EvalSummary) -> None:
    """Every string the summary carries, put where a browser would run it, stays text."""
    assert summary.baselines is not None and summary.cost is not None
    summary.command = f"gifcat eval --title {HOSTILE}"
    summary.stages[HOSTILE] = summary.stages["llm"]  # a stage the report does not know
    summary.kinds[HOSTILE] = summary.kinds["irony"]
    summary.reliability[HOSTILE] = summary.reliability["tags"]
    summary.baselines[HOSTILE] = summary.baselines["llm"]
    summary.cost.by_model_per_1000_usd = {HOSTILE: 0.01}
    summary.confusion.labels[0] = HOSTILE
    page = Page(render_html(summary, b"curve", {"kinds": b"kinds", "reliability": b"reliability"}))
    assert "script" not in page.tags and page.tags.count("img") == 3  # the three plots, no fourth
    assert f"LLM: {HOSTILE}" in page.texts
    assert f"gifcat eval --title {HOSTILE}" in page.texts
    # stage, kind, reliability (and its 2 bins), baseline rows; the confusion matrix's column and row
    assert page.texts.count(HOSTILE) == 8
    assert page.headings == SECTIONS


def test_the_page_template_ships_as_package_data(root: Path) -> None:
    template = resources.files("gifcat_tooling").joinpath("templates", "report.html.j2")
    assert template.is_file()
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch("templates/report.html.j2", p) for p in patterns["gifcat_tooling"])


def test_confusion_matrix_has_gold_rows_only(summary: EvalSummary) -> None:
    page = render_html(summary, None)  # the tables only: no plotting
    table = page.split("Confusion matrix", 1)[1].split("</table>", 1)[0]
    gold = {r.primary for r in records()}
    # header + one row per gold category: the summary's square matrix also has an empty "undecided" row
    assert table.count("<tr>") == 1 + len(gold)
    assert '<th class="l">undecided</th>' not in table
    assert '<td class="diag">2</td>' in table  # food: r01 and r05


def test_summary_without_curve_or_costs_renders(tmp_path: Path, settings: Settings) -> None:
    """The shapes real runs produce short of the full report: `--until embedding --report` (baselines,
    no operating curve) and a summary built without settings (no costs)."""
    report = run(records(), until=StageName.EMBEDDING)
    no_curve = report.summary(settings).model_copy(
        update={"baselines": real_summary(settings).baselines, "command": None}
    )
    no_costs = report.summary(None)
    assert no_curve.operating_curve is None and no_costs.cost is None
    for i, summary in enumerate((no_curve, no_costs)):
        paths = write_report(summary, tmp_path / str(i))
        page = paths["html"].read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and f"{summary.accuracy:.3f}" in page
        for key in ("png", "reliability_png", "kinds_png"):
            with Image.open(paths[key]) as img:
                img.verify()
        assert f"accuracy: {summary.accuracy:.3f}" in render_text(summary)


@pytest.mark.parametrize(
    "missing",
    [
        {"operating_curve": None, "operating_point": None, "baselines": None},
        {"cost": None, "cost_per_1000_usd": None, "command": None, "kinds": {}, "reliability": {}},
        {"stages": {}, "confusion": Confusion(labels=[], matrix=[])},
    ],
)
def test_missing_optional_parts_do_not_crash(
    tmp_path: Path, missing: dict[str, Any], summary: EvalSummary
) -> None:
    summary = summary.model_copy(update=missing)
    paths = write_report(summary, tmp_path)
    assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    for key in ("png", "reliability_png", "kinds_png"):
        with Image.open(paths[key]) as img:
            img.verify()
    assert f"accuracy: {summary.accuracy:.3f}" in render_text(summary)


def test_triage_only_summary(tmp_path: Path, settings: Settings) -> None:
    """`--until triage`: no embedding or LLM stage, no curve, no baselines; no kinds in the records."""
    recs = [r.model_copy(update={"kind": None}) for r in records()]
    summary = run(recs, until=StageName.TAGS).summary(settings)
    assert set(summary.reliability) == {"tags"} and summary.kinds == {}
    paths = write_report(summary, tmp_path)
    assert EvalSummary.model_validate_json(paths["json"].read_text(encoding="utf-8")) == summary
    page = paths["html"].read_text(encoding="utf-8")
    assert "No record carries a kind" in page
    assert "data:image/png;base64," in page


def test_render_text_table(summary: EvalSummary) -> None:
    text = render_text(summary)
    assert f"accuracy: {summary.accuracy:.3f}" in text
    assert summary.cost is not None and f"cost / 1,000 GIFs: ${summary.cost.per_1000_usd:.4f}" in text
    stage_lines = [line for line in text.splitlines() if line.split()[:1] in (["tags"], ["llm"])]
    assert any(line.split()[1] == "4" for line in stage_lines)
    assert "gpt-4.1-mini" in text
    assert "gifcat eval --data" in text


# -- `gifcat eval --report` itself: the summary the command computed, as it writes and renders it ---------
CLI_RECORDS = [
    {"id": "c1", "title": "Pizza GIF", "tags": ["pizza", "food", "yum"], "labels": ["food"],
     "primary": "food", "kind": "plain"},
    {"id": "c2", "title": "Kiss", "tags": ["kiss", "love", "mwah"], "labels": ["love"], "primary": "love"},
    {"id": "c3", "description": "A herd of cows turns to stare at the camera.", "labels": ["animals"],
     "primary": "animals", "kind": "plain"},
    {"id": "c4", "title": "Pizza Rat", "tags": ["pizza", "cheese", "food"], "labels": ["funny", "animals"],
     "primary": "funny", "kind": "homonym"},
]


def test_eval_report_command_renders_what_it_computed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real command on a few records, triage stages only (fast): the bundled tag and rule stages
    decide; nothing here is scripted or written by hand but the records."""
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in CLI_RECORDS), encoding="utf-8")
    out = tmp_path / "report"
    args = ["eval", "--data", str(data), "--until", "triage", "--baseline", "tags", "--report", str(out)]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == summary
    # Worked by hand: the tags decide c1 food and c2 love (right) and c4 food (wrong: a homonym);
    # nothing in c3 names a category for triage.
    assert (summary["n"], summary["accuracy"], summary["undecided"], summary["llm_share"]) == (4, 0.5, 1, 0.0)
    assert (summary["stages"]["tags"]["decided"], summary["stages"]["tags"]["accuracy"]) == (3, 0.6667)
    assert summary["micro_f1"] == 0.5  # tp 2, fp 1 (c4 food), fn 3 (c4 funny, animals; c3 animals)
    assert summary["kinds"]["homonym"] == {"n": 1, "accuracy": 0.0,
                                           "stages": {"tags": {"decided": 1, "accuracy": 0.0}}}
    assert summary["baselines"]["tags"]["accuracy"] == 0.5
    # The rules decided nothing: their ECE is null, not left out (a part the run did not make is).
    assert summary["reliability"]["rules"]["ece"] is None and "operating_curve" not in summary
    page = (out / "report.html").read_text(encoding="utf-8")
    assert re.search(r">0\.500<[^>]*>[^>]*>accuracy<", page)
    # stage, decided, share, accuracy on what it decided
    cells = r'<td class="l">tags</td><td class="">3</td><td class="">75\.0%</td><td class="">0\.667</td>'
    assert re.search(cells, page)
    matrix = page.split("Confusion matrix", 1)[1].split("</table>", 1)[0]
    header = re.findall(r"<th[^>]*>([^<]*)</th>", matrix.split("</thead>", 1)[0])
    assert header[1:] == ["animals", "food", "funny", "love", "undecided", "total"]
    funny = re.search(r'<th class="l">funny</th>(.*?)</tr>', matrix)  # c4: gold funny, predicted food
    assert funny and re.findall(r"<td[^>]*>(\d+)</td>", funny.group(1)) == ["0", "1", "0", "0", "0", "1"]
    for name in ("operating_curve.png", "reliability.png", "kinds.png"):
        with Image.open(out / name) as img:
            img.verify()
    printed = render_text(EvalSummary.model_validate(summary))  # printed without --json
    assert re.search(r"^homonym\s+1\s+0\.000", printed, re.M)


def test_the_summaries_in_docs_read_as_the_summary_type(root: Path) -> None:
    """The JSON that `gifcat eval --json` wrote for README's results is an EvalSummary, key for key."""
    # discovery.json and stream.json are `gifcat discover`'s and `gifcat stream`'s output, and
    # second-encoder*.json, finetuned-encoder.json, llm-scoring.json and instructions.json their scripts'
    # (scripts/measure_*): not evaluations
    others = {
        "discovery.json", "stream.json", "second-encoder.json", "second-encoder-e5.json",
        "finetuned-encoder.json", "llm-scoring.json", "ranking-headroom.json", "text-encoder-mpnet.json",
        "instructions.json",
    }
    saved = sorted(p for p in (root / "docs" / "results").rglob("*.json") if p.name not in others)
    assert saved
    for path in saved:
        data = json.loads(path.read_text(encoding="utf-8"))
        summary = EvalSummary.model_validate(data)  # extra keys are refused: the type says it all
        assert summary.n == data["n"] and summary.folds and len(summary.folds) == len(data["folds"])
        assert f"accuracy: {summary.accuracy:.3f}" in render_text(summary)


def test_repeats_pool_the_seeds_and_show_in_the_page_and_the_text(settings: Settings) -> None:
    # Two "seeds" whose fitted embedding margins differ, as two draws of the inner folds would.
    runs = {0: run(records(), EMB_MARGIN), 1: run(records(), 0.9)}
    decided = {
        seed: [p.correct for p in r.predictions if p.result.decided_by is StageName.EMBEDDING]
        for seed, r in runs.items()
    }
    assert len(decided[0]) != len(decided[1])  # the case this test is about: the margin moved
    first = runs[0].summary(settings)
    summary = first.model_copy(update={
        "repeats": repeat_summary([(seed, r.summary(settings)) for seed, r in runs.items()])
    })
    emb = summary.repeats.stages["embedding"] if summary.repeats else None
    assert emb is not None
    assert emb.pooled_decided == len(decided[0]) + len(decided[1])
    assert emb.pooled_right == sum(decided[0]) + sum(decided[1])
    assert (emb.decided.min, emb.decided.max) == tuple(sorted(float(len(d)) for d in decided.values()))
    row = [
        "embedding", str(min(map(len, decided.values()))), str(max(map(len, decided.values()))),
    ]
    page = render_html(summary, None)
    seeds = page.split("<h2>Seeds", 1)[1].split("</table>", 1)[0]
    assert "over 2 seeds (0, 1)" in seeds
    assert re.search('<td class="l">embedding</td>' + "".join(f'<td class="">{v}</td>' for v in row[1:]),
                     seeds)
    assert f"{emb.pooled_right}/{emb.pooled_decided}" in seeds
    text = render_text(summary)
    assert re.search(r"^embedding\s+" + r"\s+".join(row[1:]) + r"\s", text, re.M)
    assert "<h2>Seeds" not in render_html(first, None)  # a run of one seed has no such section
