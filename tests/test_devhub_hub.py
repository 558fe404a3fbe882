"""The DevHub object: credentials, app.env, the manifest, restarts and `coder devhub`."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys

from devhub.hub import DevHub
from devhub.testing import AdminClient
from tests.support.devhub import MANIFEST, REPO_ROOT


async def test_app_env_is_what_coder_serve_needs(devhub):
    path = devhub.write_app_env()
    assert path == devhub.state_dir / "app.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in path.read_text().splitlines())
    port = devhub.url.rsplit(":", 1)[1]
    assert values == {
        "APP_ID": "1",
        "PRIVATE_KEY_PATH": str(devhub.private_key_path),
        "WEBHOOK_SECRET": devhub.webhook_secret,
        "GHE_HOST": f"127.0.0.1:{port}",
        "GHE_PROTOCOL": "http",
        "DEVHUB_ADMIN_TOKEN": devhub.admin_token,
        "DEVHUB_URL": devhub.url,
    }
    assert stat.S_IMODE(devhub.private_key_path.stat().st_mode) == 0o600
    assert devhub.private_key_path.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert devhub.api_url == devhub.url + "/api/v3"


async def test_manifest_sets_permissions_and_events(devhub):
    assert devhub.app.permissions["contents"] == "write"
    assert devhub.app.permissions["metadata"] == "read"
    assert "administration" not in devhub.app.permissions
    assert "push" in devhub.app.events
    assert "label" not in devhub.app.events


async def test_restart_keeps_credentials_and_git_but_forgets_records(tmp_path):
    state_dir = tmp_path / "hub"
    first = DevHub(state_dir, strict=True, manifest=MANIFEST)
    await first.start()
    try:
        async with AdminClient(first.url, first.admin_token) as admin:
            alice = await admin.create_user("alice")
            await admin.create_repo("alice", "tools", alice.token)
            _, _, ref = await admin.rest(alice.token).get("/repos/alice/tools/git/ref/heads/main")
    finally:
        await first.stop()
    second = DevHub(state_dir, strict=True, manifest=MANIFEST)
    await second.start()
    try:
        assert (second.webhook_secret, second.admin_token) == (
            first.webhook_secret,
            first.admin_token,
        )
        assert second.private_key_path.read_bytes() == first.private_key_path.read_bytes()
        async with AdminClient(second.url, second.admin_token) as admin:
            alice = await admin.create_user("alice")  # users are in memory: create again
            assert (await admin.rest(alice.token).get("/repos/alice/tools"))[0] == 404
            await admin.create_repo("alice", "tools", alice.token)  # adopts the git repository
            _, _, again = await admin.rest(alice.token).get("/repos/alice/tools/git/ref/heads/main")
        assert again["object"]["sha"] == ref["object"]["sha"]
    finally:
        await second.stop()
    assert first.contract_violations == second.contract_violations == []


async def test_coder_devhub_runs_until_sigterm(tmp_path):
    state_dir = tmp_path / "state"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "devhub",
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--manifest",
        str(MANIFEST),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert process.stdout is not None
    banner = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert banner.decode().startswith("devhub is up at http://127.0.0.1:")
    url = banner.decode().split(" at ", 1)[1].strip()
    env = dict(line.split("=", 1) for line in (state_dir / "app.env").read_text().splitlines())
    assert env["DEVHUB_URL"] == url
    async with AdminClient(url, env["DEVHUB_ADMIN_TOKEN"]) as admin:
        user = await admin.create_user("alice")
        status, _, me = await admin.rest(user.token).get("/user")
        assert (status, me["login"]) == (200, "alice")
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
