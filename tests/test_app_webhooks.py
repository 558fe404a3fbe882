"""The webhook endpoint: signatures, parsing, dedupe, ignoring, acknowledging, and health."""

import asyncio
import hashlib
import hmac
import io
import json
import logging
import urllib.parse
from pathlib import Path

import pytest
from gidgethub.routing import Router

from app.settings import MAX_BODY_BYTES, load_settings
from app.webhooks import BAD_JSON, BAD_SIGNATURE, MISSING_SIGNATURE, SHA1_ONLY, SeenDeliveries
from tests.support.app import WEBHOOK_SECRET, offline_env, serve_app, signed_headers

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"


def example(name):
    return json.loads((EXAMPLES / f"{name}.json").read_text())


class Recorder:
    """A router whose handlers record what they saw and can be made to fail or wait."""

    def __init__(self):
        self.router = Router()
        self.seen = []
        self.clients = []
        self.calls = asyncio.Queue()
        self.fail_with = None
        self.router.add(self.on_issues, "issues", action="labeled")
        self.router.add(self.on_installation, "installation", action="created")

    async def on_issues(self, event, gh):
        self.seen.append(event.delivery_id)
        self.clients.append(gh)
        await self.calls.put(event.delivery_id)
        if self.fail_with is not None:
            raise self.fail_with

    async def on_installation(self, event, gh):
        await self.on_issues(event, gh)


@pytest.fixture
async def recorded(private_key_pem, closed_port):
    recorder = Recorder()
    settings = load_settings(None, offline_env(private_key_pem, closed_port))
    running = await serve_app(settings, routers=[recorder.router])
    running.recorder = recorder
    yield running
    await running.close()


async def post(app, body, headers):
    async with app.session.post(app.webhook_url, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_signed_delivery_is_accepted_and_handled(recorded):
    payload = example("issues.labeled")
    payload["installation"] = {"id": 7}
    status, body = await recorded.deliver("issues", payload, delivery_id="d-1")
    assert (status, body) == (202, {"status": "accepted"})
    assert await recorded.queue.wait_for("d-1") == "ok"
    assert recorded.recorder.seen == ["d-1"]
    assert recorded.recorder.clients[0].installation_id == 7


async def test_events_without_installation_get_the_app_client(recorded):
    await recorded.deliver("issues", example("issues.labeled"), delivery_id="d-app")
    assert await recorded.queue.wait_for("d-app") == "ok"
    assert recorded.recorder.clients[0].installation_id is None


async def test_missing_signature_is_refused(recorded):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    del headers["X-Hub-Signature-256"]
    status, reply = await post(recorded, body, headers)
    assert (status, reply) == (401, {"status": "rejected", "reason": MISSING_SIGNATURE})
    assert recorded.recorder.seen == []


async def test_sha1_only_signature_is_refused_even_when_correct(recorded):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    del headers["X-Hub-Signature-256"]
    sha1 = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers["X-Hub-Signature"] = f"sha1={sha1}"
    status, reply = await post(recorded, body, headers)
    assert status == 401
    assert reply["reason"] == SHA1_ONLY


async def test_a_sha1_value_in_the_sha256_header_is_refused_even_when_correct(recorded):
    # gidgethub's own check would take `sha1=` in X-Hub-Signature-256; DESIGN §7 says sha256 only.
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    sha1 = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers["X-Hub-Signature-256"] = f"sha1={sha1}"
    status, reply = await post(recorded, body, headers)
    assert (status, reply) == (401, {"status": "rejected", "reason": BAD_SIGNATURE})
    assert recorded.recorder.seen == []


async def test_wrong_secret_is_refused(recorded):
    status, reply = await recorded.deliver(
        "issues", example("issues.labeled"), secret="not-the-secret"
    )
    assert status == 401
    assert "does not match" in reply["reason"]
    assert recorded.recorder.seen == []


@pytest.mark.parametrize(
    "signature",
    ["sha256=", "sha256=zz", "md5=abc", "", "sha256=" + "0" * 64, "sha256=\u00e9\u00e9"],
)
async def test_malformed_signatures_are_refused(recorded, signature):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    headers["X-Hub-Signature-256"] = signature
    status, reply = await post(recorded, body, headers)
    assert status == 401
    assert reply["status"] == "rejected"


async def test_tampered_body_is_refused(recorded):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    status, _ = await post(recorded, body.replace(b"Spelling", b"Spelunking"), headers)
    assert status == 401


async def test_signature_is_checked_before_the_body_is_parsed(recorded):
    body = b"{not json"
    headers = signed_headers("issues", body, "wrong secret")
    status, _ = await post(recorded, body, headers)
    assert status == 401


async def test_signed_but_invalid_json_is_a_bad_request(recorded):
    body = b"{not json"
    status, reply = await post(recorded, body, signed_headers("issues", body, WEBHOOK_SECRET))
    assert status == 400
    assert reply["reason"] == "the body is not a JSON object"


async def test_json_that_is_not_an_object_is_a_bad_request(recorded):
    body = b"[1, 2]"
    status, _ = await post(recorded, body, signed_headers("issues", body, WEBHOOK_SECRET))
    assert status == 400


async def test_unknown_content_type_is_a_bad_request(recorded):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    headers["Content-Type"] = "text/plain"
    status, reply = await post(recorded, body, headers)
    assert status == 400
    assert "Content-Type" in reply["reason"]


async def test_missing_event_header_is_a_bad_request(recorded):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    del headers["X-GitHub-Event"]
    status, reply = await post(recorded, body, headers)
    assert status == 400
    assert "x-github-event" in reply["reason"]


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "Application/JSON"])
async def test_content_type_parameters_and_case_are_understood(recorded, content_type):
    body = json.dumps(example("issues.labeled")).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET, "d-charset")
    headers["Content-Type"] = content_type
    status, _ = await post(recorded, body, headers)
    assert status == 202
    assert await recorded.queue.wait_for("d-charset") == "ok"


