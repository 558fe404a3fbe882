"""devhub's fault injection: status codes, latency, connection resets and rate limits."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from devhub.hub import DevHub
from devhub.testing import AdminClient, DevHubError


async def test_status_fault_counts_down(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    fault_id = await admin.add_fault(
        kind="status", method="GET", path=r"^/repos/acme/widgets$", status=502, times=2
    )
    assert fault_id > 0
    for _ in range(2):
        status, headers, body = await rest.get(f"/repos/{org.repo}")
        assert (status, body["message"]) == (502, "Bad Gateway")
        assert "x-ratelimit-limit" in headers
    assert (await rest.get(f"/repos/{org.repo}"))[0] == 200
    faulted = [r for r in await admin.requests() if r["fault"] == "status"]
    assert [r["status"] for r in faulted] == [502, 502]


async def test_fault_matches_method_and_path(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await admin.add_fault(kind="status", method="POST", path="/issues$", status=500, times=None)
    assert (await rest.get(f"/repos/{org.repo}/issues"))[0] == 200
    assert (await rest.post(f"/repos/{org.repo}/issues", {"title": "x"}))[0] == 500
    assert (await rest.post(f"/repos/{org.repo}/issues", {"title": "x"}))[0] == 500  # forever
    await admin.clear_faults()
    assert (await rest.post(f"/repos/{org.repo}/issues", {"title": "x"}))[0] == 201


async def test_secondary_rate_limit_fault(devhub, admin, org):
    await admin.add_fault(kind="secondary_rate_limit", path="/issues", retry_after=7)
    status, headers, body = await admin.rest(org.owner.token).post(
        f"/repos/{org.repo}/issues", {"title": "x"}
    )
    assert status == 403
    assert headers["retry-after"] == "7"
    assert body["message"].startswith("You have exceeded a secondary rate limit.")
    assert headers["x-github-request-id"] in body["message"]
    assert "secondary-rate-limits" in body["documentation_url"]


async def test_primary_rate_limit_fault(devhub, admin, org):
    await admin.add_fault(kind="primary_rate_limit", path="^/repos/", retry_after=30)
    before = int(time.time())
    status, headers, body = await admin.rest(org.owner.token).get(f"/repos/{org.repo}")
    assert status == 403
    assert headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-reset"]) >= before + 30
    assert body["message"] == f"API rate limit exceeded for user ID {org.owner.id}."


async def test_latency_fault_delays_then_serves(devhub, admin, org):
    await admin.add_fault(kind="latency", path="^/repos/acme/widgets$", delay_ms=50)
    status, _, repo = await admin.rest(org.owner.token).get(f"/repos/{org.repo}")
    assert (status, repo["name"]) == (200, "widgets")
    delayed = [r for r in await admin.requests() if r["fault"] == "latency"]
    assert [r["status"] for r in delayed] == [200]


async def test_reset_fault_drops_the_connection(devhub, admin, org):
    # POST: aiohttp's client quietly retries an idempotent request once on a dropped connection.
    await admin.add_fault(kind="reset", method="POST", path="/issues$")
    rest = admin.rest(org.owner.token)
    with pytest.raises(aiohttp.ClientError):
        await rest.post(f"/repos/{org.repo}/issues", {"title": "lost"})
    assert (await rest.post(f"/repos/{org.repo}/issues", {"title": "kept"}))[0] == 201
    reset = [r for r in await admin.requests() if r["fault"] == "reset"]
    assert [r["status"] for r in reset] == [0]


async def test_faults_apply_to_git_paths(devhub, admin, org):
    await admin.add_fault(kind="status", path=r"\.git/info/refs$", status=503)
    url = f"{devhub.url}/{org.repo}.git/info/refs?service=git-upload-pack"
    async with admin.session.get(url) as response:
        assert response.status == 503


async def test_stop_ends_a_pending_latency_wait(tmp_path):
    hub = DevHub(tmp_path / "hub")
    await hub.start()
    admin = AdminClient(hub.url, hub.admin_token)
    try:
        await admin.add_fault(kind="latency", path="^/rate_limit$", delay_ms=600_000)
        pending = asyncio.ensure_future(admin.rest(None).get("/rate_limit"))
        await hub._ctx.faults.wait_for_hits(1)  # the request is now inside its delay
        await asyncio.wait_for(hub.stop(), timeout=30)
        status, _, _ = await asyncio.wait_for(pending, timeout=30)
        assert status == 200  # the delay ended with the hub; the request was still answered
    finally:
        await admin.close()
        await hub.stop()


async def test_bad_fault_specs_are_422(devhub, admin):
    for spec, message in (
        ({"kind": "meteor"}, "kind must be one of"),
        ({"kind": "status", "status": 42}, "status must be an integer from 100 to 599"),
        ({"kind": "status", "path": "("}, "path is not a valid regular expression"),
        ({"kind": "latency", "times": 0}, "times must be a positive integer or null"),
    ):
        with pytest.raises(DevHubError) as raised:
            await admin.add_fault(**spec)
        assert raised.value.status == 422
        assert message in raised.value.body["message"]


async def test_admin_api_needs_the_admin_token(devhub, admin, org):
    async with admin.session.get(
        f"{devhub.url}/_devhub/requests", headers={"Authorization": f"token {org.owner.token}"}
    ) as response:
        assert response.status == 401
