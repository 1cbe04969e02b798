"""The layout is the architecture: imports flow one way (tooling -> application/adapters -> domain ->
config), the domain needs no AWS SDK, model runtime or HTTP client, and the Lambda layer holds no tooling.

Read from the source with `ast` (every import, including those inside functions), so a lazy import
cannot hide a dependency.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "gifcat"
PACKAGE = LAYER / "gifcat"
TOOLING = ROOT / "tooling" / "gifcat_tooling"
FUNCTIONS = ROOT / "functions"

# What only a machine with the local/dev extras has: never imported by what ships.
TOOLING_ONLY = {"gifcat_tooling", "moto", "sklearn", "scipy", "matplotlib", "tqdm", "torch", "llama_cpp"}
# The learn function's fitting (gifcat/adapters/training.py) alone may import these: only the learn image
# installs them (functions/learn/requirements.txt), never the layer's requirements.
TRAINING = PACKAGE / "adapters" / "training.py"
TRAINING_LIBS = ("sklearn", "scipy", "threadpoolctl")
# The domain computes; reaching AWS, loading models and speaking HTTP belong to adapters.
OUTSIDE_DOMAIN = {"boto3", "botocore", "onnxruntime", "openai", "PIL", "tokenizers", "httpx", "httpcore"}


def module_name(path: Path) -> str:
    base = LAYER if path.is_relative_to(LAYER) else TOOLING.parent
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved against
    `module` (the file's own dotted name; found from its path when not given)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (module or module_name(path)).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from gifcat.domain import memory` imports a module
                yield node.lineno, f"{module}.{alias.name}"


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def offences(folder: Path, forbidden: set[str] | tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(folder)
        for line, module in imports(path)
        if under(module, *forbidden)
    ]


def test_the_domain_imports_only_itself_and_config() -> None:
    gifcat = {"gifcat.adapters", "gifcat.application", "gifcat.runtime", "gifcat_tooling"}
    assert offences(PACKAGE / "domain", gifcat | OUTSIDE_DOMAIN | TOOLING_ONLY) == []


def test_config_imports_no_other_layer() -> None:
    layers = ("gifcat.domain", "gifcat.application", "gifcat.adapters", "gifcat.runtime", "gifcat_tooling")
    assert offences(PACKAGE / "config", layers + tuple(OUTSIDE_DOMAIN)) == []


def test_application_depends_on_ports_not_on_adapters() -> None:
    outward = {"gifcat.adapters", "gifcat.runtime", "gifcat_tooling"}
    assert offences(PACKAGE / "application", outward | OUTSIDE_DOMAIN | TOOLING_ONLY) == []


def test_adapters_use_the_application_only_through_its_ports() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(PACKAGE / "adapters")
        for line, module in imports(path)
        if under(module, "gifcat.application", "gifcat.runtime")
        and not under(module, "gifcat.application.ports")
    ]
    assert found == []


def test_nothing_in_the_layer_imports_tooling() -> None:
    found = [o for o in offences(LAYER, TOOLING_ONLY) if not o.startswith(str(TRAINING.relative_to(ROOT)))]
    assert found == []
    assert offences(TRAINING.parent, ("gifcat_tooling",)) == []


def test_only_the_learn_job_reaches_the_training_code() -> None:
    """scikit-learn and scipy are in the learn image only: of the layer, the training module alone
    imports them, and only the composition root (building the learn job) imports it."""
    assert [o for o in offences(LAYER, TRAINING_LIBS) if TRAINING.name not in o] == []
    importers = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources(LAYER)
        for line, module in imports(path)
        if under(module, "gifcat.adapters.training") and path != TRAINING
    ]
    assert [i for i in importers if not i.startswith("layers/gifcat/gifcat/runtime.py")] == []
    runtime = (PACKAGE / "runtime.py").read_text(encoding="utf-8")
    assert "\nfrom gifcat.adapters.training" not in runtime  # a lazy import, in build_learn_job only



def reached_from_handlers() -> set[str]:
    """The layer's modules a handler imports, at once or through others (lazy imports included)."""
    layer = {module_name(path): path for path in sources(PACKAGE)}
    todo = [module for path in sources(FUNCTIONS) for _, module in imports(path, "handler")]
    reached: set[str] = set()
    while todo:
        module = todo.pop()
        if module in reached or module not in layer:
            continue
        reached.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages' __init__ run too
        todo += [m for _, m in imports(layer[module], module)]
    return reached


