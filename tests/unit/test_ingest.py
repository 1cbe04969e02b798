"""What an upload must be: a GIF signature, readable metadata from user metadata or a sidecar."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gifcat.events import S3UploadEvent
from gifcat.ingest import RejectedUpload, metadata_from, sniff_gif


def test_sniff_reads_signature_and_screen(gif: Callable[..., bytes]) -> None:
    header = sniff_gif(gif(size=(40, 30))[:64])
    assert (header.version, header.width, header.height) == ("GIF89a", 40, 30)


@pytest.mark.parametrize(
    ("head", "status", "words"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 10, "skipped", "not a GIF"),
        (b"GIF8", "skipped", "not a GIF"),
        (b"GIF89a" + b"\0\0\0\0" + b"\0" * 4, "failed", "logical screen is 0x0"),
    ],
)
def test_sniff_rejects(head: bytes, status: str, words: str) -> None:
    with pytest.raises(RejectedUpload, match=words) as err:
        sniff_gif(head)
    assert err.value.status == status


def test_user_metadata_percent_and_rfc2047_decoding() -> None:
    meta = metadata_from(
        {
            "Title": "Caf%C3%A9 %F0%9F%98%82",
            "tags": '["lol", "%23funny"]',
            "description": "=?utf-8?q?na=C3=AFve?=",
        },
        None,
    )
    assert meta.title == "Café 😂"
    assert meta.tags == ("lol", "#funny")
    assert meta.description == "naïve"


def test_comma_separated_tags_and_sidecar_precedence() -> None:
    sidecar = json.dumps({"title": "From sidecar 🎉", "tags": ["party"]}).encode()
    meta = metadata_from({"title": "from header", "tags": "a, b ,,c", "description": "kept"}, sidecar)
    assert meta.title == "From sidecar 🎉"
    assert meta.tags == ("party",)
    assert meta.description == "kept"
    assert metadata_from({"tags": "a, b ,,c"}, None).tags == ("a", "b", "c")


@pytest.mark.parametrize(
    ("sidecar", "words"),
    [
        (b"{not json", "does not parse"),
        (b"[1, 2]", "must be an object"),
        (b'{"tags": [1, 2]}', "tags must be a list of strings"),
        (b'{"title": 5}', "title must be a string"),
        (b"\xff\xfe", "does not parse"),
    ],
)
def test_bad_sidecars_fail_with_a_reason(sidecar: bytes, words: str) -> None:
    with pytest.raises(RejectedUpload, match=words) as err:
        metadata_from({}, sidecar)
    assert err.value.status == "failed"


def test_missing_metadata_is_empty_not_an_error() -> None:
    assert metadata_from({}, None).is_empty


def test_s3_event_keys_are_url_decoded(load_s3_event: Callable[[str], dict]) -> None:
    event = S3UploadEvent.model_validate(load_s3_event("uploads/happy+birthday+%F0%9F%8E%82%2B1.gif"))
    ref = event.Records[0].object_ref()
    assert ref.key == "uploads/happy birthday 🎂+1.gif"
    assert ref.version_id is None  # "null" on unversioned buckets
    assert ref.sequencer == "0062F9B1B1A1D4E2C3"


@pytest.fixture
def load_s3_event() -> Callable[[str], dict]:
    from tests.conftest import load_event

    def load(key: str) -> dict:
        event = load_event("triage/s3-put.json")
        event["Records"][0]["s3"]["object"]["key"] = key
        event["Records"][0]["s3"]["object"]["versionId"] = "null"
        return event

    return load
