"""Discovery: cluster the items' MiniLM embeddings and flag clusters far from every category.

The items are read as the embedding stage reads them (instructions screened out, then `item_text`) and
embedded by the same encoder. Vectors are mean-centred first: MiniLM's vectors of GIF metadata share one
large common direction, and removing it separates topics (on dev, centred prototypes tell a removed
category's records from the rest better: ROC AUC 0.80 against 0.75). The clusters come from average-linkage
agglomerative clustering with a cosine distance threshold, so their number follows the data.

Each cluster is named by class-based TF-IDF (its words weighted by how specific they are to it), gets its
nearest category (the embedding stage's text prototypes, moved by the same mean) and the cosine
similarity to it; a cluster of at least `min_size` items less similar than `new_below` to every category
is a candidate new category. The settings (settings.yaml, `discovery`) were chosen by
scripts/measure_discovery.py (README "Discovering new categories").
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gifcat.domain.instructions import InstructionScreen
from gifcat.domain.model import GifMetadata
from gifcat.domain.normalise import words
from gifcat.domain.result import ResultItem


class DiscoveryError(ValueError):
    """Input discovery cannot work on (too few items, more clusters asked than items...)."""


@dataclass(frozen=True)
class DiscoveryOptions:
    """The knobs under `discovery` in settings.yaml."""

    # Average-linkage cosine distance (between mean-centred vectors) at which clusters stop merging.
    distance_threshold: float = 0.75
    # Clusters smaller than this are listed but never candidates: one odd item is not a category.
    min_size: int = 2
    # A cluster whose centroid is less similar than this to every category prototype is a candidate.
    new_below: float = 0.26
    terms: int = 5  # distinctive words reported per cluster
    # Average linkage keeps an n x n distance matrix (5,000 items: 200 MB); refuse more than this.
    max_items: int = 5000

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DiscoveryOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"settings: unknown discovery option(s) {unknown}; known: {sorted(known)}")
        options = cls(**dict(data))
        if not 0.0 < options.distance_threshold <= 2.0:
            raise ValueError("settings: discovery.distance_threshold must be in (0, 2] (a cosine distance)")
        if options.min_size < 1 or options.terms < 1 or options.max_items < 2:
            raise ValueError("settings: discovery.min_size and terms must be >= 1, max_items >= 2")
        return options


@dataclass(frozen=True)
class Item:
    """One item to cluster: its id and the text the embedding stage reads."""

    id: str
    text: str


@dataclass
class Cluster:
    id: int
    members: list[str]
    terms: list[str]
    nearest_category: str
    similarity: float
    candidate_new: bool

    @property
    def size(self) -> int:
        return len(self.members)

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "size": self.size,
            "members": self.members,
            "terms": self.terms,
            "nearest_category": self.nearest_category,
            "similarity": round(self.similarity, 4),
            "candidate_new": self.candidate_new,
        }


@dataclass
class Discovery:
    clusters: list[Cluster]
    options: DiscoveryOptions
    skipped: list[dict[str, str]] = field(default_factory=list)  # items with no text, with the reason
    taxonomy_version: str | None = None
    # Kept for the report's map: the centred vectors and each item's cluster id, in item order.
    vectors: np.ndarray | None = None
    assignment: list[int] = field(default_factory=list)

    @property
    def candidates(self) -> list[Cluster]:
        return [c for c in self.clusters if c.candidate_new]

    def to_public(self) -> dict[str, Any]:
        return {
            "clusters": [c.to_public() for c in self.clusters],
            "items": sum(c.size for c in self.clusters),
            "skipped": self.skipped,
            "taxonomy_version": self.taxonomy_version,
            "settings": asdict(self.options),
        }


# -- reading items ---------------------------------------------------------------------------------
def items_from_metadata(
    rows: Iterable[tuple[str, GifMetadata]], text_of: Any, screen: InstructionScreen | None = None
) -> tuple[list[Item], list[dict[str, str]]]:
    """Items as the embedding stage reads them: planted instructions removed, then its text. Rows with no
    text left are returned as skipped (id and reason), never dropped silently."""
    screen = screen or InstructionScreen()
    items: list[Item] = []
    skipped: list[dict[str, str]] = []
    seen: set[str] = set()
    for item_id, metadata in rows:
        if item_id in seen:
            skipped.append({"id": item_id, "reason": "duplicate id: the first one is clustered"})
            continue
        seen.add(item_id)
        text = text_of(screen.screen(metadata).metadata)
        if text.strip():
            items.append(Item(item_id, text))
        else:
            skipped.append({"id": item_id, "reason": "no title, tags or description to embed"})
    return items, skipped


def metadata_of_result(item: ResultItem) -> GifMetadata:
    """A results-table item's metadata (the fields `gifcat.domain.result.result_item` writes)."""
    return GifMetadata(
        title=item.title or "", tags=tuple(item.tags or ()), description=item.description or ""
    )


