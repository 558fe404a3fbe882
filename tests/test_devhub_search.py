"""devhub's issue search: qualifiers, visibility per token, pagination and its own rate limit."""

from __future__ import annotations

from urllib.parse import quote

from tests.support.devhub import installation_token
from tests.test_devhub_pulls import branch


def q(text):
    return "/search/issues?q=" + quote(text)


async def seed(admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(
        f"/repos/{org.repo}/issues", {"title": "Crash on start", "labels": ["coder:running"]}
    )
    await rest.post(f"/repos/{org.repo}/issues", {"title": "Slow import", "labels": ["bug"]})
    await rest.post(f"/repos/{org.repo}/issues", {"title": "Typo", "body": "a crash in docs"})
    await rest.patch(f"/repos/{org.repo}/issues/3", {"state": "closed"})
    await branch(rest, org.repo, "coder/1-crash", {"fix.txt": "fix\n"})
    await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Fix crash", "head": "coder/1-crash", "base": "main"}
    )
    await rest.post(f"/repos/{org.repo}/issues/4/labels", {"labels": ["coder:running"]})
    return rest


async def test_qualifiers(devhub, admin, org):
    rest = await seed(admin, org)
    status, _, found = await rest.get(q(f'repo:{org.repo} label:"coder:running"'))
    assert status == 200
    assert found["total_count"] == 2
    assert found["incomplete_results"] is False
    assert [i["number"] for i in found["items"]] == [4, 1]
    assert found["items"][0]["pull_request"]["url"].endswith("/pulls/4")
    assert found["items"][0]["score"] == 1.0
    _, _, issues = await rest.get(q(f'repo:{org.repo} label:"coder:running" is:issue'))
    assert [i["number"] for i in issues["items"]] == [1]
    _, _, pulls = await rest.get(q(f"repo:{org.repo} is:pr is:open"))
    assert [i["number"] for i in pulls["items"]] == [4]
    _, _, closed = await rest.get(q(f"repo:{org.repo} state:closed"))
    assert [i["number"] for i in closed["items"]] == [3]
    _, _, text = await rest.get(q(f"repo:{org.repo} crash"))
    assert [i["number"] for i in text["items"]] == [4, 3, 1]
    _, _, titles = await rest.get(q(f"repo:{org.repo} crash in:title"))
    assert [i["number"] for i in titles["items"]] == [4, 1]
    _, _, without = await rest.get(q(f"repo:{org.repo} is:open -label:bug is:issue"))
    assert [i["number"] for i in without["items"]] == [1]
    _, _, unquoted = await rest.get(q(f"repo:{org.repo} label:coder:running"))
    assert unquoted["total_count"] == 2
    _, _, oldest = await rest.get(q(f"repo:{org.repo}") + "&sort=created&order=asc")
    assert [i["number"] for i in oldest["items"]] == [1, 2, 3, 4]
    status, _, missing = await rest.get("/search/issues")
    assert status == 422
    assert missing["errors"] == [{"resource": "Search", "field": "q", "code": "missing"}]
    assert [v.split(": ", 2)[-1] for v in devhub.contract_violations] == [
        "query parameter 'q' is required"
    ]
    devhub.contract_violations.clear()  # the query-less search above is invalid on purpose


async def test_pagination(devhub, admin, org):
    rest = await seed(admin, org)
    status, headers, page = await rest.get(q(f"repo:{org.repo}") + "&per_page=3")
    assert status == 200
    assert page["total_count"] == 4
    assert len(page["items"]) == 3
    assert 'rel="next"' in headers["Link"]
    _, _, second = await rest.get(q(f"repo:{org.repo}") + "&per_page=3&page=2")
    assert [i["number"] for i in second["items"]] == [1]


async def test_results_are_limited_to_what_the_token_sees(devhub, admin, org):
    await seed(admin, org)
    alice = admin.rest(org.owner.token)
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    await alice.post("/repos/acme/secret/issues", {"title": "Hidden crash"})
    await admin.create_repo("acme", "other", org.owner.token)
    await alice.post("/repos/acme/other/issues", {"title": "Other crash"})
    token = await installation_token(admin, devhub, org.installation_id, repositories=["secret"])
    _, _, narrowed = await admin.rest(token).get(q("crash"))
    # Its one private repository, and the public ones as anyone sees them.
    found = {i["repository_url"].rsplit("/", 1)[-1] for i in narrowed["items"]}
    assert found == {"secret", "widgets", "other"}
    token = await installation_token(admin, devhub, org.installation_id, repositories=["widgets"])
    _, _, narrowed = await admin.rest(token).get(q("crash"))
    assert "Hidden crash" not in {i["title"] for i in narrowed["items"]}
    outsider = await admin.create_user("mallory")
    _, _, public = await admin.rest(outsider.token).get(q("crash"))
    assert {i["repository_url"].rsplit("/", 1)[-1] for i in public["items"]} == {
        "widgets",
        "other",
    }
    _, _, everything = await alice.get(q("crash"))
    assert "Hidden crash" in {i["title"] for i in everything["items"]}


async def test_search_has_its_own_rate_limit(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    _, headers, _ = await rest.get(q(f"repo:{org.repo}"))
    assert headers["x-ratelimit-resource"] == "search"
    assert headers["x-ratelimit-limit"] == "30"
    for _ in range(29):
        await rest.get(q(f"repo:{org.repo}"))
    status, _, answer = await rest.get(q(f"repo:{org.repo}"))
    assert status == 403
    assert answer["message"].startswith("API rate limit exceeded")
    _, _, limits = await rest.get("/rate_limit")
    assert limits["resources"]["search"]["remaining"] == 0
    assert limits["resources"]["core"]["remaining"] > 0
