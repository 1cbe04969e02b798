"""Would a second text encoder help the embedding stage's classifier? A measurement, not a feature yet
(docs/results/README.md "A lead, measured and not yet built: Gemma's hidden states beside MiniLM").

MiniLM reads English; it maps most emoji to one unknown token and knows few names. Gemma 3 270M, whose GGUF
the local LLM step already uses, was trained on many languages and on emoji; so was multilingual-e5-small
(`--encoder e5`; scripts/second_encoders.py). This script fits the embedding stage's kind of classifier
(multinomial logistic regression, C as in `fit_head`) on three feature sets: MiniLM's vectors alone
(today), the second encoder's alone, and both (the second's standardised and scaled by 0.05, so that
neither encoder drowns the other). For each it reports, on the
records triage leaves (the bundled tag and rule thresholds):
  top-1      how often the classifier's first category is right (what the LLM step is handed)
  decided    how many a margin threshold certifies as the stage does (out-of-fold margins of the training
             part, one-sided 95% Clopper-Pearson bound of the error <= 10%), and how many of those are right
on dev by 5-fold cross-validation under several seeds, and on dev-hard fitted on all of dev (per kind
too). It also times both encoders on the same texts in the same run (per text, one at a time).

    python scripts/measure_second_encoder.py --data ../shared/data/dev.jsonl \\
        --hard ../shared/data/dev-hard.jsonl [--encoder gemma|e5] [--seeds 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from second_encoders import ENCODERS, load
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.training import choose_threshold
from gifcat.config import load_settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.records import LabelledRecord, read_records
from gifcat.domain.stages.embedding import item_text
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import load_taxonomy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import cpu_info, machine_label  # the benchmarks' record of the machine

TARGET = 0.10  # the embedding stage's error target (settings: stages.embedding.target)
SCALE = 0.05  # a standardised second-encoder feature weighs about what one unit MiniLM component does


def timed(encode: Callable[[str], np.ndarray], texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """Vectors (unit length) and milliseconds per text, one text at a time as an upload is."""
    started = time.perf_counter()
    vectors = np.stack([encode(t) for t in texts]).astype(np.float32)
    ms = (time.perf_counter() - started) * 1000.0 / len(texts)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), ms


def margins(model: LogisticRegression, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first minus second probability, first category) per row."""
    proba = model.predict_proba(x)
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0], model.classes_[proba.argmax(axis=1)]


class Probe:
    def __init__(self, records: list[LabelledRecord], x: np.ndarray, left: set[str], c: float) -> None:
        self.records, self.x, self.left, self.c = records, x, left, c
        self.y = np.array([r.primary or r.labels[0] for r in records])

    def fit(self, rows: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=self.c, max_iter=3000).fit(self.x[rows], self.y[rows])

    def threshold(self, rows: np.ndarray, seed: int) -> float:
        """The stage's margin, certified on out-of-fold margins of `rows` that triage leaves."""
        outcomes: list[tuple[float, bool]] = []
        folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(self.x[rows], self.y[rows])
        for tr, te in folds:
            margin, first = margins(self.fit(rows[tr]), self.x[rows[te]])
            outcomes += [(float(m), f in self.records[i].labels)
                         for i, m, f in zip(rows[te], margin, first, strict=True)
                         if self.records[i].id in self.left]
        return choose_threshold(outcomes, TARGET).threshold


def score(records: Sequence[LabelledRecord], rows: Sequence[int], margin: np.ndarray, first: np.ndarray,
          threshold: float) -> dict[str, int]:
    decided = [(i, f) for i, m, f in zip(rows, margin, first, strict=True) if m >= threshold]
    return {
        "left": len(rows),
        "top1_right": sum(f in records[i].labels for i, f in zip(rows, first, strict=True)),
        "decided": len(decided),
        "decided_right": sum(f in records[i].labels for i, f in decided),
    }


def add(total: dict[str, int], part: dict[str, int]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + v


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled JSONL fitted on and cross-validated (dev)")
    parser.add_argument("--hard", required=True, help="labelled JSONL evaluated fitted on --data (dev-hard)")
    parser.add_argument("--encoder", choices=ENCODERS, default="gemma", help="the second encoder")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation (fit_head's C)")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()

    settings, taxonomy = load_settings(), load_taxonomy()
    dev, hard = read_records(args.data), read_records(args.hard)
    generic = taxonomy.normalised_generic_tags
    texts = [item_text(r.title, r.tags, r.description, generic) for r in [*dev, *hard]]
    triage = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
    left = {r.id for r in [*dev, *hard] if not triage.run(r.item()).decided}

    minilm = build_embedding_stage(settings, taxonomy, labelled=[]).text
    mini, mini_ms = timed(minilm.encode_one, texts)
    encoder = load(args.encoder)
    encoder(texts[0])  # loads the model, outside the timing
    second, second_ms = timed(encoder, texts)

    n = len(dev)
    mu, sd = second[:n].mean(axis=0), second[:n].std(axis=0) + 1e-6  # fitted on dev only
    standard = (second - mu) / sd
    features = {"minilm": mini, args.encoder: standard, "both": np.hstack([mini, SCALE * standard])}

    results: dict[str, Any] = {
        "cpu": cpu_info(), "encoder": args.encoder,
        "ms_per_text": {"minilm": round(mini_ms, 2), args.encoder: round(second_ms, 2)},
        "left_by_triage": {"dev": sum(r.id in left for r in dev), "hard": sum(r.id in left for r in hard)},
        "seeds": args.seeds, "c": args.c, "features": {},
    }
    y = np.array([r.primary or r.labels[0] for r in dev])
    for name, x in features.items():
        probe = Probe(dev, x[:n], left, args.c)
        cv: dict[str, int] = {}
        for seed in range(args.seeds):
            for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x[:n], y):
                threshold = probe.threshold(tr, seed)
                rows = [i for i in te if dev[i].id in left]
                margin, first = margins(probe.fit(tr), x[rows])
                add(cv, score(dev, rows, margin, first, threshold))
        everything = np.arange(n)
        threshold = probe.threshold(everything, 0)
        model = probe.fit(everything)
        rows = [i for i, r in enumerate(hard) if r.id in left]
        margin, first = margins(model, x[n:][rows])
        by_kind: dict[str, dict[str, int]] = defaultdict(dict)
        for i, m, f in zip(rows, margin, first, strict=True):
            add(by_kind[hard[i].kind or "-"], score(hard, [i], np.array([m]), np.array([f]), threshold))
        results["features"][name] = {
            "dev_cv": cv, "hard": score(hard, rows, margin, first, threshold), "hard_by_kind": dict(by_kind),
        }
        h = results["features"][name]["hard"]
        print(f"{name:7s} dev CV ({args.seeds} seeds): first right {cv['top1_right']}/{cv['left']}, "
              f"decided {cv['decided']} ({cv['decided_right']} right) | dev-hard: first right "
              f"{h['top1_right']}/{h['left']}, decided {h['decided']} ({h['decided_right']} right)")
    print(f"{machine_label()}: MiniLM {mini_ms:.1f} ms a text, {args.encoder} {second_ms:.1f} ms "
          f"({second_ms / mini_ms:.0f}x)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