# -- clustering ------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def centre(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors with the data's mean removed, and that mean (to move the prototypes by)."""
    mean = vectors.mean(axis=0)
    return _unit(vectors - mean), mean


def cluster_labels(
    vectors: np.ndarray, options: DiscoveryOptions, n_clusters: int | None = None
) -> np.ndarray:
    """Cluster ids for centred unit vectors: average linkage over cosine distance, merging stops at
    `options.distance_threshold` (or at exactly `n_clusters` when given)."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    # A vector equal to the mean centres to zero and would be at distance 1 from its own duplicates.
    zero = np.linalg.norm(vectors, axis=1) < 1e-6
    distances[np.ix_(zero, zero)] = 0.0
    np.fill_diagonal(distances, 0.0)
    if n == 1:
        return np.zeros(1, dtype=int)
    model = AgglomerativeClustering(
        n_clusters=n_clusters,
        metric="precomputed",
        linkage="average",
        distance_threshold=None if n_clusters else options.distance_threshold,
    )
    return model.fit_predict(distances)


def nearest(centred: np.ndarray, labels: np.ndarray, prototypes: np.ndarray) -> dict[int, tuple[int, float]]:
    """For each cluster: the index of the nearest prototype (already centred) and the cosine similarity
    between it and the cluster's centroid."""
    out = {}
    for label in np.unique(labels):
        sims = prototypes @ _unit(centred[labels == label].mean(axis=0))
        best = int(np.argmax(sims))
        out[int(label)] = (best, float(sims[best]))
    return out


