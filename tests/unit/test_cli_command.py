"""The command `gifcat eval` records beside its figures is one a shell runs as it stands."""

from __future__ import annotations

import shlex

from gifcat_tooling.cli.common import reproducible_command


def test_the_settings_read_from_the_environment_lead_the_line_and_survive_the_shell() -> None:
    environ = {
        "GIFCAT_TAXONOMY": "s3://bucket/taxonomy v2.yaml",
        "GIFCAT_OVERRIDES": '{"stages": {"embedding": {"target": 0.12}}}',
        "GIFCAT_SETTINGS": "  ",  # set but blank: load_settings ignores it, so the line does too
        "GIFCAT_CACHE": "/models",  # where the models are, not what they decide
        "OPENAI_API_KEY": "sk-secret",
    }
    argv = ["eval", "--data", "my data/dev.jsonl", "--json"]
    words = shlex.split(reproducible_command(argv, environ))
    assert words == [
        "GIFCAT_TAXONOMY=s3://bucket/taxonomy v2.yaml",
        'GIFCAT_OVERRIDES={"stages": {"embedding": {"target": 0.12}}}',
        "gifcat",
        *argv,
    ]


def test_without_settings_in_the_environment_the_line_is_the_command_alone() -> None:
    assert reproducible_command(["eval", "--data", "dev.jsonl"], {}) == "gifcat eval --data dev.jsonl"
