"""The `coder` command line: serve the app, run devhub, run the demo."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import click

from app.cli_config import config
from app.cli_runs import artifacts, run
from app.settings import SettingsError, load_settings

DEFAULT_ENV_FILE = Path(".env")
EXIT_BAD_SETTINGS = 2
EXIT_CANNOT_LISTEN = 2  # HOST or PORT is unusable: a bad setting too, found only when binding


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coder", prog_name="coder")
def main() -> None:
    """coder: AI coding agents on your GitHub issues and pull requests."""


@main.command()
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file in .env format (default: .env if it exists). The environment wins.",
)
def serve(env_file: Path | None) -> None:
    """Run the GitHub App's webhook server."""
    from app.logs import configure_logging  # noqa: PLC0415 - keep `coder --help` fast
    from app.server import ListenError  # noqa: PLC0415
    from app.server import run as run_app  # noqa: PLC0415

    if env_file is not None and not env_file.is_file():
        raise click.ClickException(f"--env-file: no such file: {env_file}")
    if env_file is None and DEFAULT_ENV_FILE.is_file():
        env_file = DEFAULT_ENV_FILE
    try:
        settings = load_settings(env_file, os.environ)
    except SettingsError as error:
        click.echo(f"coder serve: {error}", err=True)
        raise SystemExit(EXIT_BAD_SETTINGS) from None
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_app(settings)
    except ListenError as error:
        click.echo(f"coder serve: {error}", err=True)
        raise SystemExit(EXIT_CANNOT_LISTEN) from None


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".devhub"),
    show_default=True,
    help="Where repositories, the app's key and app.env are kept.",
)
@click.option(
    "--webhook-url",
    default=None,
    help="Where the app's webhooks go (default: http://127.0.0.1:3000/api/github/webhooks).",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="GitHub App manifest for permissions and events (default: ./app.yml if present).",
)
@click.option(
    "--strict", is_flag=True, help="Check every request and payload against GitHub's schemas."
)
def devhub(  # noqa: PLR0917 - click passes one argument per option
    port: int,
    host: str,
    state_dir: Path,
    webhook_url: str | None,
    manifest: Path | None,
    strict: bool,
) -> None:
    """Run devhub, a local GitHub for tests and the demo."""
    from devhub.hub import run  # noqa: PLC0415 - the app never imports devhub at import time

    if manifest is None and Path("app.yml").is_file():
        manifest = Path("app.yml")
    url = webhook_url or "http://127.0.0.1:3000/api/github/webhooks"
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run(state_dir, port=port, host=host, webhook_url=url, manifest=manifest, strict=strict)
        )


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo's devhub state directory afterwards.")
def demo(keep: bool) -> None:
    """Walk through what coder does today, offline, on devhub."""
    from app.demo import run_demo  # noqa: PLC0415

    raise SystemExit(asyncio.run(run_demo(keep=keep)))


main.add_command(config)
main.add_command(run)
main.add_command(artifacts)
