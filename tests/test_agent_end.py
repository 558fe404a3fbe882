"""The end of a run against devhub: body, ready and label in one GraphQL request; REST for
whatever that request did not land, so the run still ends cleanly."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import aiohttp
import pytest

from actions.agent.github import RunEnd, end_request, for_token, get_pull
from actions.agent.run import Deps, Runner
from tests.support.devhub import installation_token
from tests.test_devhub_pulls import branch

REPO = "acme/widgets"
BODY = "Closes #1\n\n**Status:** The tests passed. Ready for review."
NO_LABEL = "LA_kgDOAAAAAAAA"


@pytest.fixture
async def ended(devhub, admin, org):
    """An issue labelled `coder:running`, its draft pull request, and the runner's client."""
    rest = admin.rest(org.owner.token)
    _, _, issue = await rest.post(
        f"/repos/{REPO}/issues", {"title": "Fix it", "labels": ["coder:running"]}
    )
    await branch(rest, REPO, "coder/1-fix-it", {"fix.txt": "fixed\n"})
    _, _, pull = await rest.post(
        f"/repos/{REPO}/pulls",
        {
            "title": "Fix it",
            "head": "coder/1-fix-it",
            "base": "main",
            "body": "Closes #1",
            "draft": True,
        },
    )
    token = await installation_token(admin, devhub, org.installation_id)
    async with aiohttp.ClientSession() as session:
        gh = for_token(
            session, token, api_url=devhub.api_url, graphql_url=f"{devhub.url}/api/graphql"
        )
        yield SimpleNamespace(gh=gh, rest=rest, issue=issue["number"], pull=pull["number"])


def runner(issue):
    return Runner(SimpleNamespace(repository=REPO, issue=issue), Deps(environ={}))


async def calls_since(admin, before):
    return [
        (r["method"], r["path"].removeprefix(f"/api/v3/repos/{REPO}"), r["status"])
        for r in (await admin.requests())[before:]
    ]


async def state(ended):
    _, _, pull = await ended.rest.get(f"/repos/{REPO}/pulls/{ended.pull}")
    _, _, labels = await ended.rest.get(f"/repos/{REPO}/issues/{ended.issue}/labels")
    return pull["body"], pull["draft"], [label["name"] for label in labels]


async def test_the_first_query_reads_the_ids_the_end_needs(ended):
    pull = await get_pull(ended.gh, REPO, ended.pull, issue=ended.issue)
    _, _, issue = await ended.rest.get(f"/repos/{REPO}/issues/{ended.issue}")
    _, _, label = await ended.rest.get(f"/repos/{REPO}/labels/coder:running")
    assert (pull.issue_node_id, pull.running_label_id) == (issue["node_id"], label["node_id"])
    assert pull.draft is True
    # A pull-request subject (a review, a fix): the pull request is the run's issue.
    same = await get_pull(ended.gh, REPO, ended.pull, issue=ended.pull)
    assert same.issue_node_id == same.node_id
    assert ended.gh.calls.graphql == 2
    assert ended.gh.calls.rest == 0


async def test_the_end_is_one_graphql_request(ended, admin):
    pull = await get_pull(ended.gh, REPO, ended.pull, issue=ended.issue)
    before = len(await admin.requests())
    await runner(ended.issue)._write_end(
        ended.gh, SimpleNamespace(pull=pull), body=BODY, ready=True
    )
    assert await calls_since(admin, before) == [("POST", "/api/graphql", 200)]
    assert await state(ended) == (BODY, False, [])


async def test_what_the_request_missed_is_done_over_rest(ended, admin):
    pull = await get_pull(ended.gh, REPO, ended.pull, issue=ended.issue)
    # An id that resolves to no label: that mutation fails, the two before it stand.
    pull = dataclasses.replace(pull, running_label_id=NO_LABEL)
    before = len(await admin.requests())
    await runner(ended.issue)._write_end(
        ended.gh, SimpleNamespace(pull=pull), body=BODY, ready=True
    )
    assert await calls_since(admin, before) == [
        ("POST", "/api/graphql", 200),
        ("DELETE", f"/issues/{ended.issue}/labels/coder:running", 200),
    ]
    assert await state(ended) == (BODY, False, [])


async def test_when_the_request_fails_the_end_is_written_the_old_way(ended, admin):
    pull = await get_pull(ended.gh, REPO, ended.pull, issue=ended.issue)
    await admin.add_fault(kind="status", status=502, method="POST", path="^/api/graphql$")
    before = len(await admin.requests())
    await runner(ended.issue)._write_end(
        ended.gh, SimpleNamespace(pull=pull), body=BODY, ready=True
    )
    # A mutation is not resent after an ambiguous failure; each part goes its old way instead.
    assert await calls_since(admin, before) == [
        ("POST", "/api/graphql", 502),
        ("PATCH", f"/pulls/{ended.pull}", 200),
        ("POST", "/api/graphql", 200),  # markPullRequestReadyForReview on its own
        ("DELETE", f"/issues/{ended.issue}/labels/coder:running", 200),
    ]
    assert await state(ended) == (BODY, False, [])


async def test_an_issue_that_is_gone_leaves_the_label_to_rest(ended, admin):
    pull = await get_pull(ended.gh, REPO, ended.pull, issue=404)
    assert pull.number == ended.pull
    assert pull.issue_node_id is None
    before = len(await admin.requests())
    await runner(404)._write_end(ended.gh, SimpleNamespace(pull=pull), body=None, ready=False)
    # Nothing for GraphQL to do; the REST removal answers 404 and the run goes on.
    assert await calls_since(admin, before) == [
        ("DELETE", "/issues/404/labels/coder:running", 404),
    ]


def test_nothing_due_is_no_request_and_each_part_declares_only_its_variables():
    assert end_request(RunEnd("PR_1", None, False, "I_1", None)) is None
    document, variables = end_request(RunEnd("PR_1", None, False, "PR_1", "LA_1"))
    assert variables == {"labelable": "PR_1", "label": "LA_1"}
    assert "updatePullRequest" not in document
    assert "markPullRequestReadyForReview" not in document
    document, variables = end_request(RunEnd("PR_1", "body", True, "I_1", "LA_1"))
    assert list(variables) == ["pull", "body", "labelable", "label"]
    positions = [document.index(name) for name in ("body:", "ready:", "unlabel:")]
    assert positions == sorted(positions)
