"""Strict mode misses nothing the app sends: faulted requests, missing routes, unknown paths."""

from __future__ import annotations

from tests.support.devhub import app_jwt, installation_token


def drain(hub) -> list[str]:
    """Return the violations so far and clear them (they were provoked on purpose)."""
    found = list(hub.contract_violations)
    hub.contract_violations.clear()
    return found


async def test_a_request_is_checked_even_when_a_fault_answers_it(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    for kind in ("status", "secondary_rate_limit"):
        await admin.add_fault(kind=kind, method="POST", path="/labels$")
        # A label needs a name: GitHub would refuse this body, fault or no fault.
        status, _, _ = await admin.rest(token).post(
            f"/repos/{org.repo}/labels", {"color": "ff0000"}
        )
        assert status in {403, 502}
        [violation] = drain(devhub)
        assert "issues/create-label" in violation
        assert "request body" in violation


async def test_a_valid_request_that_meets_a_fault_is_no_violation(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    await admin.add_fault(kind="status", when="after", method="POST", path="/labels$")
    body = {"name": "bug", "color": "ff0000"}
    assert (await admin.rest(token).post(f"/repos/{org.repo}/labels", body))[0] == 502
    assert devhub.contract_violations == []


async def test_the_app_calling_an_unimplemented_route_is_a_violation(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    status, _, body = await admin.rest(token).get(f"/repos/{org.repo}/deployments")
    assert (status, body["message"]) == (404, "Not Found")
    [violation] = drain(devhub)
    assert f"GET /repos/{org.repo}/deployments" in violation
    assert "devhub does not implement it" in violation
    # With the app's JWT too.
    jwt = {"Authorization": f"Bearer {app_jwt(devhub)}"}
    assert (await admin.rest(None).get("/app/hook/config", headers=jwt))[0] == 404
    assert len(drain(devhub)) == 1


async def test_people_probing_unimplemented_routes_are_not_violations(devhub, admin, org):
    status, _, _ = await admin.rest(org.owner.token).get(f"/repos/{org.repo}/deployments")
    assert status == 404
    assert (await admin.rest(None).get(f"/repos/{org.repo}/deployments"))[0] == 404
    assert devhub.contract_violations == []


async def test_an_unknown_path_outside_the_api_is_githubs_404_and_logged(devhub, admin, org):
    async with admin.session.get(f"{devhub.url}/no/such/page") as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        body = await response.json()
    assert body == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    }
    logged = [r for r in await admin.requests() if r["path"] == "/no/such/page"]
    assert [(r["method"], r["status"], r["unimplemented"]) for r in logged] == [("GET", 404, True)]
    assert devhub.contract_violations == []  # nobody's token: a person's browser
    token = await installation_token(admin, devhub, org.installation_id)
    headers = {"Authorization": f"token {token}"}
    async with admin.session.post(f"{devhub.url}/api/v4/whatever", headers=headers) as response:
        assert response.status == 404
    [violation] = drain(devhub)
    assert "POST /api/v4/whatever: devhub does not implement it" in violation
    owners = [r["token_owner"] for r in await admin.requests() if r["path"] == "/api/v4/whatever"]
    assert owners == ["coder[bot]"]


async def test_known_paths_outside_the_api_still_work(devhub, admin):
    # The admin API and the OIDC issuer are devhub's own routes, not unknown paths.
    assert isinstance(await admin.requests(), list)
    async with admin.session.get(
        f"{devhub.url}/_services/token/.well-known/openid-configuration"
    ) as response:
        assert response.status == 200
