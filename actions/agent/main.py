"""Entry point for `coder-agent`, the runner that does one coder run inside an Actions job.

Started through its console script, never `python -m`: a repository's own `app/` folder in the
working directory would otherwise shadow coder's. Everything it needs comes from the
environment (docs/runner.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING

import click

from actions.agent.auth import AuthError
from actions.agent.env import EnvError, load_env
from actions.agent.logs import configure_logging
from actions.agent.report import report_env_failure
from actions.agent.run import Deps, Runner

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger("coder-agent")

EXIT_OK = 0  # success or neutral
EXIT_RUN_FAILED = 1  # the run ended failure, timed_out or action_required (or crashed)
EXIT_CANNOT_START = 2  # invalid environment, or no token
EXIT_INTERRUPTED = 130  # cancelled (SIGINT or SIGTERM): the agent was stopped first


async def run_main(environ: Mapping[str, str], deps: Deps | None = None) -> int:
    """Do one run from this environment; return the process exit code."""
    deps = deps or Deps(environ=environ)
    try:
        env = load_env(environ)
    except EnvError as error:
        message = f"coder-agent: {error}"
        click.echo(message, err=True)
        if error.reach is not None:
            await report_env_failure(error.reach, message, out=deps.out, policy=deps.policy)
        return EXIT_CANNOT_START
    try:
        conclusion = await Runner(env, deps).execute()
    except AuthError as error:
        click.echo(f"coder-agent: no token: {error}", err=True)
        return EXIT_CANNOT_START
    except Exception:
        log.exception("coder-agent failed")
        return EXIT_RUN_FAILED
    return EXIT_OK if conclusion.ok else EXIT_RUN_FAILED


async def run_cancellable(environ: Mapping[str, str]) -> int:
    """Run, turning SIGTERM (like SIGINT, which asyncio handles) into a cancellation.

    A cancelled run stops its agent's process group on the way out: the agent runs in a session
    of its own, so the signal a runner sends to coder-agent's group never reaches it.
    """
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_main(environ)
    except asyncio.CancelledError:
        log.warning("coder-agent was cancelled; the agent was stopped")
        return EXIT_INTERRUPTED


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coder", prog_name="coder-agent")
def main() -> None:
    """Do one coder run inside a GitHub Actions job (see docs/runner.md)."""
    configure_logging()
    try:
        code = asyncio.run(run_cancellable(dict(os.environ)))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise SystemExit(code)
