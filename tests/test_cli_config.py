"""`coder config validate`: the check run's words, locally."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.cli import main
from app.cli_config import DEFAULT_PATH
from app.config import CONFIG_PATH, parse_config
from app.config_check import annotation, verdict
from app.repo_config import FetchedConfig, Source

INVALID = "agent:\n  backend: claude\n  comand: x\nlimits: {per_repo: 0}\n"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A checkout to run the command in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".github").mkdir()
    return tmp_path


def validate(*args, stdin=None):
    return CliRunner().invoke(main, ["config", "validate", *args], input=stdin)


def test_a_valid_file_prints_one_ok_line(repo):
    (repo / CONFIG_PATH).write_text("workflows:\n  docs: {on: {label: 'coder:docs'}}\n")
    result = validate()
    assert result.exit_code == 0, result.output
    assert result.output == (
        ".github/coder.yml: valid; 7 workflows: "
        "research, design, develop, review, fix, release, docs\n"
    )


def test_errors_print_as_the_check_runs_annotations_do(repo):
    (repo / CONFIG_PATH).write_text(INVALID)
    result = validate()
    assert result.exit_code == 1
    # The same lines the `coder/config` check run lists, from the same errors.
    check = verdict(
        FetchedConfig(parse_config(INVALID), Source.FILE),
        sha="0" * 40,
        branch="main",
        default_branch="main",
    )
    notes = [annotation(error) for error in check.errors]
    assert result.output.splitlines() == [
        f"{n['path']}:{n['start_line']}:{n['start_column']}: {n['message']}" for n in notes
    ]
    assert result.output.splitlines() == [
        ".github/coder.yml:3:3: agent.comand: unknown key",
        ".github/coder.yml:4:10: limits.per_repo: Input should be greater than or equal to 1",
    ]


def test_another_path_and_stdin(repo):
    (repo / "mine.yml").write_text("limits: {per_repo: 0}\n")
    result = validate("mine.yml")
    assert (result.exit_code, result.output.split(":")[0]) == (1, "mine.yml")
    result = validate("-", stdin="limits: {per_repo: 0}\n")
    assert result.exit_code == 1
    assert result.output.startswith(f"{CONFIG_PATH}:1:")
    assert validate("-", stdin="").exit_code == 0


def test_a_missing_file_is_a_usage_error(repo):
    result = validate("nope.yml")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_a_file_that_is_not_text(repo):
    (repo / CONFIG_PATH).write_bytes(b"\xff\xfe")
    result = validate()
    assert (result.exit_code, result.output) == (
        1,
        f"{CONFIG_PATH}:1:1: the file is not UTF-8 text\n",
    )


def test_extends_is_followed_only_with_a_local_base(repo):
    (repo / CONFIG_PATH).write_text("_extends: .github\nlimits: {per_repo: 1}\n")
    (repo / "base.yml").write_text("limits:\n  run_minutes: 0\n")
    alone = validate()
    assert alone.exit_code == 0
    assert "`_extends: .github` not checked" in alone.stderr
    merged = validate("--extends-file", "base.yml")
    assert merged.exit_code == 1
    assert (
        merged.stdout
        == "base.yml:2:3: limits.run_minutes: Input should be greater than or equal to 1\n"
    )


def test_a_base_that_extends_again_is_refused(repo):
    (repo / CONFIG_PATH).write_text("_extends: acme/.github\n")
    (repo / "base.yml").write_text("_extends: other/.github\n")
    result = validate("--extends-file", "base.yml")
    assert result.exit_code == 1
    assert result.stdout.startswith("base.yml:1:1: _extends: a base config cannot extend")


def test_an_extends_file_without_extends_is_ignored_with_a_note(repo):
    (repo / CONFIG_PATH).write_text("limits: {per_repo: 1}\n")
    (repo / "base.yml").write_text("limits: {per_repo: 0}\n")
    result = validate("--extends-file", "base.yml")
    assert result.exit_code == 0
    assert "--extends-file is ignored" in result.stderr


def test_json_output(repo):
    (repo / CONFIG_PATH).write_text(INVALID)
    result = validate("--json")
    assert result.exit_code == 1
    answer = json.loads(result.output)
    assert answer["valid"] is False
    assert answer["summary"] is None
    assert answer["errors"][0] == {
        "path": CONFIG_PATH,
        "line": 3,
        "column": 3,
        "message": "agent.comand: unknown key",
        "text": ".github/coder.yml:3:3: agent.comand: unknown key",
    }
    (repo / CONFIG_PATH).write_text("")
    ok = json.loads(validate("--json").output)
    assert (ok["valid"], ok["errors"]) == (True, [])
    assert ok["summary"].startswith(".github/coder.yml: valid; 6 workflows")


def test_the_default_path_is_the_config_path():
    assert DEFAULT_PATH == CONFIG_PATH


def test_a_deeply_nested_file_is_an_error_line_not_a_traceback(repo):
    (repo / CONFIG_PATH).write_text("agent: {}\nlimits: " + "[" * 500 + "]" * 500 + "\n")
    result = validate()
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output == ".github/coder.yml:2:40: the document nests more than 32 levels deep\n"


def test_a_tag_is_an_error_at_its_line(repo):
    (repo / CONFIG_PATH).write_text(
        "limits:\n  max_concurrent: 3\n  run_minutes: 5\n  per_repo: !custom 2\n"
    )
    result = validate()
    assert result.exit_code == 1, result.output
    assert result.output == (
        ".github/coder.yml:4:13: YAML tags are not allowed (found !custom); write the plain value\n"
    )
