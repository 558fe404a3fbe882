"""devhub's pull requests: lifecycle, webhooks, GraphQL ready/draft, files, reviews and merges."""

from __future__ import annotations

import asyncio
import base64
import json

from tests.support.devhub import installation_token


async def branch(rest, repo, name, files, *, base="main", message="change"):
    """Create branch `name` from `base` and commit `files` ({path: text}) on it, one by one."""
    _, _, ref = await rest.get(f"/repos/{repo}/git/ref/heads/{base}")
    status, _, _ = await rest.post(
        f"/repos/{repo}/git/refs", {"ref": f"refs/heads/{name}", "sha": ref["object"]["sha"]}
    )
    assert status == 201
    sha = ref["object"]["sha"]
    for path, text in files.items():
        sha = await commit_file(rest, repo, name, path, text, message=message)
    return sha


async def commit_file(rest, repo, branch_name, path, text, *, message="change"):
    """Create or update one file on a branch through the contents API; return the commit sha."""
    status, _, existing = await rest.get(f"/repos/{repo}/contents/{path}?ref={branch_name}")
    body = {
        "message": message,
        "content": base64.b64encode(text.encode()).decode(),
        "branch": branch_name,
    }
    if status == 200:
        body["sha"] = existing["sha"]
    status, _, answer = await rest.put(f"/repos/{repo}/contents/{path}", body)
    assert status in (200, 201), answer
    return answer["commit"]["sha"]


def payloads(devhub, event, action=None):
    """Return the payloads of the deliveries devhub recorded for an event (and action)."""
    return [
        json.loads(d.body)
        for d in devhub.state.deliveries
        if d.event == event and (action is None or d.action == action)
    ]


