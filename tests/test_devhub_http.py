"""devhub's cross-cutting HTTP behaviour: pagination, ETags, rate limits, headers, request log."""

from __future__ import annotations

import re

from tests.support.devhub import installation_token

LINK = re.compile(r'<(?P<url>[^>]+)>; rel="(?P<rel>\w+)"')


def links(headers) -> dict[str, str]:
    return {m["rel"]: m["url"] for m in LINK.finditer(headers.get("Link", ""))}


async def make_labels(admin, token: str, repo: str, count: int) -> None:
    rest = admin.rest(token)
    for index in range(count):
        status, _, _ = await rest.post(f"/repos/{repo}/labels", {"name": f"label-{index:02d}"})
        assert status == 201


async def test_pagination_link_headers_use_devhubs_absolute_urls(devhub, admin, org):
    await make_labels(admin, org.owner.token, org.repo, 7)
    rest = admin.rest(org.owner.token)
    base = f"{devhub.api_url}/repos/{org.repo}/labels"

    status, headers, page1 = await rest.get(f"/repos/{org.repo}/labels?per_page=3")
    assert status == 200
    assert [label["name"] for label in page1] == ["label-00", "label-01", "label-02"]
    assert links(headers) == {
        "next": f"{base}?per_page=3&page=2",
        "last": f"{base}?per_page=3&page=3",
    }

    status, headers, page2 = await rest.get(links(headers)["next"])
    assert [label["name"] for label in page2] == ["label-03", "label-04", "label-05"]
    assert links(headers) == {
        "next": f"{base}?per_page=3&page=3",
        "last": f"{base}?per_page=3&page=3",
        "prev": f"{base}?per_page=3&page=1",
        "first": f"{base}?per_page=3&page=1",
    }

    status, headers, page3 = await rest.get(links(headers)["last"])
    assert [label["name"] for label in page3] == ["label-06"]
    assert set(links(headers)) == {"prev", "first"}


async def test_single_page_has_no_link_header_and_per_page_is_capped(devhub, admin, org):
    await make_labels(admin, org.owner.token, org.repo, 2)
    status, headers, labels = await admin.rest(org.owner.token).get(
        f"/repos/{org.repo}/labels?per_page=500"
    )
    assert status == 200
    assert len(labels) == 2
    assert "Link" not in headers


