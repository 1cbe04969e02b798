"""GIF bytes -> a few RGB frames -> CLIP pixel tensors, with the work bounded for hostile input.

Untrusted uploads can be decompression bombs (a tiny file declaring a 60000x60000 canvas), can hold
hundreds of thousands of frames, or be truncated. So before Pillow decodes anything we walk the GIF
block structure ourselves (cheap: it only hops over length-prefixed sub-blocks) to learn the canvas,
each frame's rectangle and the frame count, capped. Then only a bounded prefix of frames is decoded
(GIF frames are deltas over earlier ones, so reaching frame i means decoding frames 0..i).

The budget follows the frames, not the logical screen: Pillow grows its canvas to cover any frame
that reaches past the screen (a 1x1 screen with 4096x4096 frames decodes 16.7M pixels per frame), and
composites every frame onto the whole canvas. So frame i costs the canvas area as it stands after
frame i, and the decoded prefix is the longest whose summed cost fits `max_decode_pixels`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from gifcat.domain.ports import FrameLimits, GifDecodeError

if TYPE_CHECKING:  # numpy is for CLIP's tensors only: the LLM step samples frames in a zip Lambda without it
    import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class GifInfo:
    width: int
    height: int
    n_frames: int  # complete frames found (<= max_frames_scanned)
    capped: bool  # the walk stopped at max_frames_scanned
    truncated: bool  # the data ended inside a block (frames after it are unusable)
    affordable: int = 0  # the longest prefix of frames whose decoding fits max_decode_pixels
    decode_pixels: int = 0  # what decoding that prefix costs (canvas pixels summed over its frames)


@dataclass(frozen=True)
class SampledFrames:
    frames: list[Image.Image]  # RGB
    indices: list[int]
    info: GifInfo
    considered: int  # frames sampling chose from (a prefix when the GIF is long or large)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Position after a chain of length-prefixed sub-blocks; -1 when the data ends first."""
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size
    return -1


def scan_gif(data: bytes, limits: FrameLimits = FrameLimits()) -> GifInfo:
    """Walk the GIF's blocks without decoding pixels: canvas, frame count (capped), bomb checks."""
    if len(data) > limits.max_bytes:
        raise GifDecodeError("too_large", f"GIF is {len(data)} bytes, over the {limits.max_bytes} limit")
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise GifDecodeError("not_gif", "not a GIF (no GIF87a/GIF89a signature)")
    width, height = struct.unpack_from("<HH", data, 6)
    if width == 0 or height == 0:
        raise GifDecodeError("corrupt", f"GIF canvas is {width}x{height}")
    if width * height > limits.max_canvas_pixels:
        raise GifDecodeError(
            "too_large", f"GIF canvas {width}x{height} is over the {limits.max_canvas_pixels}-pixel limit"
        )
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    frames, truncated, capped = 0, False, False
    canvas_w, canvas_h = width, height  # Pillow's canvas: the screen, grown to cover every frame so far
    affordable, spent, within_budget = 0, 0, True
    end = len(data)
    while pos < end:
        block = data[pos]
        if block == 0x2C:  # image descriptor
            if pos + 10 > end:
                truncated = True
                break
            left, top, fw, fh, fflags = struct.unpack_from("<HHHHB", data, pos + 1)
            canvas_w, canvas_h = max(canvas_w, left + fw), max(canvas_h, top + fh)
            if canvas_w * canvas_h > limits.max_canvas_pixels:
                raise GifDecodeError(
                    "too_large",
                    f"frame {frames} rectangle {fw}x{fh}+{left}+{top} grows the canvas to "
                    f"{canvas_w}x{canvas_h}, over the {limits.max_canvas_pixels}-pixel limit",
                )
            pos += 10 + (3 * (2 << (fflags & 7)) if fflags & 0x80 else 0) + 1  # + LZW code size byte
            pos = _skip_sub_blocks(data, pos) if pos <= end else -1
            if pos < 0:
                truncated = True
                break
            # Decoding frame i composites it onto the whole canvas: that is its cost.
            if within_budget and spent + canvas_w * canvas_h <= limits.max_decode_pixels:
                spent += canvas_w * canvas_h
                affordable += 1
            else:
                within_budget = False
            frames += 1
            if frames >= limits.max_frames_scanned:
                capped = True
                break
        elif block == 0x21:  # extension: label byte, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
            if pos < 0:
                truncated = True
                break
        else:  # 0x3B trailer, or junk after the last block: decoders stop here too
            break
    return GifInfo(width, height, frames, capped, truncated, affordable, spent)


def sample_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over n frames, taken at segment centres (skips the often-blank frame 0
    when there are many frames, but a 1-frame GIF still gives [0])."""
    if n <= 0 or k <= 0:
        return []
    if n <= k:
        return list(range(n))
    return sorted({min(n - 1, int((i + 0.5) * n / k)) for i in range(k)})


def to_rgb(frame: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode (P with transparency, LA, RGBA...) -> RGB, transparent pixels on `background`."""
    has_alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
    if not has_alpha:
        return frame.convert("RGB")
    rgba = frame.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def sample_frames(
    data: bytes,
    k: int = 4,
    limits: FrameLimits = FrameLimits(),
    background: tuple[int, int, int] = (255, 255, 255),
) -> SampledFrames:
    """Up to k RGB frames spread over the GIF (or its bounded prefix). Raises GifDecodeError only."""
    info = scan_gif(data, limits)
    if info.n_frames == 0:
        what = "truncated before its first frame" if info.truncated else "has no frames"
        raise GifDecodeError("no_frames", f"GIF {what}")
    if info.affordable == 0:
        raise GifDecodeError(
            "too_large",
            f"decoding the first frame alone is over the decode budget of {limits.max_decode_pixels} pixels",
        )
    considered = min(info.affordable, limits.max_frames_decoded)
    wanted = sample_indices(considered, k)
    frames: list[Image.Image] = []
    got: list[int] = []
    # LOAD_TRUNCATED_IMAGES is process-global in Pillow; we never set it, so a damaged frame raises.
    try:
        with Image.open(io.BytesIO(data), formats=["GIF"]) as im:
            for index in wanted:
                im.seek(index)
                im.load()
                frames.append(to_rgb(im, background))
                got.append(index)
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as exc:
        if not frames:
            raise GifDecodeError("corrupt", f"GIF could not be decoded: {exc}") from exc
        # Keep the frames decoded before the damage: a truncated upload still shows something.
    return SampledFrames(frames, got, info, considered)


def clip_preprocess(
    frames: Sequence[Image.Image],
    size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> np.ndarray:
    """CLIP's preprocessing: shortest side to `size` (bicubic), centre crop, [0,1], mean/std; NCHW f32.

    The crop box is computed in source coordinates and Pillow resizes only that box: identical in
    effect to resize-then-crop, but a 1x5000 frame never becomes a 224x1,120,000 intermediate.
    """
    import numpy as np

    batch = np.empty((len(frames), 3, size, size), dtype=np.float32)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    for i, frame in enumerate(frames):
        w, h = frame.size
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
        img = frame.convert("RGB").resize((size, size), Image.Resampling.BICUBIC, box=box)
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        batch[i] = (arr - m) / s
    return batch

