"""devhub's issues, labels, comments, events and reactions, with GitHub's permission rules."""

from __future__ import annotations

from tests.support.devhub import installation_token


async def reader(admin, org):
    """Return a user with read access to acme/widgets (public, and an explicit collaborator)."""
    carol = await admin.create_user("carol")
    await admin.add_collaborator(org.repo, "carol", "pull")
    return carol


async def test_create_get_and_list_issues(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    status, headers, issue = await rest.post(
        f"/repos/{org.repo}/issues", {"title": "Fix it", "body": "details", "labels": ["bug"]}
    )
    assert status == 201
    assert issue["number"] == 1
    assert issue["state"] == "open"
    assert issue["user"]["login"] == "alice"
    assert issue["author_association"] == "MEMBER"
    assert [label["name"] for label in issue["labels"]] == ["bug"]  # created on the fly
    assert headers["Location"] == issue["url"]
    status, _, again = await rest.get(f"/repos/{org.repo}/issues/1")
    assert status == 200
    assert again["title"] == "Fix it"
    await rest.post(f"/repos/{org.repo}/issues", {"title": "Second"})
    status, _, listed = await rest.get(f"/repos/{org.repo}/issues")
    assert [i["number"] for i in listed] == [2, 1]  # newest first by default
    _, _, filtered = await rest.get(f"/repos/{org.repo}/issues?labels=bug")
    assert [i["number"] for i in filtered] == [1]
    _, _, oldest = await rest.get(f"/repos/{org.repo}/issues?direction=asc")
    assert [i["number"] for i in oldest] == [1, 2]
    status, _, body = await rest.get(f"/repos/{org.repo}/issues/99")
    assert (status, body["message"]) == (404, "Not Found")


async def test_close_reopen_and_state_filters(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/issues", {"title": "A"})
    status, _, closed = await rest.patch(
        f"/repos/{org.repo}/issues/1", {"state": "closed", "state_reason": "not_planned"}
    )
    assert status == 200
    assert closed["state"] == "closed"
    assert closed["state_reason"] == "not_planned"
    assert closed["closed_by"]["login"] == "alice"
    assert closed["closed_at"] is not None
    assert (await rest.get(f"/repos/{org.repo}/issues"))[2] == []
    _, _, closed_list = await rest.get(f"/repos/{org.repo}/issues?state=closed")
    assert [i["number"] for i in closed_list] == [1]
    _, _, reopened = await rest.patch(f"/repos/{org.repo}/issues/1", {"state": "open"})
    assert reopened["state"] == "open"
    assert reopened["closed_at"] is None
    _, _, events = await rest.get(f"/repos/{org.repo}/issues/1/events")
    assert [e["event"] for e in events] == ["closed", "reopened"]


async def test_since_filter_on_issues_and_comments(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/issues", {"title": "A"})
    _, _, comment = await rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "hi"})
    _, _, listed = await rest.get(
        f"/repos/{org.repo}/issues/1/comments?since={comment['created_at']}"
    )
    assert [c["id"] for c in listed] == [comment["id"]]
    _, _, none = await rest.get(f"/repos/{org.repo}/issues/1/comments?since=2999-01-01T00:00:00Z")
    assert none == []
    _, _, issues = await rest.get(f"/repos/{org.repo}/issues?since=2999-01-01T00:00:00Z")
    assert issues == []


async def test_create_label_twice_is_422_already_exists(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    status, _, label = await rest.post(
        f"/repos/{org.repo}/labels", {"name": "coder:develop", "color": "1D76DB"}
    )
    assert status == 201
    assert label["color"] == "1d76db"
    status, _, body = await rest.post(f"/repos/{org.repo}/labels", {"name": "Coder:Develop"})
    assert status == 422
    assert body["message"] == "Validation Failed"
    assert body["errors"] == [{"resource": "Label", "field": "name", "code": "already_exists"}]
    assert body["status"] == "422"


async def test_label_update_get_and_delete(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/labels", {"name": "bug", "color": "ff0000"})
    status, _, label = await rest.patch(
        f"/repos/{org.repo}/labels/bug", {"new_name": "defect", "description": "broken"}
    )
    assert status == 200
    assert (label["name"], label["description"]) == ("defect", "broken")
    assert (await rest.get(f"/repos/{org.repo}/labels/bug"))[0] == 404
    assert (await rest.get(f"/repos/{org.repo}/labels/defect"))[0] == 200
    assert (await rest.delete(f"/repos/{org.repo}/labels/defect"))[0] == 204
    assert (await rest.get(f"/repos/{org.repo}/labels/defect"))[0] == 404


async def test_issue_labels_add_set_remove(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/issues", {"title": "A"})
    path = f"/repos/{org.repo}/issues/1/labels"
    status, _, labels = await rest.post(path, {"labels": ["one", "two"]})
    assert status == 200
    assert [label["name"] for label in labels] == ["one", "two"]
    _, _, labels = await rest.post(path, {"labels": [{"name": "three"}]})
    assert [label["name"] for label in labels] == ["one", "two", "three"]
    _, _, labels = await rest.put(path, {"labels": ["two"]})
    assert [label["name"] for label in labels] == ["two"]
    status, _, labels = await rest.delete(f"{path}/two")
    assert (status, labels) == (200, [])
    status, _, body = await rest.delete(f"{path}/two")
    assert (status, body["message"]) == (404, "Label does not exist")
    _, _, events = await rest.get(f"/repos/{org.repo}/issues/1/events")
    assert [(e["event"], e["label"]["name"]) for e in events] == [
        ("labeled", "one"),
        ("labeled", "two"),
        ("labeled", "three"),
        ("unlabeled", "one"),
        ("unlabeled", "three"),
        ("unlabeled", "two"),
    ]


async def test_reader_can_open_and_comment_but_not_label(devhub, admin, org):
    carol = await reader(admin, org)
    rest = admin.rest(carol.token)
    status, _, issue = await rest.post(
        f"/repos/{org.repo}/issues", {"title": "From a reader", "labels": ["bug"]}
    )
    assert status == 201
    assert issue["labels"] == []  # GitHub silently drops labels from people without triage
    status, _, _ = await rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "me too"})
    assert status == 201
    status, _, body = await rest.post(f"/repos/{org.repo}/issues/1/labels", {"labels": ["bug"]})
    assert (status, body["message"]) == (403, "Must have admin rights to Repository.")
    status, _, body = await rest.post(f"/repos/{org.repo}/labels", {"name": "mine"})
    assert status == 403
    # Authors may still edit and close their own issue.
    status, _, edited = await rest.patch(
        f"/repos/{org.repo}/issues/1", {"title": "Renamed", "state": "closed"}
    )
    assert (status, edited["title"], edited["state"]) == (200, "Renamed", "closed")


async def test_triage_can_label_but_not_create_labels(devhub, admin, org):
    dave = await admin.create_user("dave")
    await admin.add_collaborator(org.repo, "dave", "triage")
    await admin.rest(org.owner.token).post(f"/repos/{org.repo}/labels", {"name": "known"})
    await admin.rest(org.owner.token).post(f"/repos/{org.repo}/issues", {"title": "A"})
    rest = admin.rest(dave.token)
    path = f"/repos/{org.repo}/issues/1/labels"
    status, _, labels = await rest.post(path, {"labels": ["known"]})
    assert (status, [label["name"] for label in labels]) == (200, ["known"])
    status, _, body = await rest.post(path, {"labels": ["unknown"]})
    assert status == 403
    assert body["message"] == "You do not have permission to create labels on this repository."
    assert body["errors"] == [{"resource": "Repository", "field": "label", "code": "unauthorized"}]


async def test_comment_edit_rules(devhub, admin, org):
    carol = await reader(admin, org)
    owner_rest, carol_rest = admin.rest(org.owner.token), admin.rest(carol.token)
    await owner_rest.post(f"/repos/{org.repo}/issues", {"title": "A"})
    _, _, mine = await carol_rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "mine"})
    _, _, theirs = await owner_rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "x"})
    comments = f"/repos/{org.repo}/issues/comments"
    status, _, edited = await carol_rest.patch(f"{comments}/{mine['id']}", {"body": "edited"})
    assert (status, edited["body"]) == (200, "edited")
    status, _, _ = await carol_rest.patch(f"{comments}/{theirs['id']}", {"body": "hijack"})
    assert status == 403
    status, _, _ = await owner_rest.patch(f"{comments}/{mine['id']}", {"body": "moderated"})
    assert status == 200  # write access may edit anyone's comment
    assert (await carol_rest.delete(f"{comments}/{theirs['id']}"))[0] == 403
    assert (await owner_rest.delete(f"{comments}/{mine['id']}"))[0] == 204
    assert (await owner_rest.get(f"{comments}/{mine['id']}"))[0] == 404
    _, _, issue = await owner_rest.get(f"/repos/{org.repo}/issues/1")
    assert issue["comments"] == 1


