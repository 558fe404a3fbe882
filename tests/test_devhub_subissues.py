"""devhub's sub-issues API and repository dispatch events."""

from __future__ import annotations

import json

from devhub.hub import DevHub
from devhub.testing import AdminClient
from tests.support.devhub import installation_token


async def open_issues(rest, repo, *titles):
    issues = []
    for title in titles:
        status, _, issue = await rest.post(f"/repos/{repo}/issues", {"title": title})
        assert status == 201, issue
        issues.append(issue)
    return issues


async def test_sub_issues_are_linked_listed_and_summarised(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    parent, first, second = await open_issues(rest, org.repo, "Epic", "Part 1", "Part 2")
    for child in (first, second):
        status, _, added = await rest.post(
            f"/repos/{org.repo}/issues/{parent['number']}/sub_issues", {"sub_issue_id": child["id"]}
        )
        assert status == 201, added
        assert added["number"] == child["number"]
    status, _, listed = await rest.get(f"/repos/{org.repo}/issues/{parent['number']}/sub_issues")
    assert [issue["number"] for issue in listed] == [first["number"], second["number"]]
    status, _, shown = await rest.get(f"/repos/{org.repo}/issues/{parent['number']}")
    assert shown["sub_issues_summary"] == {"total": 2, "completed": 0, "percent_completed": 0}
    await rest.patch(f"/repos/{org.repo}/issues/{first['number']}", {"state": "closed"})
    status, _, shown = await rest.get(f"/repos/{org.repo}/issues/{parent['number']}")
    assert shown["sub_issues_summary"]["percent_completed"] == 50
    status, _, up = await rest.get(f"/repos/{org.repo}/issues/{second['number']}/parent")
    assert (status, up["number"]) == (200, parent["number"])
    status, _, _ = await rest.get(f"/repos/{org.repo}/issues/{parent['number']}/parent")
    assert status == 404


async def test_a_sub_issue_has_one_parent_and_no_loops(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    one, two, child = await open_issues(rest, org.repo, "One", "Two", "Child")
    url = f"/repos/{org.repo}/issues/{{}}/sub_issues"
    assert (await rest.post(url.format(one["number"]), {"sub_issue_id": child["id"]}))[0] == 201
    status, _, answer = await rest.post(url.format(two["number"]), {"sub_issue_id": child["id"]})
    assert status == 422, answer
    status, _, _ = await rest.post(
        url.format(two["number"]), {"sub_issue_id": child["id"], "replace_parent": True}
    )
    assert status == 201
    status, _, listed = await rest.get(url.format(one["number"]))
    assert listed == []
    # The child cannot become its own ancestor's parent.
    status, _, answer = await rest.post(url.format(child["number"]), {"sub_issue_id": two["id"]})
    assert status == 422, answer
    status, _, answer = await rest.post(url.format(one["number"]), {"sub_issue_id": 999_999})
    assert status == 404
    removed = await rest.delete(
        f"/repos/{org.repo}/issues/{two['number']}/sub_issue", {"sub_issue_id": child["id"]}
    )
    assert removed[0] == 200


async def test_readers_cannot_link_sub_issues(devhub, admin, org):
    bob = await admin.create_user("bob")
    await admin.add_collaborator(org.repo, "bob", "pull")
    parent, child = await open_issues(admin.rest(org.owner.token), org.repo, "Epic", "Part")
    status, _, _ = await admin.rest(bob.token).post(
        f"/repos/{org.repo}/issues/{parent['number']}/sub_issues", {"sub_issue_id": child["id"]}
    )
    assert status in {403, 404}


async def test_a_dispatch_event_reaches_the_app(tmp_path, receiver):
    # No manifest: every event is delivered, repository_dispatch included.
    hub = DevHub(tmp_path / "hub", strict=True, webhook_url=receiver.url)
    await hub.start()
    try:
        async with AdminClient(hub.url, hub.admin_token) as admin:
            alice = await admin.create_user("alice")
            await admin.create_repo("alice", "tools", alice.token)
            installation_id = await admin.install("alice")
            rest = admin.rest(alice.token)
            body = {"event_type": "coder.deps", "client_payload": {"body": "weekly"}}
            status, _, _ = await rest.post("/repos/alice/tools/dispatches", body)
            assert status == 204
            delivery = await hub.wait_for_delivery(event="repository_dispatch")
            payload = json.loads(delivery.body)
            assert payload["action"] == "coder.deps"
            assert payload["branch"] == "main"
            assert payload["client_payload"] == {"body": "weekly"}
            assert payload["installation"]["id"] == installation_id
            too_many = {"event_type": "x", "client_payload": {str(i): i for i in range(11)}}
            assert (await rest.post("/repos/alice/tools/dispatches", too_many))[0] == 422
            assert (await rest.post("/repos/alice/tools/dispatches", {}))[0] == 422
            # An app needs contents: write.
            token = await installation_token(
                admin, hub, installation_id, permissions={"contents": "read"}
            )
            status, _, _ = await admin.rest(token).post("/repos/alice/tools/dispatches", body)
            assert status == 403
    finally:
        await hub.stop()
    # The two malformed requests break GitHub's own description of the endpoint, as they should.
    assert len(hub.contract_violations) == 2
    assert all("request body" in v for v in hub.contract_violations), hub.contract_violations
