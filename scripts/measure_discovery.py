"""Choose `gifcat discover`'s clustering and candidate threshold by measurement (README "Discovering new
categories").

For every category C of the taxonomy: drop C, cluster the labelled records, and see whether C's records come
back in clusters flagged as candidate new categories. Per removal:
  recall     share of the records whose primary is C that sit in flagged clusters
  purity     of the flagged cluster holding most of C's records, the share of members labelled C
  recovered  recall > 0.5 and purity > 0.5 (what tests/e2e/test_discover.py asserts)
  precision  share of the flagged records that are labelled C
and F2 (recall weighted over precision: a missed category costs more than reviewing a wrong cluster).
The threshold of each clustering is the one with the best mean F2 (over a window of +-0.02); it is also
chosen on half of the categories and scored on the other half (random splits) for a figure not fitted to
the removed category. With the full taxonomy nothing is new: the records then in flagged clusters are
false alarms. k-means' k is chosen by silhouette over 5..59; a k at the top of that range means the
silhouette kept rising, not that the data has that many groups.

    python scripts/measure_discovery.py --data ../shared/data/dev.jsonl [--out docs/results/discovery.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.config import load_settings
from gifcat.domain.records import read_records
from gifcat.domain.stages.embedding import item_text
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.discovery import (
    DiscoveryOptions,
    _unit,
    centre,
    cluster_labels,
    items_from_metadata,
    nearest,
)

TAUS = np.round(np.arange(0.0, 0.61, 0.01), 2)


def clusterings(centred: np.ndarray, options: DiscoveryOptions) -> dict[str, np.ndarray]:
    """The candidates the brief names: average-linkage cosine thresholds, HDBSCAN, k-means by silhouette."""
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.metrics import silhouette_score

    out = {}
    for th in (0.7, 0.75, 0.8, 0.85, 0.9):
        opts = DiscoveryOptions(**{**options.__dict__, "distance_threshold": th})
        out[f"average-linkage cosine {th}"] = cluster_labels(centred, opts)
    for size in (2, 3, 5):
        labels = HDBSCAN(min_cluster_size=size, min_samples=1, metric="cosine").fit_predict(centred)
        nxt = labels.max() + 1
        for i in np.flatnonzero(labels < 0):  # noise: each point its own cluster
            labels[i], nxt = nxt, nxt + 1
        out[f"hdbscan min_cluster_size={size}"] = labels
    best = None
    for k in range(5, min(60, len(centred) // 3)):
        labels = KMeans(k, n_init=4, random_state=0).fit_predict(centred)
        score = silhouette_score(centred, labels, metric="cosine")
        if best is None or score > best[0]:
            best = (score, k, labels)
    assert best is not None
    out[f"k-means, k={best[1]} by silhouette"] = best[2]
    return out


def removal_scores(
    labels: np.ndarray, centred: np.ndarray, protos: np.ndarray, names: list[str], primary: np.ndarray,
    gold: list[set[str]], min_size: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Per removed category, per threshold in TAUS: recall, purity, precision, F2, flagged count."""
    sizes = {int(k): int((labels == k).sum()) for k in np.unique(labels)}
    out = {}
    for ci, cat in enumerate(names):
        keep = [j for j in range(len(names)) if j != ci]
        sims = nearest(centred, labels, protos[keep])
        mine = primary == cat
        has = np.array([cat in g for g in gold])
        rows: dict[str, list[float]] = {k: [] for k in ("recall", "purity", "precision", "f2", "flagged")}
        for tau in TAUS:
            flagged = [k for k, (_, s) in sims.items() if s < tau and sizes[k] >= min_size]
            in_flagged = np.isin(labels, flagged)
            recall = float((mine & in_flagged).sum() / mine.sum())
            # the flagged cluster holding most of C's records, and its share of members labelled C
            purity = 0.0
            counts = {k: int((mine & (labels == k)).sum()) for k in flagged}
            if counts and max(counts.values()) > 0:
                top = max(counts, key=lambda k: (counts[k], -k))
                purity = float(has[labels == top].mean())
            precision = float((has & in_flagged).sum() / max(in_flagged.sum(), 1))
            f2 = 0.0 if recall == 0 else 5 * precision * recall / (4 * precision + recall)
            values = (recall, purity, precision, f2, float(in_flagged.sum()))
            for key, value in zip(rows, values, strict=True):
                rows[key].append(value)
        out[cat] = {k: np.asarray(v) for k, v in rows.items()}
    return out