async def test_installation_needs_issues_write(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    rest = admin.rest(token)
    status, _, issue = await rest.post(f"/repos/{org.repo}/issues", {"title": "By the app"})
    assert status == 201
    assert issue["user"]["login"] == "coder[bot]"
    assert issue["user"]["type"] == "Bot"
    assert issue["performed_via_github_app"]["slug"] == "coder"
    status, _, comment = await rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "hi"})
    assert status == 201
    assert comment["performed_via_github_app"]["id"] == devhub.app_id


async def test_reactions_new_is_201_existing_is_200(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/issues", {"title": "A"})
    _, _, comment = await rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "/coder x"})
    for path in (
        f"/repos/{org.repo}/issues/1/reactions",
        f"/repos/{org.repo}/issues/comments/{comment['id']}/reactions",
    ):
        status, _, first = await rest.post(path, {"content": "eyes"})
        assert status == 201
        status, _, again = await rest.post(path, {"content": "eyes"})
        assert (status, again["id"]) == (200, first["id"])
        status, _, body = await rest.post(path, {"content": "thumbsup"})
        assert (status, body["errors"][0]["field"]) == (422, "content")
        _, _, listed = await rest.get(path)
        assert [r["content"] for r in listed] == ["eyes"]
    _, _, issue = await rest.get(f"/repos/{org.repo}/issues/1")
    assert issue["reactions"]["eyes"] == 1
    assert issue["reactions"]["total_count"] == 1
    reaction_path = f"/repos/{org.repo}/issues/comments/{comment['id']}/reactions/{first['id']}"
    assert (await rest.delete(reaction_path))[0] == 204
    # Strict mode flags the invalid reaction content we sent on purpose, twice.
    assert len(devhub.contract_violations) == 2
    devhub.contract_violations.clear()


async def test_issue_webhooks_are_emitted(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    await rest.post(f"/repos/{org.repo}/issues", {"title": "A", "labels": ["coder:develop"]})
    await rest.patch(f"/repos/{org.repo}/issues/1", {"title": "B"})
    await rest.post(f"/repos/{org.repo}/issues/1/comments", {"body": "/coder develop"})
    await rest.patch(f"/repos/{org.repo}/issues/1", {"state": "closed"})
    closed = await devhub.wait_for_delivery(event="issues", action="closed")
    assert closed.status_code == 202
    seen = [(d.event, d.action) for d in devhub.state.deliveries if d.event != "ping"]
    assert seen == [
        ("issues", "opened"),
        ("issues", "labeled"),
        ("issues", "edited"),
        ("issue_comment", "created"),
        ("issues", "closed"),
    ]
