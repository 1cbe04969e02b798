"""`sam build` of the zip functions and the layer, then each built handler imports under Python 3.12
with nothing but what the build put in the layer: the package deploys as built, without the tooling.

The image functions need Docker, which this machine lacks, so the build runs once on template.yaml
less its image functions (the rest unchanged, paths made absolute): the layer is built once, as in a
full `sam build`, instead of once per function.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gifcat_tooling.local.template import load_template
from tests.integration.test_template import tool


def zip_functions(root: Path) -> dict[str, str]:
    """Each zip function of template.yaml and its handler's module (Handler "app.handler": "app")."""
    resources = load_template(root / "template.yaml")["Resources"]
    return {lid: r["Properties"]["Handler"].rsplit(".", 1)[0] for lid, r in resources.items()
            if r["Type"] == "AWS::Serverless::Function" and r["Properties"].get("PackageType") != "Image"}


def python312() -> str:
    found = shutil.which("python3.12")
    if found is None:
        pytest.fail("python3.12 is needed by `sam build` (pyenv holds 3.12.1: PYENV_VERSION=3.12.1)")
    return found


def without_image_functions(root: Path, out: Path) -> Path:
    """template.yaml as JSON (a form SAM reads too) without its image functions, code paths absolute."""
    template = load_template(root / "template.yaml")
    resources = template["Resources"]
    images = [lid for lid, r in resources.items() if r.get("Properties", {}).get("PackageType") == "Image"]
    assert images, "template.yaml has no image function: build it whole"
    for lid in images:
        del resources[lid]
    for resource in resources.values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = str((root / props[key]).resolve())
    out.write_text(json.dumps(template, indent=1))
    return out


@pytest.mark.slow
def test_sam_build_and_import_under_python312(root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PYENV_VERSION": "3.12.1"}
    # The Lambda runtime provides boto3 and nothing else; stand in for it with a folder of just that.
    runtime = tmp_path / "runtime"
    # uv (installed beside pytest by the Makefile) takes a second where pip takes five; pip otherwise.
    uv = Path(sys.executable).with_name("uv")
    installer = [str(uv), "pip"] if uv.is_file() else [python312(), "-m", "pip"]
    target = ["--python", python312()] if uv.is_file() else []
    pip = subprocess.run(
        [*installer, "install", "--quiet", *target, "--target", str(runtime), "boto3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    build = tmp_path / "build"
    run = subprocess.run(
        [
            tool("sam", "SAM_CLI"),
            "build",
            "--build-dir",
            str(build),
            "--template-file",
            str(without_image_functions(root, tmp_path / "template.json")),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    layer = build / "GifcatLayer" / "python"
    assert (layer / "gifcat" / "config" / "taxonomy.yaml").is_file()
    # What runs in Lambda and nothing else: no tooling package, no tooling-only library.
    shipped = {p.name for p in (layer / "gifcat").iterdir() if p.name != "__pycache__"}
    assert shipped == {"__init__.py", "runtime.py", "domain", "application", "adapters", "config"}
    # (tqdm is not on the list: openai depends on it)
    tooling = {"gifcat_tooling", "moto", "sklearn", "scipy", "matplotlib", "torch", "llama_cpp"}
    assert {p.name for p in layer.iterdir()} & tooling == set()
    functions = zip_functions(root)
    assert {"TriageFunction", "TriageStepFunction", "EscalateFunction", "SweepFunction"} <= set(functions)
    for function, module in functions.items():
        code = build / function
        if function == "EscalateFunction":  # its own requirements.txt: Pillow, for GIFs with no text
            assert (code / "PIL").is_dir()
        check = subprocess.run(
            [
                python312(),
                "-I",
                "-c",
                f"import sys; sys.path[:0] = ['{code}', '{layer}', '{runtime}']; import {module}; "
                "print(module_ok := callable(getattr(sys.modules['" + module + "'], 'handler')))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **env,
                "RESULTS_TABLE": "t",
                "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:s",
                "RESULT_EVENT_BUS": "b",
                "AWS_DEFAULT_REGION": "us-east-1",
                "GIFCAT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
                "GIFCAT_LLM_MODEL": "m",
                "POWERTOOLS_TRACE_DISABLED": "true",
            },
        )
        assert check.returncode == 0 and check.stdout.strip() == "True", (function, check.stderr[-2000:])
