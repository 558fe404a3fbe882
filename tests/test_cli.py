"""The `coder` and `coder-agent` command lines: settings errors, the runner shell, the demo."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from rich.console import Console

from app.cli import EXIT_BAD_SETTINGS, main
from app.demo import NOT_BUILT_YET, run_demo

if TYPE_CHECKING:
    from pathlib import Path

# The settings `coder serve` reads; cleared so the developer's own environment cannot leak in.
SETTING_NAMES = (
    "APP_ID",
    "PRIVATE_KEY",
    "PRIVATE_KEY_PATH",
    "WEBHOOK_SECRET",
    "WEBHOOK_PATH",
    "HOST",
    "PORT",
    "GHE_HOST",
    "GHE_PROTOCOL",
    "LOG_LEVEL",
    "LOG_FORMAT",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_serve_without_settings_exits_with_one_line_naming_the_setting(clean_env: Path) -> None:
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == EXIT_BAD_SETTINGS
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("coder serve: ")
    assert "APP_ID" in lines[0] or "WEBHOOK_SECRET" in lines[0]


def test_serve_refuses_to_start_with_an_empty_webhook_secret(
    clean_env: Path, private_key_pem: str
) -> None:
    key = clean_env / "key.pem"
    key.write_text(private_key_pem)
    env_file = clean_env / "app.env"
    env_file.write_text(f"APP_ID=1\nPRIVATE_KEY_PATH={key}\nWEBHOOK_SECRET=\n")
    result = CliRunner().invoke(main, ["serve", "--env-file", str(env_file)])
    assert result.exit_code == EXIT_BAD_SETTINGS
    assert "WEBHOOK_SECRET" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_serve_names_a_bad_port_without_echoing_secrets(
    clean_env: Path, private_key_pem: str
) -> None:
    key = clean_env / "key.pem"
    key.write_text(private_key_pem)
    env_file = clean_env / "app.env"
    env_file.write_text(
        f"APP_ID=1\nPRIVATE_KEY_PATH={key}\nWEBHOOK_SECRET=s3cret-value\nPORT=http\n"
    )
    result = CliRunner().invoke(main, ["serve", "--env-file", str(env_file)])
    assert result.exit_code == EXIT_BAD_SETTINGS
    assert "PORT" in result.output
    assert "s3cret-value" not in result.output


def test_serve_with_a_missing_env_file_is_a_usage_error(clean_env: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--env-file", "nope.env"])
    assert result.exit_code != 0
    assert "no such file: nope.env" in result.output


def test_the_environment_wins_over_the_env_file(
    clean_env: Path, private_key_pem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = clean_env / "key.pem"
    key.write_text(private_key_pem)
    env_file = clean_env / "app.env"
    env_file.write_text(f"APP_ID=1\nPRIVATE_KEY_PATH={key}\nWEBHOOK_SECRET=x\nPORT=3000\n")
    monkeypatch.setenv("PORT", "not-a-port")
    result = CliRunner().invoke(main, ["serve", "--env-file", str(env_file)])
    assert result.exit_code == EXIT_BAD_SETTINGS
    assert "not-a-port" in result.output


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "devhub", "demo"):
        assert command in result.output


async def test_demo_runs_develop_then_a_fix_and_checks_every_step() -> None:
    out = io.StringIO()
    status = await run_demo(console=Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert status == 0, text
    assert "✗" not in text
    for line in (
        "#1 labelled coder:develop",
        "draft pull request #2 opened: [coder] add() subtracts instead of adding",
        "Actions: job success",
        "pull request #2 ready for review",
        "check run coder/develop is green",
        "the fix: calc.py",
        "coder:running removed",
        "answered as a duplicate (HTTP 200)",
        "still one branch and one pull request",
        "rejected before the body was parsed (HTTP 401)",
        "0 violation(s)",
        # The iterate part: CI fails, coder fixes it by itself, then a status.
        "check ci / test failed on",
        "check run coder/fix is green",
        "one tier up from the develop run",
        "coder replied with the runs",
        "| fix |",
        "| develop |",
    ):
        assert line in text, line
    assert "rate-limited REST calls for the whole run (DESIGN §8: ≤ 12)" in text
    for item in NOT_BUILT_YET:
        assert item in text
