"""Sentence embeddings from an ONNX graph: tokenise, run, mean-pool, L2-normalise. gifcat ships
all-MiniLM-L6-v2; any encoder of the same shape (a `last_hidden_state` output, mean pooling) runs too,
which is how scripts/measure_text_encoder.py measures a larger one in the stage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from gifcat.adapters.cpus import thread_count

MAX_TOKENS = 128  # what MiniLM was trained with; longer text is truncated
_LETTERS = re.compile(r"[^\W\d_]+")  # a word, for `known_words`: letters of any script


def session_options(threads: int | str, spin: bool = False) -> ort.SessionOptions:
    """Options set on purpose rather than left to defaults that change between onnxruntime releases.

    `threads`: intra-op threads, or "auto" for one per CPU the process can keep busy (gifcat.adapters.cpus:
    a Lambda function's memory or a CPU quota buys less than the cores onnxruntime would count).

    `spin`: the intra-op threads busy-wait for work between runs (onnxruntime's default). That buys a
    few percent on cores of their own, and costs the core when anything else wants it: a Lambda above
    1,769 MB has two vCPUs but a share of the second, and on a shared machine a spinning thread holds
    the core that the thread it waits for needs (docs/results/README.md "Speed, memory, cold start")."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = thread_count(threads)  # 0 lets onnxruntime pick (one per core)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.inter_op_num_threads = 1  # one graph at a time: inter-op threads only add contention
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initialisers are noise in Lambda logs
    return opts


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class TextEncoder:
    """A sentence encoder (MiniLM as shipped). Loads its session once; `encode` is then cheap and
    thread-compatible. `dim` is the graph's hidden size (384 for MiniLM)."""

    def __init__(self, model_path: Path, tokenizer_path: Path, threads: int | str = "auto",
                 max_tokens: int = MAX_TOKENS, spin: bool = False) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads every input to 128 tokens: 3-10x the work for short GIF titles.
        # Truncate at 128 and do not pad: each text runs alone (see encode).
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        self.session = ort.InferenceSession(str(model_path), session_options(threads, spin),
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._vocabulary = frozenset(self.tokenizer.get_vocab())
        (output,) = [o for o in self.session.get_outputs() if o.name == "last_hidden_state"]
        self.dim = int(output.shape[-1])

    def _feeds(self, text: str) -> dict[str, np.ndarray]:
        ids = np.asarray([self.tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit rows, in order. Each text runs alone: the per-channel int8
        graph quantises activations over the whole input tensor, so in a batch a text's vector would
        move with its batch mates and their padding (cosine down to 0.94), and the bulk-built memory
        would not match an item scored on its own. Alone, a text also needs no padding."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            feeds = self._feeds(text)
            (hidden,) = self.session.run(["last_hidden_state"], feeds)
            out[row] = l2_normalise(hidden[0].mean(axis=0))
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def known_words(self, text: str) -> list[tuple[str, bool]]:
        normaliser = self.tokenizer.normalizer  # BERT's: lower case, accents stripped, CJK spaced
        read = normaliser.normalize_str(text) if normaliser is not None else text.lower()
        return [(word, word in self._vocabulary) for word in _LETTERS.findall(read)]
