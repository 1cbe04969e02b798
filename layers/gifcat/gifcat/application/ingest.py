"""What an upload must be before it is classified: a GIF within bounds, with readable metadata.

Metadata comes from S3 user metadata (x-amz-meta-title, -tags, -description) and/or a sidecar JSON
object at `<key>.json`; the sidecar wins field by field. User metadata travels in HTTP headers, which
are ASCII: non-ASCII values arrive percent-encoded (we decode them) or RFC 2047-encoded (likewise).

All of it is hostile until read: malformed input of any kind (JSON nested to blow the stack, numbers
too long to convert, unknown charsets, bytes that are not what they claim) is a RejectedUpload with a
reason, never another exception. Control characters, terminal escapes and bidi overrides are removed
from what is kept: it is stored, shown in consoles and sent to an LLM.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from gifcat.domain.model import GifMetadata

GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
MAX_FIELD_CHARS = 2000
MAX_TAGS = 100
MAX_JSON_DEPTH = 8  # a sidecar is {"tags": [...]}: depth 2
MAX_NUMBER_CHARS = 100  # json would hand 5,000 digits to int(), which refuses (or is slow) past 4,300

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")
# ANSI/VT escape sequences (CSI, OSC, two-byte ESC forms, 8-bit CSI): dropped whole, not just the ESC.
_TERMINAL_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]"
)
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]+")
# C0/C1 controls, bidi embeddings/overrides/isolates and marks, lone surrogates (unstorable as UTF-8).
# Not the zero-width joiner or variation selectors: emoji sequences need them.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class RejectedUpload(ValueError):
    """An upload that cannot be classified; `status` says whether it failed or was skipped."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class GifHeader:
    version: str
    width: int
    height: int


def sniff_gif(head: bytes) -> GifHeader:
    """Check the signature and logical screen from the first bytes, without decoding anything."""
    if len(head) < 13 or head[:6] not in GIF_SIGNATURES:
        raise RejectedUpload("skipped", f"not a GIF: the object starts with {head[:6]!r}")
    width, height = struct.unpack("<HH", head[6:10])
    if width == 0 or height == 0:
        raise RejectedUpload("failed", f"corrupt GIF: logical screen is {width}x{height}")
    return GifHeader(head[:6].decode("ascii"), width, height)


def _clean(text: str) -> str:
    """Text as stored and prompted: escapes, controls and bidi overrides removed, line breaks as spaces."""
    text = _TERMINAL_ESCAPE.sub("", text)
    text = _LINE_BREAKS.sub(" ", text)
    return _INVISIBLE.sub("", text)


def _decode_encoded_word(charset: str, encoding: str, text: str, what: str) -> str:
    charset = charset.partition("*")[0]  # RFC 2231 allows a language: =?utf-8*en?q?...?=
    if encoding in "bB":
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise RejectedUpload("failed", f"{what}: invalid base64 in an RFC 2047 encoded word") from None
    else:
        if re.search(r"=(?![0-9A-Fa-f]{2})", text) or not text.isascii():
            raise RejectedUpload("failed", f"{what}: invalid quoted-printable in an RFC 2047 encoded word")
        raw = _QP_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), text.replace("_", " ").encode("ascii"))
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise RejectedUpload(
            "failed", f"{what}: RFC 2047 encoded word is not valid {charset[:40]}: {exc.reason}"
        ) from None
    except (LookupError, ValueError):  # no such codec, or one that is not a charset (rot13, base64)
        raise RejectedUpload(
            "failed", f"{what}: unknown charset {charset[:40]!r} in an RFC 2047 encoded word"
        ) from None


def _decode_header_value(value: str, what: str) -> str:
    """RFC 2047 encoded words, or else percent-encoding, as SDKs send non-ASCII user metadata. Never
    both: a value sent as encoded words carries its text exactly, "100%41" and URLs' escapes included."""
    parts: list[str] = []
    pos, after_word = 0, False
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        if not (after_word and gap.isspace()):  # whitespace between two encoded words is not text
            parts.append(gap)
        charset, encoding, text = match.groups()
        parts.append(_decode_encoded_word(charset, encoding, text, what))
        pos, after_word = match.end(), True
    if after_word:
        return "".join(parts) + value[pos:]
    if "%" in value:
        try:
            return unquote(value, errors="strict")
        except UnicodeDecodeError:
            return value  # "50%ff off" was never percent-encoded UTF-8: keep it as typed
    return value


