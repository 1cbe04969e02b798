"""What the embedding stage learned from labelled examples, as arrays computed at build time.

- `Memory`: the labelled examples with their MiniLM vectors (the kNN vote and the LLM's few-shot
  examples). Embedding 320 examples at every cold start cost 2.7 s; the artefact ships them embedded.
- `LinearHead`: a multinomial logistic regression over the item's MiniLM vector, trained by
  `gifcat.adapters.training` (scikit-learn at build time); here it is a matrix product and a softmax (numpy).

Both live in one `.npz` file, `<models>/memory/memory.npz`, with the MiniLM identity they were made
with: vectors from another encoder would be compared with the wrong space, so a mismatch fails at load.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

ARTEFACT = "memory/memory.npz"


class MemoryArtefactError(ValueError):
    """A memory artefact that cannot be used with this encoder or taxonomy."""


class ExampleFields(TypedDict):
    """An example's metadata as it was labelled."""

    title: str
    tags: list[str]
    description: str


@dataclass(frozen=True)
class Memory:
    """Labelled examples: ids, the text MiniLM saw, label sets, primaries and unit vectors."""

    ids: list[str]
    texts: list[str]
    labels: list[tuple[str, ...]]
    primaries: list[str]
    vectors: np.ndarray
    # Each example's title, tags and description (None in artefacts made before they were kept). The
    # text alone folds the tags in: `gifcat learn` refits on the fields, where the tag and rule stages
    # can tell which examples they would decide themselves.
    fields: list[ExampleFields] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Iterable[int]) -> Memory:
        idx = list(index)
        return Memory(
            ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            primaries=[self.primaries[i] for i in idx],
            vectors=self.vectors[idx],
            fields=None if self.fields is None else [self.fields[i] for i in idx],
        )

    def restricted_to(self, categories: Collection[str]) -> Memory:
        """The examples as a taxonomy of these categories reads them, as labelled files are read: an
        example keeps the labels it still has, teaches its primary if that is still a category, else the
        first label it kept, and one with none left goes (the bundled memory after a category is
        removed or renamed; its vote once failed every item it reached with a KeyError)."""
        keep = [i for i, labels in enumerate(self.labels) if any(lbl in categories for lbl in labels)]
        if len(keep) == len(self) and all(set(labels) <= set(categories) for labels in self.labels):
            return self
        kept = self.subset(keep)
        labels = [tuple(lbl for lbl in row if lbl in categories) for row in kept.labels]
        primaries = [p if p in categories else row[0] for p, row in zip(kept.primaries, labels, strict=True)]
        return Memory(
            ids=kept.ids, texts=kept.texts, labels=labels, primaries=primaries, vectors=kept.vectors,
            fields=kept.fields,
        )


@dataclass(frozen=True)
class LinearHead:
    """softmax(x @ coef.T + intercept) / temperature over `categories`."""

    categories: list[str]
    coef: np.ndarray  # (categories, dim)
    intercept: np.ndarray  # (categories,)
    temperature: float = 1.0

    def proba(self, vec: np.ndarray) -> np.ndarray:
        logits = (vec @ self.coef.T + self.intercept) / max(self.temperature, 1e-6)
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Learned:
    """The memory and the head, with the encoder identity and the taxonomy version they were made for."""

    memory: Memory
    head: LinearHead | None
    encoder: str
    taxonomy_version: str
    meta: Mapping[str, Any]
    # The taxonomy's prototype phrases and their vectors, so a cold start embeds nothing.
    phrases: list[str] = field(default_factory=list)
    phrase_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "vectors": self.memory.vectors.astype(np.float32),
            "phrase_vectors": self.phrase_vectors.astype(np.float32),
            "records": np.array(json.dumps({
                "ids": self.memory.ids,
                "texts": self.memory.texts,
                "labels": [list(x) for x in self.memory.labels],
                "primaries": self.memory.primaries,
                "fields": self.memory.fields,
                "encoder": self.encoder,
                "taxonomy_version": self.taxonomy_version,
                "meta": dict(self.meta),
                "phrases": self.phrases,
                "head": None if self.head is None else {
                    "categories": self.head.categories, "temperature": self.head.temperature,
                },
            }, ensure_ascii=False)),
        }
        if self.head is not None:
            arrays["coef"] = self.head.coef.astype(np.float32)
            arrays["intercept"] = self.head.intercept.astype(np.float32)
        with path.open("wb") as fh:  # np.savez adds ".npz" to names without it; a handle keeps the name
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: Path, *, encoder: str | None = None) -> Learned:
        with np.load(path, allow_pickle=False) as data:
            doc = json.loads(str(data["records"]))
            vectors = data["vectors"]
            phrase_vectors = data.get("phrase_vectors")
            head = None
            if doc.get("head"):
                head = LinearHead(
                    categories=list(doc["head"]["categories"]),
                    coef=data["coef"],
                    intercept=data["intercept"],
                    temperature=float(doc["head"]["temperature"]),
                )
        if encoder is not None and doc["encoder"] != encoder:
            raise MemoryArtefactError(
                f"{path}: made with encoder {doc['encoder']!r}, this stage encodes with {encoder!r}; "
                "rebuild it (scripts/build_models.py)"
            )
        memory = Memory(
            ids=list(doc["ids"]),
            texts=list(doc["texts"]),
            labels=[tuple(x) for x in doc["labels"]],
            primaries=list(doc["primaries"]),
            vectors=vectors,
            fields=doc.get("fields"),
        )
        learned = cls(memory, head, doc["encoder"], doc["taxonomy_version"], doc.get("meta", {}))
        if phrase_vectors is not None and doc.get("phrases"):
            learned = cls(memory, head, learned.encoder, learned.taxonomy_version, learned.meta,
                          list(doc["phrases"]), phrase_vectors)
        return learned
