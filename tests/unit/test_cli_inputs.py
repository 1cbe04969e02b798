"""Inputs and outputs that cannot be used end a command with one line saying which, before the work starts."""

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
        # a category the bundled taxonomy does not have, as a gold label and as a primary
        "foreign": json.dumps(GOOD) + "\n"
        + json.dumps({**GOOD, "id": "f2", "labels": ["space"], "primary": "space"}) + "\n"
        + json.dumps({**GOOD, "id": "f3", "labels": ["funny", "space"], "primary": "funny"}) + "\n",
        "primary elsewhere": json.dumps({**GOOD, "labels": ["funny"], "primary": "food"}) + "\n",
        "few": json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "g2", "title": "Pasta"}) + "\n",
        "repeated id": json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "title": "again"}) + "\n",
        "no id": json.dumps({k: v for k, v in GOOD.items() if k != "id"}) + "\n",
    }
    paths = {name: tmp_path / f"{name.replace(' ', '-')}.jsonl" for name in files}
    for name, text in files.items():
        paths[name].write_text(text, encoding="utf-8")
    paths["binary"] = tmp_path / "binary.jsonl"
    paths["binary"].write_bytes(b"\xff\xfe\x00garbage")
    paths["missing"] = tmp_path / "missing.jsonl"
    return paths


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What a command refusing its input says: one line on stderr, exit status 2 (as the argument
    parser's refusals), before any run."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    return err.strip()


EVAL = ["eval", "--until", "triage", "--data"]


@pytest.mark.parametrize(
    ("command", "bad", "message"),
    [
        ([*EVAL, "{bad}"], "unlabelled", "{bad}:2: record 'u2' has no labels"),
        ([*EVAL, "{bad}"], "not json", "{bad}:2: not a valid record"),
        ([*EVAL, "{bad}"], "empty", "{bad} holds no records"),
        ([*EVAL, "{bad}"], "repeated id", "{bad}: record 2 repeats the id 'g1' of record 1: ids must be"),
        ([*EVAL, "{bad}"], "no id", "{bad}:1: not a valid record: id: Field required"),
        ([*EVAL, "{good}", "--baseline", ",,"], "few", "--baseline names no baseline"),
        ([*EVAL, "{bad}"], "binary", "cannot read {bad}: 'utf-8' codec"),
        ([*EVAL, "{good}", "--train", "{bad}"], "missing",
         "cannot read {bad}: No such file or directory"),
        (["calibrate", "--data", "{bad}", "--write", "{out}"], "missing",
         "cannot read {bad}: No such file or directory"),
        (["stream", "--data", "{good}", "--data", "{bad}"], "empty", "{bad} holds no records"),
        ([*EVAL, "{bad}"], "foreign", "{bad}: 2 record(s) carry labels that taxonomy"),
        ([*EVAL, "{bad}"], "foreign", "does not have: 'space' (2: f2, f3); its categories are funny, "),
        ([*EVAL, "{good}", "--train", "{bad}"], "foreign", "does not have: 'space' (2: f2, f3)"),
        (["calibrate", "--data", "{bad}", "--write", "{out}"], "foreign", "does not have: 'space'"),
        (["stream", "--data", "{good}", "--data", "{bad}"], "foreign", "does not have: 'space'"),
        ([*EVAL, "{bad}"], "primary elsewhere",
         "{bad}:1: record 'g1': primary 'food' is not one of its labels ['funny']"),
        # too few to fit: the embedding stage's margin is calibrated over 5 inner folds
        (["calibrate", "--data", "{bad}", "--write", "{out}"], "few",
         "{bad}: 2 labelled record(s) to fit on; fitting needs at least 5"),
        ([*EVAL, "{good}", "--train", "{bad}"], "few",
         "--train {bad}: 2 labelled record(s) to fit on; fitting needs at least 5"),
        ([*EVAL, "{bad}", "--cv", "2"], "few",
         "--cv 2 on 2 records, a fold's training part: 1 labelled record(s) to fit on"),
        ([*EVAL, "{bad}", "--cv", "5"], "few", "--cv 5: only 2 records; need at least one per fold"),
    ],
)
def test_an_unusable_labelled_file_is_one_line_naming_it(
    tmp_path: Path, command: list[str], bad: str, message: str
, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _files(tmp_path)
    names = {"bad": str(paths[bad]), "good": str(paths["good"]), "out": str(tmp_path / "out.yaml")}
    text = refused([part.format(**names) for part in command], capsys)
    text = text
    assert text.startswith(f"gifcat {command[0]}: ")
    assert message.format(**names) in text
    assert "\n" not in text
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_an_output_file_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _files(tmp_path)
    out = tmp_path if where == "a folder" else paths["good"] / "predictions.jsonl"
    text = refused([*EVAL, str(paths["good"]), "--predictions", str(out)], capsys)
    reason = "it is a folder" if where == "a folder" else "a part of its folder is a file"
    assert text == f"gifcat eval: cannot write {out}: {reason}"


def test_an_output_that_cannot_be_created_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc takes no new files, whoever runs this (root too): the folder is there, the file cannot be.
    paths = _files(tmp_path)
    out = "/proc/gifcat-predictions.jsonl"
    text = refused([*EVAL, str(paths["good"]), "--predictions", out], capsys)
    assert text == f"gifcat eval: cannot write {out}: No such file or directory"
    text = refused([*EVAL, str(paths["good"]), "--report", "/proc/sys"], capsys)
    assert text.startswith("gifcat eval: cannot write a report into /proc/sys: ")
    # calibrate checks where it writes before the fit, as the others do before their runs.
    text = refused(["calibrate", "--data", str(paths["good"]), "--write", str(tmp_path)], capsys)
    assert text == f"gifcat calibrate: cannot write {tmp_path}: it is a folder"
    # A file that is there is left as it was until the command writes it.
    kept = tmp_path / "kept.jsonl"
    kept.write_text("before\n")
    from gifcat_tooling.cli.common import writable_file

    assert writable_file(str(kept), "eval") == kept and kept.read_text() == "before\n"
    assert writable_file(str(tmp_path / "new" / "p.jsonl"), "eval").parent.is_dir()
    assert not (tmp_path / "new" / "p.jsonl").exists()


@pytest.mark.parametrize("command", ["eval", "stream", "discover"])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_report_folder_that_cannot_be_made_is_refused_before_the_run(
    tmp_path: Path, command: str, where: str
, capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the run went to its end (minutes, with the LLM) and the report's mkdir raised.
    paths = _files(tmp_path)
    report = paths["good"] if where == "a file" else paths["good"] / "report"
    argv = {
        "eval": [*EVAL, str(paths["good"])],
        "stream": ["stream", "--until", "embedding", "--data", str(paths["good"])],
        "discover": ["discover", "--data", str(paths["good"])],
    }[command]
    text = refused([*argv, "--report", str(report)], capsys)
    reason = "it is a file" if where == "a file" else "a part of it is a file"
    assert text == f"gifcat {command}: cannot write a report into {report}: {reason}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--decided-by", "llm,robot"],
         "gifcat export: no decider is called 'robot': choose from tags, rules, embedding, llm, human"),
        (["--out", "{tmp}"], "gifcat export: cannot write {tmp}: it is a folder"),
    ],
)
def test_an_export_that_cannot_be_right_is_refused_before_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
, capsys: pytest.CaptureFixture[str]) -> None:
    # No region: a scan would fail with the SDK's message, so this message proves it came first.
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    args = [a.format(tmp=tmp_path) for a in argv]
    out = [] if "--out" in args else ["--out", str(tmp_path / "out.jsonl")]
    text = refused(["export", "--table", "results", *out, *args], capsys)
    assert text == message.format(tmp=tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["s3:/b/k", "--category", "funny"], "'s3:/b/k' is not an object URI: expected s3://BUCKET/KEY"),
        (["s3://b/k", "--category", "space"], "unknown category 'space': taxonomy "),
        (["s3://b/k", "--category", "funny", "--labels", "cute,space"], "unknown label 'space'"),
    ],
)
def test_a_correction_that_cannot_be_right_is_refused_before_any_aws_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
    message: str,
) -> None:
    # No region: an AWS client would fail first and hide what is wrong with the correction itself.
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert main(["correct", *argv, "--table", "results"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gifcat correct: {message}")
    assert err.count("\n") == 1 and "AWS" not in err


def test_records_that_repeat_a_training_record_are_named_as_in_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foods = ["Pizza", "Pasta", "Sushi", "Tacos", "Ramen", "Curry"]
    train = [{**GOOD, "id": f"t{i}", "title": title} for i, title in enumerate(foods)]
    data = [
        {**GOOD, "id": "d0", "title": "  PIZZA "},  # the same GIF's metadata, up to case and spacing
        {**GOOD, "id": "d1", "title": "Burger"},
        {**GOOD, "id": "d2", "title": "Sushi"},
    ]
    for name, records in (("train", train), ("data", data)):
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (tmp_path / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    argv = [*EVAL, str(tmp_path / "data.jsonl"), "--train", str(tmp_path / "train.jsonl"), "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["fitting"]["also_in_train"] == ["d0", "d2"]
    assert "gifcat eval: 2 record(s) of " in err and "(d0, d2): their figures are in-sample" in err


def test_the_missing_folders_of_an_output_file_are_made(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "predictions.jsonl"
    assert main([*EVAL, str(_files(tmp_path)["good"]), "--predictions", str(out), "--json"]) == 0
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["g1"]


def test_a_config_file_that_cannot_be_read_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "taxonomy.yaml"
    assert main([*EVAL, str(_files(tmp_path)["good"]), "--taxonomy", str(missing)]) == 2
    assert capsys.readouterr().err == f"gifcat: {missing}: cannot read: No such file or directory\n"


def test_a_taxonomy_the_local_model_cannot_read_is_refused_before_its_server_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gifcat.domain.taxonomy import load_taxonomy

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    bundled = load_taxonomy("bundled")
    more = [{"name": f"{c.name}_{i}", "description": c.description, "examples": list(c.examples)}
            for i, c in enumerate(bundled.categories * 8)]
    doc = {"version": "large", "categories": [c.model_dump(mode="json") for c in bundled.categories] + more}
    large = tmp_path / "large.yaml"
    large.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    argv = ["eval", "--data", str(_files(tmp_path)["good"]), "--taxonomy", str(large)]
    message = refused(argv, capsys)
    assert "stages.llm.local.n_ctx: 4096 tokens cannot hold a call" in message
    assert "(instructions and 126 categories)" in message


def test_an_aws_call_that_cannot_be_made_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))  # no region from a profile either
    assert main(["export", "--table", "results", "--out", str(tmp_path / "out.jsonl")]) == 2
    assert capsys.readouterr().err == "gifcat: AWS: You must specify a region.\n"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*EVAL, "x.jsonl", "--cv", "--seed", "-1"],
         "argument --seed: expected a whole number of 0 or more, got '-1'"),
        # 0 folds once ran an in-sample evaluation, the local LLM included, as if --cv were absent
        ([*EVAL, "x.jsonl", "--cv", "0"], "argument --cv: expected 2 folds or more, got '0'"),
        ([*EVAL, "x.jsonl", "--cv", "1"], "argument --cv: expected 2 folds or more, got '1'"),
        # an error bound of 0 certifies nothing, and one of 1 or more admits everything
        (["calibrate", "--data", "x.jsonl", "--target", "0"],
         "argument --target: expected an error rate above 0 and below 1, got '0'"),
        (["calibrate", "--data", "x.jsonl", "--triage-target", "1.5"], "argument --triage-target: expected"),
        (["stream", "--data", "x.jsonl", "--gate-target", "2"], "argument --gate-target: expected an error"),
        (["calibrate", "--data", "x.jsonl", "--seed", "two", "--write", "s.yaml"], "got 'two'"),
        (["stream", "--data", "x.jsonl", "--seed", "-3"], "argument --seed: expected a whole number"),
        (["backfill", "--bucket", "b", "--max-concurrency", "-1"],
         "argument --max-concurrency: expected a whole number"),
        (["backfill", "--bucket", "b", "--tolerated-failure-percentage", "150"],
         "argument --tolerated-failure-percentage: expected a percentage from 0 to 100, got '150'"),
        (["summary", "--stuck-after", "0"], "argument --stuck-after: expected a number of seconds over 0"),
        ([*EVAL, "x.jsonl", "--cv", "--repeats", "0"], "argument --repeats: expected a whole number"),
        (["stream", "--data", "x.jsonl", "--window", "0"], "argument --window: expected a whole number of 1"),
        (["stream", "--data", "x.jsonl", "--corrections", "1.5"], "argument --corrections: expected a share"),
        (["stream", "--data", "x.jsonl", "--corrections", "nan"], "argument --corrections: expected a share"),
        (["stream", "--data", "x.jsonl", "--holdout", "1"], "argument --holdout: expected a share from 0 up"),
        (["discover", "--data", "x.jsonl", "--clusters", "0"], "--clusters: expected a whole number"),
        # a negative wait once started the run and reported it RUNNING at once, exit 1
        (["backfill", "--bucket", "b", "--timeout", "-5"], "--timeout: expected a number of seconds"),
        (["demo", "--timeout", "0"], "argument --timeout: expected a number of seconds over 0"),
        (["summary", "--since", "yesterday"],
         "argument --since: expected a time ago (30m, 24h, 7d) or an ISO 8601 date or time, got 'yesterday'"),
    ],
)
def test_a_number_out_of_range_is_refused_with_the_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_redrive_without_a_queue_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRIAGE_DLQ_URL", raising=False)
    text = refused(["redrive", "--dry-run"], capsys)
    assert text == (
        "gifcat redrive: name the queue with --queue (the stack's TriageDeadLetterQueueUrl output) or "
        "TRIAGE_DLQ_URL"
    )


