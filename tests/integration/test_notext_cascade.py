"""A GIF with no text through the whole cascade in-process, CLIP deployed (the tiny random one): the
embedding stage reads the frames; what it leaves undecided the LLM reads from frames when its endpoint
reads images, and records skipped, without a call, when it reads none."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.llm.factory import build_llm_stage
from gifcat.config import Settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.model import GifItem, StageName, Status
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import load_taxonomy
from tests.support.fake_openai import FakeOpenAI, answer
from tests.support.llm import settings_with


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(model="gpt-4o-mini") as fake:
        yield fake


def undecided_embedding(images: bool) -> Settings:
    """Bundled settings whose embedding stage never decides (the item must reach the LLM)."""
    settings = settings_with(images=images)
    data = settings.model_dump(by_alias=True)
    data["stages"]["embedding"].update({"min_margin": 1.0, "threads": 1})
    return Settings.model_validate(data)


def textless_gif() -> GifItem:
    frames = [Image.new("RGB", (64, 48), (50 * i, 120, 200 - 50 * i)) for i in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80)
    return GifItem(id="notext", gif=buffer.getvalue())


@pytest.mark.parametrize("images", [False, True], ids=["llm-reads-no-images", "llm-reads-frames"])
def test_clip_reads_the_frames_and_the_llm_decides_or_skips(
    clip_root: Path, server: FakeOpenAI, images: bool
) -> None:
    settings, taxonomy = undecided_embedding(images), load_taxonomy()
    embedding = build_embedding_stage(settings, taxonomy, models_dir=clip_root, labelled=[])
    llm = build_llm_stage(settings, taxonomy, base_url=server.base_url, api_key="sk-t", model="gpt-4o-mini")
    stages = [*triage_stages(settings, taxonomy), embedding, llm]
    cascade = Cascade.from_settings(settings, stages, taxonomy)
    server.push(answer("cute", ["cute"], 0.9, "a kitten", model="gpt-4o-mini"))

    result = cascade.run(textless_gif())

    clip = next(t for t in result.stages if t.stage is StageName.EMBEDDING)
    assert clip.usage["frames"] == 4 and not clip.decided  # CLIP looked at the frames, as before
    last = result.stages[-1]
    assert last.stage is StageName.LLM
    if images:
        assert (result.status, result.primary) == (Status.CLASSIFIED, "cute")
        assert result.decided_by is StageName.LLM
        assert len(server.chat_requests[0].image_parts) == 3
    else:
        assert (result.status, result.reason) == (Status.SKIPPED, "no text and no image model")
        assert last.abstained == "no text and no image model" and server.chat_requests == []
