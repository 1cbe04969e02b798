"""What an upload must be before it is classified: a GIF within bounds, with readable metadata.

Metadata comes from S3 user metadata (x-amz-meta-title, -tags, -description) and/or a sidecar JSON
object at `<key>.json`; the sidecar wins field by field. User metadata travels in HTTP headers, which
are ASCII: non-ASCII values arrive percent-encoded (we decode them) or RFC 2047-encoded (likewise).
"""

from __future__ import annotations

import email.header
import json
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from gifcat.model import GifMetadata

GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
MAX_FIELD_CHARS = 2000
MAX_TAGS = 100


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


def _decode_header_value(value: str) -> str:
    if "=?" in value:  # RFC 2047, as some SDKs send non-ASCII metadata
        parts = email.header.decode_header(value)
        value = "".join(p.decode(c or "utf-8") if isinstance(p, bytes) else p for p, c in parts)
    return unquote(value) if "%" in value else value


def _tags(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RejectedUpload(
                    "failed", f"{where}: tags look like JSON but do not parse: {exc}"
                ) from exc
        else:
            value = [t for t in text.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RejectedUpload("failed", f"{where}: tags must be a list of strings or a comma-separated string")
    return tuple(t.strip()[:MAX_FIELD_CHARS] for t in value if t.strip())[:MAX_TAGS]


def _text(value: object, field: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RejectedUpload("failed", f"{where}: {field} must be a string, got {type(value).__name__}")
    return value.strip()[:MAX_FIELD_CHARS]


def metadata_from(user_metadata: dict[str, str], sidecar: bytes | None) -> GifMetadata:
    """Merge user metadata and the sidecar JSON; a sidecar that does not parse fails the upload."""
    fields: dict[str, object] = {}
    lowered = {k.lower(): _decode_header_value(v) for k, v in user_metadata.items()}
    for name in ("title", "tags", "description"):
        if name in lowered:
            fields[name] = lowered[name]
    where = "user metadata"
    if sidecar is not None:
        where = "sidecar JSON"
        try:
            doc = json.loads(sidecar.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RejectedUpload("failed", f"sidecar JSON does not parse: {exc}") from exc
        if not isinstance(doc, dict):
            raise RejectedUpload("failed", "sidecar JSON must be an object with title, tags, description")
        fields.update({k: doc[k] for k in ("title", "tags", "description") if k in doc})
    return GifMetadata(
        title=_text(fields.get("title"), "title", where),
        tags=_tags(fields.get("tags", []), where),
        description=_text(fields.get("description"), "description", where),
    )
