"""How much the embedding stage's ranking would allow it to decide, against what its certified threshold
lets it decide: README "Where the goals stand" (why the 40% coverage goal is not met).

The stage ranks every record triage leaves by its margin (the best mixed score less the runner-up's).
`gifcat eval --cv` with the stage's target set near zero certifies no threshold, so every record is left
with its out-of-fold candidates (`--predictions`). On that ranking, pooled over the folds, this prints how
right the first candidate is on the top 20% to 50% of the records, how many errors the top 40% holds and
the 95% Clopper-Pearson bound on that error rate (what `gifcat calibrate` tests against the 10% target),
and what the threshold that decides dev's top 40% would decide on the second set (fitted on all of dev).
The threshold here is read off the evaluated records themselves: it is a ceiling for any calibration,
not a figure the cascade reaches.

    python scripts/measure_ranking_headroom.py --data ../shared/data/dev.jsonl \\
        --hard ../shared/data/dev-hard.jsonl --seeds 3 --out docs/results/ranking-headroom.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from inprocess_eval import eval_in_process

from gifcat.adapters.training import clopper_pearson_upper
from gifcat.domain.records import read_records

COVERAGES = (0.2, 0.3, 0.4, 0.5)
GOAL_COVERAGE = 0.4  # the decision-quality issue's goal: 40% of what triage leaves on dev
NEVER_DECIDE = {"stages": {"embedding": {"target": 1e-4}}}  # no count of records certifies it


def ranked(data: str, extra: list[str]) -> list[tuple[float, bool]]:
    """(margin, first candidate right) for every record triage leaves, out of sample, best margin first."""
    gold = {r.id: set(r.labels) for r in read_records(Path(data))}
    _, rows = eval_in_process(["--data", data, *extra, "--until", "embedding"], NEVER_DECIDE)
    out = []
    for row in rows:
        if row["decided_by"] is not None:
            if row["decided_by"] == "embedding":
                raise SystemExit("the embedding stage decided a record: its target did not hold it back")
            continue  # triage decided it
        candidates = row["earlier_candidates"] or []
        if not candidates:
            out.append((float("-inf"), False))
            continue
        runner_up = candidates[1]["score"] if len(candidates) > 1 else 0.0
        out.append((candidates[0]["score"] - runner_up, candidates[0]["category"] in gold[row["id"]]))
    return sorted(out, key=lambda r: -r[0])


def summarise(dev: list[tuple[float, bool]], hard: list[tuple[float, bool]]) -> dict[str, Any]:
    top = round(GOAL_COVERAGE * len(dev))
    errors = sum(not ok for _, ok in dev[:top])
    threshold = dev[top - 1][0]
    decided_hard = [ok for margin, ok in hard if margin >= threshold]
    bound = clopper_pearson_upper(errors, top, 0.95)
    return {
        "left": len(dev),
        "accuracy_at": {str(c): round(sum(ok for _, ok in dev[:round(c * len(dev))]) / round(c * len(dev)), 4)
                        for c in COVERAGES},
        "top_40": {"decided": top, "errors": errors, "bound": round(bound, 4),
                   "margin": round(threshold, 4)},
        "hard_at_that_margin": {"left": len(hard), "decided": len(decided_hard),
                                "accuracy": round(sum(decided_hard) / max(len(decided_hard), 1), 4)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the labelled set, cross-validated (dev)")
    parser.add_argument("--hard", required=True, help="a second labelled set, fitted on --data (dev-hard)")
    parser.add_argument("--seeds", type=int, default=3, help="fold draws 0 to N-1")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    hard = ranked(args.hard, ["--train", args.data])
    seeds = []
    for seed in range(args.seeds):
        figures = summarise(ranked(args.data, ["--cv", "--seed", str(seed)]), hard)
        seeds.append({"seed": seed, **figures})
        top, other = figures["top_40"], figures["hard_at_that_margin"]
        print(f"seed {seed}: first candidate right on the top 20/30/40/50% of the {figures['left']} left: "
              + " ".join(f"{a:.1%}" for a in figures["accuracy_at"].values())
              + f"; top 40%: {top['errors']} errors of {top['decided']}, bound {top['bound']:.1%}"
              + f"; {args.hard} at that margin: {other['decided']} of {other['left']},"
              + f" {other['accuracy']:.1%}")
    if args.out:
        # No `command` key: the saved results' commands are gifcat's; README writes this one beside it.
        Path(args.out).write_text(json.dumps({"seeds": seeds}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