def test_since_reads_a_time_ago_or_an_iso_date() -> None:
    from datetime import UTC, datetime, timedelta

    from gifcat_tooling.cli import build_parser

    def since(text: str) -> datetime:
        return build_parser().parse_args(["summary", "--since", text]).since

    assert abs(datetime.now(UTC) - timedelta(days=7) - since("7d")) < timedelta(seconds=5)
    assert abs(datetime.now(UTC) - timedelta(minutes=30) - since("30m")) < timedelta(seconds=5)
    assert since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)  # UTC unless it says
    assert since("2026-12-01T08:00:00+01:00") == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_show_refuses_what_is_not_an_object_uri(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "bucket/key.gif", "--table", "results"]) == 2
    assert capsys.readouterr().err == (
        "gifcat show: 'bucket/key.gif' is not an object URI: expected s3://BUCKET/KEY\n"
    )


def test_the_commands_aws_calls_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's defaults (60 s a read, retried) held `summary` against a silent endpoint past 120 s.
    from gifcat_tooling.cli.common import aws_client

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = aws_client("dynamodb", "http://127.0.0.1:9").meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 30)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_discover_refuses_what_it_cannot_read_or_hold_before_the_models_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gifcat.adapters.embeddings.factory as factory

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model loaded before the input was checked")

    monkeypatch.setattr(factory, "build_embedding_stage", no_model)
    paths = _files(tmp_path)
    assert main(["discover", "--data", str(paths["binary"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gifcat discover: {paths['binary']}: not UTF-8 text") and err.count("\n") == 1
    many = tmp_path / "many.jsonl"
    many.write_text("".join(json.dumps({**GOOD, "id": f"m{i}"}) + "\n" for i in range(3)), encoding="utf-8")
    monkeypatch.setenv("GIFCAT_OVERRIDES", '{"discovery": {"max_items": 2}}')
    assert main(["discover", "--data", str(many)]) == 2
    assert "3 items is more than discovery.max_items (2)" in capsys.readouterr().err


def test_a_labelled_file_with_a_byte_order_mark_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\n").encode())
    assert main([*EVAL, str(bom), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index('{\n  "n"'):])["n"] == 1


@pytest.mark.parametrize(
    "command", [["stream", "--data", "{good}"], ["correct", "s3://b/k.gif", "--category", "funny"]]
)
def test_every_command_reads_settings_from_s3_as_its_help_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # stream and correct once loaded settings without the S3 reader: "no reader for s3:// documents".
    import gifcat_tooling.cli.common as cli_common

    asked: list[str] = []

    def reader(uri: str) -> str:
        asked.append(uri)
        return "stages: {}\n"  # read, then refused: the command stops before any other work

    monkeypatch.setattr(cli_common, "READ_URI", reader)
    paths = _files(tmp_path)
    argv = [part.format(good=paths["good"]) for part in command]
    assert main([*argv, "--settings", "s3://config/settings.yaml"]) == 2
    assert asked == ["s3://config/settings.yaml"]
    assert "s3://config/settings.yaml" in capsys.readouterr().err


def test_gifcat_taxonomy_in_the_environment_is_the_taxonomy_a_command_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the Lambdas read it (--taxonomy, else GIFCAT_TAXONOMY, else the settings): the CLI once passed
    # the settings' "bundled" on and never looked at the variable.
    import yaml
    from PIL import Image

    bundled = Path(__file__).resolve().parents[2] / "layers/gifcat/gifcat/config/taxonomy.yaml"
    doc = yaml.safe_load(bundled.read_text(encoding="utf-8"))
    doc["version"] = "2099-01-01.1"
    mine = tmp_path / "my-taxonomy.yaml"
    mine.write_text(yaml.safe_dump(doc), encoding="utf-8")
    gif = tmp_path / "a.gif"
    Image.new("P", (4, 4)).save(gif, format="GIF")
    monkeypatch.setenv("GIFCAT_TAXONOMY", str(mine))
    assert main(["classify", str(gif), "--title", "Pizza", "--tags", "pizza,food", "--until", "triage"]) == 0
    assert json.loads(capsys.readouterr().out)["taxonomy_version"] == "2099-01-01.1"
