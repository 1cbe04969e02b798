"""The S3 artefact store against moto: versions in order, current.json written last, and a publisher
that lost the race for a number told so rather than overwriting the winner."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from gifcat.adapters.artefact_store import S3ArtefactStore, parse_location
from gifcat.application.ports import PublishConflict
from gifcat.domain.artefact import ArtefactManifest


@pytest.fixture
def s3(moto_in_process: None) -> object:
    client = boto3.client("s3")
    client.create_bucket(Bucket="artefacts")
    return client


def manifest(margin: float) -> ArtefactManifest:
    return ArtefactManifest(
        version="draft", created_at=datetime(2026, 12, 2, tzinfo=UTC), encoder="minilm:abc",
        taxonomy_version="t1", thresholds={"embedding": {"min_margin": margin}},
    )


def test_versions_are_numbered_in_order_and_the_newest_is_current(s3: object, tmp_path: Path) -> None:
    store = S3ArtefactStore("s3://artefacts/learned/embedding")
    assert store.current() is None
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    first.write_bytes(b"first artefact")
    second.write_bytes(b"second artefact")

    v1 = store.publish(first, manifest(0.3))
    v2 = store.publish(second, manifest(0.4))

    assert (v1.version, v2.version) == ("v000001", "v000002")
    current = store.current()
    assert current is not None and current.version == "v000002"
    assert current.manifest.thresholds == {"embedding": {"min_margin": 0.4}}
    assert store.fetch("v000001", tmp_path / "dl").read_bytes() == b"first artefact"
    assert store.fetch("v000002", tmp_path / "dl").read_bytes() == b"second artefact"


def test_a_publisher_that_lost_the_race_for_a_number_overwrites_nothing(s3: object, tmp_path: Path) -> None:
    store = S3ArtefactStore("s3://artefacts/embedding")
    winner, loser = tmp_path / "w.npz", tmp_path / "l.npz"
    winner.write_bytes(b"winner")
    loser.write_bytes(b"loser")
    store.publish(winner, manifest(0.3))
    # The loser read current.json before the winner moved it: it picks the same number.
    stale = S3ArtefactStore("s3://artefacts/embedding")
    stale.current = lambda: None  # type: ignore[method-assign]

    with pytest.raises(PublishConflict, match="v000001"):
        stale.publish(loser, manifest(0.9))

    assert store.fetch("v000001", tmp_path / "dl").read_bytes() == b"winner"
    current = store.current()
    assert current is not None and current.manifest.thresholds["embedding"]["min_margin"] == 0.3


@pytest.mark.parametrize("uri", ["artefacts/x", "s3://", "s3:///prefix"])
def test_a_location_that_is_not_an_s3_uri_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="artefact location"):
        parse_location(uri)
