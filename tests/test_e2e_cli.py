"""`coder devhub` and `coder serve --env-file` as two processes, as the quickstart runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from app.labels import CODER_LABELS
from devhub.testing import AdminClient
from tests.support.devhub import MANIFEST, REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

START_TIMEOUT = 60
CODER = (sys.executable, "-c", "from app.cli import main; main()")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *CODER,
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
    )


async def _json_lines_until(stream: asyncio.StreamReader, wanted: dict[str, str]) -> list[dict]:
    """Read the app's JSON log lines until one carries every `wanted` field; return them all."""
    seen: list[dict] = []
    while True:
        line = await asyncio.wait_for(stream.readline(), timeout=START_TIMEOUT)
        assert line, f"the app exited before logging {wanted}; it logged {seen}"
        record = json.loads(line)
        seen.append(record)
        if all(record.get(key) == value for key, value in wanted.items()):
            return seen


async def _stop(process: asyncio.subprocess.Process) -> bytes:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=START_TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    return stderr


async def test_devhub_and_serve_work_together_from_app_env(tmp_path: Path) -> None:
    state_dir = tmp_path / "devhub"
    app_port = _free_port()
    webhook_url = f"http://127.0.0.1:{app_port}/api/github/webhooks"
    hub = await _spawn(
        "devhub",
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--manifest",
        str(MANIFEST),
        "--webhook-url",
        webhook_url,
        "--strict",
        env={},
    )
    assert hub.stdout is not None
    banner = (await asyncio.wait_for(hub.stdout.readline(), timeout=START_TIMEOUT)).decode()
    assert banner.startswith("devhub is up at "), banner
    app_env = state_dir / "app.env"
    settings = dict(line.split("=", 1) for line in app_env.read_text().splitlines())

    app = await _spawn(
        "serve",
        "--env-file",
        str(app_env),
        env={"PORT": str(app_port), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
    )
    assert app.stderr is not None
    logged = await _json_lines_until(app.stderr, {"logger": "app.server"})
    assert any("listening" in record["message"] for record in logged), logged

    async with AdminClient(settings["DEVHUB_URL"], settings["DEVHUB_ADMIN_TOKEN"]) as admin:
        alice = await admin.create_user("alice")
        assert alice.token is not None
        await admin.create_repo("alice", "widgets", alice.token)
        await admin.install("alice", "all")
        logged += await _json_lines_until(
            app.stderr, {"event": "installation", "action": "created", "outcome": "ok"}
        )
        status, _, labels = await admin.rest(alice.token).get("/repos/alice/widgets/labels")
        assert status == 200
        assert {label.name for label in CODER_LABELS} <= {label["name"] for label in labels}
        deliveries = await admin.deliveries()
        installs = [d for d in deliveries if d["event"] == "installation"]
        assert [d["status_code"] for d in installs] == [202]

    rest_of_log = await _stop(app)
    await _stop(hub)
    # The app's logs never carry its secrets, whatever else it printed.
    everything = json.dumps(logged) + rest_of_log.decode()
    assert settings["WEBHOOK_SECRET"] not in everything
    assert "ghs_" not in everything
    assert "BEGIN RSA PRIVATE KEY" not in everything
