"""MiniLM text encoder on the real int8 ONNX graph: unit vectors, padding-invariant, order kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gifcat.adapters.embeddings.text import TextEncoder


@pytest.fixture(scope="module")
def encoder(minilm_root: Path) -> TextEncoder:
    d = minilm_root / "minilm"
    return TextEncoder(d / "model.onnx", d / "tokenizer.json", threads=1)


def test_unit_norm(encoder: TextEncoder) -> None:
    vecs = encoder.encode(["a puppy", "Happy birthday to you!", "x"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_padding_invariance(encoder: TextEncoder) -> None:
    short = "cat falls off the sofa"
    alone = encoder.encode_one(short)
    longer = [
        "a much longer description of a dog who runs across the whole park chasing a red ball " * 3,
        "medium length text about cake",
    ]
    in_batch = encoder.encode([longer[0], short, longer[1]])
    np.testing.assert_allclose(in_batch[1], alone, atol=1e-5)


def test_order_is_kept_when_batches_are_sorted_by_length(encoder: TextEncoder) -> None:
    texts = ["zzz " * 30, "pizza", "a kitten sleeping in a basket", "goal!"]
    batch = encoder.encode(texts, batch_size=2)
    for text, vec in zip(texts, batch, strict=True):
        np.testing.assert_allclose(vec, encoder.encode_one(text), atol=1e-5)


def test_tokenizer_truncates_without_fixed_padding(encoder: TextEncoder) -> None:
    assert len(encoder.tokenizer.encode("hi").ids) == 3  # [CLS] hi [SEP], not padded to 128
    assert len(encoder.tokenizer.encode("word " * 1000).ids) == 128
    assert np.isfinite(encoder.encode_one("word " * 1000)).all()


def test_semantics_sanity(encoder: TextEncoder) -> None:
    a, b, c = encoder.encode(["a cute puppy", "an adorable little dog", "stock market report"])
    assert a @ b > a @ c + 0.2


def test_empty_input(encoder: TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)
