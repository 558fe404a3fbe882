"""The server's lifecycle: serve() until a signal, and graceful shutdown of in-flight deliveries."""

import asyncio
import logging
import os
import re
import signal
import sys

import aiohttp
import pytest
from gidgethub.routing import Router

from app.server import event_loop_factory, loop_name, make_app, serve
from app.settings import load_settings
from tests.support.app import offline_env, serve_app

LISTENING = re.compile(r"coder listening on (http://[\d.]+:\d+)/api/github/webhooks")


class ListeningHandler(logging.Handler):
    """Resolve a future with the URL once serve() logs where it listens."""

    def __init__(self, future):
        super().__init__()
        self.future = future

    def emit(self, record):
        match = LISTENING.search(record.getMessage())
        if match and not self.future.done():
            self.future.set_result(match[1])


async def test_serve_listens_and_stops_on_sigterm(private_key_pem, closed_port):
    settings = load_settings(None, {**offline_env(private_key_pem, closed_port), "PORT": "0"})
    listening = asyncio.get_running_loop().create_future()
    handler = ListeningHandler(listening)
    logger = logging.getLogger("app.server")
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        running = asyncio.create_task(serve(settings))
        url = await asyncio.wait_for(listening, timeout=30)
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as response:
            assert response.status == 200
        # serve() installed its own handler for SIGTERM before it logged the address.
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, timeout=30)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url + "/healthz") as response:
                still_up = response.status
        except aiohttp.ClientConnectionError:
            still_up = None
    assert still_up is None


def test_make_app_does_no_io_until_started(private_key_pem, closed_port):
    # No event loop, no session, no GitHub call: the factory only wires routes.
    app = make_app(load_settings(None, offline_env(private_key_pem, closed_port)))
    paths = {route.resource.canonical for route in app.router.routes()}
    assert paths == {
        "/api/github/webhooks",
        "/healthz",
        "/readyz",
        "/api/token",
        "/api/runs/result",
    }


async def _loop_name():
    return loop_name()


def test_serve_runs_on_uvloop_where_it_is_installed():
    uvloop = pytest.importorskip("uvloop")
    assert event_loop_factory() is uvloop.new_event_loop
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        assert runner.run(_loop_name()) == "uvloop"


def test_serve_falls_back_to_asyncio_without_uvloop(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` sees where it is absent
    assert event_loop_factory() is None
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        assert runner.run(_loop_name()) == "asyncio"


class Blocking:
    def __init__(self):
        self.router = Router()
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = []
        self.router.add(self.handle, "issues", action="labeled")

    async def handle(self, event, gh):
        self.started.set()
        try:
            await self.release.wait()
        finally:
            self.finished.append(event.delivery_id)


PAYLOAD = {
    "action": "labeled",
    "issue": {"number": 1},
    "label": {"name": "coder:develop"},
    "repository": {"full_name": "acme/widgets"},
    "sender": {"login": "alice"},
}


async def start_blocking(private_key_pem, closed_port, grace):
    env = {**offline_env(private_key_pem, closed_port), "CODER_SHUTDOWN_GRACE_SECONDS": grace}
    blocking = Blocking()
    running = await serve_app(load_settings(None, env), routers=[blocking.router])
    status, _ = await running.deliver("issues", PAYLOAD, delivery_id="in-flight")
    assert status == 202
    await blocking.started.wait()
    return blocking, running


async def test_shutdown_waits_for_a_running_handler(private_key_pem, closed_port):
    blocking, running = await start_blocking(private_key_pem, closed_port, "3600")
    closing = asyncio.create_task(running.close())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done()
    blocking.release.set()
    await closing
    assert running.queue.outcome("in-flight") == "ok"
    assert blocking.finished == ["in-flight"]


async def test_shutdown_cancels_a_handler_past_the_grace_period(private_key_pem, closed_port):
    blocking, running = await start_blocking(private_key_pem, closed_port, "0")
    await running.close()
    assert running.queue.outcome("in-flight") == "cancelled: shutdown"
    assert blocking.finished == ["in-flight"]