def test_the_layer_holds_only_what_a_handler_runs() -> None:
    """What only the tooling uses lives in the tooling: the layer and the images ship what runs in
    Lambda, and nothing the CLI alone needs."""
    assert sorted(set(map(module_name, sources(PACKAGE))) - reached_from_handlers()) == []

def test_handlers_import_the_application_and_the_composition_root_only() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(FUNCTIONS)
        for line, module in imports(path, path.stem)
        if under(module, "gifcat", "gifcat_tooling")
        and not under(module, "gifcat.application", "gifcat.runtime")
    ]
    assert found == []


def test_no_module_imports_itself_back() -> None:
    """No circle of imports between gifcat's modules (lazy imports count: they are still a cycle)."""
    paths = sources(PACKAGE) + sources(TOOLING)
    names = {module_name(p) for p in paths}
    graph = {
        module_name(p): {m for _, m in imports(p) if m in names and m != module_name(p)} for p in paths
    }
    circles = strongly_connected(graph)
    assert [sorted(c) for c in circles if len(c) > 1] == []


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph is small but recursion limits are not worth testing)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out


def test_circle_finder_finds_a_circle() -> None:
    """The check above must be able to fail."""
    assert {"a", "b", "c"} in strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert all(len(c) == 1 for c in strongly_connected({"a": {"b"}, "b": {"c"}, "c": set()}))


def test_the_walk_reads_lazy_and_relative_imports(tmp_path: Path) -> None:
    """What the checks above forbid is found where it hides: in a function, or written relative."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import boto3\n    from ..adapters import s3\n", encoding="utf-8")
    found = list(imports(probe, "gifcat.domain.probe"))
    assert (2, "boto3") in found
    assert (3, "gifcat.adapters") in found and (3, "gifcat.adapters.s3") in found
    assert under("gifcat.adapters.s3", "gifcat.adapters") and not under("gifcat.adaptersx", "gifcat.adapters")


def layer_folder() -> Path:
    """The layer's ContentUri in template.yaml: what `sam build` packs (and the Dockerfile copies)."""

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub...) as plain values: only the layer's path is read here.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=Loader)
    return ROOT / template["Resources"]["GifcatLayer"]["Properties"]["ContentUri"]


def test_the_layer_ships_the_runtime_package_and_no_tooling() -> None:
    folder = layer_folder()
    assert folder.resolve() == LAYER.resolve()
    packages = {p.parent.name for p in folder.glob("*/__init__.py")}
    assert packages == {"gifcat"}
    top = {p.name for p in (folder / "gifcat").iterdir() if p.name != "__pycache__"}
    assert top == {"__init__.py", "runtime.py", "domain", "application", "adapters", "config"}
    requirements = (folder / "requirements.txt").read_text(encoding="utf-8").lower()
    assert [dep for dep in TOOLING_ONLY if dep in requirements] == []
    dockerfile = (FUNCTIONS / "Dockerfile").read_text(encoding="utf-8")
    assert "${LAMBDA_TASK_ROOT}/gifcat_tooling" not in dockerfile


