"""Entry point for `coder-agent`, the runner that executes inside a GitHub Actions job.

The runner itself arrives with the develop journey (issue #3). Until then this entry point exists so
the console script is installed and its contract is documented, and it refuses to pretend: it exits
non-zero with a message, so no workflow can mistake it for a successful run.
"""

from __future__ import annotations

import click

NOT_YET = (
    "coder-agent: the runner is not built yet (it arrives with the develop journey). "
    "Nothing was run; exiting with failure so no check turns green by accident."
)
EXIT_NOT_IMPLEMENTED = 3


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coder", prog_name="coder-agent")
def main() -> None:
    """Run a coder workflow inside a GitHub Actions job (not built yet)."""
    click.echo(NOT_YET, err=True)
    raise SystemExit(EXIT_NOT_IMPLEMENTED)