# -- naming ----------------------------------------------------------------------------------------
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def cluster_terms(texts: Sequence[str], labels: Sequence[int], top: int) -> dict[int, list[str]]:
    """Each cluster's most distinctive words by class-based TF-IDF: a word's share of the cluster's words
    times log(1 + A / f), A the mean number of words per cluster and f the word's count over all clusters.
    Each item counts a word once, so one item repeating a word cannot name its cluster."""
    stop = _stop_words()
    counts: dict[int, Counter[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        kept = {w for w in words(text) if len(w) > 1 and w not in stop and not w.isdigit()}
        counts.setdefault(int(label), Counter()).update(kept)
    totals: Counter[str] = Counter()
    for c in counts.values():
        totals.update(c)
    average = sum(totals.values()) / max(len(counts), 1)
    terms: dict[int, list[str]] = {}
    for label, c in counts.items():
        size = sum(c.values())
        scored = [(n / size * math.log(1.0 + average / totals[w]), w) for w, n in c.items()]
        scored.sort(key=lambda s: (-s[0], s[1]))  # ties alphabetically: the same input names the same
        terms[label] = [w for _, w in scored[:top]]
    return terms


# -- the whole analysis ----------------------------------------------------------------------------

def check_item_count(n: int, options: DiscoveryOptions) -> None:
    """Average linkage keeps an n x n distance matrix: more than `max_items` is refused (the CLI asks
    before the models load)."""
    if n > options.max_items:
        raise DiscoveryError(
            f"{n} items is more than discovery.max_items ({options.max_items}): average linkage keeps "
            "an n x n distance matrix; cluster a sample or raise the setting"
        )


def analyse(
    items: Sequence[Item],
    vectors: np.ndarray,
    prototypes: np.ndarray,
    categories: Sequence[str],
    options: DiscoveryOptions,
    n_clusters: int | None = None,
) -> tuple[list[Cluster], np.ndarray, list[int]]:
    """Cluster, name and flag. `vectors` are the items' unit embeddings (in item order), `prototypes` the
    categories' unit text prototypes. Returns the clusters (candidates first, least similar first), the
    centred vectors and each item's cluster id."""
    n = len(items)
    if n != len(vectors):
        raise ValueError(f"{n} items but {len(vectors)} vectors")
    if n < 2:
        raise DiscoveryError(f"discover needs at least 2 items with text to cluster, got {n}")
    if n_clusters is not None and not 1 <= n_clusters <= n:
        raise DiscoveryError(f"cannot make {n_clusters} clusters of {n} items: ask for 1 to {n}")
    check_item_count(n, options)
    if not len(categories):
        raise DiscoveryError("the taxonomy has no categories to compare clusters with")
    centred, mean = centre(np.asarray(vectors, dtype=np.float64))
    protos = _unit(np.asarray(prototypes, dtype=np.float64) - mean)
    raw = cluster_labels(centred, options, n_clusters)
    terms = cluster_terms([i.text for i in items], raw.tolist(), options.terms)

    found = []
    for label, (best, similarity) in nearest(centred, raw, protos).items():
        members = np.flatnonzero(raw == label)
        candidate = len(members) >= options.min_size and similarity < options.new_below
        found.append((int(label), members, best, similarity, candidate))
    # Candidates first, then clusters large enough to be one, then the rest; least similar first.
    found.sort(key=lambda f: (not f[4], len(f[1]) < options.min_size, f[3], -len(f[1])))
    clusters = []
    assignment = [0] * n
    for new_id, (label, members, best, similarity, candidate) in enumerate(found):
        for m in members:
            assignment[m] = new_id
        clusters.append(
            Cluster(
                id=new_id,
                members=[items[int(m)].id for m in members],
                terms=terms[label],
                nearest_category=categories[int(best)],
                similarity=similarity,
                candidate_new=candidate,
            )
        )
    return clusters, centred, assignment


def discover(
    items: Sequence[Item],
    stage: Any,
    options: DiscoveryOptions,
    n_clusters: int | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> Discovery:
    """Embed the items with the embedding stage's text encoder and analyse them against its prototypes."""
    if len(items) < 2:  # before loading anything heavy
        raise DiscoveryError(f"discover needs at least 2 items with text to cluster, got {len(items)}")
    vectors = stage.text.encode([i.text for i in items])
    clusters, centred, assignment = analyse(
        items, vectors, stage.text_prototypes, stage.taxonomy.names, options, n_clusters
    )
    return Discovery(
        clusters=clusters,
        options=options,
        skipped=list(skipped or []),
        taxonomy_version=stage.taxonomy.version,
        vectors=centred,
        assignment=assignment,
    )


# -- output ----------------------------------------------------------------------------------------
def render_text(discovery: Discovery, limit: int = 30) -> str:
    opts = discovery.options
    large = [c for c in discovery.clusters if c.size >= opts.min_size]
    lines = [
        f"{sum(c.size for c in discovery.clusters)} items, {len(discovery.clusters)} clusters "
        f"({len(large)} of {opts.min_size}+ items), {len(discovery.candidates)} candidate new "
        f"categor{'y' if len(discovery.candidates) == 1 else 'ies'} (similarity below {opts.new_below})",
    ]
    if discovery.skipped:
        lines.append(f"skipped {len(discovery.skipped)} item(s) with no text to embed")
    lines.append(f"{'id':>4} {'size':>5}  {'new':<3}  {'nearest':<12} {'sim':>6}  terms")
    for c in large[:limit]:
        lines.append(
            f"{c.id:>4} {c.size:>5}  {'yes' if c.candidate_new else '':<3}  {c.nearest_category:<12} "
            f"{c.similarity:>6.3f}  {', '.join(c.terms)}"
        )
    if len(large) > limit:
        lines.append(f"... {len(large) - limit} more (--json lists every cluster)")
    return "\n".join(lines)


def _plot(discovery: Discovery, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    assert discovery.vectors is not None
    xy = PCA(n_components=2, random_state=0).fit_transform(discovery.vectors)
    assign = np.asarray(discovery.assignment)
    opts = discovery.options
    fig, ax = plt.subplots(figsize=(11, 8), dpi=100)
    cmap = plt.get_cmap("tab20")
    small = np.array([discovery.clusters[a].size < opts.min_size for a in assign])
    ax.scatter(xy[small, 0], xy[small, 1], s=10, c="#bbbbbb", label=f"clusters under {opts.min_size} items")
    # Label the candidates and the largest other clusters; more labels would cover the map.
    large = [c for c in discovery.clusters if c.size >= opts.min_size]
    by_size = sorted(large, key=lambda c: (-c.size, c.id))
    labelled = {c.id for c in [c for c in by_size if c.candidate_new][:10]}
    labelled |= {c.id for c in [c for c in by_size if not c.candidate_new][:8]}
    for c in discovery.clusters:
        if c.size < opts.min_size:
            continue
        pts = xy[assign == c.id]
        colour = cmap(c.id % 20)
        ax.scatter(pts[:, 0], pts[:, 1], s=40 if c.candidate_new else 16, color=colour,
                   edgecolors="red" if c.candidate_new else "none", linewidths=1.5,
                   marker="*" if c.candidate_new else "o")
        if c.id in labelled:
            cx, cy = pts.mean(axis=0)
            ax.annotate(f"#{c.id} {' '.join(c.terms[:3])}", (cx, cy), fontsize=8,
                        color="red" if c.candidate_new else "black",
                        fontweight="bold" if c.candidate_new else "normal")
    ax.scatter([], [], marker="*", s=60, color="white", edgecolors="red", label="candidate new category")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(f"Clusters of {len(assign)} items (PCA of mean-centred MiniLM vectors)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def write_report(discovery: Discovery, out_dir: Path) -> dict[str, Path]:
    """discovery.json, map.png (the 2-D map), index.md and index.html in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / name for k, name in
             (("json", "discovery.json"), ("png", "map.png"), ("md", "index.md"), ("html", "index.html"))}
    public = discovery.to_public()
    paths["json"].write_text(json.dumps(public, indent=2, ensure_ascii=False), encoding="utf-8")
    _plot(discovery, paths["png"])
    opts = discovery.options
    rows = [c for c in discovery.clusters if c.size >= opts.min_size]
    head = (f"{public['items']} items, {len(discovery.clusters)} clusters, {len(discovery.candidates)} "
            f"candidate new categories (similarity to the nearest category below {opts.new_below}, "
            f"{opts.min_size}+ items). Clusters under {opts.min_size} items: discovery.json.")
    md = ["# Discovery", "", head, "", "![map](map.png)", "",
          "| id | size | candidate | nearest category | similarity | terms | first members |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    cells = []
    for c in rows:
        cell = [str(c.id), str(c.size), "yes" if c.candidate_new else "", c.nearest_category,
                f"{c.similarity:.3f}", ", ".join(c.terms), ", ".join(c.members[:5])]
        cells.append(cell)
        md.append("| " + " | ".join(v.replace("|", "\\|") for v in cell) + " |")
    paths["md"].write_text("\n".join(md) + "\n", encoding="utf-8")
    esc = html.escape
    body = "".join(
        "<tr" + (' class="new"' if cell[2] else "") + ">" + "".join(f"<td>{esc(v)}</td>" for v in cell)
        + "</tr>" for cell in cells
    )
    paths["html"].write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>gifcat discovery</title>'
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:3px 6px}"
        "table{border-collapse:collapse}tr.new{background:#fde2e2}</style></head><body>"
        f"<h1>Discovery</h1><p>{esc(head)}</p><img src=\"map.png\" alt=\"cluster map\" width=\"900\">"
        "<table><tr><th>id</th><th>size</th><th>candidate</th><th>nearest category</th><th>similarity</th>"
        f"<th>terms</th><th>first members</th></tr>{body}</table></body></html>",
        encoding="utf-8",
    )
    return paths
