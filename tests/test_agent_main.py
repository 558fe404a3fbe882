"""The `coder-agent` console script: exit codes, the job log's shape, and redaction."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from click.testing import CliRunner

from actions.agent.logs import SECRETS, configure_logging
from actions.agent.main import EXIT_CANNOT_START, main, run_main


async def test_an_empty_environment_is_one_line_and_exit_2(capsys):
    assert await run_main({}) == EXIT_CANNOT_START
    err = capsys.readouterr().err.strip()
    assert err.startswith("coder-agent: ")
    assert "\n" not in err
    assert "CODER_RUN_ID is not set" in err
    assert "GITHUB_REPOSITORY" in err


def test_help_and_version():
    runner = CliRunner()
    assert "GitHub Actions job" in runner.invoke(main, ["--help"]).output
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0
    assert version.output.startswith("coder-agent, version ")


def test_warnings_and_errors_are_annotations_on_one_line():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging(stream)
        log = logging.getLogger("coder-agent")
        log.info("plain %s", "line")
        log.warning("two\nlines at 100%")
        log.error("bad")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert stream.getvalue().splitlines() == [
        "plain line",
        "::warning::two%0Alines at 100%25",
        "::error::bad",
    ]


def test_remembered_secrets_never_reach_the_log():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    secret = "not-token-shaped-but-secret-4711"
    try:
        configure_logging(stream)
        SECRETS.remember([secret])
        logging.getLogger("app.github").warning("GET failed for %s", secret)
        logging.getLogger("coder-agent").info("token ghs_%s", "a" * 36)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert secret not in stream.getvalue()
    assert "ghs_" not in stream.getvalue()
    assert "[REDACTED]" in stream.getvalue()


def test_the_runner_imports_only_the_pure_core_of_the_app():
    probe = (
        "import sys, actions.agent.main\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'devhub'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not [name for name in loaded if name.startswith("devhub")]
    for server_side in ("app.server", "app.webhooks", "app.dispatch", "app.develop", "app.oidc"):
        assert server_side not in loaded
