"""A published embedding artefact reaches the deployed embed function without a redeploy: the stack's
artefacts bucket (GIFCAT_ARTEFACTS from template.yaml), the warm embed function asking on every item
(stages.embedding.refresh_s 0 through GIFCAT_OVERRIDES), and each result naming the version it used."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gifcat.adapters.artefact_store import S3ArtefactStore
from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat.domain.artefact import ArtefactManifest
from gifcat.domain.memory import ARTEFACT, Learned
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.integration.conftest import TEST_OVERRIDES, embedded_stack, wait_item
from tests.support.fake_openai import FakeOpenAI, answer

# Decided by the embedding stage with the shipped thresholds (test_state_machine's migration item).
MIGRATION = {
    "title": "Migration",
    "tags": ["#planetearth", "#bbc"],
    "description": "Thousands of wildebeest pour across the river while crocodiles wait below.",
}


@pytest.fixture(scope="module")
def aws(root: Path, llm_server: FakeOpenAI) -> Iterator[EmbeddedAws]:
    # The local runner keeps the embed function warm: ask the store on every item, not every 5 minutes.
    overrides = {**TEST_OVERRIDES, "stages": {"embedding": {"refresh_s": 0}}}
    with embedded_stack(root, llm_server, overrides=overrides) as embedded:
        yield embedded


def test_a_published_artefact_is_used_by_the_next_item_and_recorded(
    aws: EmbeddedAws, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    bucket = aws.outputs["UploadsBucketName"]
    upload(aws.s3, bucket, "uploads/pizza.gif", gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    upload(aws.s3, bucket, "uploads/before.gif", gif(), MIGRATION, via="sidecar")
    assert wait_item(aws, "uploads/pizza.gif").artefact_version is None  # tags decided: no embedding
    before = wait_item(aws, "uploads/before.gif")
    assert (before.decided_by, before.artefact_version) == ("embedding", "bundled")

    # The bundled memory republished with a margin no item reaches: the embedding stage no longer decides.
    memory = models_dir() / ARTEFACT
    store = S3ArtefactStore(f"s3://{aws.outputs['ArtefactsBucketName']}/embedding", aws.s3)
    published = store.publish(
        memory,
        ArtefactManifest(
            version="draft",
            created_at=datetime(2026, 12, 2, tzinfo=UTC),
            encoder=Learned.load(memory).encoder,
            taxonomy_version=load_taxonomy().version,
            thresholds={"embedding": {"min_margin": 1.0}},
        ),
    )
    assert published.version == "v000001"

    llm_server.push(answer("animals"))
    upload(aws.s3, bucket, "uploads/after.gif", gif(), MIGRATION, via="sidecar")
    after = wait_item(aws, "uploads/after.gif")
    assert (after.decided_by, after.primary, after.artefact_version) == ("llm", "animals", "v000001")
    (embedding,) = [s for s in after.stages if s.stage == "embedding"]
    assert embedding.artefact_version == "v000001" and not embedding.decided
    # What it scored is the same memory: only the threshold moved.
    assert embedding.candidates[0].category == "animals"
