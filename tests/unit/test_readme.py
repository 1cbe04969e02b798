"""What README tells people to type is something gifcat accepts: every `gifcat` command in its code blocks
parses with the CLI's own parser, every GIFCAT_OVERRIDES it quotes loads and passes each stage's options
model, and every script, benchmark or file path it names exists. The figures are only as reproducible as
the commands written beside them. "README" here is both documents people read: README.md and the
measured results it points to, docs/results/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest

from gifcat.config import ConfigError, StageOptions, load_settings
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.stages.embedding import EmbeddingOptions
from gifcat.domain.stages.triage import TriageWeights
from gifcat_tooling.cli import build_parser
from gifcat_tooling.cli.common import RESULT_ENV
from tests.conftest import ROOT

DOCUMENTS = {name: (ROOT / name).read_text(encoding="utf-8")
             for name in ("README.md", "docs/results/README.md")}
README = "\n".join(DOCUMENTS.values())
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")  # RATE, N, FILE2: what README writes for a value to choose
# The stages whose knobs README sets; a stage README starts to override needs its model here.
OPTIONS: dict[str, type[StageOptions] | None] = {
    "tags": TriageWeights, "rules": None, "embedding": EmbeddingOptions, "llm": LlmOptions,
}


def code_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks written for a shell (sh, bash, or no language)."""
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
            if m.group(1) in ("", "sh", "bash", "shell", "console")]


def shell_lines(block: str) -> list[str]:
    """One string per command: continuation lines joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def gifcat_argv(line: str) -> list[str] | None:
    """The arguments after `gifcat` (or `.venv/bin/gifcat`) on a command line, up to a pipe or redirection;
    None when the line runs something else. A synopsis reads as a command with every option given:
    `[--json]` as `--json`, `empty|bundled` as `empty`, a placeholder (`RATE`, `N`) as 1."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value before the command
        words = words[1:]
    if not words or words[0].endswith("/") or Path(words[0]).name != "gifcat":
        return None  # a folder in a tree drawing is not the command
    argv: list[str] = []
    for word in words[1:]:
        if word in ("|", "||", "&&", ";") or word.startswith((">", "2>")):
            break
        word = word.strip("[]")
        if word in ("", "...") or word.endswith("..."):
            continue
        if PLACEHOLDER.fullmatch(word):
            word = "1"  # a number where a number goes; any other argument takes it as text
        argv.append(word if word.startswith("-") else word.split("|")[0])
    return argv


def inline_commands(text: str) -> list[str]:
    """`gifcat ...` in running text, the prose's line breaks undone."""
    outside_blocks = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return [re.sub(r"\s*\n\s*", " ", m.group(1))
            for m in re.finditer(r"`((?:\.venv/bin/)?gifcat [^`]+)`", outside_blocks)]


COMMANDS = [argv for block in code_blocks(README) for line in shell_lines(block)
            if (argv := gifcat_argv(line)) is not None]
MENTIONS = [argv for line in inline_commands(README) if (argv := gifcat_argv(line))]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = build_parser()._actions
    return next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices


def unknown_options(argv: list[str]) -> list[str]:
    """Options the subcommand does not have under that exact name (argparse would take `--repeat` for
    `--repeats`: README should write what the help shows)."""
    known = {flag for action in subcommands()[argv[0]]._actions for flag in action.option_strings}
    return [w for w in argv[1:] if w.startswith("--") and w.split("=")[0] not in known]


def overrides(text: str) -> list[str]:
    """Every GIFCAT_OVERRIDES='...' README quotes, its line breaks undone (prose wraps them)."""
    return [re.sub(r"\s*\n\s*", "", m.group(1)) for m in re.finditer(r"GIFCAT_OVERRIDES='([^']*)'", text)]


def placeholders_filled(quoted: str) -> str:
    # README writes a swept value as a capital letter (`"text":T`): any number stands for it here.
    return re.sub(r"(?<=:)\s*[A-Z]\b", "0.3", quoted)


def test_readme_shows_the_commands_it_documents() -> None:
    # The extraction itself: a README rewritten into another form must not leave this test with nothing.
    named = {argv[0] for argv in COMMANDS if argv}
    assert {"demo", "eval", "classify", "stream", "discover", "backfill", "correct", "learn",
            "summary"} <= named
    assert {"calibrate", "export"} <= {argv[0] for argv in MENTIONS}
    assert len(overrides(README)) >= 5
    for name, text in DOCUMENTS.items():  # each document is read, not only the first
        assert any(gifcat_argv(line) for block in code_blocks(text) for line in shell_lines(block)), name
    assert "docs/results/README.md" in DOCUMENTS["README.md"]  # README points to where its figures are


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:80] for a in COMMANDS])
def test_every_gifcat_command_in_the_readme_parses(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing: its message is on stderr
        pytest.fail(f"gifcat {' '.join(argv)}: {capsys.readouterr().err.strip()} (exit {exc.code})")
    assert not unknown_options(argv), f"gifcat {' '.join(argv)}: no options {unknown_options(argv)}"


@pytest.mark.parametrize("argv", MENTIONS, ids=[" ".join(a)[:80] for a in MENTIONS])
def test_every_gifcat_command_the_prose_mentions_exists_with_its_options(argv: list[str]) -> None:
    # Running text names a command and some of its options, not always all it needs (`gifcat eval --cv`).
    assert argv[0] in subcommands(), f"README mentions `gifcat {argv[0]}`, which is not a command"
    unknown = unknown_options(argv)
    assert not unknown, f"README mentions `gifcat {' '.join(argv)}`: {argv[0]} has no {unknown}"


def assert_override_loads(data: dict[str, object]) -> None:
    settings = load_settings(overrides=data)
    stages = data.get("stages", {})
    assert isinstance(stages, dict)
    for stage in stages:
        assert stage in OPTIONS, f"an override of stage {stage!r}: add its options model to OPTIONS"
        model = OPTIONS[stage]
        if model is not None:
            settings.options(stage, model)  # a misspelt knob raises ConfigError naming it


@pytest.mark.parametrize("quoted", overrides(README))
def test_every_settings_override_in_the_readme_loads(quoted: str) -> None:
    assert_override_loads(json.loads(placeholders_filled(quoted)))


def _recorded_commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "docs" / "results").rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("command"):
            found.append((str(path.relative_to(ROOT)), data["command"]))
    return found


