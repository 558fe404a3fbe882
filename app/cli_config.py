"""`coder config validate`: check a `.github/coder.yml` locally, in the words of its check run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from app.config import BaseConfig, ConfigResult

DEFAULT_PATH = ".github/coder.yml"  # app.config.CONFIG_PATH, without importing it for --help
STDIN = "-"
EXIT_INVALID = 1


@click.group("config")
def config() -> None:
    """Work with `.github/coder.yml`."""


@config.command()
@click.argument(
    "path",
    default=DEFAULT_PATH,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option(
    "--extends-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A local copy of the file `_extends` names (e.g. <org>/.github's .github/coder.yml).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(path: str, extends_file: Path | None, as_json: bool) -> None:
    """Check a config file (`-`: stdin); print each error as path:line:column: message."""
    # Imported here: the models cost a noticeable part of a second, and `coder --help` is quick.
    from app.config import (  # noqa: PLC0415
        CONFIG_PATH,
        NOT_UTF8,
        BaseConfig,
        ConfigError,
        ConfigResult,
        describe,
        extends_of,
        parse_config,
    )

    name = CONFIG_PATH if path == STDIN else path
    text = _decode(sys.stdin.buffer.read() if path == STDIN else Path(path).read_bytes())
    if text is None:
        result = ConfigResult(None, (ConfigError(name, 1, 1, NOT_UTF8),))
    else:
        target = extends_of(text, "")
        base: BaseConfig | None = None
        if target is not None and extends_file is not None:
            base = BaseConfig(str(extends_file), _decode(extends_file.read_bytes()), NOT_UTF8)
        elif target is not None:
            shown = target.full_name.removeprefix("/")
            click.echo(
                f"note: `_extends: {shown}` not checked; pass --extends-file with a copy of that "
                "file to check the merged config",
                err=True,
            )
        elif extends_file is not None:
            click.echo(f"note: {name} has no `_extends`; --extends-file is ignored", err=True)
        result = parse_config(text, name, base=base)
    summary = f"{name}: {describe(result.config)}" if result.config is not None else None
    if as_json:
        click.echo(json.dumps(_as_json(name, result, summary), indent=2))
    elif summary is not None:
        click.echo(summary)
    else:
        for error in result.errors:
            click.echo(str(error))
    if not result.ok:
        raise SystemExit(EXIT_INVALID)


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_json(name: str, result: ConfigResult, summary: str | None) -> dict[str, Any]:
    return {
        "path": name,
        "valid": result.ok,
        "summary": summary,
        "errors": [
            {
                "path": error.path,
                "line": error.line,
                "column": error.column,
                "message": error.message,
                "text": str(error),
            }
            for error in result.errors
        ],
    }