async def test_pull_request_lifecycle_with_webhooks(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    head = await branch(rest, org.repo, "feature", {"src/a.py": "print('a')\n"})
    status, headers, pull = await rest.post(
        f"/repos/{org.repo}/pulls",
        {"title": "Add a", "body": "Closes #99", "head": "feature", "base": "main", "draft": True},
    )
    assert status == 201, pull
    assert headers["Location"] == pull["url"]
    assert pull["number"] == 1
    assert pull["draft"] is True
    assert pull["head"] | {"repo": None, "user": None} == {
        "label": "acme:feature",
        "ref": "feature",
        "sha": head,
        "repo": None,
        "user": None,
    }
    assert pull["base"]["ref"] == "main"
    assert (pull["commits"], pull["changed_files"], pull["additions"]) == (1, 1, 1)
    assert pull["mergeable"] is True
    assert pull["mergeable_state"] == "draft"
    assert pull["node_id"].startswith("PR_")
    assert pull["html_url"].endswith("/acme/widgets/pull/1")
    # Pull requests are issues too: the next issue takes number 2.
    _, _, issue = await rest.post(f"/repos/{org.repo}/issues", {"title": "An issue"})
    assert issue["number"] == 2
    _, _, as_issue = await rest.get(f"/repos/{org.repo}/issues/1")
    assert as_issue["pull_request"]["html_url"] == pull["html_url"]
    # Edits, labels and close/reopen go out as pull_request events, not issues events.
    await rest.patch(f"/repos/{org.repo}/pulls/1", {"title": "Add module a"})
    await rest.post(f"/repos/{org.repo}/issues/1/labels", {"labels": ["coder:review"]})
    await rest.delete(f"/repos/{org.repo}/issues/1/labels/coder:review")
    status, _, closed = await rest.patch(f"/repos/{org.repo}/pulls/1", {"state": "closed"})
    assert (status, closed["state"], closed["merged"]) == (200, "closed", False)
    _, _, reopened = await rest.patch(f"/repos/{org.repo}/pulls/1", {"state": "open"})
    assert reopened["state"] == "open"
    # A push to the head branch is a `synchronize`.
    after = await commit_file(rest, org.repo, "feature", "src/b.py", "print('b')\n")
    delivery = await devhub.wait_for_delivery(event="pull_request", action="synchronize")
    sync = json.loads(delivery.body)
    assert (sync["before"], sync["after"]) == (head, after)
    assert sync["pull_request"]["head"]["sha"] == after
    assert sync["pull_request"]["commits"] == 2
    actions = [p["action"] for p in payloads(devhub, "pull_request")]
    assert actions == [
        "opened",
        "edited",
        "labeled",
        "unlabeled",
        "closed",
        "reopened",
        "synchronize",
    ]
    assert payloads(devhub, "issues") == [] or all(
        p["issue"]["number"] != 1 for p in payloads(devhub, "issues")
    )
    edited = payloads(devhub, "pull_request", "edited")[0]
    assert edited["changes"] == {"title": {"from": "Add a"}}


async def test_no_commits_between_branches_is_422(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    _, _, main = await rest.get(f"/repos/{org.repo}/git/ref/heads/main")
    await rest.post(
        f"/repos/{org.repo}/git/refs", {"ref": "refs/heads/same", "sha": main["object"]["sha"]}
    )
    status, _, answer = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Nothing", "head": "same", "base": "main"}
    )
    assert status == 422
    assert answer["errors"] == [
        {"resource": "PullRequest", "code": "custom", "message": "No commits between main and same"}
    ]
    # An empty commit (the base tree again) is still a commit.
    _, _, commit = await rest.get(f"/repos/{org.repo}/git/commits/{main['object']['sha']}")
    _, _, empty = await rest.post(
        f"/repos/{org.repo}/git/commits",
        {"message": "empty", "tree": commit["tree"]["sha"], "parents": [commit["sha"]]},
    )
    await rest.patch(f"/repos/{org.repo}/git/refs/heads/same", {"sha": empty["sha"]})
    status, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Empty", "head": "acme:same", "base": "main"}
    )
    assert status == 201, pull
    assert (pull["commits"], pull["changed_files"]) == (1, 0)
    status, _, again = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Again", "head": "same", "base": "main"}
    )
    assert status == 422
    assert again["errors"][0]["message"] == "A pull request already exists for acme:same."
    status, _, missing = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Gone", "head": "nope", "base": "main"}
    )
    assert status == 422
    assert missing["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]


async def test_concurrent_creates_open_one_pull_request(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "race", {"race.txt": "x"})
    create = {"title": "Race", "head": "race", "base": "main"}
    answers = await asyncio.gather(
        *(rest.post(f"/repos/{org.repo}/pulls", create) for _ in range(4))
    )
    assert sorted(status for status, _, _ in answers) == [201, 422, 422, 422]
    _, _, listed = await rest.get(f"/repos/{org.repo}/pulls?head=acme:race")
    assert len(listed) == 1


async def test_list_filters_files_and_commits(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "one", {"a.txt": "a\n", "b.txt": "b\n"})
    await branch(rest, org.repo, "two", {"README.md": "# widgets\nmore\n"})
    await rest.post(f"/repos/{org.repo}/pulls", {"title": "One", "head": "one", "base": "main"})
    await rest.post(f"/repos/{org.repo}/pulls", {"title": "Two", "head": "two", "base": "main"})
    _, _, listed = await rest.get(f"/repos/{org.repo}/pulls")
    assert [p["number"] for p in listed] == [2, 1]
    _, _, by_head = await rest.get(f"/repos/{org.repo}/pulls?head=acme:one&state=all")
    assert [p["number"] for p in by_head] == [1]
    _, _, none = await rest.get(f"/repos/{org.repo}/pulls?base=develop")
    assert none == []
    _, _, files = await rest.get(f"/repos/{org.repo}/pulls/1/files")
    assert [(f["filename"], f["status"], f["additions"]) for f in files] == [
        ("a.txt", "added", 1),
        ("b.txt", "added", 1),
    ]
    assert files[0]["patch"] == "@@ -0,0 +1 @@\n+a"
    _, _, changed = await rest.get(f"/repos/{org.repo}/pulls/2/files")
    assert [(f["filename"], f["status"]) for f in changed] == [("README.md", "modified")]
    _, _, commits = await rest.get(f"/repos/{org.repo}/pulls/1/commits")
    assert len(commits) == 2


async def test_merge_methods_and_merge_errors(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    _, _, issue = await rest.post(f"/repos/{org.repo}/issues", {"title": "Bug"})
    head = await branch(rest, org.repo, "fix", {"fix.txt": "fixed\n"})
    _, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls",
        {"title": "Fix", "body": f"Fixes #{issue['number']}", "head": "fix", "base": "main"},
    )
    number = pull["number"]
    status, _, stale = await rest.put(f"/repos/{org.repo}/pulls/{number}/merge", {"sha": "0" * 40})
    assert (status, stale["message"]) == (
        409,
        "Head branch was modified. Review and try the merge again.",
    )
    status, _, _ = await rest.get(f"/repos/{org.repo}/pulls/{number}/merge")
    assert status == 404
    status, _, merged = await rest.put(f"/repos/{org.repo}/pulls/{number}/merge", {"sha": head})
    assert status == 200, merged
    assert merged["merged"] is True
    _, _, commit = await rest.get(f"/repos/{org.repo}/git/commits/{merged['sha']}")
    assert [p["sha"] for p in commit["parents"]][1] == head
    assert commit["message"].startswith(f"Merge pull request #{number} from acme/fix")
    _, _, main = await rest.get(f"/repos/{org.repo}/git/ref/heads/main")
    assert main["object"]["sha"] == merged["sha"]
    status, _, _ = await rest.get(f"/repos/{org.repo}/pulls/{number}/merge")
    assert status == 204
    _, _, after = await rest.get(f"/repos/{org.repo}/pulls/{number}")
    assert (after["merged"], after["state"], after["merge_commit_sha"]) == (
        True,
        "closed",
        merged["sha"],
    )
    assert after["merged_by"]["login"] == "alice"
    status, _, again = await rest.put(f"/repos/{org.repo}/pulls/{number}/merge", {})
    assert (status, again["message"]) == (405, "Pull Request is not mergeable")
    # "Fixes #1" in the body closed the issue when the pull request landed on main.
    _, _, closed_issue = await rest.get(f"/repos/{org.repo}/issues/{issue['number']}")
    assert closed_issue["state"] == "closed"
    closed = payloads(devhub, "pull_request", "closed")
    assert closed[-1]["pull_request"]["merged"] is True
    pushes = [p for p in payloads(devhub, "push") if p["ref"] == "refs/heads/main"]
    assert pushes[-1]["after"] == merged["sha"]


async def test_squash_rebase_and_conflicts(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "squashme", {"s1.txt": "1\n", "s2.txt": "2\n"})
    await branch(rest, org.repo, "rebaseme", {"r1.txt": "1\n", "r2.txt": "2\n"})
    await branch(rest, org.repo, "clash", {"README.md": "theirs\n"})
    await commit_file(rest, org.repo, "main", "README.md", "ours\n")
    for title, head in (("Squash", "squashme"), ("Rebase", "rebaseme"), ("Clash", "clash")):
        await rest.post(f"/repos/{org.repo}/pulls", {"title": title, "head": head, "base": "main"})
    _, _, clash = await rest.get(f"/repos/{org.repo}/pulls/3")
    assert (clash["mergeable"], clash["mergeable_state"]) == (False, "dirty")
    status, _, refused = await rest.put(f"/repos/{org.repo}/pulls/3/merge", {})
    assert (status, refused["message"]) == (405, "Pull Request is not mergeable")
    status, _, squashed = await rest.put(
        f"/repos/{org.repo}/pulls/1/merge", {"merge_method": "squash"}
    )
    assert status == 200, squashed
    _, _, commit = await rest.get(f"/repos/{org.repo}/git/commits/{squashed['sha']}")
    assert len(commit["parents"]) == 1
    assert commit["message"].startswith("Squash (#1)")
    status, _, rebased = await rest.put(
        f"/repos/{org.repo}/pulls/2/merge", {"merge_method": "rebase"}
    )
    assert status == 200, rebased
    _, _, tip = await rest.get(f"/repos/{org.repo}/commits/{rebased['sha']}")
    assert [f["filename"] for f in tip["files"]] == ["r2.txt"]
    assert tip["commit"]["committer"]["email"] == "noreply@github.com"
    _, _, parent = await rest.get(f"/repos/{org.repo}/commits/{tip['parents'][0]['sha']}")
    assert [f["filename"] for f in parent["files"]] == ["r1.txt"]
    _, _, tree = await rest.get(f"/repos/{org.repo}/git/trees/main?recursive=1")
    paths = {entry["path"] for entry in tree["tree"]}
    assert {"s1.txt", "s2.txt", "r1.txt", "r2.txt", "README.md"} <= paths


async def test_ready_for_review_and_back_to_draft_via_graphql(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "wip", {"w.txt": "w\n"})
    _, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "WIP", "head": "wip", "base": "main", "draft": True}
    )
    token = await installation_token(admin, devhub, org.installation_id)
    bot = admin.rest(token)
    mutation = (
        "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
        "{ pullRequest { id number isDraft } } }"
    )
    status, _, answer = await bot.post(
        devhub.url + "/api/graphql", {"query": mutation, "variables": {"id": pull["node_id"]}}
    )
    assert status == 200, answer
    ready = answer["data"]["markPullRequestReadyForReview"]["pullRequest"]
    assert ready == {"id": pull["node_id"], "number": pull["number"], "isDraft": False}
    _, _, fetched = await rest.get(f"/repos/{org.repo}/pulls/{pull['number']}")
    assert fetched["draft"] is False
    delivery = await devhub.wait_for_delivery(event="pull_request", action="ready_for_review")
    assert json.loads(delivery.body)["sender"]["login"] == "coder[bot]"
    node_query = "query($id: ID!) { node(id: $id) { ... on PullRequest { number isDraft } } }"
    _, _, found = await bot.post(
        devhub.url + "/api/graphql", {"query": node_query, "variables": {"id": pull["node_id"]}}
    )
    assert found["data"]["node"] == {"number": pull["number"], "isDraft": False}
    back = (
        "mutation($id: ID!) { convertPullRequestToDraft(input: {pullRequestId: $id}) "
        "{ pullRequest { isDraft } } }"
    )
    _, _, drafted = await bot.post(
        devhub.url + "/api/graphql", {"query": back, "variables": {"id": pull["node_id"]}}
    )
    assert drafted["data"]["convertPullRequestToDraft"]["pullRequest"]["isDraft"] is True
    await devhub.wait_for_delivery(event="pull_request", action="converted_to_draft")
    _, _, missing = await bot.post(
        devhub.url + "/api/graphql", {"query": mutation, "variables": {"id": "PR_kgDOAAAAAAAA"}}
    )
    assert missing["errors"][0]["type"] == "NOT_FOUND"