RECORDED = _recorded_commands()


@pytest.mark.parametrize(("path", "command"), RECORDED, ids=[p for p, _ in RECORDED])
def test_every_saved_result_records_a_command_that_still_runs(path: str, command: str) -> None:
    # README's figures cite these files: the line each records must still be one `gifcat` runs, with
    # the settings it read from the environment (an override that no longer loads would reproduce nothing).
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0], re.S):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[:1] == ["gifcat"], f"{path}: {command!r} does not run gifcat"
    assert set(env) <= set(RESULT_ENV), f"{path}: sets {sorted(set(env) - set(RESULT_ENV))}"
    build_parser().parse_args(words[1:])
    assert not unknown_options(words[1:]), f"{path}: no options {unknown_options(words[1:])}"
    if "GIFCAT_OVERRIDES" in env:
        assert_override_loads(json.loads(env["GIFCAT_OVERRIDES"]))


def test_the_saved_results_record_their_commands() -> None:
    # The check above is only worth something if the files are found and overrides are among them.
    assert len(RECORDED) >= 20
    assert sum("GIFCAT_OVERRIDES=" in c for _, c in RECORDED) >= 10


def test_a_misspelt_override_would_be_caught() -> None:
    # The check above is only worth something if the options models refuse what they do not know.
    settings = load_settings(overrides={"stages": {"embedding": {"description_wieght": 0.5}}})
    with pytest.raises(ConfigError, match="description_wieght"):
        settings.options("embedding", EmbeddingOptions)


PATHS = sorted(set(re.findall(r"(?<![\w./-])((?:scripts|benchmarks|tests|statemachine|events|docs|functions|"
                              r"layers|tooling)/[\w./*-]*[\w*])", README)))


@pytest.mark.parametrize("path", PATHS)
def test_every_project_path_the_readme_names_exists(path: str) -> None:
    pattern = re.sub(r"\b[A-Z][A-Z0-9_]+\b", "*", path)  # corrections-RATE: one folder per rate
    assert list(ROOT.glob(pattern)), f"README names {path}, which is not there"


MAKE_TARGETS = sorted(set(re.findall(r"(?:^|`)make ([\w-]+)", README, re.M)))


def test_every_make_target_the_readme_names_is_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert {"demo", "test"} <= set(MAKE_TARGETS)  # the two set-up commands
    missing = [t for t in MAKE_TARGETS if not re.search(rf"^{re.escape(t)}:", makefile, re.M)]
    assert not missing, f"README names make targets the Makefile lacks: {missing}"


def script_runs() -> list[tuple[str, list[str]]]:
    """(script, the words README gives it) for every `python scripts/...` or `benchmarks/...` run."""
    script = r"python3? ((?:scripts|benchmarks)/\w+\.py)"
    found = [m for block in code_blocks(README) for line in shell_lines(block)
             if (m := re.search(script + r"(.*)", line))]
    found += re.finditer(r"`(?:\.venv/bin/)?" + script + r"([^`]*)`", README)
    return [(m.group(1), shlex.split(m.group(2), comments=True)) for m in found]


SCRIPT_RUNS = script_runs()


@pytest.mark.parametrize(
    ("script", "words"), SCRIPT_RUNS, ids=[f"{s} {' '.join(w)}"[:80] for s, w in SCRIPT_RUNS]
)
def test_every_script_run_in_the_readme_takes_its_options(script: str, words: list[str]) -> None:
    # A script that runs gifcat's own command line takes it after the script's own options.
    command = next((i for i, w in enumerate(words) if w in subcommands()), None)
    if command is not None:
        build_parser().parse_args(words[command:])
        assert not unknown_options(words[command:]), f"README runs {script} {' '.join(words)}"
        words = words[:command]
    # The scripts parse with argparse; an option README gives must be one the script declares.
    source = (ROOT / script).read_text(encoding="utf-8")
    missing = [w for w in words if w.startswith("--") and f'"{w}"' not in source]
    assert not missing, f"README runs {script} with {missing}, which it does not declare"
