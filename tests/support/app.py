"""Fixtures for the app: keys, settings, signed deliveries, and the app served on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.github import GitHubAccess
from app.retry import RetryPolicy
from app.server import ROUTERS, access_of, make_app, queue_of
from app.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

    from gidgethub.routing import Router

    from app.dispatch import SubjectQueue

WEBHOOK_SECRET = "test-webhook-secret-0123456789"


class RecordingSleep:
    """An injectable `sleep` that records each wait and returns at once (no wall-clock waits).

    `hold()` makes sleeps block until `release()`, so a test can look at a request parked by the
    rate-limit gate; `hook` runs on every call (e.g. to change GitHub while the client waits).
    """

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.hook: Callable[[float], Awaitable[None]] | None = None
        self._called = asyncio.Condition()
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        """Block every sleep from now on until `release()`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let held sleeps return."""
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    async def wait_for_calls(self, count: int) -> None:
        """Wait until `count` sleeps have been asked for."""
        async with self._called:
            await self._called.wait_for(lambda: len(self.calls) >= count)

    async def __call__(self, seconds: float) -> None:
        async with self._called:
            self.calls.append(seconds)
            self._called.notify_all()
        if self.hook is not None:
            await self.hook(seconds)
        if self._gate is not None:
            await self._gate.wait()
        await asyncio.sleep(0)


@dataclass
class AppServer:
    """The app served on 127.0.0.1 by aiohttp's TestServer."""

    url: str
    app: web.Application
    settings: Settings
    session: aiohttp.ClientSession
    sleep: RecordingSleep = field(default_factory=RecordingSleep)
    server: TestServer | None = None

    async def close(self) -> None:
        """Shut the app down as SIGTERM would (idempotent)."""
        await self.session.close()
        if self.server is not None:
            server, self.server = self.server, None
            await server.close()

    @property
    def queue(self) -> SubjectQueue:
        """The app's delivery queue."""
        return queue_of(self.app)

    @property
    def access(self) -> GitHubAccess:
        """The app's GitHub access."""
        return access_of(self.app)

    @property
    def webhook_url(self) -> str:
        """Where deliveries go."""
        return self.url + self.settings.webhook_path

    async def deliver(
        self,
        event: str,
        payload: Any,
        *,
        delivery_id: str | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Any]:
        """POST a signed delivery; return (status, decoded JSON body)."""
        raw = body if body is not None else json.dumps(payload).encode()
        sent = signed_headers(
            event, raw, secret or self.settings.webhook_secret.get_secret_value(), delivery_id
        )
        sent.update(headers or {})
        async with self.session.post(self.webhook_url, data=raw, headers=sent) as response:
            return response.status, await response.json(content_type=None)


def signed_headers(
    event: str, body: bytes, secret: str, delivery_id: str | None = None
) -> dict[str, str]:
    """Return the headers GitHub sends with a delivery, signed with `secret`."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": f"sha256={signature}",
    }


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    """Return a fresh RSA private key (PEM) for the tests' app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Return a loopback port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def offline_env(private_key_pem: str, closed_port: int) -> dict[str, str]:
    """Settings for an app whose GitHub is a port that refuses connections."""
    return {
        "APP_ID": "1",
        "PRIVATE_KEY": private_key_pem,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GHE_HOST": f"127.0.0.1:{closed_port}",
        "GHE_PROTOCOL": "http",
    }


async def serve_app(
    settings: Settings,
    *,
    routers: Sequence[Router] = ROUTERS,
    policy: RetryPolicy | None = None,
) -> AppServer:
    """Start the app on 127.0.0.1:0 with an instant, recording sleep."""
    sleep = RecordingSleep()

    def access_factory(settings: Settings, session: aiohttp.ClientSession) -> GitHubAccess:
        return GitHubAccess(settings, session, sleep=sleep, policy=policy)

    app = make_app(settings, access_factory=access_factory, routers=routers)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    session = aiohttp.ClientSession()
    url = str(server.make_url("")).rstrip("/")
    return AppServer(
        url=url, app=app, settings=settings, session=session, sleep=sleep, server=server
    )


@pytest.fixture
async def offline_app(private_key_pem: str, closed_port: int) -> AsyncIterator[AppServer]:
    """The app with coder's routers and an unreachable GitHub (for ingress-only tests)."""
    settings = load_settings(None, offline_env(private_key_pem, closed_port))
    running = await serve_app(settings, policy=RetryPolicy(max_attempts=1))
    yield running
    await running.close()


@pytest.fixture
async def app_server(devhub: Any) -> AsyncIterator[AppServer]:
    """The app, configured from devhub's app.env, receiving devhub's webhooks."""
    settings = load_settings(None, devhub.app_env())
    running = await serve_app(settings)
    devhub.webhook_url = running.webhook_url
    yield running
    devhub.webhook_url = None
    await running.close()