def _number_text(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise RejectedUpload("failed", f"a number of {len(text)} characters (limit {MAX_NUMBER_CHARS})")
    return text


def _int(text: str) -> int:
    return int(_number_text(text))


def _float(text: str) -> float:
    return float(_number_text(text))


def _loads(text: str, what: str) -> object:
    """json.loads with the nesting depth checked first, by a scan that cannot recurse, and numbers
    bounded in length before they are converted."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth = depth + 1 if bracket in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            raise RejectedUpload("failed", f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_int, parse_float=_float)
    except RejectedUpload as exc:
        raise RejectedUpload("failed", f"{what} holds {exc.reason}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise RejectedUpload("failed", f"{what} does not parse: {str(exc)[:200]}") from None


# A tags value read as a JSON array: "[" then what a JSON value starts with, or the end ('["a", "b"]',
# '[]', '[1]': refused as not strings). "[OC], pizza" is a comma-separated list whose first tag has
# brackets, and "[OC]" one such tag.
_JSON_ARRAY_START = re.compile(r'^\[\s*["\[\]{\d-]')


def _tags(value: object, where: str, cut: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        value = _loads(text, f"{where} tags") if _JSON_ARRAY_START.match(text) else text.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RejectedUpload("failed", f"{where}: tags must be a list of strings or a comma-separated string")
    tags = [t for t in (_clean(t).strip() for t in value) if t]
    if len(tags) > MAX_TAGS:
        cut.append(f"tags: the first {MAX_TAGS} of {len(tags)} kept")
    if any(len(t) > MAX_FIELD_CHARS for t in tags[:MAX_TAGS]):
        cut.append(f"tags: each cut to {MAX_FIELD_CHARS} characters")
    return tuple(t[:MAX_FIELD_CHARS] for t in tags[:MAX_TAGS])


def _text(value: object, field: str, where: str, cut: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RejectedUpload("failed", f"{where}: {field} must be a string, got {type(value).__name__}")
    text = _clean(value).strip()
    if len(text) > MAX_FIELD_CHARS:
        cut.append(f"{field}: the first {MAX_FIELD_CHARS} of {len(text)} characters kept")
    return text[:MAX_FIELD_CHARS]


def metadata_from(user_metadata: dict[str, str], sidecar: bytes | None) -> GifMetadata:
    """Merge user metadata and the sidecar JSON. Raises RejectedUpload("failed") on any malformed input."""
    fields: dict[str, tuple[object, str]] = {}  # name -> (value, where it came from)
    lowered = {k.lower(): v for k, v in user_metadata.items()}
    for name in ("title", "tags", "description"):
        if name in lowered:
            value = _decode_header_value(lowered[name], f"user metadata {name}")
            fields[name] = (value, "user metadata")
    if sidecar is not None:
        try:
            text = sidecar.decode("utf-8-sig")  # a BOM, as Windows editors write, is not an error
        except UnicodeDecodeError as exc:
            raise RejectedUpload(
                "failed", f"sidecar JSON does not parse: it is not UTF-8 ({exc.reason})"
            ) from None
        if not text.strip():
            raise RejectedUpload(
                "failed", "sidecar JSON is empty: it must be an object with title, tags, description"
            )
        doc = _loads(text, "sidecar JSON")
        if not isinstance(doc, dict):
            raise RejectedUpload("failed", "sidecar JSON must be an object with title, tags, description")
        fields.update({k: (doc[k], "sidecar JSON") for k in ("title", "tags", "description") if k in doc})
    title, description = fields.get("title", (None, "")), fields.get("description", (None, ""))
    cut: list[str] = []
    return GifMetadata(
        title=_text(title[0], "title", title[1], cut),
        tags=_tags(*fields.get("tags", ([], "")), cut),
        description=_text(description[0], "description", description[1], cut),
        cut=tuple(cut),
    )
