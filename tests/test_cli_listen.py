"""`coder serve` with a HOST or PORT it cannot listen on: one line naming the setting, and exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from app.cli import EXIT_CANNOT_LISTEN
from tests.support.devhub import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CODER = (sys.executable, "-c", "from app.cli import main; main()")
TIMEOUT = 120  # seconds; only a guard against a server that wrongly starts and never exits


@pytest.fixture
def env_file(tmp_path: Path, private_key_pem: str, closed_port: int) -> Path:
    key = tmp_path / "key.pem"
    key.write_text(private_key_pem)
    path = tmp_path / "app.env"
    path.write_text(
        f"APP_ID=1\nPRIVATE_KEY_PATH={key}\nWEBHOOK_SECRET=s3cret-value\n"
        f"GHE_HOST=127.0.0.1:{closed_port}\nGHE_PROTOCOL=http\n"
    )
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    """Return a loopback port another process is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def serve(env_file: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key not in {"HOST", "PORT"}}
    return subprocess.run(
        [*CODER, "serve", "--env-file", str(env_file)],
        cwd=REPO_ROOT,
        env={**environ, "PYTHONPATH": str(REPO_ROOT), **settings},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_a_host_that_does_not_resolve_is_named(env_file: Path) -> None:
    result = serve(env_file, HOST="no.such.host.invalid", PORT="0")
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coder serve: HOST: cannot resolve 'no.such.host.invalid'")
    assert "s3cret-value" not in result.stderr


def test_a_port_in_use_is_named(env_file: Path, taken_port: int) -> None:
    result = serve(env_file, HOST="127.0.0.1", PORT=str(taken_port))
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"coder serve: PORT: {taken_port} is already in use on 127.0.0.1"
    ]


def test_a_host_that_is_not_this_machine_is_named(env_file: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    result = serve(env_file, HOST="192.0.2.1", PORT="0")
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("coder serve: HOST: '192.0.2.1' is not an address of this machine")
