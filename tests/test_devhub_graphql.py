"""devhub's GraphQL endpoint: the few queries coder uses, GitHub's auth and error shapes."""

from __future__ import annotations

from tests.support.devhub import app_jwt, installation_token
from tests.test_devhub_pulls import branch, payloads

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


# The end of a coder run: body, ready and label in one request, the mutations in order.
END_OF_RUN = """
mutation($pull: ID!, $body: String!, $labelable: ID!, $label: ID!) {
  body: updatePullRequest(input: {pullRequestId: $pull, body: $body}) {
    pullRequest { body isDraft }
  }
  ready: markPullRequestReadyForReview(input: {pullRequestId: $pull}) {
    pullRequest { isDraft }
  }
  unlabel: removeLabelsFromLabelable(input: {labelableId: $labelable, labelIds: [$label]}) {
    labelable { ... on Issue { number labels(first: 10) { nodes { name } } } }
  }
}
"""
IDS_QUERY = """
query($number: Int!, $pull: Int!) {
  repository(owner: "acme", name: "widgets") {
    issue(number: $number) { id }
    pullRequest(number: $pull) { id }
    label(name: "coder:running") { id name }
    missing: label(name: "no such label") { id }
  }
}
"""
UNLABEL = """
mutation($labelable: ID!, $labels: [ID!]!) {
  removeLabelsFromLabelable(input: {labelableId: $labelable, labelIds: $labels}) {
    clientMutationId
    labelable { labels(first: 10) { totalCount nodes { name } } }
  }
}
"""
UPDATE_BODY = """
mutation($pull: ID!, $body: String) {
  updatePullRequest(input: {pullRequestId: $pull, body: $body, clientMutationId: "c1"}) {
    clientMutationId
    pullRequest { number body }
  }
}
"""


async def labelled_issue_and_draft(devhub, admin, org):
    """An issue labelled coder:running and a draft pull request, as a run leaves them."""
    rest = admin.rest(org.owner.token)
    _, _, issue = await rest.post(
        f"/repos/{org.repo}/issues", {"title": "Fix it", "labels": ["coder:running", "bug"]}
    )
    await branch(rest, org.repo, "coder/1-fix-it", {"fix.txt": "fixed\n"})
    _, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls",
        {
            "title": "Fix it",
            "head": "coder/1-fix-it",
            "base": "main",
            "body": "Closes #1",
            "draft": True,
        },
    )
    token = await installation_token(admin, devhub, org.installation_id)
    _, _, body = await graphql(
        admin, devhub, token, IDS_QUERY, number=issue["number"], pull=pull["number"]
    )
    assert "errors" not in body, body
    return issue, pull, token, body["data"]["repository"]


async def test_repository_label_by_name_and_the_ids_a_run_reads(devhub, admin, org):
    issue, pull, _token, ids = await labelled_issue_and_draft(devhub, admin, org)
    assert ids["issue"]["id"] == issue["node_id"]
    assert ids["pullRequest"]["id"] == pull["node_id"]
    _, _, label = await admin.rest(org.owner.token).get(f"/repos/{org.repo}/labels/coder:running")
    assert ids["label"] == {"id": label["node_id"], "name": "coder:running"}
    assert ids["missing"] is None  # a label that does not exist is null, not an error


