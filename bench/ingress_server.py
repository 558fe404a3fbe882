"""Webhook servers for the ingress benchmark, each run in its own process.

`coder`     the real app (`make_app`) with one no-op `issues.labeled` handler, so every delivery
            takes the full path: read, verify, parse, dedupe, route, enqueue, 202, log.
`aiohttp`   the floor of our stack: read the body, check the HMAC in constant time, answer 202.

Either runs on the event loop named after it: `uvloop` (what `coder serve` uses where uvloop is
installed) or `asyncio` (the standard library's). Both print `ready <port>` once listening and
stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from gidgethub.routing import Router

from app.logs import configure_logging
from app.settings import load_settings

WEBHOOK_PATH = "/api/github/webhooks"
UVLOOP = "uvloop"


def _noop_router() -> Router:
    router = Router()

    @router.register("issues", action="labeled")
    async def labeled(event: Any, gh: Any) -> None:
        del event, gh

    return router


def _coder_app(key_path: str, secret: str) -> web.Application:
    from app.server import make_app  # noqa: PLC0415

    # GitHub itself is a closed port: ingress must not depend on it.
    settings = load_settings(
        None,
        {
            "APP_ID": "1",
            "PRIVATE_KEY_PATH": key_path,
            "WEBHOOK_SECRET": secret,
            "GHE_HOST": "127.0.0.1:9",
            "GHE_PROTOCOL": "http",
        },
    )
    # Log as `coder serve` does (one line per delivery, redacted, the same secrets) and pay for
    # it; only the output is thrown away. Probot runs at its quietest, so the comparison is
    # conservative.
    sink = Path(os.devnull).open("w")  # noqa: SIM115 - lives as long as the process
    configure_logging(
        settings.log_level, settings.log_format, secrets=settings.secret_values(), stream=sink
    )
    return make_app(settings, routers=(_noop_router(),))


def _aiohttp_app(secret: str) -> web.Application:
    key = secret.encode()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Hub-Signature-256", "")
        if not hmac.compare_digest(expected, given):
            return web.json_response({"status": "bad signature"}, status=401)
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post(WEBHOOK_PATH, handle)
    return app


async def _serve(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    port = runner.addresses[0][1]
    print(f"ready {port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """Run one server: `python -m bench.ingress_server coder|aiohttp KEY_PATH SECRET LOOP`."""
    kind, key_path, secret, loop = sys.argv[1:5]
    app = _coder_app(key_path, secret) if kind == "coder" else _aiohttp_app(secret)
    factory = None
    if loop == UVLOOP:
        import uvloop  # noqa: PLC0415 - only when asked for; the bench checks it is installed

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(app))


if __name__ == "__main__":
    main()
