"""GIF decoding and CLIP preprocessing: real Pillow decoding of hostile and odd inputs, bounded work."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import GifImagePlugin, Image

from gifcat.adapters.embeddings.frames import (
    CLIP_MEAN,
    CLIP_STD,
    FrameLimits,
    GifDecodeError,
    clip_preprocess,
    sample_frames,
    sample_indices,
    scan_gif,
    to_rgb,
)
from tests.unit.embeddings.gif_factory import big_frames_gif, colour_frames, pillow_gif, raw_gif


def test_sample_indices_spread_and_edges() -> None:
    assert sample_indices(1, 4) == [0]
    assert sample_indices(3, 4) == [0, 1, 2]
    assert sample_indices(100, 4) == [12, 37, 62, 87]
    assert sample_indices(0, 4) == []
    assert all(len(sample_indices(n, 4)) == 4 for n in range(4, 50))


def test_one_frame_gif() -> None:
    out = sample_frames(pillow_gif(colour_frames(1)), k=4)
    assert out.indices == [0] and len(out.frames) == 1
    assert out.frames[0].mode == "RGB" and out.frames[0].size == (40, 30)


def test_multi_frame_gif_samples_k_distinct_frames() -> None:
    out = sample_frames(pillow_gif(colour_frames(12)), k=4)
    assert out.info.n_frames == 12 and out.indices == [1, 4, 7, 10]
    colours = {f.getpixel((5, 5)) for f in out.frames}
    assert len(colours) == 4


def test_five_thousand_frames_decode_a_bounded_prefix() -> None:
    # The work is bounded by construction: counted without decoding, then at most 300 frames decoded.
    data = raw_gif(32, 32, frames=5000)
    out = sample_frames(data, k=4, limits=FrameLimits(max_frames_decoded=300))
    assert out.info.n_frames == 5000 and out.considered == 300
    assert len(out.frames) == 4 and max(out.indices) < 300


def test_frame_scan_is_capped() -> None:
    info = scan_gif(raw_gif(frames=500), FrameLimits(max_frames_scanned=100))
    assert info.n_frames == 100 and info.capped


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1), (7, 13), (641, 359)])
def test_odd_sizes_preprocess_to_clip_shape(size: tuple[int, int]) -> None:
    out = sample_frames(pillow_gif(colour_frames(2, size)), k=4)
    pixels = clip_preprocess(out.frames)
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == np.float32
    assert np.isfinite(pixels).all()


def test_palette_with_transparency_is_composited_on_background() -> None:
    frame = Image.new("P", (20, 20), 0)
    frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    frame.paste(1, (0, 0, 10, 20))  # left half index 1 (blue), right half index 0 (red) = transparent
    data = pillow_gif([frame], transparency=0)
    (rgb,) = sample_frames(data, k=1, background=(255, 255, 255)).frames
    assert rgb.mode == "RGB"
    assert rgb.getpixel((2, 10)) == (0, 0, 255)
    assert rgb.getpixel((15, 10)) == (255, 255, 255)


def test_rgba_and_la_frames_become_rgb() -> None:
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert to_rgb(rgba, (1, 2, 3)).getpixel((0, 0)) == (1, 2, 3)
    assert to_rgb(Image.new("LA", (4, 4), (100, 255))).getpixel((0, 0)) == (100, 100, 100)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_gif"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_gif"),
        (b"GIF89a" + bytes(range(200)), "corrupt"),  # declares a canvas, then garbage LZW
        (raw_gif(frames=0), "no_frames"),
        (raw_gif(frames=0, trailer=False), "no_frames"),
        (raw_gif(60000, 60000, frames=1), "too_large"),
        (raw_gif(16, 16, frames=1, frame_size=(50000, 50000)), "too_large"),
        (raw_gif(0, 10, frames=1), "corrupt"),
    ],
)
def test_bad_gifs_raise_a_clear_error(data: bytes, reason: str) -> None:
    with pytest.raises(GifDecodeError) as err:
        sample_frames(data, k=4)
    # Garbage after a header may fail as undecodable or as frameless: both are clear refusals.
    allowed = {reason, "no_frames"} if reason == "corrupt" else {reason}
    assert err.value.reason in allowed
    assert str(err.value)


def test_random_bytes_after_a_valid_header_never_crash() -> None:
    rng = np.random.default_rng(0)
    good = pillow_gif(colour_frames(3))
    for _ in range(50):
        data = bytearray(good)
        for pos in rng.integers(13, len(data), size=8):
            data[pos] = int(rng.integers(0, 256))
        try:
            out = sample_frames(bytes(data), k=4)
        except GifDecodeError:
            continue
        assert out.frames and all(f.mode == "RGB" for f in out.frames)


def test_truncated_gif_keeps_complete_frames() -> None:
    data = pillow_gif(colour_frames(6, (64, 64)))
    out = sample_frames(data[: int(len(data) * 0.7)], k=4)
    assert out.info.truncated and 1 <= len(out.frames) <= 4


def test_byte_limit() -> None:
    with pytest.raises(GifDecodeError) as err:
        sample_frames(raw_gif(frames=10), limits=FrameLimits(max_bytes=50))
    assert err.value.reason == "too_large"


def test_clip_preprocess_values_match_mean_std() -> None:
    img = Image.new("RGB", (300, 200), (255, 128, 0))
    pixels = clip_preprocess([img])
    expected = (np.array([255, 128, 0]) / 255.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(pixels[0, :, 100, 100], expected, rtol=1e-5)


def test_clip_preprocess_equals_resize_then_centre_crop() -> None:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8))
    ours = clip_preprocess([img])[0]
    # The textbook path: shortest side to 224, then the centre 224x224.
    resized = img.resize((round(320 * 224 / 180), 224), Image.Resampling.BICUBIC)
    left = (resized.width - 224) // 2
    ref = np.asarray(resized.crop((left, 0, left + 224, 224)), dtype=np.float32).transpose(2, 0, 1) / 255.0
    ref = (ref - np.array(CLIP_MEAN, dtype=np.float32)[:, None, None]) / np.array(CLIP_STD, dtype=np.float32)[
        :, None, None
    ]
    assert np.abs(ours - ref).mean() < 0.05  # same picture up to half-pixel crop rounding


def test_extreme_aspect_ratio_preprocess_never_blows_up(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def spy(self: Image.Image, size: tuple[int, int], *args: object, **kwargs: object) -> Image.Image:
        sizes.append(tuple(size))
        return resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    pixels = clip_preprocess([Image.new("RGB", (4000, 1), (9, 9, 9))])
    assert pixels.shape == (1, 3, 224, 224)
    assert sizes == [(224, 224)]  # no 896,000 x 224 intermediate


@pytest.fixture
def decoded_pixels(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Canvas pixels of every GIF frame Pillow finishes decoding: the work a GIF costs, counted."""
    seen: list[int] = []
    load_end = GifImagePlugin.GifImageFile.load_end

    def spy(self: GifImagePlugin.GifImageFile) -> None:
        load_end(self)
        seen.append(self.size[0] * self.size[1])

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "load_end", spy)
    return seen


