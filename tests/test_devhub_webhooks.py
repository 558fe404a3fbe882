"""devhub's webhook deliveries: headers, signatures, order, the delivery log and redelivery."""

from __future__ import annotations

import json
import uuid

from devhub.hub import DevHub
from devhub.testing import AdminClient
from tests.support.devhub import MANIFEST


async def test_install_delivers_a_signed_installation_event(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    await admin.create_repo("acme", "gadgets", org.owner.token)
    delivery = await devhub.wait_for_delivery(event="installation_repositories", action="added")
    assert delivery.status_code == 202
    item = next(
        r for r in receiver.received if r.headers["X-GitHub-Event"] == "installation_repositories"
    )
    assert receiver.signature_ok(devhub.webhook_secret, item)
    assert not receiver.signature_ok("wrong-secret", item)
    headers = item.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert uuid.UUID(headers["X-GitHub-Delivery"])
    assert headers["X-GitHub-Hook-ID"].isdigit()
    assert headers["X-GitHub-Hook-Installation-Target-Type"] == "integration"
    assert headers["X-GitHub-Hook-Installation-Target-ID"] == str(devhub.app_id)
    payload = json.loads(item.body)
    assert payload["action"] == "added"
    assert payload["sender"]["login"] == "alice"
    assert payload["organization"]["login"] == "acme"


async def test_installation_created_payload(devhub, admin, receiver):
    devhub.webhook_url = receiver.url
    alice = await admin.create_user("alice")
    await admin.create_repo("alice", "tools", alice.token)
    installation_id = await admin.install("alice", ["tools"])
    delivery = await devhub.wait_for_delivery(event="installation", action="created")
    payload = json.loads(delivery.body)
    assert payload["installation"]["id"] == installation_id
    assert payload["installation"]["account"]["login"] == "alice"
    assert payload["installation"]["repository_selection"] == "selected"
    assert [r["full_name"] for r in payload["repositories"]] == ["alice/tools"]
    assert payload["sender"]["login"] == "alice"
    assert delivery.installation_id == installation_id


async def test_ping_when_the_webhook_url_is_set(devhub, receiver):
    devhub.webhook_url = receiver.url
    ping = await devhub.wait_for_delivery(event="ping")
    payload = json.loads(ping.body)
    assert payload["hook"]["type"] == "App"
    assert payload["hook"]["app_id"] == devhub.app_id
    assert payload["hook"]["config"]["url"] == receiver.url
    devhub.webhook_url = receiver.url  # unchanged: no second ping
    assert [d.event for d in devhub.state.deliveries] == ["ping"]


async def test_only_subscribed_events_are_delivered(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/labels", {"name": "bug"})  # `label` is not in app.yml
    await rest.post(f"/repos/{org.repo}/issues", {"title": "A"})
    await devhub.wait_for_delivery(event="issues", action="opened")
    assert [d.event for d in devhub.state.deliveries] == ["ping", "issues"]


async def test_without_a_manifest_every_event_is_delivered(tmp_path, receiver):
    hub = DevHub(tmp_path / "hub", strict=True, webhook_url=receiver.url)
    await hub.start()
    try:
        async with AdminClient(hub.url, hub.admin_token) as admin:
            alice = await admin.create_user("alice")
            await admin.create_repo("alice", "tools", alice.token)
            await admin.install("alice")
            await admin.rest(alice.token).post("/repos/alice/tools/labels", {"name": "bug"})
            label = await hub.wait_for_delivery(event="label", action="created")
        assert json.loads(label.body)["label"]["name"] == "bug"
        assert hub.app.permissions["administration"] == "write"
    finally:
        await hub.stop()
    assert hub.contract_violations == []


async def test_deliveries_go_out_in_order_and_are_recorded(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    for number in range(1, 6):
        await rest.post(f"/repos/{org.repo}/issues", {"title": f"issue {number}"})
    await devhub.wait_for_delivery(
        event="issues", predicate=lambda d: json.loads(d.body)["issue"]["number"] == 5
    )
    numbers = [
        json.loads(r.body)["issue"]["number"]
        for r in receiver.received
        if r.headers["X-GitHub-Event"] == "issues"
    ]
    assert numbers == [1, 2, 3, 4, 5]
    logged = [d for d in await admin.deliveries() if d["event"] == "issues"]
    assert len(logged) == 5
    assert all(d["status_code"] == 202 and d["redelivery"] is False for d in logged)
    assert all(d["duration_ms"] >= 0 for d in logged)
    full = await admin.delivery(logged[0]["id"])
    assert full["request"]["headers"]["X-GitHub-Event"] == "issues"
    assert full["request"]["payload"]["issue"]["title"] == "issue 1"


async def test_redelivery_sends_the_same_body_and_guid(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    await admin.rest(org.owner.token).post(f"/repos/{org.repo}/issues", {"title": "A"})
    original = await devhub.wait_for_delivery(event="issues", action="opened")
    again = await admin.redeliver(original.id)
    assert again["redelivery"] is True
    assert again["guid"] == original.guid
    assert again["id"] != original.id
    assert again["status_code"] == 202
    first, second = [
        r for r in receiver.received if r.headers["X-GitHub-Delivery"] == original.guid
    ]
    assert first.body == second.body
    assert receiver.signature_ok(devhub.webhook_secret, second)


async def test_failed_deliveries_are_recorded(devhub, admin, org, receiver):
    receiver.status = 500
    devhub.webhook_url = receiver.url
    await admin.rest(org.owner.token).post(f"/repos/{org.repo}/issues", {"title": "A"})
    failed = await devhub.wait_for_delivery(event="issues", action="opened")
    assert failed.status_code == 500
    devhub.webhook_url = "http://127.0.0.1:9/unreachable"
    await admin.rest(org.owner.token).post(f"/repos/{org.repo}/issues", {"title": "B"})
    unreachable = await devhub.wait_for_delivery(
        event="issues", predicate=lambda d: json.loads(d.body)["issue"]["number"] == 2
    )
    assert unreachable.status_code is None
    assert unreachable.error


async def test_wait_for_delivery_returns_already_completed_ones(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    await admin.rest(org.owner.token).post(f"/repos/{org.repo}/issues", {"title": "A"})
    first = await devhub.wait_for_delivery(event="issues", action="opened")
    again = await devhub.wait_for_delivery(event="issues", action="opened")
    assert again is first


async def test_no_webhook_url_means_no_deliveries(tmp_path):
    hub = DevHub(tmp_path / "hub", strict=True, manifest=MANIFEST)
    await hub.start()
    try:
        async with AdminClient(hub.url, hub.admin_token) as admin:
            await admin.create_user("alice")
            await admin.install("alice")
        assert hub.state.deliveries == []
    finally:
        await hub.stop()
