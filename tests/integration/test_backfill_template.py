"""The backfill state machine in template.yaml: a valid definition (statelint), every placeholder
substituted, JSONPath only (moto's interpreter runs no JSONata), and a least-privilege role."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from gifcat_tooling.local.template import Stack, load_template
from gifcat_tooling.operations.backfill import BackfillRequest
from tests.conftest import load_event
from tests.integration.test_template import tool

ASL = "statemachine/backfill.asl.json"


def test_statelint_accepts_the_definition(root: Path) -> None:
    run = subprocess.run([tool("statelint"), str(root / ASL)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_distributed_map_over_an_s3_listing_in_jsonpath(root: Path) -> None:
    definition = json.loads((root / ASL).read_text())
    assert "QueryLanguage" not in json.dumps(definition) and "Assign" not in json.dumps(definition)
    each = definition["States"]["ClassifyEach"]
    assert each["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert each["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert (each["MaxConcurrencyPath"], each["ToleratedFailurePercentagePath"]) == (
        "$.max_concurrency", "$.tolerated_failure_percentage"
    )
    # The defaults cover every parameter the map reads; the sample start event names the same ones.
    defaults = definition["States"]["Defaults"]["Result"]
    assert set(defaults) | {"bucket"} == set(load_event("backfill/start.json"))
    assert set(BackfillRequest("b", max_concurrency=1, tolerated_failure_percentage=1).execution_input()) == (
        set(defaults) | {"bucket"}
    )


def test_every_placeholder_is_substituted(root: Path) -> None:
    template = load_template(root / "template.yaml")
    props = template["Resources"]["BackfillStateMachine"]["Properties"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", (root / ASL).read_text()))
    assert placeholders == set(props["DefinitionSubstitutions"]) and props["DefinitionUri"] == ASL


def test_the_role_lists_one_bucket_and_runs_its_own_children(root: Path) -> None:
    stack = Stack(load_template(root / "template.yaml"), root)
    props = stack.resolve(stack.resources["BackfillStateMachine"]["Properties"])
    statements = {a: s["Resource"] for p in props["Policies"] if "Statement" in p
                  for s in p["Statement"] for a in s["Action"]}
    machine = stack.arn("BackfillStateMachine")
    outcomes = stack.arn("ArtefactsBucket") + "/backfill/*"  # the map's ResultWriter, and only there
    assert statements == {
        "dynamodb:UpdateItem": stack.arn("ResultsTable"),
        "s3:ListBucket": stack.arn("UploadsBucket"),
        "states:StartExecution": machine,
        "states:DescribeExecution": machine.replace(":stateMachine:", ":execution:") + "/*",
        "states:StopExecution": machine.replace(":stateMachine:", ":execution:") + "/*",
        "s3:PutObject": outcomes,
        "s3:GetObject": outcomes,
        "s3:ListMultipartUploadParts": outcomes,
        "s3:AbortMultipartUpload": outcomes,
    }
    invoked = {
        p["LambdaInvokePolicy"]["FunctionName"] for p in props["Policies"] if "LambdaInvokePolicy" in p
    }
    functions = ("TriageStepFunction", "EmbedFunction", "EscalateFunction")
    assert invoked == {stack.physical_name(f) for f in functions}


def test_the_children_outcomes_go_to_s3_not_into_the_maps_output(root: Path) -> None:
    # Without a ResultWriter the map's output is every child's outcome, and a state over 256 KiB fails
    # the run in AWS (States.DataLimitExceeded; moto does not check): a backfill of about 20,000
    # objects did every child's work and then failed. The outcomes expire with the bucket's rule.
    definition = json.loads((root / ASL).read_text())
    (maps,) = [s for s in definition["States"].values() if s["Type"] == "Map"]
    writer = maps["ResultWriter"]
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    assert writer["Parameters"] == {"Bucket": "${BackfillResultsBucket}", "Prefix": "backfill"}
    stack = Stack(load_template(root / "template.yaml"), root)
    subs = stack.resolve(stack.resources["BackfillStateMachine"]["Properties"]["DefinitionSubstitutions"])
    assert subs["BackfillResultsBucket"] == stack.physical_name("ArtefactsBucket")
    rules = stack.resources["ArtefactsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [(r["Prefix"], r["Status"]) for r in rules if "ExpirationInDays" in r]
    assert expiring == [("backfill/", "Enabled")]
