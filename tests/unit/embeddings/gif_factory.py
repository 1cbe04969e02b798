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


def big_frames_gif(
    screen: tuple[int, int] = (1, 1),
    frame: tuple[int, int] = (1024, 1024),
    frames: int = 300,
    offset: tuple[int, int] = (0, 0),
) -> bytes:
    """A small file whose frames are far larger than its logical screen (a decode-time bomb).

    Pillow LZW-encodes one uniform frame of `frame` size (a few KB however large); that image block is
    repeated `frames` times after a header declaring the `screen` size.
    """
    encoded = pillow_gif([Image.new("P", frame, 0)])
    pos = 13 + 3 * (2 << (encoded[10] & 7))  # after the global colour table
    while encoded[pos] == 0x21:  # skip extensions: label, then sub-blocks
        pos += 2
        while encoded[pos]:
            pos += encoded[pos] + 1
        pos += 1
    block = bytearray(encoded[pos:-1])  # the image descriptor and its LZW data, without the trailer
    struct.pack_into("<HH", block, 1, *offset)
    header = encoded[:6] + struct.pack("<HH", *screen) + encoded[10:13 + 3 * (2 << (encoded[10] & 7))]
    return header + bytes(block) * frames + b"\x3b"