def test_frames_larger_than_the_screen_are_budgeted_by_their_own_size(decoded_pixels: list[int]) -> None:
    # A 1x1 screen with 300 frames of 1024x1024 (600 KB): the screen says 300 frames are cheap,
    # the frame rectangles say each costs a million pixels. The budget must follow the rectangles
    # (before: all 300 considered, frames up to 262 decoded).
    data = big_frames_gif(screen=(1, 1), frame=(1024, 1024), frames=300)
    limits = FrameLimits(max_decode_pixels=8_000_000)
    out = sample_frames(data, k=4, limits=limits)
    assert out.info.n_frames == 300
    assert out.considered == 7  # 7 frames of 1024x1024 fit in 8M pixels
    assert len(out.frames) == 4 and max(out.indices) < out.considered
    assert decoded_pixels and sum(decoded_pixels) <= limits.max_decode_pixels


def test_the_reported_bomb_is_budgeted_to_a_few_frames() -> None:
    # The reported upload: 4 MB, a 1x1 screen and 300 frames of 4096x4096 (52 s and 473 MB to sample).
    # The scan alone decides how much will be decoded; the test above shows decoding keeps to it.
    data = big_frames_gif(screen=(1, 1), frame=(4096, 4096), frames=300)
    info = scan_gif(data)
    assert info.n_frames == 300
    assert info.affordable == 3 and info.decode_pixels == 3 * 4096 * 4096 <= FrameLimits().max_decode_pixels


def test_a_first_frame_over_the_decode_budget_is_refused(decoded_pixels: list[int]) -> None:
    data = big_frames_gif(screen=(1, 1), frame=(2048, 2048), frames=2)
    with pytest.raises(GifDecodeError, match="decode budget") as err:
        sample_frames(data, k=4, limits=FrameLimits(max_decode_pixels=1_000_000))
    assert err.value.reason == "too_large"
    assert decoded_pixels == []  # refused before Pillow decoded anything


def test_frames_that_grow_the_canvas_are_checked_against_the_canvas_limit() -> None:
    # Each rectangle alone is small, but Pillow grows the canvas to cover screen and frame: 60000x60000.
    data = raw_gif(60000, 1, frames=1, frame_size=(1, 60000))
    with pytest.raises(GifDecodeError, match="60000x60000") as err:
        scan_gif(data)
    assert err.value.reason == "too_large"


def test_frame_offsets_count_towards_the_canvas() -> None:
    data = big_frames_gif(screen=(16, 16), frame=(16, 16), frames=1, offset=(5000, 5000))
    with pytest.raises(GifDecodeError, match="5016x5016"):
        scan_gif(data)
