"""devhub's GraphQL endpoint: the few queries coder uses, GitHub's auth and error shapes."""

from __future__ import annotations

from tests.support.devhub import app_jwt, installation_token

REPOSITORY_QUERY = """
query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    id name nameWithOwner
    defaultBranchRef { name target { oid } }
    issue(number: $number) { id number title state labels(first: 10) { nodes { name } } }
  }
}
"""


async def graphql(admin, devhub, token, query, **variables):
    headers = {"Authorization": f"bearer {token}"} if token else {}
    async with admin.session.post(
        f"{devhub.url}/api/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
    ) as response:
        return response.status, response.headers, await response.json()


async def test_viewer_and_rate_limit(devhub, admin, org):
    status, headers, body = await graphql(
        admin,
        devhub,
        org.owner.token,
        "{ viewer { login } rateLimit { limit remaining cost resetAt } }",
    )
    assert status == 200
    assert body["data"]["viewer"] == {"login": "alice"}
    rate = body["data"]["rateLimit"]
    assert (rate["limit"], rate["cost"]) == (5000, 1)
    assert rate["remaining"] == 4999
    assert rate["resetAt"].endswith("Z")
    assert headers["x-ratelimit-resource"] == "graphql"


async def test_repository_issue_and_labels(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/issues", {"title": "Label me", "labels": ["coder:develop"]})
    _, _, main = await rest.get(f"/repos/{org.repo}/git/ref/heads/main")
    token = await installation_token(admin, devhub, org.installation_id)
    status, _, body = await graphql(
        admin, devhub, token, REPOSITORY_QUERY, owner="acme", name="widgets", number=1
    )
    assert status == 200
    assert "errors" not in body
    repo = body["data"]["repository"]
    assert repo["nameWithOwner"] == "acme/widgets"
    assert repo["defaultBranchRef"] == {"name": "main", "target": {"oid": main["object"]["sha"]}}
    assert repo["issue"]["title"] == "Label me"
    assert repo["issue"]["state"] == "OPEN"
    assert repo["issue"]["labels"]["nodes"] == [{"name": "coder:develop"}]


async def test_missing_things_are_not_found_errors_with_200(devhub, admin, org):
    status, _, body = await graphql(
        admin, devhub, org.owner.token, REPOSITORY_QUERY, owner="acme", name="nope", number=1
    )
    assert status == 200
    assert body["data"] == {"repository": None}
    (error,) = body["errors"]
    assert error["type"] == "NOT_FOUND"
    assert error["path"] == ["repository"]
    assert error["message"] == "Could not resolve to a Repository with the name 'acme/nope'."


async def test_private_repository_is_not_found_for_outsiders(devhub, admin, org):
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    eve = await admin.create_user("eve")
    _, _, body = await graphql(
        admin, devhub, eve.token, REPOSITORY_QUERY, owner="acme", name="secret", number=1
    )
    assert body["errors"][0]["type"] == "NOT_FOUND"


async def test_unknown_fields_are_validation_errors(devhub, admin, org):
    status, _, body = await graphql(admin, devhub, org.owner.token, "{ viewer { salary } }")
    assert status == 200
    assert "data" not in body
    assert "salary" in body["errors"][0]["message"]


async def test_graphql_auth(devhub, admin, org):
    status, _, body = await graphql(admin, devhub, None, "{ viewer { login } }")
    assert (status, body["message"]) == (401, "This endpoint requires you to be authenticated.")
    status, _, body = await graphql(admin, devhub, "ghp_wrong", "{ viewer { login } }")
    assert (status, body["message"]) == (401, "Bad credentials")
    status, _, body = await graphql(admin, devhub, app_jwt(devhub), "{ viewer { login } }")
    assert status == 403
