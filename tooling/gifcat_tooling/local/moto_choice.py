"""A Choice rule's variable that is not in the state, as AWS evaluates it: a value (`IsPresent` is
false), not an error.

moto 5.2.5 makes it that value too (`NoSuchVariable`), but only after the path's evaluation has logged
the miss at ERROR, so every console rerun and every late sidecar's rerun (which start without a triage
result, and ask `HasTriageResult` whether `$.classification` is present) printed
"Exception=NoSuchJsonPathError" in the demo and the tests' output, where nothing had gone wrong. The
path is evaluated here without that log; everything else is moto's.
"""

from __future__ import annotations

from typing import Any

from gifcat_tooling.local.patching import once


@once
def install() -> None:
    from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import (
        NoSuchVariable,
        Variable,
    )

    def _eval_body(self: Variable, env: Any) -> None:
        try:
            if not env.is_running():  # as EvalComponent.eval: a stopped run evaluates nothing
                raise RuntimeError("the execution is not running")
            self.string_sampler._eval_body(env)  # not .eval, which logs the miss at ERROR first
            value = env.stack.pop()
        except Exception as ex:
            value = NoSuchVariable(f"{self.string_sampler.literal_value}, {ex}")
        env.stack.append(value)

    Variable._eval_body = _eval_body
