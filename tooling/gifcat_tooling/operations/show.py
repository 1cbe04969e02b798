"""`gifcat show s3://BUCKET/KEY`: one upload's decision as the results table holds it, readable.

The result item records every stage that ran with its top candidates and their evidence, its time, cost
and notes, and the decision with the stage that made it; `gifcat summary` sums them over the table. This
is the other end: why one GIF got its category, which is what a person checks before correcting it
(`gifcat correct`) or tuning a stage.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from gifcat.domain.model import StageTrace
from gifcat.domain.result import ResultItem

CANDIDATES = 3  # per stage; the item keeps up to TRACE_TOP_K
EVIDENCE = 3  # per candidate


def _stage_lines(trace: StageTrace) -> list[str]:
    what = "decided" if trace.decided else ("abstained" if trace.abstained else "passed on")
    if trace.error:
        what = "failed"
    head = f"  {trace.stage.value:<10} {what:<9} {trace.elapsed_ms:>8.1f} ms  ${trace.cost_usd:.6f}"
    extras = [f"model {trace.model}"] if trace.model else []
    if trace.artefact_version:
        extras.append(f"artefact {trace.artefact_version}")
    if trace.prompt_version:
        extras.append(f"prompt {trace.prompt_version}")
    if trace.usage.get("prompt_tokens"):
        extras.append(f"{trace.usage['prompt_tokens']}+{trace.usage.get('completion_tokens', 0)} tokens")
    lines = [head + (f"  ({', '.join(extras)})" if extras else "")]
    for candidate in trace.candidates[:CANDIDATES]:
        evidence = "; ".join(candidate.evidence[:EVIDENCE])
        score = f"      {candidate.category:<12} {candidate.score:.2f}"
        lines.append(score + (f"  {evidence}" if evidence else ""))
    if trace.neighbours:
        near = ", ".join(f"{n.primary} {n.similarity:.2f} ({n.text[:40]!r})" for n in trace.neighbours[:3])
        lines.append(f"      nearest examples: {near}")
    for label, text in (("abstained", trace.abstained), ("error", trace.error), ("why", trace.rationale)):
        if text:
            lines.append(f"      {label}: {text}")
    lines += [f"      note: {note}" for note in trace.notes]
    return lines


def render_item(item: ResultItem) -> str:
    """The decision first, then what was read, then each stage in the order it ran."""
    status = item.status.value
    if item.primary:
        others = [label for label in item.labels if label != item.primary]
        status += f" {item.primary}" + (f" (also {', '.join(others)})" if others else "")
    if item.decided_by:
        status += f", decided by {item.decided_by} at {item.confidence:.2f}"
    lines = [f"{item.pk}: {status}"]
    if item.reused_from:
        lines.append(f"reused: the answer of {item.reused_from}, an upload of the same bytes and metadata "
                     "(no run, embedding or LLM call for this one)")
    if item.reason:
        lines.append(f"reason: {readable_reason(item.reason)}")
    if item.corrected_from is not None:
        was = item.corrected_from
        lines.append(f"corrected by {item.corrected_by or 'a person'} at {item.corrected_at}; the machine "
                     f"said {was.primary or was.status} ({was.decided_by or 'no stage'})")
    facts = [f"taxonomy {item.taxonomy_version}"] if item.taxonomy_version else []
    if item.artefact_version:
        facts.append(f"artefact {item.artefact_version}")
    facts.append(f"updated {item.updated_at.isoformat(timespec='seconds')}")
    if item.execution:
        facts.append(f"execution {item.execution}")
    if item.expires_at is not None:  # a deleted object's result, until the table's TTL removes it
        facts.append(f"expires {datetime.fromtimestamp(item.expires_at, UTC).isoformat(timespec='seconds')}")
    lines.append(", ".join(facts))
    read = [f"title {item.title!r}"] if item.title else []
    if item.tags:
        read.append(f"tags {', '.join(item.tags)}")
    if item.description:
        read.append(f"description {item.description[:120]!r}")
    lines.append("read: " + ("; ".join(read) if read else "no title, tags or description"))
    if item.suspicious_text:
        lines.append(f"text addressed to a classifier, cut out before any stage read it: {item.removed_text}")
    if item.evidence:
        lines.append("evidence: " + "; ".join(item.evidence))
    cost = item.cost or {}
    lines.append(
        f"cost: ${item.cost_usd:.6f} (LLM ${cost.get('llm_usd', 0.0):.6f}, Lambda "
        f"${cost.get('lambda_usd', 0.0):.6f}, Step Functions ${cost.get('stepfunctions_usd', 0.0):.6f})"
    )
    if item.stages:
        lines.append("stages (the top candidates of each, with their evidence):")
        for trace in item.stages:
            lines += _stage_lines(trace)
    return "\n".join(lines)


_STEP_FAILURE = re.compile(r"^([\w.]+): (\{.*\})$", re.DOTALL)


def readable_reason(reason: str) -> str:
    """A reason as a person reads it. A step that failed is recorded by the state machine as
    "<error>: <cause>", and a Lambda function's cause is its error document (message, type, request
    id and stack trace): shown as "<error>: <message>", the whole document staying in the item."""
    match = _STEP_FAILURE.match(reason)
    if match:
        try:
            cause = json.loads(match[2])
        except ValueError:
            return reason
        if isinstance(cause, dict) and isinstance(cause.get("errorMessage"), str):
            return f"{match[1]}: {cause['errorMessage']} (its stack trace is in the item's reason)"
    return reason

