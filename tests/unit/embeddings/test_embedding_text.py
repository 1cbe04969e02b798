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


@pytest.mark.parametrize("graph", ["model.onnx", "model.pc.onnx"])  # every graph the build ships
def test_a_texts_vector_does_not_depend_on_what_it_is_encoded_with(minilm_root: Path, graph: str) -> None:
    # The per-channel graph quantises activations per tensor: a vector computed in a batch would move
    # with its batch mates (cosine down to 0.94 on dev), so the memory, built in bulk, and the item,
    # scored alone, would not be comparable.
    d = minilm_root / "minilm"
    encoder = TextEncoder(d / graph, d / "tokenizer.json", threads=1)
    short = "cat falls off the sofa"
    alone = encoder.encode_one(short)
    mates = [
        "a much longer description of a dog who runs across the whole park chasing a red ball " * 3,
        short,
        "medium length text about cake",
        "zzz " * 30,
    ]
    together = encoder.encode(mates)
    np.testing.assert_allclose(together[1], alone, atol=1e-5)
    for text, vec in zip(mates, together, strict=True):  # in order
        np.testing.assert_allclose(vec, encoder.encode_one(text), atol=1e-5)


def test_spinning_threads_are_off_unless_asked_and_change_no_vector(minilm_root: Path) -> None:
    # Busy-waiting threads cost the core whatever else wants it (a Lambda's share of its second vCPU):
    # off by default (stages.embedding.spin); it changes timings only, never a vector.
    d = minilm_root / "minilm"
    quiet = TextEncoder(d / "model.pc.onnx", d / "tokenizer.json", threads=2)
    spinning = TextEncoder(d / "model.pc.onnx", d / "tokenizer.json", threads=2, spin=True)
    entry = "session.intra_op.allow_spinning"
    assert quiet.session.get_session_options().get_session_config_entry(entry) == "0"
    assert spinning.session.get_session_options().get_session_config_entry(entry) == "1"
    texts = ["cat falls off the sofa", "Happy birthday to you!"]
    np.testing.assert_allclose(quiet.encode(texts), spinning.encode(texts), atol=1e-6)


def test_tokenizer_truncates_without_fixed_padding(encoder: TextEncoder) -> None:
    assert len(encoder.tokenizer.encode("hi").ids) == 3  # [CLS] hi [SEP], not padded to 128
    assert len(encoder.tokenizer.encode("word " * 1000).ids) == 128
    assert np.isfinite(encoder.encode_one("word " * 1000)).all()


def test_semantics_sanity(encoder: TextEncoder) -> None:
    a, b, c = encoder.encode(["a cute puppy", "an adorable little dog", "stock market report"])
    assert a @ b > a @ c + 0.2


def test_empty_input(encoder: TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_another_encoders_width_is_read_from_its_graph(minilm_root: Path, tmp_path: Path) -> None:
    # A larger sentence encoder (scripts/measure_text_encoder.py) runs through the same class: its
    # vectors have the graph's width, not MiniLM's 384. A tiny graph of width 8 stands in for it.
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).normal(size=(30522, 8)).astype(np.float32)  # MiniLM's vocabulary
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"])],
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 8])],
        [numpy_helper.from_array(table, "table")],
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    tiny = TextEncoder(path, minilm_root / "minilm" / "tokenizer.json", threads=1)
    vecs = tiny.encode(["a puppy", "stock market report"])
    assert tiny.dim == 8 and vecs.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    ids = tiny.tokenizer.encode("a puppy").ids  # the mean of the rows its tokens gather, normalised
    expected = table[ids].mean(axis=0)
    np.testing.assert_allclose(vecs[0], expected / np.linalg.norm(expected), atol=1e-5)
