"""`gifcat demo --scenario hostile`: the ordinary demo uploads plus every hostile case issue 11 lists,
through the embedded AWS, and a check that nothing is lost, nothing stays pending, and every
re-uploaded key's result describes its last version (ETag and metadata).

The LLM is a local scripted endpoint (gifcat_tooling.local.llm_endpoint) that answers at once, except for
items titled "slow drip", whose answer it drips one byte a second: that row ends when the LLM client's
attempt deadline stops the call, after its last attempt (or at the function's Timeout).
"""

from __future__ import annotations

import io
import json
import logging
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gifcat.domain.model import Status
from gifcat.domain.result import ResultItem
from gifcat_tooling.local.demo import body_for, draw_gif, samples, upload

DRIP_MARKER = "slow drip"
# The scripted endpoint is local and answers at once, so the LLM client's attempts can be short: the
# dripping row then ends at the client's deadline (2 x 4 s) rather than after 4 x 20 s.
LLM_CLIENT = {"timeout_s": 4, "max_attempts": 2}


def huge_frame_gif(frame: int = 4000, frames: int = 2) -> bytes:
    """A 1x1 logical screen whose frames are `frame` x `frame` rectangles (a few KB of LZW)."""
    images = [Image.new("P", (frame, frame), i) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", 1, 1)  # the screen says 1x1; the frames say otherwise
    return bytes(data)


def deep_json(depth: int = 30_000) -> bytes:
    """A sidecar nested `depth` lists deep (60 KB): json.loads recurses once per level."""
    return b'{"title": "Deep", "tags": ' + b"[" * depth + b"]" * depth + b"}"


def emoji_sidecar() -> bytes:
    """64 KB of emoji tags: 31 tags of 500 emoji (4 bytes each in UTF-8, 12 once JSON-escaped)."""
    emoji = "🎉😂🐶🍕⚽💔😡🎂"
    tags = [(emoji * 63)[:500] for _ in range(31)]
    return json.dumps({"title": "Hmm", "tags": tags}, ensure_ascii=False).encode()


@dataclass
class Case:
    key: str
    what: str
    versions: list[dict[str, Any]] = field(default_factory=list)  # what was put, in order
    first_execution: str | None = None

    @property
    def reuploaded(self) -> bool:
        return len(self.versions) > 1


class Scenario:
    """Uploads the cases and remembers what each key's last version was."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.cases: dict[str, Case] = {}

    def put(
        self,
        key: str,
        what: str,
        body: bytes,
        metadata: dict[str, Any] | None = None,
        via: str = "metadata",
        sidecar: bytes | None = None,
        raw_metadata: dict[str, str] | None = None,
    ) -> None:
        if raw_metadata is not None:  # header values exactly as given (bogus encodings included)
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=raw_metadata)
        else:
            upload(self.s3, self.bucket, key, body, metadata, via, sidecar)
        etag = self.s3.head_object(Bucket=self.bucket, Key=key)["ETag"].strip('"')
        case = self.cases.setdefault(key, Case(key, what))
        case.versions.append({"etag": etag, "metadata": metadata, "sidecar": sidecar is not None})


def describes(item: ResultItem, version: dict[str, Any]) -> bool:
    """The result is about this version: its ETag, and its metadata where it was readable."""
    if item.etag != version["etag"]:
        return False
    meta = version["metadata"]
    if meta is None or version["sidecar"] or item.status is not Status.CLASSIFIED:
        return True  # a sidecar is read anew; failed rows keep no metadata to compare
    return (item.title or "") == meta.get("title", "") and list(item.tags or []) == list(
        meta.get("tags") or []
    )


def upload_all(sc: Scenario, wait_first: Callable[[set[str]], dict[str, ResultItem]]) -> None:
    for sample in samples():
        sidecar = b"{not json" if sample.get("kind") == "bad_sidecar" else None
        sc.put(
            sample["key"],
            "ordinary",
            body_for(sample),
            sample.get("metadata"),
            sample.get("via", "metadata"),
            sidecar,
        )
    again = "uploads/hostile/again.gif"
    newmeta = "uploads/hostile/new metadata.gif"
    mood = {"title": "Hmm", "tags": ["#reaction", "#mood"]}
    same_bytes = draw_gif("again")
    sc.put(again, "identical bytes re-uploaded", same_bytes, mood)
    sc.put(newmeta, "new metadata, identical bytes", same_bytes, {"title": "Pizza", "tags": ["pizza"]})
    sc.put(
        "uploads/hostile/deep json.gif",
        "sidecar nested 30,000 deep",
        draw_gif("deep"),
        None,
        "sidecar",
        deep_json(),
    )
    sc.put(
        "uploads/hostile/bogus rfc2047.gif",
        "bogus RFC 2047 metadata",
        draw_gif("2047"),
        raw_metadata={"title": "=?x-klingon?Q?Qapla=27?=", "tags": "=?utf-8?B?@@not base64@@?="},
    )
    sc.put(
        "uploads/hostile/huge frames.gif",
        "1x1 screen, 4000x4000 frames",
        huge_frame_gif(),
        {"title": "Hmm", "tags": ["#reaction"]},
    )
    sc.put(
        "uploads/hostile/emoji sidecar.gif",
        "64 KB emoji sidecar",
        draw_gif("emoji"),
        None,
        "sidecar",
        emoji_sidecar(),
    )
    sc.put(
        "uploads/hostile/slow drip.gif",
        "LLM endpoint drips its answer",
        draw_gif("drip"),
        {"title": DRIP_MARKER, "tags": ["#reaction"]},
    )
    bom = json.dumps({"title": "Kiss GIF", "tags": ["kiss", "love"]}).encode()
    sc.put(
        "uploads/hostile/bom sidecar.gif",
        "sidecar with a UTF-8 BOM",
        draw_gif("bom"),
        None,
        "sidecar",
        b"\xef\xbb\xbf" + bom,
    )
    control = {
        "title": "Pizza\x00 GIF\x07",
        "tags": ["pizza\x1b[31m", "food\u200b", "\x00"],
        "description": "cheese\r\n\x0bpull",
    }
    sc.put(
        "uploads/hostile/control chars.gif",
        "control characters in metadata",
        draw_gif("ctl"),
        None,
        "sidecar",
        json.dumps(control).encode(),
    )
    quick = "uploads/hostile/ten quick.gif"
    for i in range(10):
        meta = (
            {"title": f"Pizza {i}", "tags": ["pizza", "food"]}
            if i % 2
            else {"title": f"Hmm {i}", "tags": ["#reaction"]}
        )
        sc.put(quick, "ten quick uploads of one key", draw_gif(f"quick {i}", frames=2 + i % 3), meta)
    # The re-uploads come once the first versions have a result, a second or more later.
    firsts = wait_first({again, newmeta})
    for key in (again, newmeta):
        first = firsts.get(key)
        sc.cases[key].first_execution = first.execution if first else None
    time.sleep(1.1)
    sc.put(again, "identical bytes re-uploaded", same_bytes, mood)
    sc.put(newmeta, "new metadata, identical bytes", same_bytes, {"title": "Kiss", "tags": ["kiss", "love"]})


def settle(aws: Any, sc: Scenario, timeout_s: float) -> list[ResultItem]:
    """Wait until no event is queued, no execution runs and no item is pending (or the timeout)."""
    sfn = aws.client("stepfunctions")
    arn = aws.outputs["StateMachineArn"]
    deadline = time.monotonic() + timeout_s
    items: list[ResultItem] = []
    while time.monotonic() < deadline:
        aws.runner.drain(max(0.1, deadline - time.monotonic()))
        running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
        items = [i for i in aws.results() if i.key in sc.cases]
        pending = [i for i in items if i.status is Status.PENDING]
        if not running and not pending and {i.key for i in items} >= set(sc.cases):
            break
        time.sleep(0.5)
    return items


def run_hostile(root: Path, out: Any = sys.stdout, timeout_s: float = 600.0, verbose: bool = False) -> int:
    import os
    from contextlib import ExitStack
    from unittest.mock import patch

    from gifcat.adapters.embeddings.artefacts import models_dir
    from gifcat_tooling.local.aws import EmbeddedAws
    from gifcat_tooling.local.llm_endpoint import MODEL, HostileLlm

    started = time.perf_counter()
    quiet = {} if verbose else {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    with ExitStack() as stack:
        stack.enter_context(patch.dict(os.environ, quiet))
        if not verbose:
            # The hostile cases are meant to raise: their tracebacks (triage's safety net, moto's
            # interpreter on a failed execution) would bury the table. --verbose shows them.
            for name in ("gifcat.application.service", "moto"):
                level = logging.getLogger(name).level
                logging.getLogger(name).setLevel(logging.CRITICAL)
                stack.callback(logging.getLogger(name).setLevel, level)
        llm = stack.enter_context(HostileLlm(drip_marker=DRIP_MARKER))
        print(
            "starting the embedded AWS (LLM: a local scripted endpoint that drips for 'slow drip'; the "
            f"client gives up after {LLM_CLIENT['max_attempts']} attempts of {LLM_CLIENT['timeout_s']} s)...",
            file=out,
            flush=True,
        )
        aws = stack.enter_context(
            EmbeddedAws(
                root,
                parameters={
                    "LlmBaseUrl": llm.base_url,
                    "LlmModel": MODEL,
                    "SettingsOverrides": json.dumps({"stages": {"llm": LLM_CLIENT}}),
                },
                function_env={"GIFCAT_MODELS_DIR": str(models_dir()), **quiet},
            )
        )
        sc = Scenario(aws.s3, aws.outputs["UploadsBucketName"])
        upload_all(sc, lambda keys: aws.wait_for_results(keys, timeout_s=timeout_s))
        print(
            f"uploaded {sum(len(c.versions) for c in sc.cases.values())} objects under {len(sc.cases)} keys; "
            "waiting for every result (the drip ends at the client's deadline)...",
            file=out,
            flush=True,
        )
        items = settle(aws, sc, timeout_s)
        failures = print_rows(out, sc, items)
        print(
            f"\n{len(sc.cases)} keys, {len(items)} result items, LLM calls {dict(llm.counts)}; "
            f"{time.perf_counter() - started:.1f} s in all.",
            file=out,
        )
        for problem in failures:
            print(f"FAIL {problem}", file=out)
        return 1 if failures else 0


def print_rows(out: Any, sc: Scenario, items: list[ResultItem]) -> list[str]:
    """One row per key; returns what breaks the scenario's promise."""
    by_key: dict[str, list[ResultItem]] = {}
    for item in items:
        by_key.setdefault(item.key, []).append(item)
    counts = Counter({k: len(v) for k, v in by_key.items()})
    header = f"{'object':<40} {'status':<10} {'category':<12} {'by':<9} {'last':<4}  reason / case"
    print("\n" + header + "\n" + "-" * len(header), file=out)
    problems = []
    for key, case in sc.cases.items():
        found = by_key.get(key, [])
        if len(found) != 1:
            problems.append(f"{key}: {len(found)} result items")
            print(f"{key[:40]:<40} {'MISSING' if not found else 'DUPLICATE':<10}", file=out)
            continue
        item = found[0]
        last = "-"
        if case.reuploaded:
            ok = describes(item, case.versions[-1])
            fresh = case.first_execution is None or item.execution != case.first_execution
            last = "yes" if ok and fresh else "NO"
            if last == "NO":
                problems.append(
                    f"{key}: the result does not describe the last of {len(case.versions)} uploads"
                )
        if item.status is Status.PENDING:
            problems.append(f"{key}: still pending")
        note = (item.reason or case.what)[:70]
        decided_by = str(item.decided_by) if item.decided_by else "-"
        print(
            f"{key[:40]:<40} {item.status.value:<10} {item.primary or '-':<12} {decided_by:<9} "
            f"{last:<4}  {note}",
            file=out,
        )
    extra = set(counts) - set(sc.cases)
    problems.extend(f"{k}: an item for a key nobody uploaded" for k in sorted(extra))
    return problems
