"""The aiohttp app: webhook endpoint, health checks, and the one place routers are merged."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub
from aiohttp import web
from gidgethub.routing import Router

from app import (
    chain,
    commands,
    config_check,
    develop,
    fix,
    fork_results,
    installation,
    oidc,
    reconcile,
    releases,
    triggers,
)
from app.dispatch import SubjectQueue
from app.github import GitHubAccess
from app.known_repos import KNOWN_REPOSITORIES, KnownRepositories
from app.retry import NO_RETRY
from app.settings import Settings
from app.webhooks import WebhookReceiver

if TYPE_CHECKING:
    from gidgethub.sansio import Event

log = logging.getLogger(__name__)

# Every handler module's router, merged here and nowhere else.
ROUTERS: tuple[Router, ...] = (
    installation.router,
    triggers.router,
    commands.router,
    fix.router,
    chain.router,
    releases.router,
    reconcile.router,
    config_check.router,
)

READY_CACHE_SECONDS = 5.0
RECONCILE_TASK = "coder-reconcile"
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

AccessFactory = Callable[[Settings, aiohttp.ClientSession], GitHubAccess]


class Readiness:
    """Ready when GitHub's last answer was good, or when `GET /app` with the JWT works."""

    def __init__(self, access: GitHubAccess, clock: Callable[[], float] = time.monotonic) -> None:
        self._access = access
        self._clock = clock
        self._checked: tuple[float, bool, str] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, str]:
        """Return (ready, reason); probes GitHub at most once every few seconds."""
        if self._access.health.healthy:
            return True, "ok"
        async with self._lock:
            now = self._clock()
            if self._checked is not None and now - self._checked[0] < READY_CACHE_SECONDS:
                return self._checked[1], self._checked[2]
            ready, reason = await self._probe()
            self._checked = (self._clock(), ready, reason)
            return ready, reason

    async def _probe(self) -> tuple[bool, str]:
        try:
            await self._access.app_client(policy=NO_RETRY).getitem("/app")
        except (gidgethub.GitHubException, aiohttp.ClientError, OSError) as error:
            return False, f"GET /app failed: {_describe(error)}"
        return True, "ok"


SETTINGS_KEY = web.AppKey("settings", Settings)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
ACCESS_KEY = web.AppKey("access", GitHubAccess)
QUEUE_KEY = web.AppKey("queue", SubjectQueue)
RECEIVER_KEY = web.AppKey("receiver", WebhookReceiver)
READINESS_KEY = web.AppKey("readiness", Readiness)


class AppRouter(Router):
    """The merged routers; every dispatch runs with the app's GitHub access in context."""

    def __init__(
        self, access: GitHubAccess, *routers: Router, known: KnownRepositories | None = None
    ) -> None:
        super().__init__(*routers)
        self._access = access
        self._known = known if known is not None else KnownRepositories()

    async def dispatch(self, event: Event, *args: Any, **kwargs: Any) -> None:
        """Dispatch to every matching handler, which can read `develop.APP_ACCESS`."""
        # A verified delivery names its installation and repository: the token exchange
        # needs no lookup for a repository the app has heard from (app/known_repos.py).
        if isinstance(event.data, dict):
            self._known.learn(event.data)
        # Handlers are called as (event, gh); the app's own identity reaches them this way.
        token = develop.APP_ACCESS.set(self._access)
        known = KNOWN_REPOSITORIES.set(self._known)
        try:
            await super().dispatch(event, *args, **kwargs)
        finally:
            KNOWN_REPOSITORIES.reset(known)
            develop.APP_ACCESS.reset(token)


def registered_events() -> set[str]:
    """Return every webhook event some handler is registered for."""
    events: set[str] = set()
    for router in ROUTERS:
        # gidgethub's Router has no public way to list its routes.
        events |= router._shallow_routes.keys() | router._deep_routes.keys()  # noqa: SLF001
    return events


def make_app(
    settings: Settings,
    *,
    access_factory: AccessFactory | None = None,
    routers: Sequence[Router] = ROUTERS,
) -> web.Application:
    """Build the application; its GitHub session, client and queue live in `cleanup_ctx`."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS_KEY] = settings
    app.cleanup_ctx.append(partial(_lifetime, access_factory or GitHubAccess, tuple(routers)))
    app.router.add_post(settings.webhook_path, _webhook)
    app.router.add_post(oidc.EXCHANGE_PATH, oidc.handle_token_request)
    app.router.add_post(fork_results.RESULT_PATH, fork_results.handle_result)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


def queue_of(app: web.Application) -> SubjectQueue:
    """Return the running app's delivery queue."""
    return app[QUEUE_KEY]


