"""`gifcat demo --serve`: the demo's stack stays up for the commands README gives `--endpoint` to, a
second process uploads to it and reads the result, and SIGTERM takes it down."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from PIL import Image


def gif_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("P", (8, 8), 3).save(out, format="GIF")
    return out.getvalue()


def gifcat(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gifcat_tooling.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.slow
def test_the_served_stack_takes_uploads_and_commands_from_another_process(root: Path) -> None:
    demo = subprocess.Popen([sys.executable, "-m", "gifcat_tooling.cli", "demo", "--serve"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed: list[str] = []
        deadline = time.monotonic() + 600
        assert demo.stdout is not None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "the demo ended before serving:\n" + "".join(printed[-40:])
            printed.append(line)
            if "gifcat correct " in line:  # the last of the lines printed once the stack serves
                break
        text = "".join(printed)
        url = re.search(r"stays up at (http://127\.0\.0\.1:\d+)", text)
        exports = re.search(r"export (.+)\n", text[text.index("stays up at"):])
        bucket = re.search(r"s3://([^/\s]+)/uploads/my\.gif", text)
        assert url and exports and bucket, text[-2000:]
        # What the printed lines tell a person to do, from another process.
        env = {**os.environ, **dict(pair.split("=", 1) for pair in exports[1].split())}
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            env.pop(name, None)
        s3 = boto3.client("s3", endpoint_url=url[1], region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        s3.put_object(Bucket=bucket[1], Key="uploads/my.gif", Body=gif_bytes(),
                      Metadata={"title": "Pizza party", "tags": "pizza,food"})
        uri = f"s3://{bucket[1]}/uploads/my.gif"
        shown = None
        for _ in range(120):
            shown = gifcat("show", uri, "--endpoint", url[1], env=env, cwd=root)
            if shown.returncode == 0:
                break
            time.sleep(0.5)
        assert shown is not None and shown.returncode == 0, shown.stderr if shown else ""
        assert f"{uri}: classified food, decided by tags" in shown.stdout
        summary = gifcat("summary", "--endpoint", url[1], env=env, cwd=root)
        assert summary.returncode == 0 and "results table " in summary.stdout
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(timeout=60)
    assert code == 128 + signal.SIGTERM