async def test_a_body_in_a_declared_charset_is_decoded_with_it(recorded):
    payload = example("issues.labeled")
    payload["label"]["name"] = "caf\u00e9"
    body = json.dumps(payload, ensure_ascii=False).encode("latin-1")
    headers = signed_headers("issues", body, WEBHOOK_SECRET, "d-latin")
    headers["Content-Type"] = "application/json; charset=latin-1"
    status, _ = await post(recorded, body, headers)
    assert status == 202
    assert await recorded.queue.wait_for("d-latin") == "ok"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json; charset=no-such-charset", b"{}"),
        ("application/json", '{"zen": "caf\u00e9"}'.encode("latin-1")),  # not UTF-8
        ("application/x-www-form-urlencoded", b"other=1"),  # no `payload=`
        ("application/json", b""),
    ],
)
async def test_undecodable_bodies_are_bad_requests(recorded, content_type, body):
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    headers["Content-Type"] = content_type
    status, reply = await post(recorded, body, headers)
    assert (status, reply) == (400, {"status": "rejected", "reason": BAD_JSON})


async def test_form_encoded_deliveries_are_understood(recorded):
    # GitHub's other webhook content type: `payload=<url-encoded JSON>`.
    payload = example("issues.labeled")
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers("issues", body, WEBHOOK_SECRET, "d-form")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    status, _ = await post(recorded, body, headers)
    assert status == 202
    assert await recorded.queue.wait_for("d-form") == "ok"


async def test_a_redelivery_is_acknowledged_once_and_handled_once(recorded):
    payload = example("issues.labeled")
    first = await recorded.deliver("issues", payload, delivery_id="same")
    second = await recorded.deliver("issues", payload, delivery_id="same")
    assert first == (202, {"status": "accepted"})
    assert second == (200, {"status": "duplicate"})
    await recorded.queue.wait_idle()
    assert recorded.recorder.seen == ["same"]


async def test_a_forged_delivery_does_not_poison_the_dedupe_cache(recorded):
    payload = example("issues.labeled")
    forged = await recorded.deliver("issues", payload, delivery_id="d-x", secret="forged")
    real = await recorded.deliver("issues", payload, delivery_id="d-x")
    assert forged[0] == 401
    assert real == (202, {"status": "accepted"})


async def test_ping_is_answered(recorded):
    status, body = await recorded.deliver("ping", example("ping"))
    assert (status, body) == (200, {"status": "pong"})


async def test_events_without_a_handler_are_acknowledged_and_ignored(recorded):
    status, body = await recorded.deliver("push", example("push"))
    assert (status, body) == (200, {"status": "ignored"})
    status, body = await recorded.deliver("issues", example("issues.opened"))
    assert (status, body) == (200, {"status": "ignored"})
    assert recorded.recorder.seen == []


