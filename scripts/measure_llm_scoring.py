"""Does the local Gemma help as a scorer where it does not as a writer? A measurement, not a feature
(docs/results/README.md "Measured and not a lead: the local Gemma as a scorer").

Where the cheap stages leave a record, the local Gemma 3 270M, asked to write its answer from the
embedding stage's top 4, names the stage's first candidate nearly every time (dev-hard: 69 of 70 answers),
so it adds nothing. This script asks it another way. For each of the stage's top k candidates it takes
the log-likelihood Gemma gives the category's name as the answer to a prompt that lists the k categories
with their taxonomy descriptions (no scores) above the record's title, tags and description (instruction
text removed, as every stage sees it). Four readings of the same records:
  stage        the embedding stage's first candidate (what a Gemma that echoes it answers)
  gemma        the candidate Gemma scores highest
  calibrated   the same, each name's likelihood under an empty record subtracted first (contextual
               calibration, Zhao et al. 2021: a small model's prior for some names over others)
  combined     log(stage score) + w x Gemma's log-likelihood (raw or calibrated), w and the variant
               chosen on the first file's records and applied unchanged to the second's

The records are those the cheap stages left in a `gifcat eval --until embedding --predictions` file
(its `earlier_candidates`), so the stage is fitted as that run fitted it (`--cv` folds, or `--train`):

    gifcat eval --data ../shared/data/dev.jsonl --cv --until embedding --predictions /tmp/dev-cv.jsonl
    gifcat eval --data ../shared/data/dev-hard.jsonl --train ../shared/data/dev.jsonl --until embedding \\
        --predictions /tmp/dev-hard.jsonl
    python scripts/measure_llm_scoring.py --choose /tmp/dev-cv.jsonl ../shared/data/dev.jsonl \\
        --test /tmp/dev-hard.jsonl ../shared/data/dev-hard.jsonl [--top 4] \\
        [--out docs/results/llm-scoring.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gifcat.config import load_settings
from gifcat.domain.instructions import InstructionScreen
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.model import GifMetadata
from gifcat.domain.records import LabelledRecord, read_records
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy
from gifcat_tooling.llama_server import ensure_model_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import cpu_info, machine_label  # the benchmarks' record of the machine

WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
EMPTY = GifMetadata(title="", tags=(), description="")


@dataclass
class Left:
    """A record the cheap stages left, with the stage's top candidates and Gemma's reading of them."""

    record: LabelledRecord
    categories: list[str]
    stage_scores: list[float]
    loglik: list[float]
    prior: list[float]

    def pick(self, weight: float, calibrated: bool, stage: bool = True) -> str:
        gemma = np.array(self.loglik) - (np.array(self.prior) if calibrated else 0.0)
        total = weight * gemma
        if stage:
            total = total + np.log(np.maximum(self.stage_scores, 1e-6))
        return self.categories[int(np.argmax(total))]

    def right(self, category: str) -> bool:
        return category in self.record.labels


class GemmaScorer:
    """Log-likelihoods of candidate names after a prompt, the prompt evaluated once per record."""

    def __init__(self, gguf: Path, threads: int) -> None:
        from llama_cpp import Llama  # the local LLM's runtime ('.[local]')

        self.model = Llama(str(gguf), n_ctx=2048, n_threads=threads, verbose=False)
        self.vocab = self.model.n_vocab()

    def _logits(self) -> np.ndarray:
        raw = np.ctypeslib.as_array(self.model._ctx.get_logits(), shape=(self.vocab,))
        z = raw.astype(np.float64)
        return z - z.max() - np.log(np.exp(z - z.max()).sum())

    def loglik(self, prompt: str, answers: Sequence[str]) -> list[float]:
        m = self.model
        prefix = m.tokenize(prompt.encode(), add_bos=True, special=True)
        m.reset()
        m.eval(prefix)
        after_prefix = self._logits()
        out = []
        for answer in answers:
            tokens = m.tokenize(answer.encode(), add_bos=False, special=False)
            m.n_tokens = len(prefix)  # back to the end of the prompt: its cache is kept
            logp, total = after_prefix, 0.0
            for i, token in enumerate(tokens):
                total += float(logp[token])
                if i + 1 < len(tokens):
                    m.eval([token])
                    logp = self._logits()
            out.append(total)
        return out


def prompt(taxonomy: Taxonomy, metadata: GifMetadata, categories: Sequence[str]) -> str:
    options = "\n".join(f"- {c}: {taxonomy.get(c).description}" for c in categories)
    return (
        f"<start_of_turn>user\nWhich category fits this GIF best?\n{options}\n\nTitle: {metadata.title}\n"
        f"Tags: {', '.join(metadata.tags)}\nDescription: {metadata.description}<end_of_turn>\n"
        "<start_of_turn>model\nCategory:"
    )


def read_left(predictions: Path, records: Path, top: int) -> list[tuple[LabelledRecord, list[Any]]]:
    by_id = {r.id: r for r in read_records(records)}
    out = []
    for line in predictions.read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        if "earlier_candidates" not in p:  # an older gifcat, or another file: it would read as none left
            raise SystemExit(f"{predictions}: no earlier_candidates (written by `gifcat eval --predictions`)")
        ranked = p["earlier_candidates"]
        if ranked and len(ranked) >= 2:
            out.append((by_id[p["id"]], ranked[:top]))
    return out


def score_file(
    scorer: GemmaScorer, taxonomy: Taxonomy, rows: list[tuple[LabelledRecord, list[Any]]]
) -> tuple[list[Left], float]:
    screen = InstructionScreen()
    left, started = [], time.perf_counter()
    for record, ranked in rows:
        meta = record.item().metadata
        categories = [c["category"] for c in ranked]
        answers = [" " + c for c in categories]
        left.append(Left(
            record, categories, [c["score"] for c in ranked],
            scorer.loglik(prompt(taxonomy, screen.screen(meta).metadata, categories), answers),
            scorer.loglik(prompt(taxonomy, EMPTY, categories), answers),
        ))
    return left, (time.perf_counter() - started) * 1000.0 / max(len(left), 1)


def readings(left: list[Left], weight: float, calibrated: bool) -> dict[str, int]:
    return {
        "n": len(left),
        "stage": sum(x.right(x.categories[0]) for x in left),
        "gemma": sum(x.right(x.pick(1.0, False, stage=False)) for x in left),
        "calibrated": sum(x.right(x.pick(1.0, True, stage=False)) for x in left),
        "combined": sum(x.right(x.pick(weight, calibrated)) for x in left),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choose", nargs=2, required=True, metavar=("PREDICTIONS", "RECORDS"),
                        help="the records on which the weight and variant are chosen (dev, out of fold)")
    parser.add_argument("--test", nargs=2, required=True, metavar=("PREDICTIONS", "RECORDS"),
                        help="the records they are then applied to (dev-hard)")
    parser.add_argument("--top", type=int, default=4, help="candidates Gemma reads (the local model's 4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()

    settings, taxonomy = load_settings(), load_taxonomy()
    choose_rows = read_left(Path(args.choose[0]), Path(args.choose[1]), args.top)  # before the model loads
    test_rows = read_left(Path(args.test[0]), Path(args.test[1]), args.top)
    scorer = GemmaScorer(ensure_model_file(settings.options("llm", LlmOptions).local), args.threads)
    choose, choose_ms = score_file(scorer, taxonomy, choose_rows)
    test, test_ms = score_file(scorer, taxonomy, test_rows)

    grid = [(w, cal) for cal in (False, True) for w in WEIGHTS]
    fits = {(w, cal): sum(x.right(x.pick(w, cal)) for x in choose) for w, cal in grid}
    best = max(fits.values())
    weight, calibrated = next(g for g in grid if fits[g] == best)  # the least Gemma among the best
    results = {
        "cpu": cpu_info(), "top": args.top, "weight": weight, "calibrated": calibrated,
        "ms_per_record": {"choose": round(choose_ms, 1), "test": round(test_ms, 1)},
        "choose": {"file": args.choose[1], **readings(choose, weight, calibrated)},
        "test": {"file": args.test[1], **readings(test, weight, calibrated)},
        "choose_grid": [{"weight": w, "calibrated": cal, "right": fits[(w, cal)]} for w, cal in grid],
        "test_grid": [
            {"weight": w, "calibrated": cal, "right": sum(x.right(x.pick(w, cal)) for x in test)}
            for w, cal in grid
        ],
    }
    for part in ("choose", "test"):
        r = results[part]
        print(f"{r['file']}: {r['n']} left; first right: stage {r['stage']}, Gemma {r['gemma']}, "
              f"calibrated {r['calibrated']}, combined {r['combined']}")
    print(f"combined: weight {weight}, {'calibrated' if calibrated else 'raw'} (chosen on {args.choose[1]}); "
          f"{machine_label()}: {choose_ms:.0f} ms a record (2 x {args.top} names)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
