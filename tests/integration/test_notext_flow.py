"""A GIF uploaded with no title, tags or description, through the embedded AWS (no CLIP deployed): with an
LLM that reads images it is classified from its frames by the LLM step; with one that reads none, the
embed step records it skipped and the LLM step is never invoked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.integration.conftest import embedded_stack, wait_item
from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI, answer, data_url


@dataclass(frozen=True)
class Case:
    model: str  # the stack's LlmModel: stages.llm.images "auto" decides from its name
    status: str
    decided_by: str | None
    reason: str | None


VISION = Case("gpt-4o-mini", "classified", "llm", None)
TEXT_ONLY = Case(DEFAULT_MODEL, "skipped", None, "no text and no image model")


@pytest.fixture(scope="module", params=[VISION, TEXT_ONLY], ids=["vision", "text-only"])
def stack(request: pytest.FixtureRequest, root: Path) -> Iterator[tuple[EmbeddedAws, FakeOpenAI, Case]]:
    case: Case = request.param
    with (
        FakeOpenAI(model=case.model) as server,
        embedded_stack(root, server, model=case.model) as aws,
    ):
        yield aws, server, case


def frames_gif() -> bytes:
    frames = [Image.new("RGB", (300, 150), (40 * i, 200 - 40 * i, 90)) for i in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buffer.getvalue()


def test_a_textless_upload_is_read_from_its_frames_or_skipped(
    stack: tuple[EmbeddedAws, FakeOpenAI, Case],
) -> None:
    aws, server, case = stack
    server.push(answer("cute", ["cute"], 0.8, "a kitten in every frame", model=case.model))
    key = "uploads/no text.gif"
    upload(aws.s3, aws.outputs["UploadsBucketName"], key, frames_gif(), None)
    item = wait_item(aws, key)

    assert (item.status, item.decided_by, item.reason) == (case.status, case.decided_by, case.reason)
    embedding = next(t for t in item.stages if t.stage == "embedding")
    assert not embedding.decided and embedding.error is None
    if case is VISION:
        assert item.primary == "cute"
        assert "llm: read from 3 frames of the GIF (no text)" in item.evidence
        (request,) = server.chat_requests
        images = [data_url(p["image_url"]["url"]) for p in request.image_parts]
        assert len(images) == 3 and {mime for mime, _ in images} == {"image/jpeg"}
        assert all(max(Image.open(io.BytesIO(data)).size) == 256 for _, data in images)
        llm = next(t for t in item.stages if t.stage == "llm")
        assert llm.usage["frames"] == 3 and item.cost_usd and item.cost_usd > 0
    else:
        # Decided in the embed step: no LLM step ran, no request was made.
        assert embedding.abstained == "no text and no image model"
        assert [t.stage for t in item.stages] == ["tags", "rules", "embedding"]
        assert server.chat_requests == [] and item.primary is None
