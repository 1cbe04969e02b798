"""`gifcat eval` run in the measuring script's own process (so a script can swap a seam with
unittest.mock first), with settings overrides for that run only; the measurement scripts share it."""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from unittest.mock import patch

Row = dict[str, Any]


def eval_in_process(argv: list[str], overrides: dict[str, Any]) -> tuple[dict[str, Any], list[Row]]:
    """`gifcat eval ARGV --json --predictions TMP` with GIFCAT_OVERRIDES set to `overrides` (a caller's own
    value comes back afterwards): its JSON summary and its predictions, one dict a record."""
    from gifcat_tooling.cli import main as gifcat

    with tempfile.TemporaryDirectory() as tmp:
        predictions = Path(tmp) / "predictions.jsonl"
        full = ["eval", *argv, "--json", "--predictions", str(predictions)]
        summary = io.StringIO()
        with patch.dict(os.environ, {"GIFCAT_OVERRIDES": json.dumps(overrides)}), redirect_stdout(summary):
            status = gifcat(full)
        if status != 0:
            raise SystemExit(f"gifcat {' '.join(full)} exited {status}")
        rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    return json.loads(summary.getvalue()), rows
