"""Step Functions start semantics that moto 5.2.5 lacks, so that the local run behaves as AWS does:

- Express executions are not idempotent by name: AWS starts a new execution for every StartExecution
  (at least once), whatever its name. moto deduplicated them as it does Standard ones, which would hide
  a duplicate start from every local test. Each gets its own ARN, as on AWS:
  arn:aws:states:<region>:<account>:express:<state machine>:<name>:<uuid>.
- An execution started without a name gets a UUID for one, as on AWS (moto left it empty, and
  `$$.Execution.Name` with it).

Locally, Express executions stay listed and describable (AWS keeps them only in CloudWatch Logs): the
tests read their history; the code under test never does.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import uuid
from typing import Any

from gifcat_tooling.local.patching import once


@once
def install() -> None:
    """Patches moto's Step Functions backend (once per process)."""
    _patch_start_execution()


def _patch_start_execution() -> None:
    from moto.stepfunctions.models import StepFunctionBackend
    from moto.stepfunctions.parser.api import InvalidExecutionInput, StateMachineType
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.utilities.utils import ARN_PARTITION_REGEX

    original = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: Any = None,
    ) -> Any:
        name = name or str(uuid.uuid4())
        state_machine = self.describe_state_machine(state_machine_arn)
        # `type` is what was created; moto's interpreter runs every machine as STANDARD (`sm_type`),
        # which changes nothing in how the states run.
        if state_machine.type != StateMachineType.EXPRESS:
            # moto reads no input as "{}" too; its signature wants a string
            return original(self, state_machine_arn, name, execution_input or "{}", trace_header)
        # moto's own start_execution, less the name idempotency, with an Express ARN.
        input_data = execution_input or "{}"
        try:
            json.loads(input_data)
        except ValueError as exc:
            raise InvalidExecutionInput(str(exc)) from None
        clone = copy.deepcopy(
            state_machine,
            {id(state_machine.executions): [], id(state_machine.backend): state_machine.backend},
        )
        arn = (
            f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:express:"
            f"{state_machine.name}:{name}:{uuid.uuid4()}"
        )
        execution = Execution(
            name=name,
            sm_type=clone.sm_type,
            role_arn=clone.roleArn,
            exec_arn=arn,
            account_id=self.account_id,
            region_name=self.region_name,
            state_machine=clone,
            start_date=datetime.datetime.now(tz=datetime.UTC),
            cloud_watch_logging_session=None,
            input_data=input_data,
            trace_header=trace_header,
            activity_store={},
        )
        state_machine.executions.append(execution)
        execution.start()
        return execution

    StepFunctionsParserBackend.start_execution = start_execution
    # Describe and history by an Express ARN (local only: see the module's docstring).
    StepFunctionBackend.accepted_exec_arn_format = re.compile(
        ARN_PARTITION_REGEX + r":states:[-0-9a-zA-Z]+:(?P<account_id>[0-9]{12}):(execution|express):.+"
    )