async def test_handler_errors_become_the_outcome(recorded):
    recorded.recorder.fail_with = RuntimeError("boom")
    status, _ = await recorded.deliver("issues", example("issues.labeled"), delivery_id="d-err")
    assert status == 202
    assert await recorded.queue.wait_for("d-err") == "error: RuntimeError: boom"


async def test_a_failed_delivery_is_handled_again_when_redelivered(recorded):
    payload = example("issues.labeled")
    recorded.recorder.fail_with = RuntimeError("boom")
    await recorded.deliver("issues", payload, delivery_id="d-again")
    assert (await recorded.queue.wait_for("d-again")).startswith("error")
    recorded.recorder.fail_with = None
    again = await recorded.deliver("issues", payload, delivery_id="d-again")
    assert again == (202, {"status": "accepted"})
    await recorded.queue.wait_idle()
    assert recorded.recorder.seen == ["d-again", "d-again"]


async def test_a_closing_app_refuses_new_work_so_github_can_redeliver(recorded):
    await recorded.queue.close(0)
    status, body = await recorded.deliver("issues", example("issues.labeled"), delivery_id="late")
    assert (status, body) == (503, {"status": "unavailable"})


async def test_one_log_line_per_delivery_with_its_fields(recorded, caplog):
    caplog.set_level(logging.INFO, logger="app.webhooks")
    payload = example("issues.labeled")
    await recorded.deliver("issues", payload, delivery_id="d-log")
    await recorded.queue.wait_for("d-log")
    lines = [r for r in caplog.records if getattr(r, "delivery_id", None) == "d-log"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.event, line.action, line.repo, line.outcome) == (
        "issues",
        "labeled",
        "Codertocat/Hello-World",
        "ok",
    )
    assert line.ms >= 0


async def test_a_body_over_25_mb_is_refused_with_413(offline_app):
    body = b" " * (MAX_BODY_BYTES + 1)
    headers = signed_headers("issues", body, WEBHOOK_SECRET)
    async with offline_app.session.post(
        offline_app.webhook_url, data=io.BytesIO(body), headers=headers
    ) as response:
        assert response.status == 413
        reply = await response.json()
    assert reply["status"] == "rejected"
    assert str(MAX_BODY_BYTES) in reply["reason"]


async def test_a_body_of_exactly_25_mb_is_read(offline_app):
    # Padding JSON with whitespace keeps it valid; the unknown event is acknowledged and ignored.
    payload = json.dumps({"zen": "big"}).encode()
    body = payload + b" " * (MAX_BODY_BYTES - len(payload))
    headers = signed_headers("unknown_event", body, WEBHOOK_SECRET)
    async with offline_app.session.post(
        offline_app.webhook_url, data=io.BytesIO(body), headers=headers
    ) as response:
        assert response.status == 200


async def test_healthz(offline_app):
    async with offline_app.session.get(offline_app.url + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_readyz_says_why_github_is_unreachable(offline_app):
    async with offline_app.session.get(offline_app.url + "/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["status"] == "unavailable"
    assert body["reason"].startswith("GET /app failed: ClientConnectorError")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_seen_deliveries_are_forgotten_after_the_ttl():
    clock = FakeClock()
    seen = SeenDeliveries(maxsize=10, ttl=60, clock=clock)
    seen.add("d-1")
    clock.now += 59
    assert "d-1" in seen
    clock.now += 1
    assert "d-1" not in seen
    assert "d-2" not in seen


def test_seen_deliveries_keep_the_newest_when_full():
    clock = FakeClock()
    seen = SeenDeliveries(maxsize=3, ttl=60, clock=clock)
    for delivery_id in ("d-1", "d-2", "d-3", "d-4"):
        seen.add(delivery_id)
        clock.now += 1
    assert [d in seen for d in ("d-1", "d-2", "d-3", "d-4")] == [False, True, True, True]


def test_seen_deliveries_added_again_start_a_new_ttl_and_can_be_discarded():
    clock = FakeClock()
    seen = SeenDeliveries(maxsize=2, ttl=60, clock=clock)
    seen.add("d-1")
    seen.add("d-2")
    clock.now += 30
    seen.add("d-1")  # now the newest: d-2 goes first when room is needed
    seen.add("d-3")
    assert ("d-1" in seen, "d-2" in seen, "d-3" in seen) == (True, False, True)
    clock.now += 59
    assert "d-1" in seen
    seen.discard("d-1")
    seen.discard("never-seen")
    assert "d-1" not in seen
