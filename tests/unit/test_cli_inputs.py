"""Labelled files that cannot be used end a command with one line naming the file, before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gifcat_tooling.cli import main

GOOD = {"id": "g1", "title": "Pizza", "tags": ["pizza"], "labels": ["food"], "primary": "food"}


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "good": json.dumps(GOOD) + "\n",
        "unlabelled": json.dumps(GOOD) + "\n" + json.dumps({"id": "u2", "title": "cat"}) + "\n",
        "not json": json.dumps(GOOD) + "\n{oops\n",
        "empty": "\n\n",
    }
    paths = {name: tmp_path / f"{name.replace(' ', '-')}.jsonl" for name in files}
    for name, text in files.items():
        paths[name].write_text(text, encoding="utf-8")
    paths["binary"] = tmp_path / "binary.jsonl"
    paths["binary"].write_bytes(b"\xff\xfe\x00garbage")
    paths["missing"] = tmp_path / "missing.jsonl"
    return paths


EVAL = ["eval", "--until", "triage", "--data"]


@pytest.mark.parametrize(
    ("command", "bad", "message"),
    [
        ([*EVAL, "{bad}"], "unlabelled", "{bad}:2: record 'u2' has no labels"),
        ([*EVAL, "{bad}"], "not json", "{bad}:2: not a valid record"),
        ([*EVAL, "{bad}"], "empty", "{bad} holds no records"),
        ([*EVAL, "{bad}"], "binary", "cannot read {bad}: 'utf-8' codec"),
        ([*EVAL, "{good}", "--train", "{bad}"], "missing",
         "cannot read {bad}: No such file or directory"),
        (["calibrate", "--data", "{bad}", "--write", "{out}"], "missing",
         "cannot read {bad}: No such file or directory"),
        (["stream", "--data", "{good}", "--data", "{bad}"], "empty", "{bad} holds no records"),
    ],
)
def test_an_unusable_labelled_file_is_one_line_naming_it(
    tmp_path: Path, command: list[str], bad: str, message: str
) -> None:
    paths = _files(tmp_path)
    names = {"bad": str(paths[bad]), "good": str(paths["good"]), "out": str(tmp_path / "out.yaml")}
    with pytest.raises(SystemExit) as exc:
        main([part.format(**names) for part in command])
    text = str(exc.value.code)
    assert text.startswith(f"gifcat {command[0]}: ")
    assert message.format(**names) in text
    assert "\n" not in text
    assert not (tmp_path / "out.yaml").exists()