async def test_reviews(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "rev", {"r.txt": "r\n"})
    _, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Review me", "head": "rev", "base": "main"}
    )
    reviews = f"/repos/{org.repo}/pulls/{pull['number']}/reviews"
    status, _, own = await rest.post(reviews, {"event": "APPROVE"})
    assert (status, own["errors"]) == (422, ["Can not approve your own pull request"])
    bob = await admin.create_user("bob")
    await admin.add_collaborator(org.repo, "bob", "push")
    status, _, review = await admin.rest(bob.token).post(
        reviews, {"event": "REQUEST_CHANGES", "body": "Please add tests."}
    )
    assert status == 200, review
    assert (review["state"], review["commit_id"]) == ("CHANGES_REQUESTED", pull["head"]["sha"])
    _, _, listed = await rest.get(reviews)
    assert [r["id"] for r in listed] == [review["id"]]
    delivery = await devhub.wait_for_delivery(event="pull_request_review", action="submitted")
    body = json.loads(delivery.body)
    assert body["review"]["state"] == "changes_requested"  # lower case in webhooks
    assert body["pull_request"]["number"] == pull["number"]


async def test_installation_needs_pull_requests_permission(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    await branch(rest, org.repo, "perm", {"p.txt": "p\n"})
    token = await installation_token(
        admin, devhub, org.installation_id, permissions={"contents": "write"}
    )
    status, _, answer = await admin.rest(token).post(
        f"/repos/{org.repo}/pulls", {"title": "No", "head": "perm", "base": "main"}
    )
    assert (status, answer["message"]) == (403, "Resource not accessible by integration")


async def test_get_commit_and_compare(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    _, _, main = await rest.get(f"/repos/{org.repo}/git/ref/heads/main")
    base = main["object"]["sha"]
    head = await branch(rest, org.repo, "topic", {"new.txt": "one\ntwo\n"})
    await commit_file(rest, org.repo, "main", "main.txt", "m\n")
    status, _, commit = await rest.get(f"/repos/{org.repo}/commits/topic")
    assert status == 200
    assert commit["sha"] == head
    assert commit["stats"] == {"total": 2, "additions": 2, "deletions": 0}
    assert [(f["filename"], f["status"]) for f in commit["files"]] == [("new.txt", "added")]
    status, _, compared = await rest.get(f"/repos/{org.repo}/compare/main...topic")
    assert status == 200
    assert (compared["status"], compared["ahead_by"], compared["behind_by"]) == ("diverged", 1, 1)
    assert compared["merge_base_commit"]["sha"] == base
    assert [c["sha"] for c in compared["commits"]] == [head]
    assert [f["filename"] for f in compared["files"]] == ["new.txt"]
    _, _, behind = await rest.get(f"/repos/{org.repo}/compare/topic...{base}")
    assert (behind["status"], behind["behind_by"]) == ("behind", 1)
    _, _, same = await rest.get(f"/repos/{org.repo}/compare/topic...topic")
    assert same["status"] == "identical"
    status, _, missing = await rest.get(f"/repos/{org.repo}/commits/nope")
    assert (status, missing["message"]) == (422, "No commit found for SHA: nope")