async def test_etag_and_conditional_get_is_free(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    path = f"/repos/{org.repo}"
    status, headers, _ = await rest.get(path)
    assert status == 200
    etag = headers["ETag"]
    assert etag.startswith('W/"')
    used = int(headers["x-ratelimit-used"])

    status, headers, body = await rest.get(path, headers={"If-None-Match": etag})
    assert status == 304
    assert body is None
    assert headers["ETag"] == etag
    assert int(headers["x-ratelimit-used"]) == used  # a 304 is not counted

    status, headers, _ = await rest.get(path, headers={"If-None-Match": 'W/"stale"'})
    assert status == 200
    assert int(headers["x-ratelimit-used"]) == used + 1


async def test_etag_changes_when_the_resource_changes(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    _, headers, _ = await rest.get(f"/repos/{org.repo}/labels")
    before = headers["ETag"]
    await rest.post(f"/repos/{org.repo}/labels", {"name": "bug"})
    status, headers, _ = await rest.get(
        f"/repos/{org.repo}/labels", headers={"If-None-Match": before}
    )
    assert status == 200
    assert headers["ETag"] != before


async def test_rate_limit_headers_count_per_principal(devhub, admin, org):
    bob = await admin.create_user("bob")
    alice_rest, bob_rest = admin.rest(org.owner.token), admin.rest(bob.token)
    _, first, _ = await alice_rest.get("/users/alice")
    _, second, _ = await alice_rest.get("/users/alice")
    _, other, _ = await bob_rest.get("/users/alice")
    assert first["x-ratelimit-limit"] == "5000"
    assert first["x-ratelimit-resource"] == "core"
    assert int(second["x-ratelimit-used"]) == int(first["x-ratelimit-used"]) + 1
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1
    assert other["x-ratelimit-used"] == "1"
    assert int(first["x-ratelimit-reset"]) > 0


async def test_github_headers_on_every_answer(devhub, admin, org):
    _, headers, _ = await admin.rest(org.owner.token).get("/users/alice")
    assert re.fullmatch(r"[0-9A-F:]+", headers["x-github-request-id"])
    assert headers["x-github-media-type"] == "github.v3; format=json"
    assert "repo" in headers["x-oauth-scopes"]
    _, headers, _ = await admin.rest(None).get("/users/nobody-here")
    assert headers["x-ratelimit-limit"] == "60"


async def test_anonymous_limit_runs_out_with_githubs_403(devhub, admin):
    rest = admin.rest(None)
    for _ in range(60):
        status, _, _ = await rest.get("/users/devhub-admin")
        assert status == 200
    status, headers, body = await rest.get("/users/devhub-admin")
    assert status == 403
    assert headers["x-ratelimit-remaining"] == "0"
    assert body["message"].startswith("API rate limit exceeded for 127.0.0.1.")
    assert body["documentation_url"].endswith("rate-limits-for-the-rest-api")
    # GET /rate_limit stays free and reports the exhausted budget.
    status, _, limits = await rest.get("/rate_limit")
    assert status == 200
    assert limits["resources"]["core"]["remaining"] == 0
    assert limits["rate"]["used"] == 60


async def test_rate_limit_endpoint_does_not_count(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    _, _, first = await rest.get("/rate_limit")
    _, _, second = await rest.get("/rate_limit")
    assert first["resources"]["core"]["used"] == second["resources"]["core"]["used"]
    assert first["resources"]["core"]["limit"] == 5000
    assert first["resources"]["graphql"]["limit"] == 5000


async def test_unimplemented_endpoints_are_404_and_logged(devhub, admin, org):
    status, _, body = await admin.rest(org.owner.token).get(f"/repos/{org.repo}/deployments")
    assert status == 404
    assert body["message"] == "Not Found"
    assert body["documentation_url"] == "https://docs.github.com/rest"
    status, _, _ = await admin.rest(org.owner.token).request("PURGE", f"/repos/{org.repo}")
    assert status == 404
    logged = [r for r in await admin.requests() if r["unimplemented"]]
    assert [(r["method"], r["path"]) for r in logged] == [
        ("GET", f"/api/v3/repos/{org.repo}/deployments"),
        ("PURGE", f"/api/v3/repos/{org.repo}"),
    ]


async def test_request_log_names_the_token_owner(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    await admin.rest(token).get(f"/repos/{org.repo}")
    await admin.rest(org.owner.token).get(f"/repos/{org.repo}")
    await admin.rest(None).get(f"/repos/{org.repo}")
    log = await admin.requests()
    owners = [r["token_owner"] for r in log if r["path"] == f"/api/v3/repos/{org.repo}"]
    assert owners == ["coder[bot]", "alice", None]
    token_calls = [r for r in log if r["path"].endswith("/access_tokens")]
    assert token_calls[-1]["token_owner"] == "app/coder"
    assert token_calls[-1]["status"] == 201
    assert all(r["ms"] >= 0 for r in log)


async def test_bad_json_body_is_400(devhub, admin, org):
    status, _, body = await admin.rest(org.owner.token).request(
        "POST", f"/repos/{org.repo}/labels", None, headers={"Content-Type": "application/json"}
    )
    assert status == 422  # an empty body: "name" was not supplied
    assert body["message"] == 'Invalid request.\n\n"name" wasn\'t supplied.'
    session = admin.session
    async with session.post(
        f"{devhub.api_url}/repos/{org.repo}/labels",
        data=b"{not json",
        headers={"Authorization": f"token {org.owner.token}"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["message"] == "Problems parsing JSON"
    # Strict mode saw both malformed requests; they were sent on purpose, so drain them.
    assert len(devhub.contract_violations) == 2
    assert all("issues/create-label" in v for v in devhub.contract_violations)
    devhub.contract_violations.clear()