def best_threshold(f2: list[np.ndarray]) -> int:
    """The index in TAUS of the best mean F2 over a window of five thresholds (0.02 either side): a
    threshold where a cluster's similarity of 0.001 more or less would change the answer is not chosen."""
    mean = np.mean(f2, axis=0)
    smooth = np.convolve(np.pad(mean, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return int(np.argmax(smooth))


def summarise(scores: dict[str, dict[str, np.ndarray]], cats: list[str], t: int) -> dict[str, Any]:
    rec = {c: bool(scores[c]["recall"][t] > 0.5 and scores[c]["purity"][t] > 0.5) for c in cats}
    return {
        "threshold": float(TAUS[t]),
        "recovered": sum(rec.values()),
        "of": len(cats),
        "not_recovered": [c for c, ok in rec.items() if not ok],
        "mean_f2": round(float(np.mean([scores[c]["f2"][t] for c in cats])), 3),
        "mean_recall": round(float(np.mean([scores[c]["recall"][t] for c in cats])), 3),
        "mean_precision": round(float(np.mean([scores[c]["precision"][t] for c in cats])), 3),
        "mean_flagged_records": round(float(np.mean([scores[c]["flagged"][t] for c in cats])), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled JSONL (dev.jsonl)")
    parser.add_argument("--out", help="write the measurements here as JSON")
    parser.add_argument("--splits", type=int, default=20, help="random halvings of the categories")
    args = parser.parse_args()

    settings = load_settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    options = DiscoveryOptions.from_mapping(settings.discovery)
    stage = build_embedding_stage(settings, taxonomy, labelled=[])
    records = read_records(args.data)
    generic = taxonomy.normalised_generic_tags
    items, skipped = items_from_metadata(
        ((r.id, r.item().metadata) for r in records),
        lambda m: item_text(m.title, m.tags, m.description, generic),
    )
    by_id = {r.id: r for r in records}
    primary = np.array([by_id[i.id].primary or by_id[i.id].labels[0] for i in items])
    gold = [set(by_id[i.id].labels) for i in items]
    vectors = stage.text.encode([i.text for i in items])  # as gifcat_tooling.discovery.discover
    centred, mean = centre(vectors.astype(np.float64))
    # Dropping a category from the taxonomy drops its prototype: each is built from its own phrases only.
    protos = _unit(stage.text_prototypes.astype(np.float64) - mean)
    names = taxonomy.names
    rng = np.random.default_rng(0)
    splits = [rng.permutation(names) for _ in range(args.splits)]

    results = []
    for name, labels in clusterings(centred, options).items():
        scores = removal_scores(labels, centred, protos, names, primary, gold, options.min_size)
        t = best_threshold([scores[c]["f2"] for c in names])
        full = nearest(centred, labels, protos)
        sizes = {int(k): int((labels == k).sum()) for k in np.unique(labels)}
        false_alarm = sum(
            sizes[k] for k, (_, s) in full.items() if s < TAUS[t] and sizes[k] >= options.min_size
        )
        held = []  # threshold chosen on half the categories, scored on the other half
        for perm in splits:
            fit, test = list(perm[: len(names) // 2]), list(perm[len(names) // 2:])
            tf = best_threshold([scores[c]["f2"] for c in fit])
            s = summarise(scores, test, tf)
            held.append((s["recovered"] / s["of"], s["mean_f2"], s["threshold"]))
        at_setting = summarise(scores, names, int(np.flatnonzero(round(options.new_below, 2) == TAUS)[0]))
        row = {
            "clustering": name,
            "clusters": len(np.unique(labels)),
            "clusters_of_min_size": sum(1 for v in sizes.values() if v >= options.min_size),
            "best": summarise(scores, names, t),
            "full_taxonomy_flagged_records": false_alarm,
            "held_out_categories": {
                "recovered_share": round(float(np.mean([h[0] for h in held])), 3),
                "mean_f2": round(float(np.mean([h[1] for h in held])), 3),
                "thresholds": sorted({h[2] for h in held}),
            },
            f"at_new_below_{options.new_below}": at_setting,
            "per_category_at_best": {
                c: {k: round(float(scores[c][k][t]), 3) for k in ("recall", "purity", "precision")}
                for c in names
            },
        }
        results.append(row)
        row["recovered_near_best"] = {
            f"{TAUS[i]:.2f}": summarise(scores, names, i)["recovered"]
            for i in range(max(t - 2, 0), min(t + 3, len(TAUS)))
        }
        b = row["best"]
        print(
            f"{name:36s} k={row['clusters']:3d} ({row['clusters_of_min_size']:3d} of {options.min_size}+)  "
            f"best threshold {b['threshold']:.2f}: F2 {b['mean_f2']:.3f}, recovered {b['recovered']}/14 "
            f"({'/'.join(str(v) for v in row['recovered_near_best'].values())} at +-0.02), "
            f"flagged {b['mean_flagged_records']:.0f}/{len(items)} (full taxonomy {false_alarm}); held-out "
            f"categories: recovered {row['held_out_categories']['recovered_share']:.2f}, "
            f"F2 {row['held_out_categories']['mean_f2']:.3f}",
            file=sys.stderr,
        )
    doc = {"data": args.data, "items": len(items), "skipped": skipped, "settings": options.__dict__,
           "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    else:
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
