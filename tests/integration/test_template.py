"""template.yaml and the state machine definition: valid for SAM and for Step Functions, and consistent
with each other and with the sample events."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from gifcat.adapters.dynamodb import (
    BY_TAXONOMY_VERSION,
    CONTENT_INDEX,
    CORRECTED_BY_TAXONOMY_VERSION,
    RERUNNABLE_INDEX,
)
from gifcat.adapters.llm.credentials import is_ssm_name
from gifcat.application.events import RerunRequest, S3UploadEvent, TriageStepEvent, sidecar_upload_key
from gifcat.application.service import StepState
from gifcat.config import Settings, load_settings
from gifcat_tooling.local.template import Stack, load_template
from tests.conftest import load_event

ASL = "statemachine/classify.asl.json"


def tool(name: str, env_var: str | None = None) -> str:
    path = os.environ.get(env_var or "") or shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: run `make test`, which installs it")
    return path


def test_statelint_accepts_the_definition(root: Path) -> None:
    run = subprocess.run([tool("statelint"), str(root / ASL)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_sam_validate_lint(root: Path) -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    run = subprocess.run(
        [tool("sam", "SAM_CLI"), "validate", "--lint", "--template-file", str(root / "template.yaml")],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "is a valid SAM Template" in run.stdout + run.stderr


@pytest.mark.parametrize("machine", ["ClassifyStateMachine", "RerunStateMachine"])
def test_every_placeholder_in_the_definition_is_substituted(root: Path, machine: str) -> None:
    # cfn-lint checks neither: a missing substitution would only fail at deploy time.
    template = load_template(root / "template.yaml")
    placeholders = set(re.findall(r"\$\{(\w+)\}", (root / ASL).read_text()))
    props = template["Resources"][machine]["Properties"]
    assert placeholders == set(props["DefinitionSubstitutions"])
    assert props["DefinitionUri"] == ASL


def test_uploads_run_express_with_logs_and_reruns_keep_a_standard_history(root: Path) -> None:
    stack = Stack(load_template(root / "template.yaml"), root)
    express = stack.resolve(stack.resources["ClassifyStateMachine"]["Properties"])
    rerun = stack.resolve(stack.resources["RerunStateMachine"]["Properties"])
    assert (express["Type"], rerun["Type"]) == ("EXPRESS", "STANDARD")
    # What the triage function starts is the Express one; the console's rerun output, the Standard one.
    triage_env = stack.function_properties("TriageFunction")["Environment"]["Variables"]
    assert triage_env["STATE_MACHINE_ARN"] == stack.arn("ClassifyStateMachine")
    assert stack.resolve(stack.template["Outputs"]["RerunStateMachineArn"]["Value"]) == stack.arn(
        "RerunStateMachine"
    )
    # The console shows Express runs only from their logs: every run, without the uploader's text.
    logging = express["Logging"]
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", False)
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": stack.arn("ClassifyLogGroup")}}
    ]
    for props in (express, rerun):  # the table only through UpdateItem (Claim, Record, RecordFailure)
        table_actions = {
            a for p in props["Policies"] for s in p.get("Statement", []) for a in s["Action"]
            if s["Resource"] == stack.arn("ResultsTable")
        }
        assert table_actions == {"dynamodb:UpdateItem"}


def test_a_claim_outlives_every_run(root: Path) -> None:
    # A pending item is started again only once the run that claimed it has surely ended.
    from gifcat.adapters.dynamodb import CLAIM_LEASE_S

    definition = json.loads((root / ASL).read_text())
    assert definition["TimeoutSeconds"] <= 300  # the Express limit: longer runs are stopped anyway
    assert definition["TimeoutSeconds"] < CLAIM_LEASE_S


def test_functions_touch_only_what_they_use(root: Path) -> None:
    stack = Stack(load_template(root / "template.yaml"), root)
    actions = {}
    for lid in stack.of_type("AWS::Serverless::Function"):
        statements = stack.function_properties(lid).get("Policies", [{}])[0].get("Statement", [])
        actions[lid] = {a for s in statements for a in s["Action"]}
    assert actions["TriageFunction"] == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "states:StartExecution",
        "sqs:SendMessage",
    }
    # An upload seen before: the index by content only, then the results it names.
    triage = stack.function_properties("TriageFunction")["Policies"][0]["Statement"]
    table_arn = stack.resolve({"Fn::GetAtt": ["ResultsTable", "Arn"]})
    triage_resources = {a: s["Resource"] for s in triage for a in s["Action"]}
    assert triage_resources["dynamodb:Query"] == f"{table_arn}/index/{CONTENT_INDEX}"
    assert triage_resources["dynamodb:BatchGetItem"] == table_arn
    assert actions["TriageStepFunction"] == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    }
    # uploads, and the artefacts `gifcat learn` publishes (listing only under their prefix, so that a
    # missing current.json reads as "nothing published" rather than access denied)
    assert actions["EmbedFunction"] == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    embed = stack.function_properties("EmbedFunction")["Policies"][0]["Statement"]
    (listing,) = [s for s in embed if "s3:ListBucket" in s["Action"] and "Condition" in s]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["embedding/*"]}}
    # The uploads only (a text-less GIF's frames); no secret configured: nothing else
    assert actions["EscalateFunction"] == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    # gifcat learn: reads the newest results (the index, then the items), reads and publishes artefacts
    # under embedding/ only
    assert actions["LearnFunction"] == {
        "dynamodb:Query", "dynamodb:BatchGetItem", "s3:GetObject", "s3:PutObject", "s3:ListBucket"
    }
    learn = stack.function_properties("LearnFunction")["Policies"][0]["Statement"]
    resources = {a: s["Resource"] for s in learn for a in s["Action"]}
    assert resources["dynamodb:Query"] == [
        f"{table_arn}/index/{BY_TAXONOMY_VERSION}", f"{table_arn}/index/{CORRECTED_BY_TAXONOMY_VERSION}"
    ]
    assert resources["dynamodb:BatchGetItem"] == table_arn
    artefacts = stack.resolve({"Fn::GetAtt": ["ArtefactsBucket", "Arn"]})
    assert resources["s3:GetObject"] == resources["s3:PutObject"] == f"{artefacts}/embedding/*"
    assert resources["s3:ListBucket"] == artefacts
    (listing,) = [s for s in learn if "s3:ListBucket" in s["Action"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["embedding/*"]}}
    # Result events: put on the stack's bus, nothing else (SAM adds the stream's read and the on-failure
    # queue's send for the event source itself).
    publish = stack.function_properties("PublishFunction")["Policies"][0]["Statement"]
    assert publish == [{"Effect": "Allow", "Action": ["events:PutEvents"],
                        "Resource": stack.resolve({"Fn::GetAtt": ["ResultEventBus", "Arn"]})}]
    with_secret = Stack(
        load_template(root / "template.yaml"),
        root,
        parameters={"LlmApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:k"},
    )
    statements = with_secret.function_properties("EscalateFunction")["Policies"][0]["Statement"]
    assert statements[2:] == [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "arn:aws:secretsmanager:us-east-1:1:secret:k",
        }
    ]


def test_every_function_that_reads_uploads_may_learn_that_a_key_is_missing(root: Path) -> None:
    # Without s3:ListBucket on the bucket, S3 answers GetObject and HeadObject of a missing key with 403
    # AccessDenied, not 404. A GIF without a sidecar (the sidecar read finds nothing), or one deleted
    # before it was read, then failed as storage unavailable: retried, and dead-lettered without a
    # result. The embedded AWS does not enforce IAM, so only the policy can say it.
    stack = Stack(load_template(root / "template.yaml"), root)
    bucket = stack.arn("UploadsBucket")
    readers = []
    for lid in stack.of_type("AWS::Serverless::Function"):
        statements = stack.function_properties(lid).get("Policies", [{}])[0].get("Statement", [])
        if not any("s3:GetObject" in s["Action"] and s["Resource"] == f"{bucket}/*" for s in statements):
            continue
        readers.append(lid)
        listing = [s for s in statements if "s3:ListBucket" in s["Action"] and s["Resource"] == bucket]
        assert listing and "Condition" not in listing[0], lid
    assert sorted(readers) == ["EmbedFunction", "EscalateFunction", "TriageFunction", "TriageStepFunction"]


@pytest.mark.parametrize(
    ("where", "action", "resources"),
    [
        ("arn:aws:secretsmanager:us-east-1:1:secret:k-AbC", "secretsmanager:GetSecretValue",
         ["arn:aws:secretsmanager:us-east-1:1:secret:k-AbC"]),
        ("/gifcat/openai-key", "ssm:GetParameter",
         ["arn:aws:ssm:us-east-1:123456789012:parameter/gifcat/openai-key"]),
        ("ssm:openai-key", "ssm:GetParameter", ["arn:aws:ssm:us-east-1:123456789012:parameter/openai-key"]),
        ("ssm:/gifcat/k", "ssm:GetParameter", ["arn:aws:ssm:us-east-1:123456789012:parameter/gifcat/k"]),
        ("arn:aws:ssm:us-east-1:1:parameter/k", "ssm:GetParameter", ["arn:aws:ssm:us-east-1:1:parameter/k"]),
    ],
)
def test_the_llm_key_is_readable_where_the_function_reads_it(
    root: Path, where: str, action: str, resources: list[str]
) -> None:
    # README and settings.yaml offer an SSM parameter as well as a secret: a grant of
    # secretsmanager:GetSecretValue on "/gifcat/openai-key" failed the deploy, and on an SSM ARN it
    # deployed and every LLM call failed at its key.
    assert is_ssm_name(where) == action.startswith("ssm:")
    stack = Stack(load_template(root / "template.yaml"), root, parameters={"LlmApiKeySecretArn": where})
    statements = stack.function_properties("EscalateFunction")["Policies"][0]["Statement"]
    keys = [s for s in statements if not any(a.startswith("s3:") for a in s["Action"])]
    assert [s["Action"] for s in keys] == [[action]]
    granted = keys[0]["Resource"]
    granted = granted if isinstance(granted, list) else [granted]
    assert set(resources) <= set(granted) and len(granted) <= 2


@pytest.mark.parametrize("asl", [ASL, "statemachine/backfill.asl.json"])
def test_every_write_to_the_table_retries_a_throttle(root: Path, asl: str) -> None:
    # RecordFailure had no Retry: a throttled write of a failure ended the run with its item pending
    # (and the run failed by its own RecordFailure error, not the one it was recording).
    def tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, state in states.items():
            if state["Type"] == "Map":
                yield from tasks(state["ItemProcessor"]["States"])
            elif state["Type"] == "Task" and ":::dynamodb:" in state["Resource"]:
                yield name, state

    writes = dict(tasks(json.loads((root / asl).read_text())["States"]))
    assert "RecordFailure" in writes and "Record" in writes
    # Step Functions names a DynamoDB task's error "DynamoDB." and the API's exception: a name the API
    # does not have (InternalServerErrorException: the API's is InternalServerError) matches nothing.
    model = botocore.session.get_session().get_service_model("dynamodb")
    exceptions = {f"DynamoDB.{name}" for name in model.shape_names
                  if model.shape_for(name).metadata.get("exception")}
    throttled = {f"DynamoDB.{e}" for e in ("ProvisionedThroughputExceededException", "ThrottlingException",
                                           "RequestLimitExceeded", "InternalServerError")}
    for name, state in writes.items():
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        caught = {e for c in state.get("Catch", []) for e in c["ErrorEquals"]}
        assert throttled <= retried, name
        assert {e for e in retried | caught if e.startswith("DynamoDB.")} <= exceptions, name


def test_sample_events_parse_as_their_handlers_do() -> None:
    step = TriageStepEvent.model_validate(load_event("triage/step.json"))
    assert step.execution_name == "console-rerun-1" and step.request.force
    express = "arn:aws:states:us-east-1:1:express:gifcat-ClassifyStateMachine:console-rerun-2:5f0e-77"
    assert step.model_copy(update={"execution": express}).execution_name == "console-rerun-2"
    for name in ("embed/state.json", "escalate/state.json"):
        state = StepState.model_validate(load_event(name))
        assert state.classification.status.value == "undecided" and not state.decided
    s3 = S3UploadEvent.model_validate(load_event("triage/s3-put.json"))
    assert s3.Records[0].object_ref().key == "uploads/pizza time.gif"
    late = S3UploadEvent.model_validate(load_event("triage/s3-put-sidecar.json")).Records[0].object_ref()
    assert sidecar_upload_key(late.key, ".gif") == "uploads/pizza time.gif"  # a sidecar put after it
    rerun = RerunRequest.model_validate(load_event("statemachine/rerun.json"))
    assert rerun.force is True
    assert json.loads(json.dumps(load_event("statemachine/rerun.json"))).keys() <= {
        "bucket",
        "key",
        "force",
        "version_id",
    }


@pytest.mark.parametrize(
    ("taxonomy", "settings", "expected"),
    [
        ("bundled", "", False),
        ("s3://b/t.yaml", "", True),
        ("", "s3://b/s.yaml", True),
        ("s3://b/config/t.yaml", "s3://c/s.yaml", True),
        ("/opt/t.yaml", "", False),
    ],
)
def test_config_in_s3_grants_read(root: Path, taxonomy: str, settings: str, expected: bool) -> None:
    stack = Stack(
        load_template(root / "template.yaml"),
        root,
        parameters={"TaxonomyLocation": taxonomy, "SettingsLocation": settings},
    )
    assert stack.conditions["S3Config"] is expected
    # Each function that loads settings may read the configured objects, and no other object of the
    # account; the sweep and the publish function load none (gifcat.runtime.SweepEnvironment,
    # PublishEnvironment) and read no object at all.
    objects = [f"arn:aws:s3:::{where.removeprefix('s3://')}" for where in (taxonomy, settings)
               if where.startswith("s3://")]
    for lid in stack.of_type("AWS::Serverless::Function"):
        statements = stack.function_properties(lid).get("Policies", [{}])[0].get("Statement", [])
        reads = [s["Resource"] for s in statements
                 if s["Action"] == ["s3:GetObject"] and "uploads" not in str(s["Resource"])
                 and "embedding" not in str(s["Resource"])]
        loads_settings = lid not in ("SweepFunction", "PublishFunction")
        assert reads == ([objects] if expected and loads_settings else []), lid


def test_cost_accounting_prices_each_stage_at_its_functions_memory(root: Path, settings: Settings) -> None:
    # `gifcat eval` prices a stage's Lambda time at settings' memory_mb: it must be what the stack runs.
    stack = Stack(load_template(root / "template.yaml"), root)
    runs_on = {"tags": "TriageFunction", "rules": "TriageFunction", "embedding": "EmbedFunction",
               "llm": "EscalateFunction"}
    globals_mb = stack.template.get("Globals", {}).get("Function", {}).get("MemorySize")
    deployed = {
        stage: stack.function_properties(fn).get("MemorySize", globals_mb) for stage, fn in runs_on.items()
    }
    assert settings.prices.lambda_.memory_mb == deployed


@pytest.mark.parametrize(
    ("schedule", "state"), [(None, "ENABLED"), ("rate(1 day)", "ENABLED"), ("off", "DISABLED")]
)
def test_learn_runs_alone_on_a_schedule_that_can_be_turned_off(
    root: Path, schedule: str | None, state: str
) -> None:
    parameters = {} if schedule is None else {"LearnSchedule": schedule}
    stack = Stack(load_template(root / "template.yaml"), root, parameters=parameters)
    props = stack.function_properties("LearnFunction")
    # No reservation unless asked for (a new account's quota of 10 cannot reserve any): two learns
    # racing for a version number are kept apart by the store's conditional write.
    assert "ReservedConcurrentExecutions" not in props
    reserved = Stack(load_template(root / "template.yaml"), root,
                     parameters={**parameters, "LearnReservedConcurrency": "1"})
    assert reserved.function_properties("LearnFunction")["ReservedConcurrentExecutions"] == "1"
    assert props["PackageType"] == "Image" and props["Timeout"] <= 900
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0  # the next scheduled run is the retry
    (event,) = props["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["State"] == state
    expression = event["Properties"]["Schedule"]
    assert expression == (schedule if schedule not in (None, "off") else "rate(6 hours)")
    env = props["Environment"]["Variables"]
    artefacts = stack.resolve({"Ref": "ArtefactsBucket"})
    assert env["GIFCAT_ARTEFACTS"] == f"s3://{artefacts}/embedding"
    assert env["RESULTS_TABLE"] == stack.resolve({"Ref": "ResultsTable"})


@pytest.mark.parametrize("given", [None, {"stages": {"tags": {"min_score": 0.9}}}])
def test_a_deployed_stack_runs_the_calibrated_thresholds_unless_told_otherwise(
    root: Path, given: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    parameters = {} if given is None else {"SettingsOverrides": json.dumps(given)}
    stack = Stack(load_template(root / "template.yaml"), root, parameters=parameters)
    env = stack.resolve(stack.template["Globals"]["Function"]["Environment"]["Variables"])
    monkeypatch.setenv("GIFCAT_OVERRIDES", env["GIFCAT_OVERRIDES"])
    deployed = load_settings()
    monkeypatch.delenv("GIFCAT_OVERRIDES")
    bundled = load_settings()
    assert deployed.stages["rules"] == bundled.stages["rules"]
    if given is None:
        assert deployed.stages["tags"] == bundled.stages["tags"]  # what `gifcat calibrate` wrote
    else:
        assert deployed.stages["tags"].min_score == 0.9
        assert deployed.stages["tags"].target == bundled.stages["tags"].target


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:us-east-1:123456789012:gifcat-alarms"])
def test_alarms_notify_the_topic_when_one_is_given(root: Path, topic: str) -> None:
    stack = Stack(load_template(root / "template.yaml"), root,
                  parameters={"AlarmTopicArn": topic, "LlmHourlyBudgetUsd": "0.5"})
    alarms = stack.of_type("AWS::CloudWatch::Alarm")
    assert sorted(alarms) == [
        "BackfillFailedAlarm", "DeadLetterAlarm", "EmbedFailedAlarm", "FailedRunsAlarm", "LearnFailedAlarm",
        "LlmFailedAlarm", "LlmSpendAlarm", "PublishDeadLetterAlarm", "StuckRunsAlarm",
    ]
    for lid in alarms:
        props = stack.resolve(stack.resources[lid]["Properties"])
        assert props.get("AlarmActions") == ([topic] if topic else None)


@pytest.mark.parametrize("budget", ["0", "2.5"])
def test_the_llm_spend_alarm_watches_the_handlers_cost_metric_against_the_budget(
    root: Path, budget: str
) -> None:
    # What the escalate handler emits (functions/escalate/app.py: LlmCostUsd, Powertools' namespace and
    # service dimension), summed over an hour; no alarm unless a budget is given.
    stack = Stack(load_template(root / "template.yaml"), root, parameters={"LlmHourlyBudgetUsd": budget})
    if budget == "0":
        assert "LlmSpendAlarm" not in stack.of_type("AWS::CloudWatch::Alarm")
        return
    alarm = stack.resolve(stack.resources["LlmSpendAlarm"]["Properties"])
    env = stack.function_properties("EscalateFunction")["Environment"]["Variables"]
    escalate = (root / "functions/escalate/app.py").read_text()
    assert f'name="{alarm["MetricName"]}"' in escalate
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Period"], float(alarm["Threshold"])) == ("Sum", 3600, 2.5)


@pytest.mark.parametrize("days", [None, "90"])
def test_every_log_the_stack_writes_expires(root: Path, days: str | None) -> None:
    # Lambda's own group for a function keeps every line for ever (about 4 KB an upload): each function
    # logs to a group of the stack's instead, kept as long as LogRetentionDays says, as the machine's is.
    parameters = {} if days is None else {"LogRetentionDays": days}
    stack = Stack(load_template(root / "template.yaml"), root, parameters=parameters)
    groups = {stack.physical_name(lid): stack.resolve(stack.resources[lid]["Properties"])
              for lid in stack.of_type("AWS::Logs::LogGroup")}
    assert {str(g["RetentionInDays"]) for g in groups.values()} == {days or "30"}
    for lid in stack.of_type("AWS::Serverless::Function"):
        assert stack.function_properties(lid)["LoggingConfig"]["LogGroup"] in groups, lid
    assert len(groups) == len(stack.of_type("AWS::Serverless::Function")) + 1  # and the Express machine's


def test_the_indexes_learn_and_rerun_read_are_the_tables(root: Path) -> None:
    # gifcat learn queries them by name: the newest results of a taxonomy version, and its people's
    # answers however old (sparse: only corrected results have corrected_at); gifcat rerun the failed
    # and pending results (sparse: only they have a rerunnable); triage the results of an upload's
    # content, to reuse. Keys only.
    stack = Stack(load_template(root / "template.yaml"), root)
    table = stack.resolve(stack.resources["ResultsTable"]["Properties"])
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {
        BY_TAXONOMY_VERSION, CORRECTED_BY_TAXONOMY_VERSION, RERUNNABLE_INDEX, CONTENT_INDEX
    }
    for name, key, sort in ((BY_TAXONOMY_VERSION, "taxonomy_version", "updated_at"),
                            (CORRECTED_BY_TAXONOMY_VERSION, "taxonomy_version", "corrected_at"),
                            (RERUNNABLE_INDEX, "rerunnable", "updated_at")):
        assert indexes[name]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
        assert [(k["AttributeName"], k["KeyType"]) for k in indexes[name]["KeySchema"]] == [
            (key, "HASH"), (sort, "RANGE")
        ]
    # No sort key: the state machine's Record, which sets updated_at, writes nothing to this index.
    assert indexes[CONTENT_INDEX]["KeySchema"] == [{"AttributeName": "content_key", "KeyType": "HASH"}]
    assert indexes[CONTENT_INDEX]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