async def test_one_request_ends_a_run_body_ready_and_label_in_order(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    issue, pull, token, ids = await labelled_issue_and_draft(devhub, admin, org)
    start = len(devhub.state.deliveries)
    variables = {"pull": ids["pullRequest"]["id"], "body": "Closes #1\n\nDone."}
    variables |= {"labelable": ids["issue"]["id"], "label": ids["label"]["id"]}
    status, _, body = await graphql(admin, devhub, token, END_OF_RUN, **variables)
    assert status == 200
    assert "errors" not in body, body
    data = body["data"]
    assert list(data) == ["body", "ready", "unlabel"]
    # Mutations run in order: the body was edited while the pull request was still a draft.
    assert data["body"]["pullRequest"] == {"body": "Closes #1\n\nDone.", "isDraft": True}
    assert data["ready"]["pullRequest"] == {"isDraft": False}
    assert data["unlabel"]["labelable"] == {"number": 1, "labels": {"nodes": [{"name": "bug"}]}}
    rest = admin.rest(org.owner.token)
    _, _, fetched = await rest.get(f"/repos/{org.repo}/pulls/{pull['number']}")
    assert (fetched["body"], fetched["draft"]) == ("Closes #1\n\nDone.", False)
    _, _, labels = await rest.get(f"/repos/{org.repo}/issues/{issue['number']}/labels")
    assert [label["name"] for label in labels] == ["bug"]
    # The same webhooks as PATCH /pulls/{n}, the ready mutation and DELETE .../labels/{name}.
    sent = [(d.event, d.action) for d in devhub.state.deliveries[start:]]
    assert sent == [
        ("pull_request", "edited"),
        ("pull_request", "ready_for_review"),
        ("issues", "unlabeled"),
    ]
    edited = payloads(devhub, "pull_request", "edited")[-1]
    assert edited["changes"] == {"body": {"from": "Closes #1"}}
    assert edited["sender"]["login"] == "coder[bot]"
    unlabeled = payloads(devhub, "issues", "unlabeled")[-1]
    assert unlabeled["label"]["name"] == "coder:running"
    _, _, events = await rest.get(f"/repos/{org.repo}/issues/{issue['number']}/events")
    assert [e["event"] for e in events][-1:] == ["unlabeled"]


async def test_a_label_the_issue_does_not_carry_is_skipped_and_a_missing_one_is_not_found(
    devhub, admin, org, receiver
):
    devhub.webhook_url = receiver.url
    issue, _pull, token, ids = await labelled_issue_and_draft(devhub, admin, org)
    rest = admin.rest(org.owner.token)
    _, _, other = await rest.post(f"/repos/{org.repo}/labels", {"name": "later", "color": "ffffff"})
    start = len(devhub.state.deliveries)
    _, _, body = await graphql(
        admin, devhub, token, UNLABEL, labelable=ids["issue"]["id"], labels=[other["node_id"]]
    )
    assert "errors" not in body, body
    labelable = body["data"]["removeLabelsFromLabelable"]["labelable"]
    assert labelable["labels"]["totalCount"] == 2  # nothing changed, and no error
    assert devhub.state.deliveries[start:] == []

    bogus = "LA_kgDOAAAAAAAA"
    _, _, body = await graphql(
        admin,
        devhub,
        token,
        UNLABEL,
        labelable=ids["issue"]["id"],
        labels=[ids["label"]["id"], bogus],
    )
    assert body["data"] == {"removeLabelsFromLabelable": None}
    (error,) = body["errors"]
    assert (error["type"], error["path"]) == ("NOT_FOUND", ["removeLabelsFromLabelable"])
    assert error["message"] == f"Could not resolve to a node with the global id of '{bogus}'"
    _, _, labels = await rest.get(f"/repos/{org.repo}/issues/{issue['number']}/labels")
    assert len(labels) == 2  # all or nothing: the known label stayed too

    _, _, body = await graphql(
        admin, devhub, token, UNLABEL, labelable="I_kgDOAAAAAAAA", labels=[ids["label"]["id"]]
    )
    assert body["errors"][0]["type"] == "NOT_FOUND"


async def test_a_pull_request_is_labelable_too(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    _issue, pull, token, ids = await labelled_issue_and_draft(devhub, admin, org)
    rest = admin.rest(org.owner.token)
    await rest.post(
        f"/repos/{org.repo}/issues/{pull['number']}/labels", {"labels": ["coder:running"]}
    )
    _, _, body = await graphql(
        admin,
        devhub,
        token,
        UNLABEL,
        labelable=ids["pullRequest"]["id"],
        labels=[ids["label"]["id"]],
    )
    assert "errors" not in body, body
    assert body["data"]["removeLabelsFromLabelable"]["labelable"]["labels"]["totalCount"] == 0
    unlabeled = payloads(devhub, "pull_request", "unlabeled")[-1]
    assert unlabeled["label"]["name"] == "coder:running"


async def test_labels_need_issues_write_and_the_body_pull_requests_write(devhub, admin, org):
    issue, pull, _token, ids = await labelled_issue_and_draft(devhub, admin, org)
    reader = await installation_token(
        admin,
        devhub,
        org.installation_id,
        permissions={"issues": "read", "pull_requests": "read", "contents": "read"},
    )
    _, _, body = await graphql(
        admin, devhub, reader, UNLABEL, labelable=ids["issue"]["id"], labels=[ids["label"]["id"]]
    )
    assert body["data"] == {"removeLabelsFromLabelable": None}
    (error,) = body["errors"]
    assert (error["type"], error["message"]) == (
        "FORBIDDEN",
        "Resource not accessible by integration",
    )
    _, _, body = await graphql(
        admin, devhub, reader, UPDATE_BODY, pull=ids["pullRequest"]["id"], body="x"
    )
    assert body["errors"][0]["type"] == "FORBIDDEN"

    # A person needs triage to change labels; reading the repository is not enough.
    eve = await admin.create_user("eve")
    _, _, body = await graphql(
        admin, devhub, eve.token, UNLABEL, labelable=ids["issue"]["id"], labels=[ids["label"]["id"]]
    )
    (error,) = body["errors"]
    assert error["type"] == "FORBIDDEN"
    assert error["message"] == (
        "eve does not have the correct permissions to execute `RemoveLabelsFromLabelable`"
    )
    _, _, labels = await admin.rest(org.owner.token).get(
        f"/repos/{org.repo}/issues/{issue['number']}/labels"
    )
    assert "coder:running" in {label["name"] for label in labels}
    _, _, fetched = await admin.rest(org.owner.token).get(
        f"/repos/{org.repo}/pulls/{pull['number']}"
    )
    assert fetched["body"] == "Closes #1"


async def test_update_pull_request_without_a_body_changes_nothing(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    _issue, pull, token, ids = await labelled_issue_and_draft(devhub, admin, org)
    start = len(devhub.state.deliveries)
    _, _, body = await graphql(admin, devhub, token, UPDATE_BODY, pull=ids["pullRequest"]["id"])
    assert "errors" not in body, body
    answer = body["data"]["updatePullRequest"]
    assert answer == {
        "clientMutationId": "c1",
        "pullRequest": {"number": pull["number"], "body": "Closes #1"},
    }
    assert devhub.state.deliveries[start:] == []


async def test_a_token_narrowed_elsewhere_cannot_change_labels_here(devhub, admin, org):
    issue, _pull, _token, ids = await labelled_issue_and_draft(devhub, admin, org)
    owner = admin.rest(org.owner.token)
    status, _, other = await owner.post(f"/orgs/{org.repo.split('/')[0]}/repos", {"name": "other"})
    assert status == 201, other
    # It may read this public repository, as on GitHub, but it covers only the other one.
    elsewhere = await installation_token(
        admin,
        devhub,
        org.installation_id,
        repository_ids=[other["id"]],
        permissions={"issues": "write"},
    )
    _, _, body = await graphql(
        admin, devhub, elsewhere, UNLABEL, labelable=ids["issue"]["id"], labels=[ids["label"]["id"]]
    )
    assert body["errors"][0]["type"] == "FORBIDDEN", body
    _, _, labels = await owner.get(f"/repos/{org.repo}/issues/{issue['number']}/labels")
    assert "coder:running" in {label["name"] for label in labels}
