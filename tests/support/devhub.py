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
