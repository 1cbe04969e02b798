"""`gifcat demo`: the whole flow on one machine. Embedded AWS, the stack from template.yaml, sample
uploads (GIFs drawn with Pillow, metadata as S3 user metadata or sidecars, and bad inputs), then a
repost of one (which takes its result), a table of the results. Succeeds only when every upload has a
result item.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch
from urllib.parse import quote

from PIL import Image, ImageDraw

from gifcat.application.ports import SIDECAR_SUFFIX
from gifcat.domain.result import ResultItem

if TYPE_CHECKING:
    from gifcat_tooling.local.aws import EmbeddedAws


def draw_gif(text: str, frames: int = 4, size: tuple[int, int] = (96, 64)) -> bytes:
    """A small animated GIF with the text on a moving background: enough for real decoding."""
    images = []
    for i in range(frames):
        img = Image.new("RGB", size, ((40 * i) % 256, (90 + 30 * i) % 256, (160 + 20 * i) % 256))
        draw = ImageDraw.Draw(img)
        draw.ellipse((8 + 10 * i, 8, 40 + 10 * i, 40), fill=(255, 220, 0))
        draw.text((4, size[1] - 16), text.encode("ascii", "replace").decode()[:16], fill=(255, 255, 255))
        images.append(img.convert("P", palette=Image.Palette.ADAPTIVE))
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return buf.getvalue()


def header_safe(value: str) -> str:
    """S3 user metadata travels in ASCII headers: non-ASCII values go percent-encoded (ingest decodes)."""
    return value if value.isascii() and "%" not in value else quote(value, safe=" ,#")


def upload(
    s3: Any,
    bucket: str,
    key: str,
    body: bytes,
    metadata: dict[str, Any] | None,
    via: str = "metadata",
    sidecar_body: bytes | None = None,
) -> None:
    """Upload as a user would: a sidecar first (so it is there when triage reads), then the GIF."""
    if via == "sidecar" and (metadata is not None or sidecar_body is not None):
        sidecar = (
            sidecar_body if sidecar_body is not None else json.dumps(metadata, ensure_ascii=False).encode()
        )
        s3.put_object(Bucket=bucket, Key=key + SIDECAR_SUFFIX, Body=sidecar, ContentType="application/json")
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/gif")
        return
    user_metadata = {}
    for name, value in (metadata or {}).items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
        if text:
            user_metadata[name] = header_safe(text)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/gif", Metadata=user_metadata)


def _samples_file() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        resources.files("gifcat_tooling.local").joinpath("demo_samples.json").read_text(encoding="utf-8")
    )
    return doc


def samples() -> list[dict[str, Any]]:
    return list(_samples_file()["samples"])


def reposts() -> list[dict[str, str]]:
    """Samples posted again under another key ({"key", "of"}), once every sample has its result."""
    return list(_samples_file().get("reposts", []))


def body_for(sample: dict[str, Any]) -> bytes:
    kind = sample.get("kind", "gif")
    if kind == "text":
        return b"this is a text file pretending to be a GIF\n"
    if kind == "empty":
        return b""
    return draw_gif((sample.get("metadata") or {}).get("title") or sample["key"])


@contextmanager
def demo_stack(
    root: Path, out: Any, verbose: bool, *, upload_trigger: bool = True
) -> Iterator[EmbeddedAws]:
    """The embedded AWS a demo runs on, with the local LLM server when the settings ask for it.

    The handlers' INFO lines and metrics would bury the table (--verbose shows them). Powertools reads
    the metrics switch when it flushes, so it is set for this process, not only at import."""
    from gifcat.adapters.embeddings.artefacts import models_dir
    from gifcat.config import load_settings
    from gifcat.domain.taxonomy import load_taxonomy
    from gifcat_tooling.llama_server import local_llm_endpoint, wants_local_server
    from gifcat_tooling.local.aws import EmbeddedAws

    quiet = {} if verbose else {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    function_env = {"GIFCAT_MODELS_DIR": str(models_dir()), **quiet}
    parameters: dict[str, str] = {}
    with ExitStack() as stack:
        stack.enter_context(patch.dict(os.environ, quiet))
        settings = load_settings()
        if wants_local_server(settings):
            print("starting the local LLM server (llama-cpp-python, Gemma 3 270M)...", file=out, flush=True)
            # The taxonomy the functions read (gifcat.runtime: GIFCAT_TAXONOMY, else the settings')
            taxonomy = load_taxonomy(os.environ.get("GIFCAT_TAXONOMY", "").strip() or settings.taxonomy)
            endpoint = stack.enter_context(local_llm_endpoint(settings, shared=True, taxonomy=taxonomy))
            parameters = {"LlmBaseUrl": endpoint.base_url, "LlmModel": endpoint.model}
        trigger = "" if upload_trigger else " (upload trigger off)"
        print(f"starting the embedded AWS{trigger} and deploying template.yaml...", file=out, flush=True)
        yield stack.enter_context(
            EmbeddedAws(root, parameters=parameters, function_env=function_env, upload_trigger=upload_trigger)
        )


def upload_samples(s3: Any, bucket: str) -> dict[str, float]:
    """Upload every demo sample (bad inputs included); each key with the time it was put."""
    put_at: dict[str, float] = {}
    for sample in samples():
        sidecar = b"{not json" if sample.get("kind") == "bad_sidecar" else None
        put_at[sample["key"]] = time.time()
        upload(s3, bucket, sample["key"], body_for(sample), sample.get("metadata"),
               sample.get("via", "metadata"), sidecar)
    return put_at


def repost_samples(s3: Any, bucket: str) -> dict[str, float]:
    """Post samples again under another key, as a user reposting a GIF would: the same bytes and the
    same sidecar (copied in the bucket; the sidecar first, as `upload` puts them). Each key with the
    time it was put."""
    by_key = {sample["key"]: sample for sample in samples()}
    put_at: dict[str, float] = {}
    for repost in reposts():
        source = by_key[repost["of"]]
        if source.get("via") == "sidecar":
            s3.copy_object(Bucket=bucket, Key=repost["key"] + SIDECAR_SUFFIX,
                           CopySource={"Bucket": bucket, "Key": source["key"] + SIDECAR_SUFFIX})
        put_at[repost["key"]] = time.time()
        s3.copy_object(Bucket=bucket, Key=repost["key"], CopySource={"Bucket": bucket, "Key": source["key"]})
    return put_at


def run_demo(
    root: Path,
    out: Any = sys.stdout,
    timeout_s: float = 300.0,
    verbose: bool = False,
    *,
    serve: bool = False,
) -> int:
    """The demo; with `serve`, the embedded AWS then stays up (with its results) until Ctrl-C or
    SIGTERM, for the commands README gives `--endpoint` to."""
    started = time.perf_counter()
    with demo_stack(root, out, verbose) as aws:
        events = subscribe(aws, "demo-subscriber")
        put_at = upload_samples(aws.s3, aws.outputs["UploadsBucketName"])
        print(f"uploaded {len(put_at)} objects; waiting for their results...", file=out, flush=True)
        results = aws.wait_for_results(set(put_at), timeout_s=timeout_s)
        reposted = repost_samples(aws.s3, aws.outputs["UploadsBucketName"])
        if reposted:
            print(f"posted {len(reposted)} of them again under another key (the same bytes and metadata); "
                  "waiting for their results...", file=out, flush=True)
            results |= aws.wait_for_results(set(reposted), timeout_s=timeout_s)
            put_at |= reposted
        print_table(out, put_at, results)
        print_summary(out, aws.outputs["ResultsTableName"], results)
        print_events(out, aws, events, len(put_at))
        print_one_decision(out, [results[k] for k in put_at if k in results])
        missing = sorted(set(put_at) - set(results))
        elapsed = time.perf_counter() - started
        print(f"\n{len(results)}/{len(put_at)} uploads have a result item; {elapsed:.1f} s in all.", file=out)
        if missing:
            print(f"no result for: {', '.join(missing)}", file=out)
        if serve:
            print_serving(out, aws)
            wait_for_interrupt()
        return 1 if missing else 0


def subscribe(aws: EmbeddedAws, name: str) -> str:
    """A queue that receives every gifcat event on the stack's result bus, as a team's rule would."""
    sqs, bus = aws.client("sqs"), aws.outputs["ResultEventBusName"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = aws.client("events")
    rules.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["gifcat"]}))
    rules.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return str(url)


def received(aws: EmbeddedAws, url: str) -> list[dict[str, Any]]:
    """What the subscribed queue holds once every change of the results table has been told."""
    if aws.streams is not None:
        aws.streams.wait_idle()
    sqs, got = aws.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        got += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return got


def print_events(out: Any, aws: EmbeddedAws, url: str, uploads: int) -> None:
    """The result events a subscriber of the stack's bus received: one per upload's answer."""
    events = received(aws, url)
    kinds = Counter(e["detail-type"] for e in events)
    told = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
    print(f"result events on {aws.outputs['ResultEventBusName']} (what a team's rule receives): "
          f"{len(events)} for {uploads} uploads ({told})", file=out)


def print_serving(out: Any, aws: EmbeddedAws) -> None:
    """How to reach the stack from another shell: its endpoint, the environment moto accepts, and the
    commands that take --endpoint."""
    from gifcat_tooling.local.aws import LOCAL_ENV

    url, bucket = aws.endpoint, aws.outputs["UploadsBucketName"]
    names = ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    env = " ".join(f"{k}={LOCAL_ENV[k]}" for k in names)
    upload = (
        f".venv/bin/python -c \"import boto3; boto3.client('s3', endpoint_url='{url}').upload_file("
        f"'my.gif', '{bucket}', 'uploads/my.gif', ExtraArgs={{'Metadata': {{'title': 'My GIF'}}}})\""
    )
    print(
        f"\nthe embedded AWS stays up at {url} until Ctrl-C. In another shell:\n"
        f"  export {env}\n"
        f"  {upload}\n"
        f"  .venv/bin/gifcat show s3://{bucket}/uploads/my.gif --endpoint {url}\n"
        f"  .venv/bin/gifcat summary --endpoint {url}\n"
        f"  .venv/bin/gifcat correct s3://{bucket}/uploads/my.gif --category funny --endpoint {url}",
        file=out,
        flush=True,
    )


def wait_for_interrupt() -> None:
    """Block until Ctrl-C (SIGTERM ends the process through the CLI's handler, which unwinds alike)."""
    with suppress(KeyboardInterrupt):
        threading.Event().wait()


def print_summary(out: Any, table: str, results: dict[str, ResultItem]) -> None:
    """What `gifcat summary` shows for these uploads: each stage's share, cost and time."""
    from gifcat.config import load_settings
    from gifcat.domain.taxonomy import load_taxonomy
    from gifcat_tooling.operations.summary import render_text, summarise

    version = load_taxonomy(load_settings().taxonomy).version
    print("\n" + render_text(summarise(results.values(), table=table, taxonomy_version=version)), file=out)


def print_one_decision(out: Any, results: list[ResultItem]) -> None:
    """What `gifcat show` says of the first upload a later stage decided (the embedding stage's if any):
    the decision with its evidence, each stage's candidates, time and cost, as the result item keeps them."""
    from gifcat_tooling.operations.show import render_item

    later = [r for r in results if r.decided_by in ("embedding", "llm") and not r.reused_from]
    if later:
        item = min(later, key=lambda r: r.decided_by != "embedding")  # the first of the embedding's
        print(f"\none decision, explained (gifcat show {item.pk}):\n{render_item(item)}", file=out)


def print_table(out: Any, put_at: dict[str, float], results: dict[str, ResultItem]) -> None:
    header = (
        f"{'object':<34} {'status':<10} {'category':<12} {'decided_by':<10} {'conf':>5} {'ms':>7}  reason"
    )
    print("\n" + header + "\n" + "-" * len(header), file=out)
    for key in put_at:
        r = results.get(key)
        if r is None:
            print(f"{key:<34} {'MISSING':<10}", file=out)
            continue
        ms = (r.updated_at.timestamp() - put_at[key]) * 1000.0
        decided_by = str(r.decided_by) if r.decided_by else "-"
        reused = f"reused the result of {r.reused_from.split('/', 3)[-1]}" if r.reused_from else ""
        print(
            f"{key[:34]:<34} {r.status.value:<10} {r.primary or '-':<12} {decided_by:<10} "
            f"{r.confidence:>5.2f} {ms:>7.0f}  {(r.reason or reused)[:60]}",
            file=out,
        )
