"""What the Express machine's logging ingests per run: the bytes of its CloudWatch Logs events at level
ALL without execution data, for the path decided by embeddings and for the LLM path.

Counts the events of real runs in the embedded AWS (moto's interpreter emits the history events Step
Functions does: 5 per task state, 2 per choice state) and sizes each as Express logs it: id, type,
details (names and resources; no input or output), previous_event_id, event_timestamp, execution_arn
(an AWS-length Express ARN), redrive_count; CloudWatch Logs bills 26 bytes more per event.
settings.yaml prices.stepfunctions.express.log_bytes_per_execution takes the LLM path's figure.

    python benchmarks/express_log_bytes.py
"""

from __future__ import annotations

import json

from common import REPO, stdout_to_devnull, table, write_result

from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import draw_gif, upload

LEFT_OUT = {"input", "output", "inputDetails", "outputDetails", "parameters"}  # IncludeExecutionData: false
CASES = {
    "embedding": {
        "title": "Migration",
        "tags": ["#planetearth", "#bbc"],
        "description": "Thousands of wildebeest pour across the river while crocodiles wait below.",
    },
    "llm": {"title": "Hmm", "tags": ["#reaction"]},
}
# An Express ARN as AWS writes it (CloudFormation's machine name, a run id): local names are shorter.
ARN = "arn:aws:states:us-east-1:123456789012:express:ClassifyStateMachine-AbCdEfGhIjKl:{name}:{run}"


def log_bytes(events: list[dict], name: str) -> int:
    arn = ARN.format(name=name, run="0f6c2b43-9e1d-4a57-8b0e-2f4a5c6d7e8f")
    total = 0
    for event in events:
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        record = {
            "id": str(event["id"]),
            "type": event["type"],
            "details": {k: v for k, v in details.items() if k not in LEFT_OUT},
            "previous_event_id": str(event.get("previousEventId", 0)),
            "event_timestamp": str(int(event["timestamp"].timestamp() * 1000)),
            "execution_arn": arn,
            "redrive_count": "0",
        }
        total += len(json.dumps(record, default=str)) + 26
    return total


def main() -> None:
    from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI, answer

    with FakeOpenAI() as llm, stdout_to_devnull(), EmbeddedAws(
        REPO, parameters={"LlmBaseUrl": llm.base_url, "LlmModel": DEFAULT_MODEL}
    ) as aws:
        llm.push(answer("surprised"))
        bucket = aws.outputs["UploadsBucketName"]
        keys = {f"uploads/{path}.gif": path for path in CASES}
        for key, path in keys.items():
            upload(aws.s3, bucket, key, draw_gif(path), CASES[path], via="sidecar")
        results = aws.wait_for_results(set(keys))
        sfn = aws.client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=aws.outputs["StateMachineArn"])["executions"]
        rows = {}
        for key, path in keys.items():
            item = results[key]
            run = next(e for e in listed if e["name"] == item["execution"])
            events = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
            rows[path] = {"decided_by": item["decided_by"], "events": len(events),
                          "bytes": log_bytes(events, item["execution"])}
    print(table(["path", "decided by", "events", "bytes"],
                [[p, r["decided_by"], r["events"], r["bytes"]] for p, r in rows.items()]))
    print(f"wrote {write_result('express_log_bytes', {'paths': rows})}")


if __name__ == "__main__":
    main()
