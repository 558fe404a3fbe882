"""A trigger under an invalid config: one red `coder/config` per commit, linked in a comment."""

from __future__ import annotations

import json

import pytest

from app.installation import ensure_labels
from tests.test_develop import CONFIG_PATH, REPO, Journey, markers_of
from tests.test_repo_config import Files

ORG_REPO = "acme/.github"
DEEP = "agent: {}\nlimits: " + "[" * 500 + "]" * 500 + "\n"


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Journey(devhub, admin, org, app_server)


async def put_and_wait(journey, repo, text):
    """Commit a file in any repository of the org and wait until the app handled the push."""
    sha = await Files(journey.admin, journey.org.owner.token).put(repo, text)
    delivery = await journey.devhub.wait_for_delivery(
        event="push", predicate=lambda d: json.loads(d.body)["after"] == sha
    )
    assert await journey.app_server.queue.wait_for(delivery.guid) == "ok"
    return sha


async def head_of_main(journey):
    return (await journey.get(f"/repos/{REPO}/branches/main"))["commit"]["sha"]


async def test_a_deeply_nested_config_is_answered_at_its_line(journey):
    await journey.put_file(CONFIG_PATH, DEEP)
    first, second = await journey.issue(), await journey.issue("Another")
    await journey.label(first)
    await journey.label(second)
    # However many triggers come, the commit has one red check: the push's `coder/config`.
    runs = await journey.check_runs("main")
    assert [(run["name"], run["conclusion"]) for run in runs] == [("coder/config", "failure")]
    for number in (first, second):
        [comment] = await journey.comments(number)
        assert markers_of([comment])[0][0] == "config-invalid"
        assert f"`{CONFIG_PATH}:2`: the document nests more than 32 levels deep" in comment["body"]
        assert runs[0]["html_url"] in comment["body"]
        assert await journey.branches(number) == []


async def test_without_a_coder_config_check_the_trigger_makes_one_and_links_it(journey, admin):
    # The org's defaults break: nothing is pushed to this repository, so it has no coder/config.
    await admin.create_repo("acme", ".github", journey.org.owner.token, auto_init=True)
    await put_and_wait(journey, ORG_REPO, "limits:\n  per_repo: 0\n")
    head = await head_of_main(journey)
    assert await journey.check_runs(head) == []
    first, second = await journey.issue(), await journey.issue("Another")
    await journey.label(first)
    await journey.label(second)
    runs = await journey.check_runs(head)
    assert [(run["name"], run["conclusion"]) for run in runs] == [("coder/config", "failure")]
    [check_run] = runs
    assert "acme/.github:.github/coder.yml:2:3: limits.per_repo" in check_run["output"]["summary"]
    # The error is in another repository's file: the summary names it, no annotation does.
    assert check_run["output"]["annotations_count"] == 0
    for number in (first, second):
        [comment] = await journey.comments(number)
        assert check_run["html_url"] in comment["body"]
        assert "`acme/.github:.github/coder.yml:2`" in comment["body"]


async def test_a_base_that_broke_after_a_green_check_gets_its_own_red_check(journey, admin):
    await admin.create_repo("acme", ".github", journey.org.owner.token, auto_init=True)
    await put_and_wait(journey, ORG_REPO, "limits:\n  per_repo: 1\n")
    await journey.put_file(CONFIG_PATH, "_extends: .github\n")
    head = await head_of_main(journey)
    [green] = await journey.check_runs(head)
    assert (green["name"], green["conclusion"]) == ("coder/config", "success")
    await put_and_wait(journey, ORG_REPO, "limits:\n  per_repo: 0\n")
    number = await journey.issue()
    await journey.label(number)
    # The green check is right about its commit; the run's own check says what broke since.
    runs = {run["name"]: run for run in await journey.check_runs(head)}
    assert runs["coder/config"]["conclusion"] == "success"
    assert runs["coder/develop"]["conclusion"] == "failure"
    assert "acme/.github:.github/coder.yml:2:3" in runs["coder/develop"]["output"]["summary"]
    [comment] = await journey.comments(number)
    assert runs["coder/develop"]["html_url"] in comment["body"]