@pytest.mark.parametrize("function", ["embed", "learn"])
def test_the_image_builds_need_no_tooling(function: str) -> None:
    """scripts/build_memory.py (run in the embed image's build) trains with the layer's own
    gifcat.adapters.training: no image copies any of tooling/."""
    assert [m for _, m in imports(ROOT / "scripts" / "build_memory.py", "build_memory")
            if under(m, "gifcat_tooling")] == []
    dockerfile = (FUNCTIONS / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY tooling/" not in dockerfile and "gifcat_tooling" not in dockerfile
    stage = docker_stage(dockerfile, function)
    assert "COPY layers/gifcat/gifcat ${LAMBDA_TASK_ROOT}/gifcat" in stage
    assert f"COPY functions/{function}/app.py ${{LAMBDA_TASK_ROOT}}/" in stage
    assert "COPY --from=models /opt/models /opt/models" in stage


@pytest.mark.parametrize("function", ["embed", "learn"])
def test_what_an_image_copies_from_a_checkout_made_with_umask_077_is_readable_by_lambdas_user(
    function: str, tmp_path: Path
) -> None:
    # Lambda runs the image as a user that owns none of its files, and COPY keeps the checkout's modes.
    # The stage's last RUN, run here as the build would (paths under tmp_path), must make them readable.
    stage = docker_stage((FUNCTIONS / "Dockerfile").read_text(encoding="utf-8"), function)
    lines = [line for line in stage.splitlines() if line and not line.startswith("#")]
    run = lines[-2]
    assert run.startswith("RUN ") and lines[-1].startswith("CMD "), "the fix must come after every COPY"
    task, models = tmp_path / "var" / "task", tmp_path / "opt" / "models"
    for folder in (task / "gifcat" / "domain", models / "clip"):
        folder.mkdir(parents=True)
    files = [task / "app.py", task / "gifcat" / "domain" / "model.py", models / "clip" / "visual.onnx"]
    for file in files:
        file.write_text("x")
        file.chmod(0o600)
    for folder in (task / "gifcat", task / "gifcat" / "domain", models / "clip"):
        folder.chmod(0o700)
    command = run.removeprefix("RUN ").replace("${LAMBDA_TASK_ROOT}", str(task))
    command = command.replace("/opt/models", str(models))
    subprocess.run(["sh", "-c", command], check=True)
    for file in files:
        assert file.stat().st_mode & 0o444 == 0o444, file
    for folder in (task / "gifcat", task / "gifcat" / "domain", models / "clip"):
        assert folder.stat().st_mode & 0o555 == 0o555, folder


def docker_stage(dockerfile: str, name: str) -> str:
    """The lines of one build stage (FROM ... AS name up to the next FROM)."""
    stages = re.split(r"(?m)^FROM ", dockerfile)[1:]
    (stage,) = [s for s in stages if re.match(rf"\S+ AS {re.escape(name)}\n", s)]
    return stage


def test_each_image_function_builds_its_own_target_of_the_one_dockerfile() -> None:
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    dockerfile = (FUNCTIONS / "Dockerfile").read_text(encoding="utf-8")
    targets = re.findall(r"DockerBuildTarget: (\w+)", template)
    assert sorted(targets) == ["embed", "learn"]
    for target in targets:
        assert "CMD [\"app.handler\"]" in docker_stage(dockerfile, target)
    # the learn image gets the embed image's run time and its own training libraries on top
    assert re.search(r"(?m)^FROM embed-deps AS learn-deps$", dockerfile)
    assert re.search(r"(?m)^FROM learn-deps AS learn$", dockerfile)
    assert re.search(r"(?m)^FROM embed-deps AS embed$", dockerfile)


def test_only_the_learn_image_installs_the_training_libraries() -> None:
    for function in ("embed", "learn"):
        requirements = (FUNCTIONS / function / "requirements.txt").read_text(encoding="utf-8").lower()
        assert ("scikit-learn" in requirements) is (function == "learn"), function
        assert ("scipy" in requirements) is (function == "learn"), function


# The zip functions get the layer (layers/gifcat/requirements.txt) and the runtime's boto3; the rest of
# what the dev environment has must not be needed to import their handlers.
NOT_IN_THE_ZIP_LAYER = ["numpy", "onnxruntime", "PIL", "tokenizers", *sorted(TOOLING_ONLY)]
IMPORT_HANDLER = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not in the zip functions' layer", name=name)
sys.meta_path.insert(0, Refuse())
sys.path[:0] = [CODE, LAYER]
handler = __import__(MODULE).handler
print(callable(handler))
"""


@pytest.mark.parametrize(("function", "module"), [("triage", "app"), ("triage", "step"), ("escalate", "app")])
def test_zip_handlers_import_without_what_only_the_image_has(function: str, module: str) -> None:
    code = IMPORT_HANDLER.replace("BLOCKED", repr(set(NOT_IN_THE_ZIP_LAYER)))
    code = code.replace("CODE", repr(str(FUNCTIONS / function))).replace("LAYER", repr(str(LAYER)))
    code = code.replace("MODULE", repr(module))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RESULTS_TABLE": "t",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GIFCAT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "GIFCAT_LLM_MODEL": "m",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr[-2000:]


def test_the_cli_finds_the_checkout_from_anywhere(tmp_path: Path) -> None:
    """`gifcat demo` run outside the checkout finds template.yaml beside its own package."""
    from gifcat_tooling.cli.common import find_root

    assert find_root(tmp_path) == ROOT


# The escalate function reads the frames of a GIF with no text (stages.llm.images): Pillow ships with it
# (functions/escalate/requirements.txt, beside the layer) but loads on the first such item, never at import,
# and the frames path needs nothing else the zip functions lack (numpy is CLIP's).
FRAMES_AFTER_IMPORT = """
assert "PIL" not in sys.modules, "Pillow loaded at import"
BLOCKED.discard("PIL")
stage = next(s.stage for s in sys.modules[MODULE].step.cascade.steps)
frames = stage.imager.images(bytes.fromhex(GIF))
print(len(frames.images), frames.images[0].mime, "PIL" in sys.modules)
"""


def four_frames() -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (40, 30), (60 * i, 200, 90)) for i in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80)
    return buffer.getvalue()


def test_escalate_ships_pillow_and_loads_it_only_for_a_textless_gif() -> None:
    requirements = (FUNCTIONS / "escalate" / "requirements.txt").read_text(encoding="utf-8").lower()
    assert "pillow" in requirements
    assert "pillow" not in (LAYER / "requirements.txt").read_text(encoding="utf-8").lower()  # not triage's
    code = f"BLOCKED = {set(NOT_IN_THE_ZIP_LAYER)!r}\n"
    code += IMPORT_HANDLER.replace("print(callable(handler))", "") + FRAMES_AFTER_IMPORT
    code = code.replace("CODE", repr(str(FUNCTIONS / "escalate"))).replace("LAYER", repr(str(LAYER)))
    code = code.replace("MODULE", repr("app")).replace("fromhex(GIF)", f"fromhex({four_frames().hex()!r})")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "GIFCAT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "GIFCAT_LLM_MODEL": "gpt-4o-mini",  # reads images (stages.llm.images: auto)
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == ["3", "image/jpeg", "True"], run.stderr[-2000:]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: the last pattern matching it or one
    of its folders decides, a `!` one letting it back in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        if any(fnmatch.fnmatchcase(p, pattern.lstrip("!")) for p in prefixes):
            out = not keep
    return out


def test_every_file_the_images_copy_is_in_the_build_context() -> None:
    # The context is the repository root, 2 GB with the virtual environments: .dockerignore keeps
    # those out, and must keep nothing out that a COPY names (CLIP's commented one included).
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    assert _ignored(".venv/lib/x.py", patterns)
    assert _ignored("layers/gifcat/gifcat/__pycache__/a.pyc", patterns)
    dockerfile = (FUNCTIONS / "Dockerfile").read_text(encoding="utf-8")
    copies = re.findall(r"(?m)^#? ?COPY (?!--from)(.+) \S+$", dockerfile)
    sources = [s for line in copies for s in line.split()]
    assert ".artifacts/models/clip" in sources and "scripts/build_memory.py" in sources
    for source in sources:
        assert (ROOT / source).exists() or source.startswith(".artifacts/"), source
        assert not _ignored(source, patterns), source


@pytest.mark.parametrize("handler", ["triage/step.py", "embed/app.py", "escalate/app.py"])
def test_handlers_that_return_the_uploaders_text_keep_it_out_of_their_traces(handler: str) -> None:
    # Powertools' Tracer records a handler's response in its X-Ray segment unless told not to. These
    # return the state machine's state, metadata and neighbours' texts included, which the machine's
    # logs leave out (IncludeExecutionData: false): the traces must too.
    tree = ast.parse((FUNCTIONS / handler).read_text(encoding="utf-8"))
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
    capture = [d for d in function.decorator_list
               if isinstance(d, ast.Call) and ast.unparse(d.func) == "tracer.capture_lambda_handler"]
    assert capture, "tracer.capture_lambda_handler(...) with its options"
    options = {k.arg: ast.literal_eval(k.value) for k in capture[0].keywords}
    assert options.get("capture_response") is False
