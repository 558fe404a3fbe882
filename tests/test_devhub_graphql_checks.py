"""devhub's GraphQL for checks: a commit's check suites and runs, and a check run by node id."""

from __future__ import annotations

from tests.support.devhub import installation_token
from tests.test_devhub_graphql import graphql
from tests.test_devhub_pulls import branch

HEAD_CHECKS = """
query($owner: String!, $name: String!, $number: Int!, $type: CheckRunType) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      headRef {
        name
        target {
          oid
          ... on Commit {
            checkSuites(first: 10) {
              totalCount
              nodes {
                app { slug }
                status
                checkRuns(first: 10, filterBy: {checkType: $type}) {
                  nodes { id databaseId name status conclusion title }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { ... on CheckRun { databaseId status conclusion } } }"


async def pull_with_check_runs(admin, devhub, org):
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "coder/1-x", {"x.txt": "x\n"})
    _, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "X", "head": "coder/1-x", "base": "main"}
    )
    token = await installation_token(admin, devhub, org.installation_id)
    app = admin.rest(token)
    sha = pull["head"]["sha"]
    runs = []
    for status in ("queued", "in_progress"):  # a re-run of the same name: two runs
        _, _, created = await app.post(
            f"/repos/{org.repo}/check-runs",
            {"name": "coder/develop", "head_sha": sha, "status": status},
        )
        runs.append(created)
    return token, pull, runs


async def test_a_pull_request_s_head_carries_its_check_suites_and_runs(devhub, admin, org):
    token, pull, (older, newer) = await pull_with_check_runs(admin, devhub, org)
    app = admin.rest(token)
    done = {
        "status": "completed",
        "conclusion": "cancelled",
        "output": {"title": "Cancelled", "summary": "s"},
    }
    await app.patch(f"/repos/{org.repo}/check-runs/{older['id']}", done)

    variables = {"owner": "acme", "name": "widgets", "number": pull["number"]}
    _, _, body = await graphql(admin, devhub, token, HEAD_CHECKS, **variables, type="ALL")
    assert "errors" not in body, body
    head = body["data"]["repository"]["pullRequest"]["headRef"]
    assert (head["name"], head["target"]["oid"]) == ("coder/1-x", pull["head"]["sha"])
    [suite] = head["target"]["checkSuites"]["nodes"]
    assert (suite["app"]["slug"], suite["status"]) == ("coder", "IN_PROGRESS")
    runs = suite["checkRuns"]["nodes"]
    assert [(r["databaseId"], r["status"], r["conclusion"]) for r in runs] == [
        (older["id"], "COMPLETED", "CANCELLED"),
        (newer["id"], "IN_PROGRESS", None),
    ]
    assert runs[0]["id"] == older["node_id"]  # the REST node_id: either API finds the other's
    # By default only the newest run of each name, as GitHub lists them.
    _, _, body = await graphql(admin, devhub, token, HEAD_CHECKS, **variables, type=None)
    [suite] = body["data"]["repository"]["pullRequest"]["headRef"]["target"]["checkSuites"]["nodes"]
    assert [r["databaseId"] for r in suite["checkRuns"]["nodes"]] == [newer["id"]]


async def test_a_check_run_is_a_node(devhub, admin, org):
    token, _pull, (older, _newer) = await pull_with_check_runs(admin, devhub, org)
    _, _, body = await graphql(admin, devhub, token, NODE, id=older["node_id"])
    assert body == {
        "data": {"node": {"databaseId": older["id"], "status": "QUEUED", "conclusion": None}}
    }
    _, _, body = await graphql(admin, devhub, token, NODE, id="CR_kgDOAAAAAAAA")
    assert body["data"] == {"node": None}
    assert body["errors"][0]["type"] == "NOT_FOUND"


async def test_a_token_without_checks_read_sees_no_check_suites(devhub, admin, org):
    _token, pull, (older, _newer) = await pull_with_check_runs(admin, devhub, org)
    narrow = await installation_token(
        admin, devhub, org.installation_id, permissions={"pull_requests": "read"}
    )
    variables = {"owner": "acme", "name": "widgets", "number": pull["number"], "type": "ALL"}
    _, _, body = await graphql(admin, devhub, narrow, HEAD_CHECKS, **variables)
    assert body["data"]["repository"]["pullRequest"]["headRef"]["target"]["checkSuites"] is None
    assert body["errors"][0]["type"] == "FORBIDDEN"
    _, _, body = await graphql(admin, devhub, narrow, NODE, id=older["node_id"])
    assert body["data"] == {"node": None}
