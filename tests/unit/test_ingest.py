"""What an upload must be: a GIF signature, readable metadata from user metadata or a sidecar."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from gifcat.application.events import S3UploadEvent, ScheduledRequest, is_upload_key, sidecar_upload_key
from gifcat.application.ingest import RejectedUpload, metadata_from, sniff_gif
from gifcat.application.service import Triage
from gifcat.config import Settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.model import Status
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import Taxonomy


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


def test_a_value_sent_as_encoded_words_is_not_percent_decoded_again() -> None:
    # "=?utf-8?q?...?=" carries the text exactly: its "%41" and a URL's escapes are what was typed.
    url = base64.b64encode(b"voir https://ex.fr/p%C3%A2te").decode()
    meta = metadata_from(
        {"title": "=?utf-8?q?Pizza_=C3=A0_100%41_pr=C3=A8s?=", "description": f"=?utf-8?b?{url}?="}, None
    )
    assert meta.title == "Pizza à 100%41 près"
    assert meta.description == "voir https://ex.fr/p%C3%A2te"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [("[OC], pizza, food", ("[OC]", "pizza", "food")), ("[OC]", ("[OC]",)),
     ('["a", "b, c"]', ("a", "b, c")), ("[]", ())],
)
def test_a_comma_list_may_start_with_a_bracket(tags: str, expected: tuple[str, ...]) -> None:
    assert metadata_from({"tags": tags}, None).tags == expected


def test_what_reading_cuts_is_said() -> None:
    tags = [f"t{i}" for i in range(130)]
    meta = metadata_from({}, json.dumps({"tags": tags, "title": "x" * 2500, "description": "ok"}).encode())
    assert meta.tags == tuple(tags[:100]) and len(meta.title) == 2000
    assert meta.cut == ("title: the first 2000 of 2500 characters kept", "tags: the first 100 of 130 kept")
    assert metadata_from({"tags": "a, b"}, None).cut == ()
    # The item carries it; the metadata's digest (part of an upload's identity) does not.
    assert "cut" not in meta.model_dump()


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
        (b"", "sidecar JSON is empty"),
        (b" \n", "sidecar JSON is empty"),
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


@pytest.mark.parametrize(
    ("key", "upload"),
    [("uploads/cat.gif", True), ("uploads/Cat.GIF", True), ("uploads/cat.gIf", True),
     ("uploads/cat.gif.json", False), ("uploads/cat.png", False), ("uploads/gif", False),
     ("uploads/cat.gif/", False)],
)
def test_an_upload_is_a_key_ending_with_the_suffix_in_any_letter_case(key: str, upload: bool) -> None:
    assert is_upload_key(key, ".gif") is upload
    assert is_upload_key(key, ".GIF") is upload  # the setting's own case does not matter either


@pytest.mark.parametrize(
    ("key", "upload"),
    [("uploads/cat.gif.json", "uploads/cat.gif"), ("uploads/Cat.GIF.json", "uploads/Cat.GIF"),
     ("uploads/cat.gif.JSON", None),  # the sidecar read is <key>.json exactly
     ("uploads/cat.png.json", None), ("uploads/cat.json", None), ("uploads/cat.gif", None)],
)
def test_a_sidecar_key_names_the_upload_it_describes(key: str, upload: str | None) -> None:
    assert sidecar_upload_key(key, ".gif") == upload


@pytest.fixture
def load_s3_event() -> Callable[[str], dict]:
    from tests.conftest import load_event

    def load(key: str) -> dict:
        event = load_event("triage/s3-put.json")
        event["Records"][0]["s3"]["object"]["key"] = key
        event["Records"][0]["s3"]["object"]["versionId"] = "null"
        return event

    return load


# -- hostile metadata: every malformed input is a RejectedUpload("failed") with a reason, never a crash --

DEEP = "[" * 20000 + "]" * 20000


@pytest.mark.parametrize(
    ("user_metadata", "sidecar", "words"),
    [
        ({}, DEEP.encode(), "nested more than"),
        ({}, ('{"tags": ' + "[" * 990 + "]" * 990 + "}").encode(), "nested more than"),
        ({"tags": "[" * 990 + "]" * 990}, None, "nested more than"),
        ({"tags": DEEP}, None, "nested more than"),
        # the header's tags are at fault, not the sidecar that gave only a title
        ({"tags": "[" * 20 + "]" * 20}, b'{"title": "t"}', "^user metadata tags is nested"),
        ({}, b'{"title": "x", "n": ' + b"9" * 5000 + b"}", "number of 5000 characters"),
        ({"tags": "[" + "1" * 5000 + "]"}, None, "number of 5000 characters"),
        ({}, b'{"n": -' + b"1" * 300 + b"." + b"5" * 300 + b"}", "number of 602 characters"),
        ({"title": "=?bogus?q?hello?="}, None, "unknown charset 'bogus'"),
        ({"title": "=?rot13?q?hello?="}, None, "unknown charset 'rot13'"),
        ({"description": "=?utf-8?q?caf=E9?="}, None, "not valid utf-8"),
        ({"title": "=?utf-8?b?!!!!?="}, None, "invalid base64"),
        ({"title": "=?utf-8?b?aGVsbG8=x?="}, None, "invalid base64"),
        ({"tags": "=?utf-8?q?a=ZZb?="}, None, "invalid quoted-printable"),
    ],
)
def test_malformed_metadata_fails_with_a_reason(
    user_metadata: dict[str, str], sidecar: bytes | None, words: str
) -> None:
    with pytest.raises(RejectedUpload, match=words) as err:
        metadata_from(user_metadata, sidecar)
    assert err.value.status == "failed"
    assert len(err.value.reason) < 400  # the reason names the problem, it does not echo the input


def test_well_formed_rfc2047_still_decodes() -> None:
    meta = metadata_from(
        {
            "title": "=?utf-8?b?Q2Fmw6k=?= =?utf-8?q?_au_lait?=",  # whitespace between encoded words goes
            "description": "=?ISO-8859-1?Q?na=EFve?= and =?utf-8?B?8J+Ygg?=",  # unpadded base64 is fine
            "tags": "=?utf-8?q?lol,_=23funny?=",
        },
        None,
    )
    assert meta.title == "Café au lait"
    assert meta.description == "naïve and 😂"
    assert meta.tags == ("lol", "#funny")


def test_text_that_only_looks_encoded_is_kept_as_typed() -> None:
    meta = metadata_from({"title": "50%ff off", "description": "100% =? real"}, None)
    assert meta.title == "50%ff off"  # not percent-encoded UTF-8: kept, not mangled into U+FFFD
    assert meta.description == "100% =? real"


def test_other_user_metadata_keys_are_not_decoded() -> None:
    meta = metadata_from({"title": "ok", "x-unrelated": "=?bogus?q?x?="}, None)
    assert meta.title == "ok"


def test_sidecar_with_a_utf8_bom_is_read() -> None:
    sidecar = b"\xef\xbb\xbf" + json.dumps({"title": "Caf\u00e9", "tags": ["bom"]}).encode()
    meta = metadata_from({}, sidecar)
    assert meta.title == "Café" and meta.tags == ("bom",)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("nul\x00byte", "nulbyte"),
        ("\x1b[31mred\x1b[0m alert\x07", "red alert"),
        ("\x1b]0;pwned\x07title", "title"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("\u2066iso\u2069late \u200fmark", "isolate mark"),
        ("line\nbreak\ttab\r\n", "line break tab"),
        ("c1\x85\x9b1mcontrol\x7f", "c1 control"),
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("family 👨\u200d👩\u200d👧 stays", "family 👨\u200d👩\u200d👧 stays"),  # ZWJ is not a control
        ("flag 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", None),
    ],
)
def test_control_and_bidi_characters_are_stripped_at_ingest(raw: str, clean: str | None) -> None:
    sidecar = json.dumps({"title": raw, "tags": [raw, "\x00\u202e"], "description": raw}).encode()
    meta = metadata_from({}, sidecar)
    expected = raw if clean is None else clean
    assert meta.title == expected.strip() and meta.description == expected.strip()
    assert meta.tags == (expected.strip(),)  # a tag of nothing but controls is dropped
    (meta.title + meta.description).encode("utf-8")  # storable: no lone surrogates


def test_percent_and_rfc2047_decoded_controls_are_stripped_too() -> None:
    meta = metadata_from({"title": "a%00b%E2%80%AEc", "description": "=?utf-8?q?x=1B[2Jy?="}, None)
    assert meta.title == "abc" and meta.description == "xy"


def _random_text(rng: random.Random) -> str:
    alphabet = '[]{}",:0123456789-.eE truefalsn\\u=?%_bBqQ\x00\x1b\u202e\ud800é😂#'
    pieces = [
        rng.choice(['=?utf-8?q?', '=?bogus?b?', '?=', '%C3%A9', '%FF', '\\ud800', '[' * rng.randint(1, 40)]),
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))),
    ]
    rng.shuffle(pieces)
    return "".join(pieces)


def test_fuzzed_metadata_gives_clean_metadata_or_a_rejection() -> None:
    rng = random.Random(11)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(3000):
        user = {name: _random_text(rng) for name in ("title", "tags", "description") if rng.random() < 0.6}
        sidecar: bytes | None = None
        if rng.random() < 0.5:
            doc = {"title": _random_text(rng), "tags": [_random_text(rng)], "n": rng.choice([1, 1.5, None])}
            text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
            cut = rng.randint(0, len(text))
            text = text if rng.random() < 0.5 else text[:cut] + _random_text(rng) + text[cut:]
            sidecar = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.1:
                sidecar = bytes(b ^ 0x80 if rng.random() < 0.05 else b for b in sidecar)
        try:
            meta = metadata_from(user, sidecar)
        except RejectedUpload as exc:
            assert exc.status == "failed" and exc.reason
            outcomes["rejected"] += 1
            continue
        outcomes["ok"] += 1
        for text in (meta.title, meta.description, *meta.tags):
            text.encode("utf-8")  # strict: no lone surrogates reach the store or the LLM
            assert not any(ch < " " or "\x7f" <= ch <= "\x9f" or ch in "\u202a\u202b\u202c\u202d\u202e"
                           for ch in text), text
    assert outcomes["ok"] > 100 and outcomes["rejected"] > 100  # both paths were exercised


@pytest.mark.parametrize(
    "user_metadata",
    [{"tags": "[" * 990 + "]" * 990}, {"title": "=?bogus?q?hello?="}, {"tags": "[" + "9" * 5000 + "]"}],
    ids=["deep-json", "unknown-charset", "long-number"],
)
def test_hostile_metadata_becomes_a_failed_result_not_a_crash(
    user_metadata: dict[str, str], settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    # Before: the exception escaped the handler, the event went to the DLQ and no result was written.
    from tests.unit.test_service import REF, Objects, Starter, Store

    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)
    store, starter = Store(), Starter()
    triage = Triage(
        settings,
        cascade,
        Objects(gif(), user_metadata),
        store,
        starter,
        lambda ref, meta: "name",
    )
    outcome = triage.handle_upload(REF)
    assert outcome.status is Status.FAILED and outcome.written
    (item,) = store.items
    assert item.status == "failed" and item.reason.startswith("user metadata ")
    assert starter.started == []


@pytest.mark.parametrize(
    ("event", "dry_run"),
    [({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, False),
     ({}, False), (None, False), ({"dry_run": True}, True), ({"dry_run": False}, False)],
)
def test_the_learn_function_reads_its_schedule_or_an_exact_dry_run(event: object, dry_run: bool) -> None:
    assert ScheduledRequest.of(event).dry_run is dry_run


@pytest.mark.parametrize("event", [{"dry_run": "true"}, {"dry_run": 1}, {"dryRun": True}, ["dry_run"]])
def test_a_dry_run_asked_loosely_is_refused_not_run_for_real(event: object) -> None:
    # {"dry_run": "true"} once published a new artefact: only `is True` was a dry run.
    with pytest.raises(ValidationError):
        ScheduledRequest.of(event)


def test_an_s3_test_event_has_no_upload_and_other_shapes_are_errors() -> None:
    test = S3UploadEvent.model_validate(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-05T00:00:00Z", "Bucket": "b"}
    )
    assert test.Records == []
    for other in ({}, {"Records": []}, {"detail-type": "Object Created", "source": "aws.s3", "detail": {}}):
        with pytest.raises(ValidationError, match="not an S3 notification"):
            S3UploadEvent.model_validate(other)


@pytest.mark.parametrize(
    ("name", "source", "created"),
    [("ObjectCreated:Put", "aws:s3", True), ("ObjectCreated:CompleteMultipartUpload", "aws:s3", True),
     ("ObjectRemoved:Delete", "aws:s3", False), ("ObjectRestore:Completed", "aws:s3", False),
     ("ObjectCreated:Put", "aws:sqs", False)],
)
def test_only_a_created_object_is_an_upload(name: str, source: str, created: bool) -> None:
    # A removal handled as an upload re-triaged the object over a person's answer.
    s3 = {"bucket": {"name": "b"}, "object": {"key": "k.gif"}}
    record = {"eventSource": source, "eventName": name, "s3": s3}
    assert S3UploadEvent.model_validate({"Records": [record]}).Records[0].created is created
