"""The app in front of devhub: fast acknowledgement, self-sent events, readiness, shutdown."""

import asyncio
import logging

from app.labels import CODER_LABELS
from app.retry import RetryPolicy
from app.settings import load_settings
from tests.support.app import serve_app
from tests.test_events import example

LATENCY_MS = 600_000  # far longer than any test; devhub.stop() ends it early


async def setup_org(admin):
    alice = await admin.create_user("alice")
    await admin.create_org("acme", "alice")
    await admin.create_repo("acme", "widgets", alice.token)
    return alice


async def test_the_ack_does_not_wait_for_github(devhub, app_server, admin):
    await setup_org(admin)
    await admin.add_fault(kind="latency", delay_ms=LATENCY_MS, path="/labels")
    await admin.install("acme", "all")
    delivery = await devhub.wait_for_delivery(event="installation", action="created")
    # Acknowledged while the handler's first label call is still held by devhub.
    assert delivery.status_code == 202
    assert app_server.queue.outcome(delivery.guid) is None
    assert app_server.queue.running == 1
    assert await app_server.queue.close(grace=0) == [delivery.guid]
    assert app_server.queue.outcome(delivery.guid) == "cancelled: shutdown"


async def test_shutdown_lets_the_running_handler_finish(devhub, app_server, admin):
    alice = await setup_org(admin)
    await admin.add_fault(kind="latency", delay_ms=200, method="POST", path="/labels$")
    await admin.install("acme", "all")
    delivery = await devhub.wait_for_delivery(event="installation", action="created")
    assert app_server.queue.running == 1
    await app_server.close()
    assert app_server.queue.outcome(delivery.guid) == "ok"
    status, _, labels = await admin.rest(alice.token).get("/repos/acme/widgets/labels")
    assert status == 200
    assert {label.name for label in CODER_LABELS} <= {label["name"] for label in labels}


async def test_events_sent_by_the_app_itself_are_ignored(app_server, admin):
    bot = await app_server.access.bot_login()
    payload = {
        "action": "created",
        "installation": {"id": 1, "account": {"login": "acme", "id": 1}},
        "repositories": [],
        "sender": {"login": bot, "id": 99, "type": "Bot"},
    }
    status, body = await app_server.deliver("installation", payload)
    assert (status, body) == (200, {"status": "ignored"})


async def test_workflow_events_the_app_caused_still_reach_their_handlers(app_server):
    # The app dispatches coder.yml, so it is the sender of that run's workflow_job events; they
    # are how a job that died is noticed, so they must not be dropped as "the app's own".
    bot = await app_server.access.bot_login()
    payload = example("workflow_job.completed") | {
        "sender": {"login": bot, "id": 99, "type": "Bot"}
    }
    status, body = await app_server.deliver("workflow_job", payload)
    assert (status, body) == (202, {"status": "accepted"})


async def test_self_sent_events_are_dropped_by_the_worker_before_the_slug_is_known(devhub, admin):
    # GET /app fails once at startup, so the slug is unknown when the delivery is answered.
    await admin.add_fault(kind="status", status=500, method="GET", path="^/app$")
    failed = asyncio.get_running_loop().create_future()
    watcher = FirstWarning(failed, "could not read the app's slug")
    logging.getLogger("app.server").addHandler(watcher)
    try:
        settings = load_settings(None, devhub.app_env())
        running = await serve_app(settings, policy=RetryPolicy(max_attempts=1))
        await failed
    finally:
        logging.getLogger("app.server").removeHandler(watcher)
    try:
        assert running.access.known_bot_login is None
        payload = {
            "action": "created",
            "installation": {"id": 1, "account": {"login": "acme", "id": 1}},
            "repositories": [{"id": 1, "name": "w", "full_name": "acme/w", "private": False}],
            "sender": {"login": "coder[bot]", "id": 99, "type": "Bot"},
        }
        status, _ = await running.deliver("installation", payload, delivery_id="self")
        assert status == 202
        assert await running.queue.wait_for("self") == "ignored: sent by the app"
    finally:
        await running.close()
    assert not [r for r in await admin.requests() if "/labels" in r["path"]]


class FirstWarning(logging.Handler):
    def __init__(self, future, text):
        super().__init__(logging.WARNING)
        self.future, self.text = future, text

    def emit(self, record):
        if self.text in record.getMessage() and not self.future.done():
            self.future.set_result(record)


async def test_readyz_is_ready_when_the_app_jwt_works(app_server):
    async with app_server.session.get(app_server.url + "/readyz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ready"}


async def test_readyz_explains_a_wrong_app_id(devhub):
    settings = load_settings(None, {**devhub.app_env(), "APP_ID": "999"})
    running = await serve_app(settings)
    try:
        async with running.session.get(running.url + "/readyz") as response:
            assert response.status == 503
            body = await response.json()
    finally:
        await running.close()
    assert body["status"] == "unavailable"
    assert body["reason"].startswith("GET /app failed: HTTP 401")
