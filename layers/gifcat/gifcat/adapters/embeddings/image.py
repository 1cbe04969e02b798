"""CLIP image and text towers as two ONNX graphs (exported by scripts/export_clip.py).

image.onnx: pixel_values (N,3,S,S) float32 -> image_embeds (N,D), already L2-normalised.
text.onnx: input_ids, attention_mask (N,T) int64 -> text_embeds (N,D), already L2-normalised.
config.json: image_size, mean, std, max_text_tokens (77 for OpenAI CLIP).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

from gifcat.adapters.embeddings.artefacts import ArtefactError, ModelFiles
from gifcat.adapters.embeddings.frames import CLIP_MEAN, CLIP_STD, clip_preprocess, sample_frames
from gifcat.adapters.embeddings.text import l2_normalise, session_options
from gifcat.domain.ports import FrameLimits, GifEmbedding


class ClipEncoder:
    """Both CLIP towers, loaded once. Text is encoded at start-up (prototypes); images per item, each
    GIF decoded within `limits` (the domain's ImageEncoder port)."""

    def __init__(
        self,
        files: ModelFiles,
        threads: int | str = "auto",
        image_model: str = "image.onnx",
        limits: FrameLimits | None = None,
        spin: bool = False,
    ) -> None:
        self.files = files
        self.limits = limits or FrameLimits()
        if image_model not in files.manifest["files"]:
            raise ArtefactError(
                f"{files.directory}: no {image_model} (stages.embedding.image_model); export it with "
                "scripts/export_clip.py, which writes image.onnx and image.int8.onnx"
            )
        self.image_model = image_model
        config: dict[str, Any] = json.loads(files.path("config.json").read_text(encoding="utf-8"))
        self.image_size = int(config.get("image_size", 224))
        self.mean = tuple(config.get("mean", CLIP_MEAN))
        self.std = tuple(config.get("std", CLIP_STD))
        self.max_text_tokens = int(config.get("max_text_tokens", 77))
        opts = session_options(threads, spin)
        providers = ["CPUExecutionProvider"]
        self.image_session = ort.InferenceSession(str(files.path(image_model)), opts, providers=providers)
        self.text_session = ort.InferenceSession(str(files.path("text.onnx")), opts, providers=providers)
        self.tokenizer = Tokenizer.from_file(str(files.path("tokenizer.json")))
        self.tokenizer.enable_truncation(max_length=self.max_text_tokens)
        self.tokenizer.no_padding()
        # Pad with the tokenizer's own pad token; CLIP pools at the first EOS, so padding never counts.
        pad = config.get("pad_token", "<|endoftext|>")
        self._pad_id = self.tokenizer.token_to_id(pad) or 0

    @property
    def identity(self) -> str:
        return self.files.identity_of(self.image_model)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), longest), self._pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        (emb,) = self.text_session.run(None, {"input_ids": ids, "attention_mask": mask})
        return l2_normalise(emb)

    def encode_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        (emb,) = self.image_session.run(None, {"pixel_values": pixel_values})
        return l2_normalise(emb)

    def encode_frames(self, frames: Sequence[Image.Image]) -> np.ndarray:
        """One vector for a GIF: its frames in one batch, mean-pooled, re-normalised."""
        pixels = clip_preprocess(frames, self.image_size, self.mean, self.std)
        return l2_normalise(self.encode_pixels(pixels).mean(axis=0))

    def encode_gif(self, gif: bytes, frames: int) -> GifEmbedding:
        """Up to `frames` frames sampled from the GIF's decodable prefix, as one vector."""
        sampled = sample_frames(gif, frames, self.limits)
        return GifEmbedding(
            vector=self.encode_frames(sampled.frames),
            frames=len(sampled.frames),
            considered=sampled.considered,
            found=sampled.info.n_frames,
            capped=sampled.info.capped,
            truncated=sampled.info.truncated,
        )
