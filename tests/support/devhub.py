"""Fixtures for devhub: a strict hub per test, the admin client, a webhook receiver, an org."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from devhub.hub import DevHub
from devhub.testing import AdminClient, User

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "app.yml"


@pytest.fixture
async def devhub(tmp_path: Path) -> AsyncIterator[DevHub]:
    """Return a started strict devhub with coder's manifest; it must end with no violations."""
    hub = DevHub(tmp_path / "devhub", strict=True, manifest=MANIFEST)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
    assert hub.contract_violations == []


@pytest.fixture
async def admin(devhub: DevHub) -> AsyncIterator[AdminClient]:
    """Return an admin client for the devhub fixture."""
    client = AdminClient(devhub.url, devhub.admin_token)
    try:
        yield client
    finally:
        await client.close()


@dataclass
class Received:
    """One webhook request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A loopback endpoint that records deliveries and answers with `status`."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 202
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        """Record a delivery."""
        body = await request.read()
        async with self.arrived:
            self.received.append(Received(dict(request.headers), body))
            self.arrived.notify_all()
        return web.Response(status=self.status, text="ok")

    def signature_ok(self, secret: str, item: Received) -> bool:
        """Check both signature headers against the secret."""
        key = secret.encode()
        sha256 = "sha256=" + hmac.new(key, item.body, hashlib.sha256).hexdigest()
        sha1 = "sha1=" + hmac.new(key, item.body, hashlib.sha1).hexdigest()
        return hmac.compare_digest(
            item.headers["X-Hub-Signature-256"], sha256
        ) and hmac.compare_digest(item.headers["X-Hub-Signature"], sha1)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """Return a webhook receiver on 127.0.0.1 (port 0)."""
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    holder: dict[str, WebhookReceiver] = {}

    async def handle(request: web.Request) -> web.Response:
        return await holder["receiver"].handle(request)

    app.router.add_post("/hook", handle)
    await server.start_server()
    holder["receiver"] = WebhookReceiver(str(server.make_url("/hook")))
    try:
        yield holder["receiver"]
    finally:
        await server.close()


@dataclass
class Org:
    """A seeded organization: owner alice, a repo acme/widgets, the app installed."""

    owner: User
    name: str
    repo: str
    installation_id: int


@pytest.fixture
async def org(devhub: DevHub, admin: AdminClient) -> Org:
    """Seed acme (owner alice) with acme/widgets and install the app on acme."""
    alice = await admin.create_user("alice")
    await admin.create_org("acme", "alice")
    await admin.create_repo("acme", "widgets", alice.token, auto_init=True)
    installation_id = await admin.install("acme", "all")
    return Org(alice, "acme", "acme/widgets", installation_id)


def app_jwt(hub: DevHub, **claims: Any) -> str:
    """Sign an app JWT as the app would (iat 60 s ago, 9 minutes), overridable per claim."""
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now - 60, "exp": now + 540, "iss": str(hub.app_id)} | claims
    return jwt.encode(payload, hub.private_key_path.read_bytes(), algorithm="RS256")


async def installation_token(
    admin: AdminClient, hub: DevHub, installation_id: int, **body: Any
) -> str:
    """Mint an installation token through the REST API with the app's JWT."""
    status, _headers, answer = await admin.rest(None).post(
        f"/app/installations/{installation_id}/access_tokens",
        body or None,
        headers={"Authorization": f"Bearer {app_jwt(hub)}"},
    )
    assert status == 201, answer
    return str(answer["token"])


async def record_coder_run(
    hub: DevHub, full_name: str, coder_run_id: str, *, read_only: bool = False
) -> int:
    """Record a dispatched `coder.yml` workflow run titled as coder's are; return its id.

    What GitHub holds once the app dispatched a run, without running a job: the token exchange
    looks a job's run up by the `run_id` its OIDC token names.
    """
    from devhub.state import utcnow  # noqa: PLC0415 - test support only
    from devhub.state_actions import WorkflowRun  # noqa: PLC0415

    owner, name = full_name.split("/")
    repo = hub.state.repo(owner, name)
    assert repo is not None, full_name
    head = await hub._ctx.git.resolve(owner, name, repo.default_branch)
    bot = hub.state.account(f"{hub.app_slug}[bot]")
    assert bot is not None
    now = utcnow()
    title = f"coder run {coder_run_id}" + (" read-only" if read_only else "")
    run = WorkflowRun(
        id=hub.state.next_id(),
        repo=repo,
        workflow_id=hub.state.next_id(),
        workflow_path=".github/workflows/coder.yml",
        workflow_name="coder",
        run_number=1,
        event="workflow_dispatch",
        display_title=title,
        head_branch=repo.default_branch,
        head_sha=str(head),
        actor=bot,
        created_at=now,
        updated_at=now,
        status="in_progress",
    )
    commit = await hub._ctx.git.get_commit(owner, name, str(head))
    run.head_commit = {
        "id": commit.sha,
        "tree_id": commit.tree,
        "message": commit.message,
        "timestamp": commit.committer.date,
        "author": {"name": commit.author.name, "email": commit.author.email},
        "committer": {"name": commit.committer.name, "email": commit.committer.email},
    }
    repo.workflow_runs[run.id] = run
    return run.id
