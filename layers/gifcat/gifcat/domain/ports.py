"""What the stages need from the models they do not own: the domain's ports.

The embedding stage reads text and GIFs through encoders, the LLM stage asks a chat endpoint; the
adapters implement these on ONNX Runtime and Pillow (gifcat.adapters.embeddings) and on an
OpenAI-compatible client (gifcat.adapters.llm). Tests may implement them with numpy or a script.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the zip functions (triage, escalate) ship without numpy; only the embed image has it
    import numpy as np

# One chat message: {"role": ..., "content": ...}. Content is a string, or a list of content parts
# ({"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": ..., "detail": ...}}).
Message = dict[str, Any]


# -- embeddings ---------------------------------------------------------------------------------------
class TextEncoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, one unit row per text, in order; a text's row does not depend on
        the other texts."""
        ...

    def known_words(self, text: str) -> list[tuple[str, bool]]:
        """The text's words as the encoder reads them (its own normalisation: case, accents), each with
        whether its vocabulary holds the word whole. A word it has to cut into pieces is one it mostly
        cannot read: MiniLM's vocabulary is English."""
        ...


class GifDecodeError(ValueError):
    """The GIF cannot (or may not) be decoded; `reason` is a short code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FrameLimits:
    """How much of an untrusted GIF an image encoder may decode (settings: stages.embedding)."""

    max_bytes: int = 25_000_000  # the upload limit (settings.limits.max_gif_bytes)
    max_canvas_pixels: int = 16_777_216  # 4096x4096; a larger canvas (screen grown by frames) is refused
    max_frames_scanned: int = 20_000  # the block walk stops counting here
    max_frames_decoded: int = 300  # sampling considers only the first N frames...
    max_decode_pixels: int = 60_000_000  # ...and fewer when frames are large (sum of their canvases <= this)


@dataclass(frozen=True)
class GifEmbedding:
    """One vector for a GIF, and what of the GIF it was made from."""

    vector: np.ndarray  # unit vector, in the space of the encoder's encode_texts
    frames: int  # frames embedded
    considered: int  # frames sampling chose from (a prefix when the GIF is long or large)
    found: int  # complete frames found in the GIF (at most the scan's cap)
    capped: bool  # the scan stopped counting frames at its cap
    truncated: bool  # the GIF ended inside a block; only the complete frames were used


class ImageEncoder(Protocol):
    @property
    def identity(self) -> str:
        """Model name and version, e.g. "clip-vit-b32@1a2b3c4d"."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit rows for text prompts, comparable with encode_gif's vectors."""
        ...

    def encode_gif(self, gif: bytes, frames: int) -> GifEmbedding:
        """Up to `frames` frames of the GIF, as one vector. Raises GifDecodeError only."""
        ...


@dataclass(frozen=True)
class FrameImage:
    """One sampled frame, encoded for a chat request (an image content part's data: URL)."""

    mime: str  # "image/jpeg" or "image/png"
    data: bytes
    width: int
    height: int
    index: int  # the frame's index in the GIF

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class FrameImages:
    """Frames sampled from a GIF, downscaled and encoded within a byte bound."""

    images: list[FrameImage]
    considered: int  # frames sampling chose from
    found: int  # complete frames found in the GIF
    side: int  # the longest side the frames were scaled to fit
    notes: list[str] = field(default_factory=list)  # e.g. "fewer frames to fit the byte bound"

    @property
    def total_bytes(self) -> int:
        return sum(len(i.data) for i in self.images)


class FrameImager(Protocol):
    def images(self, gif: bytes) -> FrameImages:
        """A few frames of the GIF as small encoded images. Raises GifDecodeError only."""
        ...


# -- the LLM endpoint ---------------------------------------------------------------------------------
class LlmCallError(RuntimeError):
    """The call failed for good. `reason` is safe to record; `notes` say what was tried."""

    def __init__(self, reason: str, *, attempts: int, notes: list[str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.notes = notes


@dataclass(frozen=True)
class LlmReply:
    content: str | None
    model: str  # as the server reported it
    prompt_tokens: int
    completion_tokens: int
    attempts: int  # HTTP requests made (0 when replayed from the cache)
    cached: bool
    mode: str
    finish_reason: str | None = None
    notes: list[str] = field(default_factory=list)


class ChatClient(Protocol):
    @property
    def model(self) -> str:
        """The model asked for (the reply names the one that answered)."""
        ...

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any],
        *,
        grammar: str | None = None,
        bounded_schema: dict[str, Any] | None = None,
    ) -> LlmReply:
        """One answer held to `schema` (or `grammar`); LlmCallError once the call has failed for good."""
        ...
