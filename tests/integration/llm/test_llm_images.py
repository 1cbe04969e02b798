"""GIFs with no text: the LLM stage sends sampled frames as image parts to an endpoint that reads images,
and skips them when it reads none. Real Pillow on real GIF bytes, the real openai client over HTTP to the
scripted server, which checks the image parts it receives."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from gifcat.adapters.llm.factory import build_llm_stage
from gifcat.config import ConfigError
from gifcat.domain.model import Classification, GifItem, GifMetadata, Status
from gifcat.domain.stages.llm import LlmStage
from tests.support.fake_openai import FakeOpenAI, RecordedRequest, answer, completion, data_url
from tests.support.llm import SMALL, item, settings_with

KEY = "sk-test-key-0123456789"
NOTHING = Classification(status=Status.PENDING)
# Five solid frames, 320x200: the sampler takes three of them (0, 2 and 4), each scaled to fit 256 px.
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30), (30, 220, 220)]


def gif_of(frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buffer.getvalue()


def solid_gif(size: tuple[int, int] = (320, 200)) -> bytes:
    return gif_of([Image.new("RGB", size, colour) for colour in COLOURS])


def noisy_gif(frames: int = 3, size: tuple[int, int] = (256, 256), seed: int = 7) -> bytes:
    """Frames of random pixels: JPEG cannot compress them, so the byte bound bites."""
    rng = random.Random(seed)
    return gif_of([Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)) for _ in range(frames)])


def textless(gif: bytes | None) -> GifItem:
    return GifItem(id="u-notext", metadata=GifMetadata(), gif=gif)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(model="gpt-4o-mini") as fake:
        yield fake


def make_stage(server: FakeOpenAI, model: str = "gpt-4o-mini", **knobs: Any) -> LlmStage:
    settings = settings_with(**{"max_attempts": 2, **knobs})
    return build_llm_stage(settings, SMALL, base_url=server.base_url, api_key=KEY, model=model)


def decoded(request: RecordedRequest) -> list[tuple[str, bytes, Image.Image]]:
    out = []
    for part in request.image_parts:
        mime, data = data_url(part["image_url"]["url"])
        image = Image.open(io.BytesIO(data))
        image.load()
        out.append((mime, data, image))
    return out


def test_textless_gif_is_read_from_its_frames(server: FakeOpenAI) -> None:
    # gpt-4o-mini bills a low-detail frame as 2,833 prompt tokens: the cost is what usage reports.
    server.push(answer("cute", ["cute"], 0.7, "a puppy in every frame", model="gpt-4o-mini",
                       prompt_tokens=9000, completion_tokens=25))  # fmt: skip
    out = make_stage(server).score(textless(solid_gif()), NOTHING)

    assert out.error is None and out.skipped is None
    assert [c.category for c in out.candidates] == ["cute"]
    assert out.candidates[0].evidence == [
        "llm: a puppy in every frame",
        "llm: read from 3 frames of the GIF (no text)",
    ]
    (request,) = server.chat_requests
    parts = request.image_parts
    assert len(parts) == 3 and all(p["image_url"]["detail"] == "low" for p in parts)
    images = decoded(request)
    assert {mime for mime, _, _ in images} == {"image/jpeg"}
    assert all(image.format == "JPEG" and image.size == (256, 160) for _, _, image in images)
    # The sampler's frames, in order: 0, 2 and 4 of five (JPEG moves a solid colour by a few levels).
    for (_, _, image), expected in zip(images, [COLOURS[0], COLOURS[2], COLOURS[4]], strict=True):
        got = image.convert("RGB").getpixel((128, 80))
        assert all(abs(g - e) <= 8 for g, e in zip(got, expected, strict=True)), (got, expected)
    sent = sum(len(data) for _, data, _ in images)
    assert sent <= 300_000
    assert out.usage["frames"] == 3 and out.usage["frame_bytes"] == sent
    assert out.usage["prompt_tokens"] == 9000
    assert out.cost_usd == pytest.approx((9000 * 0.15 + 25 * 0.60) / 1e6)
    # The text beside the frames says there is no text and asks for one of the categories.
    user = request.messages[-1]["content"]
    assert [p["type"] for p in user] == ["text", "image_url", "image_url", "image_url"]
    assert "no title, tags or description" in user[0]["text"] and "3 image(s)" in user[0]["text"]
    assert "<gif_metadata>" not in user[0]["text"]
    assert request.messages[0]["role"] == "system" and isinstance(request.messages[0]["content"], str)
    schema = request.response_format["json_schema"]["schema"]
    assert schema["properties"]["primary"]["enum"] == SMALL.names  # parsed and held as the text path's


def test_the_byte_bound_shrinks_the_frames_then_sends_fewer(server: FakeOpenAI) -> None:
    bound = 12_000
    out = make_stage(server, image_max_bytes=bound).score(textless(noisy_gif()), NOTHING)
    assert out.error is None
    (request,) = server.chat_requests
    images = decoded(request)
    sent = sum(len(data) for _, data, _ in images)
    assert 0 < sent <= bound and out.usage["frame_bytes"] == sent
    # Shrunk to the floor (96 px) before any frame was dropped; noise at 96 px still needs fewer frames.
    assert all(max(image.size) == 96 for _, _, image in images)
    assert len(images) < 3 and out.usage["frames"] == len(images)
    assert "llm: frames scaled to 96px to fit image_max_bytes 12000" in out.notes
    assert f"llm: {len(images)} of 3 frames sent to fit image_max_bytes" in out.notes


def test_one_frame_over_the_bound_fails_with_a_reason_and_no_call(server: FakeOpenAI) -> None:
    out = make_stage(server, image_max_bytes=1_000).score(textless(noisy_gif(1)), NOTHING)
    assert out.error is not None
    assert out.error.startswith("llm: no text, and the frames cannot be read: too_large")
    assert "over image_max_bytes 1000" in out.error
    assert not server.chat_requests and not out.candidates


def test_png_frames_and_a_small_gif_kept_at_its_size(server: FakeOpenAI) -> None:
    out = make_stage(server, image_format="png").score(textless(solid_gif((40, 30))), NOTHING)
    assert out.error is None
    images = decoded(server.chat_requests[0])
    got = [(mime, image.format, image.size) for mime, _, image in images]
    assert got == [("image/png", "PNG", (40, 30))] * 3


def test_an_undecodable_gif_fails_with_the_decoder_reason(server: FakeOpenAI) -> None:
    no_frames = b"GIF89a\x08\x00\x08\x00\x00\x00\x00;"
    out = make_stage(server).score(textless(no_frames), NOTHING)
    assert out.error == "llm: no text, and the frames cannot be read: no_frames: GIF has no frames"
    assert not server.chat_requests


def test_textless_without_gif_bytes_fails_clearly(server: FakeOpenAI) -> None:
    out = make_stage(server).score(textless(None), NOTHING)
    assert out.error == "llm: no title, tags or description, and no GIF bytes to read frames from"
    assert not server.chat_requests


def test_the_text_path_sends_no_image_parts(server: FakeOpenAI) -> None:
    stage = make_stage(server)
    pizza = item("Pizza GIF", ("pizza",), "a cheese pull").model_copy(update={"gif": solid_gif()})
    assert not stage.wants_gif(pizza)
    out = stage.score(pizza, NOTHING)
    assert out.error is None and "frames" not in out.usage
    (request,) = server.chat_requests
    assert request.image_parts == []
    assert all(isinstance(m["content"], str) for m in request.messages)


@pytest.mark.parametrize(
    ("model", "images"),
    [("fake-gpt-1", "auto"), ("gpt-4o-mini", False), ("gemma-3-270m-q4_k_m", "auto")],
)
def test_images_off_skips_a_textless_gif_without_a_call(server: FakeOpenAI, model: str, images: Any) -> None:
    stage = make_stage(server, model=model, images=images)
    assert not stage.wants_gif(textless(None))
    out = stage.score(textless(solid_gif()), NOTHING)
    assert out.skipped == "no text and no image model"
    assert out.error is None and not out.candidates and not server.chat_requests


def test_images_forced_on_for_an_unknown_model(server: FakeOpenAI) -> None:
    stage = make_stage(server, model="fake-gpt-1", images=True)
    assert stage.wants_gif(textless(None))
    assert stage.score(textless(solid_gif()), NOTHING).error is None
    assert len(server.chat_requests[0].image_parts) == 3


def test_a_repair_resends_the_frames(server: FakeOpenAI) -> None:
    server.push(completion("It is cute."), answer("cute", model="gpt-4o-mini"))
    out = make_stage(server).score(textless(solid_gif()), NOTHING)
    assert out.error is None and out.usage["calls"] == 2
    first, second = server.chat_requests
    assert second.messages[: len(first.messages)] == first.messages
    assert len(second.image_parts) == 3 and "could not be used" in second.messages[-1]["content"]


def test_a_prompt_without_a_frames_section_fails_at_load(server: FakeOpenAI, tmp_path: Any) -> None:
    from gifcat.config import bundled_text

    text = bundled_text("prompts/classify-v2.txt")
    cut = text[: text.index("=== frames ===")] + text[text.index("=== repair ===") :]
    path = tmp_path / "no-frames.txt"
    path.write_text(cut, encoding="utf-8")
    with pytest.raises(ConfigError, match="no 'frames' section"):
        make_stage(server, prompt=str(path))
    make_stage(server, prompt=str(path), images=False)  # without images it is not needed