def access_of(app: web.Application) -> GitHubAccess:
    """Return the running app's GitHub access."""
    return app[ACCESS_KEY]


class ListenError(Exception):
    """The server cannot listen where HOST and PORT say; the message names the setting."""


def listen_problem(host: str, port: int, error: OSError) -> str:
    """Say in one line which setting keeps the server from listening, and why."""
    reason = error.strerror or str(error)
    if isinstance(error, socket.gaierror):
        return f"HOST: cannot resolve {host!r}: {reason}"
    if error.errno == errno.EADDRINUSE:
        return f"PORT: {port} is already in use on {host}"
    if error.errno == errno.EACCES:
        return f"PORT: not allowed to listen on port {port} ({reason})"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"HOST: {host!r} is not an address of this machine ({reason})"
    return f"HOST/PORT: cannot listen on {host}:{port}: {reason}"


async def _check_listen(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    try:
        probe = await loop.create_server(asyncio.Protocol, host, port)
    except OSError as error:
        raise ListenError(listen_problem(host, port, error)) from None
    probe.close()
    await probe.wait_closed()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop factory where uvloop is installed; None stands for asyncio's loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional: there is no uvloop on Windows
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, on uvloop where it is installed (docs/dependencies.md)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(settings))


def loop_name() -> str:
    """Name the running event loop's implementation: "uvloop" or "asyncio"."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


async def serve(settings: Settings) -> None:
    """Run the app until SIGINT or SIGTERM, then shut down gracefully.

    Raises ListenError when HOST or PORT cannot be listened on.
    """
    # Before anything starts (the GitHub session, the reconcile loop), so that a bad HOST or a
    # taken PORT ends with its one line and nothing else.
    await _check_listen(settings.host, settings.port)
    runner = web.AppRunner(make_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as error:
            raise ListenError(listen_problem(settings.host, settings.port, error)) from None
        for address in runner.addresses:
            log.info(
                "coder listening on http://%s:%d%s (GitHub API: %s; event loop: %s)",
                address[0],
                address[1],
                settings.webhook_path,
                settings.api_url,
                loop_name(),
            )
        await stop.wait()
        log.info(
            "shutting down: finishing in-flight deliveries for up to %gs",
            settings.shutdown_grace_seconds,
        )
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await runner.cleanup()


async def _lifetime(
    access_factory: AccessFactory, routers: tuple[Router, ...], app: web.Application
) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    session = aiohttp.ClientSession(timeout=CLIENT_TIMEOUT)
    access = access_factory(settings, session)
    queue = SubjectQueue(settings.max_concurrency)
    app[SESSION_KEY] = session
    app[ACCESS_KEY] = access
    app[QUEUE_KEY] = queue
    app[READINESS_KEY] = Readiness(access)
    known = KnownRepositories()
    app[oidc.TOKEN_EXCHANGE_KEY] = oidc.token_exchange(settings, session, access, known)
    app[RECEIVER_KEY] = WebhookReceiver(
        secret=settings.webhook_secret.get_secret_value(),
        router=AppRouter(access, *routers, known=known),
        queue=queue,
        access=access,
        delivery_ttl_seconds=settings.delivery_ttl_seconds,
        max_body_bytes=settings.max_body_bytes,
    )
    # Learn the app's slug early so events the app caused itself are dropped at the door.
    learn_slug = asyncio.create_task(_learn_slug(access))
    # Re-derive runs whose events were missed (DESIGN §2); 0 turns the loop off.
    background = [learn_slug]
    if settings.reconcile_seconds > 0:
        loop = reconcile.reconcile_forever(access, settings.reconcile_seconds)
        background.append(asyncio.create_task(loop, name=RECONCILE_TASK))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        abandoned = await queue.close(settings.shutdown_grace_seconds)
        if abandoned:
            log.warning("shutdown abandoned %d delivery(ies)", len(abandoned))
        await session.close()


async def _learn_slug(access: GitHubAccess) -> None:
    try:
        await access.app_slug()
    except (gidgethub.GitHubException, aiohttp.ClientError, OSError, KeyError) as error:
        log.warning("could not read the app's slug from GET /app yet: %s", _describe(error))


async def _webhook(request: web.Request) -> web.Response:
    return await request.app[RECEIVER_KEY].handle(request)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    ready, reason = await request.app[READINESS_KEY].check()
    if ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "unavailable", "reason": reason}, status=503)


def _describe(error: BaseException) -> str:
    if isinstance(error, gidgethub.HTTPException):
        return f"HTTP {int(error.status_code)} {error}"
    return type(error).__name__
