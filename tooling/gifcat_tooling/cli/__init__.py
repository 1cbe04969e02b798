"""The `gifcat` command: classify a file, run the local demo, evaluate and calibrate on labelled data,
learn from answers, find candidate new categories, and see and operate a deployed or local stack.

Each module here holds one group of commands with its arguments (`register`); `common` is what they share."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from gifcat.config import ConfigError
from gifcat_tooling.cli import evaluate, learning, local, stack

GROUPS = (local, evaluate, learning, stack)  # the order `gifcat --help` lists their commands in


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gifcat", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP (a timeout, CI, a process manager, a closed terminal): stop the local LLM
    server(s) first, then unwind with exit status 128+signum, as a shell reports a signal death."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)  # a second signal ends the process at once
    local_server = sys.modules.get("gifcat_tooling.llama_server")  # not imported: no server was started
    if local_server is not None:
        local_server.stop_all()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # `eval` and `stream` record the command that reproduces their figures
    # Signal handlers belong to the main thread; main() called from elsewhere (tests) leaves them alone.
    handle = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in STOP_SIGNALS} if handle else {}
    try:
        return int(args.func(args))
    except SystemExit as exc:
        if not isinstance(exc.code, str):  # the argument parser's 2, a signal's 128 + n
            raise
        # A command's one-line refusal of its input: exit status 2, as the parser's refusals.
        print(exc.code, file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"gifcat: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # The local LLM server could not start (not installed, no model, a build that crashes): its
        # message says why and what to do. Looked up, not imported: a run without it never loads it.
        # Or S3 could not be read (no credentials, an endpoint that does not answer): as other AWS calls.
        local_server = sys.modules.get("gifcat_tooling.llama_server")
        ports = sys.modules.get("gifcat.application.ports")
        if ports is not None and isinstance(exc, ports.SourceUnavailable):
            print(f"gifcat: AWS: {exc}", file=sys.stderr)
            return 2
        if local_server is None or not isinstance(exc, local_server.LocalLlmError):
            raise
        print(f"gifcat: the local LLM server cannot run: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        ports = sys.modules.get("gifcat.application.ports")
        if ports is not None and isinstance(exc, ports.UnreadableResult):  # `show` or `correct` of one
            print(f"gifcat: results table item {exc}", file=sys.stderr)
            return 2
        # An AWS call that cannot be made (no region, no credentials, a missing table or bucket): the
        # SDK's message says which. Looked up, not imported: commands without AWS never load botocore.
        aws = sys.modules.get("botocore.exceptions")
        if aws is None or not isinstance(exc, (aws.BotoCoreError, aws.ClientError)):
            raise
        print(f"gifcat: AWS: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
