"""The embedded AWS: moto's server on 127.0.0.1 with the stack from template.yaml deployed into it and
the real handlers running in-process (see lambda_runner). No AWS account, no Docker.

    with EmbeddedAws(repo_root) as aws:
        aws.s3.put_object(Bucket=aws.outputs["UploadsBucketName"], Key="uploads/cat.gif", ...)
        aws.wait_for_results(1)
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3

from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat.domain.model import Status
from gifcat.domain.result import ResultItem
from gifcat_tooling.local import (
    iam,
    moto_choice,
    moto_dynamodb_atomic,
    moto_express,
    moto_itemreader,
    moto_speedups,
)
from gifcat_tooling.local.lambda_runner import LambdaRunner, LocalFunction
from gifcat_tooling.local.streams import StreamMapping, StreamPoller
from gifcat_tooling.local.template import REGION, Stack, load_template

LOCAL_ENV = {
    # moto accepts any credentials; real ones must never reach the embedded endpoint.
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def image_handler(root: Path, dockerfile: Path, target: str | None) -> tuple[Path, str]:
    """Where an image function's handler comes from, read off its build recipe: the folder of the module
    its target stage copies into the task root (COPY functions/embed/app.py ${LAMBDA_TASK_ROOT}/), and
    the stage's CMD (CMD ["app.handler"]). `target` is the template's DockerBuildTarget (None: the
    Dockerfile's last stage, as `docker build` would)."""
    stages = re.split(r"(?m)^FROM ", dockerfile.read_text(encoding="utf-8"))[1:]
    named = {m.group(1): s for s in stages if (m := re.match(r"\S+(?: AS (\S+))?", s)) and m.group(1)}
    if target is not None and target not in named:
        raise ValueError(f"{dockerfile}: no stage {target!r} (stages: {', '.join(named) or 'none named'})")
    stage = named[target] if target is not None else stages[-1]
    cmd = re.search(r'^CMD\s*\[\s*"([^"]+)"', stage, re.MULTILINE)
    if not cmd:
        raise ValueError(f'{dockerfile} ({target or "last stage"}): no CMD ["module.handler"] line')
    module = cmd.group(1).rsplit(".", 1)[0].replace(".", "/") + ".py"
    source = re.search(rf"^COPY\s+(\S*{re.escape(module)})\s+\$\{{LAMBDA_TASK_ROOT\}}", stage, re.MULTILINE)
    if not source:
        raise ValueError(f"{dockerfile} ({target or 'last stage'}): no COPY of {module} into the task root")
    return (root / source.group(1)).parent, cmd.group(1)


class EmbeddedAws:
    def __init__(
        self,
        root: Path,
        *,
        parameters: dict[str, str] | None = None,
        function_env: dict[str, str] | None = None,
        workers: int = 4,
        containers_per_function: int = 4,
        upload_trigger: bool = True,
    ) -> None:
        self.root = root
        self.parameters = parameters or {}
        self.function_env = function_env or {}
        self.workers = workers
        self.containers_per_function = containers_per_function
        self.upload_trigger = upload_trigger  # False: uploads start nothing (objects to backfill later)
        self.outputs: dict[str, str] = {}
        self.stream_mappings: list[StreamMapping] = []  # the functions' DynamoDB event sources
        self.streams: StreamPoller | None = None
        self._env_saved: dict[str, str | None] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedAws:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # The Step Functions interpreter calls back into moto at localhost:$MOTO_PORT.
        self._set_env({**LOCAL_ENV, "MOTO_PORT": str(self.port), "AWS_ENDPOINT_URL": self.endpoint})
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        # moto's backends are process-wide: a second embedded AWS in one process starts from empty.
        self._moto_api("reset", None)
        # ...and so is its config: what this run switches on is switched back on exit.
        self._sfn_config = dict(default_user_config.get("stepfunctions", {}))
        self._moto_api("config", {"stepfunctions": {"execute_state_machine": True}})
        moto_speedups.install()
        moto_express.install()  # Express executions as AWS starts them (no name idempotency)
        moto_itemreader.install()  # the Distributed Map reads the whole listing, as on AWS
        moto_dynamodb_atomic.install()  # no reader sees an item half updated
        moto_choice.install()  # a Choice rule's missing variable is a value, not a logged error
        self.runner = LambdaRunner(self.endpoint, workers=self.workers).__enter__()
        try:
            self.deploy()
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.streams is not None:
            self.streams.__exit__(*exc)
        self.runner.__exit__(*exc)
        self._moto_api("reset", None)
        self._moto_api("config", {"stepfunctions": self._sfn_config})
        self.server.stop()
        for key, value in self._env_saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _set_env(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            self._env_saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _moto_api(self, path: str, body: dict[str, Any] | None) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/{path}",
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    @property
    def s3(self) -> Any:
        return self.client("s3")

    # -- deployment from template.yaml -------------------------------------------------------------
    def deploy(self) -> None:
        stack = Stack(load_template(self.root / "template.yaml"), self.root, parameters=self.parameters)
        self.stack = stack
        s3, ddb, sqs = self.client("s3"), self.client("dynamodb"), self.client("sqs")
        for lid in stack.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=stack.physical_name(lid))
        for lid in stack.of_type("AWS::DynamoDB::Table"):
            props = stack.resolve(stack.resources[lid]["Properties"])
            name = stack.physical_name(lid)
            indexes = props.get("GlobalSecondaryIndexes")
            stream = props.get("StreamSpecification")
            table = ddb.create_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
                **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
                **({"StreamSpecification": {"StreamEnabled": True, **stream}} if stream else {}),
            )["TableDescription"]
            if stream:
                stack.attributes[(lid, "StreamArn")] = table["LatestStreamArn"]
            pitr = props.get("PointInTimeRecoverySpecification")
            if pitr:
                ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=pitr)
            ttl = props.get("TimeToLiveSpecification")
            if ttl:  # moto records it (describe_time_to_live) and, like AWS, deletes nothing at once
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        for lid in stack.of_type("AWS::SQS::Queue"):
            sqs.create_queue(QueueName=stack.physical_name(lid))
        for lid in stack.of_type("AWS::Events::EventBus"):
            self.client("events").create_event_bus(Name=stack.physical_name(lid))
        for lid in stack.of_type("AWS::Events::Archive"):
            props = stack.resolve(stack.resources[lid]["Properties"])
            self.client("events").create_archive(
                ArchiveName=stack.physical_name(lid), EventSourceArn=props["SourceArn"],
                RetentionDays=int(props["RetentionDays"]), EventPattern=json.dumps(props["EventPattern"]),
                Description=props.get("Description", ""),
            )
        role = self.client("iam").create_role(
            RoleName="gifcat-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        notifications: dict[str, list[dict[str, Any]]] = {}
        for lid in stack.of_type("AWS::Serverless::Function"):
            self._deploy_function(stack, lid, role, notifications)
        self.streams = StreamPoller(self.endpoint, self.stream_mappings).__enter__()
        for bucket, configs in notifications.items() if self.upload_trigger else ():
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configs}
            )
        logs = self.client("logs")
        for lid in stack.of_type("AWS::Logs::LogGroup"):
            logs.create_log_group(logGroupName=stack.physical_name(lid))
        cloudwatch = self.client("cloudwatch")
        for lid in stack.of_type("AWS::CloudWatch::Alarm"):
            alarm = stack.resolve(stack.resources[lid]["Properties"])
            # A parameter's value is a string to CloudFormation, which converts it; the API does not.
            cloudwatch.put_metric_alarm(**alarm | {"Threshold": float(alarm["Threshold"])})
        for lid in stack.of_type("AWS::CloudWatch::Dashboard"):
            props = stack.resolve(stack.resources[lid]["Properties"])
            cloudwatch.put_dashboard(
                DashboardName=props["DashboardName"], DashboardBody=props["DashboardBody"]
            )
        sfn = self.client("stepfunctions")
        for lid in stack.of_type("AWS::Serverless::StateMachine"):
            props = stack.resolve(stack.resources[lid]["Properties"])
            definition = (self.root / props["DefinitionUri"]).read_text(encoding="utf-8")
            for key, value in props.get("DefinitionSubstitutions", {}).items():
                definition = definition.replace("${" + key + "}", str(value))
            extra = {"loggingConfiguration": _logging(props["Logging"])} if "Logging" in props else {}
            sfn.create_state_machine(
                name=stack.physical_name(lid),
                definition=definition,
                roleArn=role,
                type=props.get("Type", "STANDARD"),
                **extra,
            )
        for name, spec in stack.template.get("Outputs", {}).items():
            value = stack.resolve(spec["Value"])
            if isinstance(value, str) and value.startswith("http://localhost/"):  # queue URLs
                value = value.replace("http://localhost", self.endpoint)
            self.outputs[name] = value

    def _deploy_function(
        self, stack: Stack, lid: str, role: str, notifications: dict[str, list[dict[str, Any]]]
    ) -> None:
        props = stack.function_properties(lid)
        raw = stack.resources[lid]
        name = stack.physical_name(lid)
        env = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        if props.get("PackageType") == "Image":
            # moto cannot invoke image functions: run the image's handler from its source folder, with
            # the model artefacts scripts/build_models.py built here instead of the image's /opt/models.
            meta = raw["Metadata"]
            code_dir, handler = image_handler(
                self.root, self.root / meta["Dockerfile"], meta.get("DockerBuildTarget")
            )
            env["GIFCAT_MODELS_DIR"] = str(models_dir())
        else:
            code_dir, handler = self.root / props["CodeUri"], props["Handler"]
        env.update({**LOCAL_ENV, "AWS_ENDPOINT_URL": self.endpoint, **self.function_env})
        invoke_config = props.get("EventInvokeConfig", {})
        dlq = invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=handler,
            Code={"ZipFile": _placeholder_zip()},
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": env},
        )
        fn = LocalFunction(
            name=name,
            arn=stack.arn(lid),
            code_dir=code_dir,
            handler=handler,
            environment=env,
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_s=int(props.get("Timeout", 3)),
            max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
            on_failure_queue_url=stack.queue_url_of_arn(dlq, self.endpoint) if dlq else None,
            max_containers=self.containers_per_function,
            statements=iam.function_statements(props.get("Policies", []), lid),
        )
        self.runner.register(fn)
        for event in props.get("Events", {}).values():
            if event.get("Type") == "DynamoDB":
                ev = event["Properties"]
                failed_to = ev.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                queue_url = stack.queue_url_of_arn(failed_to, self.endpoint) if failed_to else None
                self.stream_mappings.append(StreamMapping.from_event(fn, ev, queue_url))
            if event.get("Type") != "S3":
                continue
            ev = event["Properties"]
            rules = ev.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            config: dict[str, Any] = {
                "LambdaFunctionArn": stack.arn(lid),
                "Events": ev["Events"] if isinstance(ev["Events"], list) else [ev["Events"]],
            }
            if rules:
                config["Filter"] = {"Key": {"FilterRules": rules}}
            notifications.setdefault(ev["Bucket"], []).append(config)

    # -- waiting for results -----------------------------------------------------------------------
    def results(self) -> list[ResultItem]:
        from gifcat.adapters.dynamodb import ResultsTable

        return ResultsTable(self.outputs["ResultsTableName"], self.client("dynamodb")).scan()

    def wait_for_results(
        self, keys: set[str], timeout_s: float = 120.0, poll_s: float = 0.1
    ) -> dict[str, ResultItem]:
        """Wait until every key has a finished result (not pending); returns them by key.

        Polls only keys and statuses, backing off, so that waiting does not slow what it waits for.
        """
        ddb = self.client("dynamodb")
        names = {"#k": "key", "#s": "status"}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done: set[str] = set()
            pages = ddb.get_paginator("scan").paginate(
                TableName=self.outputs["ResultsTableName"],
                ProjectionExpression="#k, #s",
                ExpressionAttributeNames=names,
            )
            for page in pages:
                done |= {i["key"]["S"] for i in page["Items"] if i.get("status", {}).get("S") != "pending"}
            if keys <= done:
                break
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, 2.0)
        return {r.key: r for r in self.results() if r.key in keys and r.status is not Status.PENDING}


def _logging(sam: dict[str, Any]) -> dict[str, Any]:
    """SAM's Logging property as the Step Functions API takes it."""
    return {
        "level": sam.get("Level", "OFF"),
        "includeExecutionData": bool(sam.get("IncludeExecutionData", False)),
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
            for d in sam.get("Destinations", [])
        ],
    }


def _placeholder_zip() -> bytes:
    """moto wants a zip; the code that runs is the local source folder (see LocalFunction)."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README.txt", "gifcat local deployment: code runs from the source folder")
    return buf.getvalue()
