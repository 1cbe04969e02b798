"""GIF makers for the embedding tests: byte-exact raw GIFs and Pillow-made ones."""

from __future__ import annotations

import io
import struct

from PIL import Image

# A 1x1 frame whose LZW data is the classic minimal stream (clear, pixel 0, end): lets tests build GIFs
# with thousands of frames or absurd canvases in microseconds, byte by byte.
_PIXEL = bytes([0x02, 0x02, 0x44, 0x01, 0x00])


def raw_gif(
    width: int = 8,
    height: int = 8,
    frames: int = 1,
    frame_size: tuple[int, int] = (1, 1),
    trailer: bool = True,
) -> bytes:
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    fw, fh = frame_size
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, fw, fh, 0) + _PIXEL
    return header + frame * frames + (b"\x3b" if trailer else b"")


def pillow_gif(frames: list[Image.Image], **save: object) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=len(frames) > 1, append_images=frames[1:], duration=50, **save)
    return buf.getvalue()


def colour_frames(n: int, size: tuple[int, int] = (40, 30)) -> list[Image.Image]:
    return [Image.new("RGB", size, ((i * 60) % 256, (i * 110) % 256, 200)) for i in range(n)]
