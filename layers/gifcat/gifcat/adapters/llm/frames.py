"""Frames of a text-less GIF as small images for an LLM that reads them (the domain's FrameImager).

The embedding stage's sampler picks and decodes the frames, within its bounds for hostile GIFs; here
they are scaled down and encoded (JPEG or PNG) until together they fit a byte bound: smaller first,
down to a floor, then fewer.

Pillow is imported on the first text-less item, not with this module: the escalate function is a zip
Lambda whose cold start should not pay for it on the text path.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from gifcat.domain.ports import FrameImage, FrameImages, FrameLimits, GifDecodeError

if TYPE_CHECKING:
    from PIL import Image

MIME = {"jpeg": "image/jpeg", "png": "image/png"}
SHRINK = 0.75  # each step over the byte bound scales the side by this


class PillowFrameImager:
    def __init__(
        self,
        *,
        frames: int = 3,
        max_side: int = 256,
        min_side: int = 96,
        max_bytes: int = 300_000,
        fmt: str = "jpeg",
        quality: int = 85,
        limits: FrameLimits | None = None,
    ) -> None:
        if fmt not in MIME:
            raise ValueError(f"image format must be one of {sorted(MIME)}, got {fmt!r}")
        self.frames = frames
        self.max_side = max_side
        self.min_side = min(min_side, max_side)
        self.max_bytes = max_bytes
        self.fmt = fmt
        self.quality = quality
        self.limits = limits or FrameLimits()

    def images(self, gif: bytes) -> FrameImages:
        from gifcat.adapters.embeddings.frames import sample_frames, sample_indices

        sampled = sample_frames(gif, self.frames, self.limits)
        frames = list(zip(sampled.indices, sampled.frames, strict=True))
        # Never scale up: a small GIF is sent at its own size.
        side = min(self.max_side, max(max(image.size) for _, image in frames))
        floor = min(self.min_side, side)
        notes: list[str] = []
        while True:
            encoded = [self._encode(image, side, index) for index, image in frames]
            total = sum(len(e.data) for e in encoded)
            if total <= self.max_bytes:
                break
            if side > floor:
                side = max(floor, int(side * SHRINK))
            elif len(frames) > 1:
                keep = sample_indices(len(frames), len(frames) - 1)
                frames = [frames[i] for i in keep]
            else:
                raise GifDecodeError(
                    "too_large",
                    f"one frame at {side}px encodes to {total} bytes, over image_max_bytes {self.max_bytes}",
                )
        if side < min(self.max_side, max(max(image.size) for _, image in frames)):
            notes.append(f"llm: frames scaled to {side}px to fit image_max_bytes {self.max_bytes}")
        if len(encoded) < len(sampled.frames):
            notes.append(f"llm: {len(encoded)} of {len(sampled.frames)} frames sent to fit image_max_bytes")
        return FrameImages(
            images=encoded,
            considered=sampled.considered,
            found=sampled.info.n_frames,
            side=side,
            notes=notes,
        )

    def _encode(self, frame: Image.Image, side: int, index: int) -> FrameImage:
        from PIL import Image

        image = frame.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)  # keeps the aspect, never enlarges
        buffer = io.BytesIO()
        if self.fmt == "jpeg":
            image.convert("RGB").save(buffer, format="JPEG", quality=self.quality, optimize=True)
        else:
            image.save(buffer, format="PNG", optimize=True)
        return FrameImage(
            mime=MIME[self.fmt], data=buffer.getvalue(), width=image.width, height=image.height, index=index
        )
