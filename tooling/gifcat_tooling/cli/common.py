"""What every `gifcat` command shares: the settings and taxonomy it reads, the files it writes (checked
before the work starts), the labelled records it reads, its AWS clients and the stack's names, and the
argument types that refuse a bad value with the usage line."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gifcat.config import Settings, UriReader, bundled_text, load_settings, read_text
from gifcat.domain.model import StageName
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from gifcat.domain.records import LabelledRecord
    from gifcat_tooling.local.template import Stack


STAGE_CHOICES = {"triage": StageName.RULES, "embedding": StageName.EMBEDDING, "llm": StageName.LLM}


def find_root(start: Path | None = None) -> Path:
    """The checkout holding template.yaml: from the working directory up, else beside the package."""
    candidates = [start or Path.cwd(), Path(__file__).resolve().parents[3]]  # tooling/gifcat_tooling/cli/
    for base in candidates:
        for folder in (base, *base.parents):
            if (folder / "template.yaml").is_file() and (folder / "functions").is_dir():
                return folder
    raise SystemExit("gifcat: no template.yaml found; run from a gifcat checkout")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", help="settings YAML (path or s3://); default: bundled")
    parser.add_argument("--taxonomy", help="taxonomy YAML (path or s3://); default: bundled")


def add_stack_options(parser: argparse.ArgumentParser, *, table: bool = True) -> None:
    """Where a command finds the stack: --endpoint (the local embedded AWS) and, if it reads the results
    table, --table."""
    if table:
        parser.add_argument("--table", help="results table (default: RESULTS_TABLE, or the local stack's)")
    parser.add_argument("--endpoint", help="AWS endpoint URL (the local embedded AWS); default: AWS")


def _read_s3(uri: str) -> str:
    from gifcat.adapters.s3 import read_s3_uri  # only when asked: keeps boto3 off the local path

    return read_s3_uri(uri)


READ_URI: UriReader = _read_s3  # --settings and --taxonomy may name s3:// objects


def read_settings(source: str | None, overrides: dict[str, Any] | None = None) -> Settings:
    return load_settings(source, overrides, read_uri=READ_URI)


def settings_text(source: str | None) -> str:
    """The settings file as written (path, s3:// or the bundled one), for a command that rewrites it."""
    return read_text(source, READ_URI) if source else bundled_text("settings.yaml")


def read_taxonomy(source: str | None) -> Taxonomy:
    return load_taxonomy(source, read_uri=READ_URI)


def taxonomy_for(args: argparse.Namespace, settings: Settings) -> Taxonomy:
    """--taxonomy, else GIFCAT_TAXONOMY, else the settings' `taxonomy`: the order the Lambdas read it
    in (gifcat.runtime), so a command checks categories against the taxonomy the stack uses."""
    return read_taxonomy(args.taxonomy or os.environ.get("GIFCAT_TAXONOMY", "").strip() or settings.taxonomy)


# What a run reads from the environment that changes its figures (GIFCAT_CACHE only says where the
# models are; keys are never written down).
RESULT_ENV = ("GIFCAT_SETTINGS", "GIFCAT_TAXONOMY", "GIFCAT_OVERRIDES")


def reproducible_command(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The shell line that runs this again: the settings it read from the environment, then
    `gifcat` and its arguments, each quoted so that a JSON override or a path with spaces survives."""
    env = [f"{name}={shlex.quote(environ[name])}" for name in RESULT_ENV if environ.get(name, "").strip()]
    return " ".join([*env, shlex.join(["gifcat", *argv])])


def load_config(args: argparse.Namespace) -> tuple[Settings, Taxonomy]:
    settings = read_settings(args.settings)
    return settings, taxonomy_for(args, settings)


def writable_file(path: str, command: str) -> Path:
    """A file the command writes at its end, checked (and its folder made) before the work starts."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SystemExit(f"gifcat {command}: cannot write {path}: a part of its folder is a file") from None
    except OSError as exc:
        raise SystemExit(f"gifcat {command}: cannot write {path}: {exc.strerror or exc}") from None
    if out.is_dir():
        raise SystemExit(f"gifcat {command}: cannot write {path}: it is a folder")
    existed = out.exists()
    try:  # opened for appending, so an existing file is left as it is until the end
        with out.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise SystemExit(f"gifcat {command}: cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        out.unlink(missing_ok=True)
    return out


def writable_folder(path: str, command: str) -> Path:
    """The folder a `--report` is written into at the command's end, made before the work starts: a
    report that cannot be written must not cost a whole run (an evaluation with the LLM takes minutes)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # a folder that is there is not yet one we may write in
            pass
        return out
    except FileExistsError:
        why = "it is a file"
    except NotADirectoryError:
        why = "a part of it is a file"
    except OSError as exc:
        why = exc.strerror or str(exc)
    raise SystemExit(f"gifcat {command}: cannot write a report into {path}: {why}")


def read_labelled(path: str, command: str, taxonomy: Taxonomy) -> list[LabelledRecord]:
    """The labelled records in `path`, or a one-line error naming the file (and the line, for a bad
    record): a file that is missing, unreadable or not UTF-8 text, a bad record, no record at all, or
    labels that are not categories of `taxonomy` (no stage can give them, so every figure measured
    against them, and every threshold fitted on them, would be wrong without saying why)."""
    from gifcat.domain.records import RecordError, foreign_labels, read_records

    try:
        records = read_records(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SystemExit(f"gifcat {command}: cannot read {path}: {reason}") from None
    except RecordError as exc:
        raise SystemExit(f"gifcat {command}: {exc}") from None
    if not records:
        raise SystemExit(f"gifcat {command}: {path} holds no records")
    first: dict[str, int] = {}
    for n, record in enumerate(records, 1):
        # A repeated id could sit in a training fold and its own test fold, and the kNN vote leaves out
        # examples with the item's id: either way a figure would be wrong without saying why.
        if record.id in first:
            raise SystemExit(
                f"gifcat {command}: {path}: record {n} repeats the id {record.id!r} of record "
                f"{first[record.id]}: ids must be unique"
            )
        first[record.id] = n
    foreign = foreign_labels(records, taxonomy.names)
    if foreign:
        count = len({i for ids in foreign.values() for i in ids})
        named = "; ".join(
            f"{label!r} ({len(ids)}: {', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})"
            for label, ids in sorted(foreign.items())
        )
        raise SystemExit(
            f"gifcat {command}: {path}: {count} record(s) carry labels that taxonomy {taxonomy.version} "
            f"does not have: {named}; its categories are {', '.join(taxonomy.names)}"
        )
    return records


def aws_client(service: str, endpoint: str | None) -> Any:
    """A client whose calls end: botocore's defaults wait 60 s to read each answer, and retry, so an
    endpoint that accepts and never answers held a command silent for minutes."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 3})
    return boto3.client(service, endpoint_url=endpoint, config=config)


def local_stack() -> Stack:
    """template.yaml as the embedded AWS deploys it: the names a command takes by default with --endpoint."""
    from gifcat_tooling.local.template import Stack, load_template

    root = find_root()
    return Stack(load_template(root / "template.yaml"), root)


def results_table_name(args: argparse.Namespace) -> str:
    """--table, else RESULTS_TABLE, else (with --endpoint) the local stack's table from template.yaml."""
    if args.table or os.environ.get("RESULTS_TABLE"):
        return str(args.table or os.environ["RESULTS_TABLE"])
    if args.endpoint:
        return local_stack().physical_name("ResultsTable")
    raise SystemExit("gifcat: name the results table with --table (or RESULTS_TABLE)")


def state_machine_arn(
    args: argparse.Namespace, command: str, logical_id: str, output: str, variable: str
) -> str:
    """--state-machine, else the environment variable, else (with --endpoint) the local stack's."""
    arn = args.state_machine or os.environ.get(variable)
    if not arn and args.endpoint:
        arn = local_stack().arn(logical_id)
    if not arn:
        raise SystemExit(f"gifcat {command}: name the state machine with --state-machine (the stack's "
                         f"{output} output) or {variable}")
    return str(arn)


def bounded(
    kind: Callable[[str], Any], accepts: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse type: the text read with `kind` and held to `accepts`; else the usage says `expected`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


# A seed, or a concurrency where 0 means no limit.
non_negative_int = bounded(int, lambda v: v >= 0, "a whole number of 0 or more")
# 0 must not mean "no folds": it once ran an in-sample evaluation as if --cv were absent.
fold_count = bounded(int, lambda v: v >= 2, "2 folds or more")
# What a stage or the LLM gate is held under (NaN fails every comparison, so it is refused too).
error_bound = bounded(float, lambda v: 0.0 < v < 1.0, "an error rate above 0 and below 1")
percentage = bounded(float, lambda v: 0.0 <= v <= 100.0, "a percentage from 0 to 100")
positive_seconds = bounded(float, lambda v: v > 0.0, "a number of seconds over 0")
positive_int = bounded(int, lambda v: v >= 1, "a whole number of 1 or more")
start_rate = bounded(float, lambda v: 0.0 < v <= 1000.0, "a number of starts a second over 0, at most 1000")
unit_share = bounded(float, lambda v: 0.0 <= v <= 1.0, "a share from 0 to 1")
holdout_share = bounded(float, lambda v: 0.0 <= v < 1.0, "a share from 0 up to (not including) 1")
_AGO = {"m": 60, "h": 3600, "d": 86400}


def point_in_time(text: str) -> datetime:
    """A point in time: "30m", "24h", "7d" ago, or an ISO 8601 date or time (UTC unless it says)."""
    number, unit = text[:-1], text[-1:].lower()
    if unit in _AGO and number.isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(number) * _AGO[unit])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time ago (30m, 24h, 7d) or an ISO 8601 date or time, got {text!r}"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)

