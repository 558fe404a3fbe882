"""devhub's forks: forking, pull requests from forks, `refs/pull/N/head`, who may touch a fork."""

from __future__ import annotations

import json

from tests.support.devhub import installation_token
from tests.test_devhub_githttp import authed, git
from tests.test_devhub_pulls import branch, commit_file, payloads

FORK = "bob/widgets"


async def fork_with_branch(devhub, admin, org, tmp_path, *, branch_name="feature"):
    """Have bob fork acme/widgets and push one commit on `branch_name` of the fork over git."""
    bob = await admin.create_user("bob")
    await admin.fork(org.repo, bob.token)
    work = tmp_path / "fork"
    clone_url = authed(f"{devhub.url}/{FORK}.git", bob.token)
    code, output = await git("clone", "-q", clone_url, str(work), home=tmp_path)
    assert code == 0, output
    sha = await commit_and_push(work, tmp_path, branch_name, "feature.txt", "from the fork\n")
    return bob, work, sha


async def commit_and_push(work, home, branch_name, path, text):
    """Commit one file in a clone and push it to `branch_name`; return the new head sha."""
    (work / path).write_text(text)
    assert (await git("add", path, cwd=work, home=home))[0] == 0
    assert (await git("commit", "-q", "-m", f"Change {path}", cwd=work, home=home))[0] == 0
    code, output = await git(
        "push", "-q", "origin", f"HEAD:refs/heads/{branch_name}", cwd=work, home=home
    )
    assert code == 0, output
    return (await git("rev-parse", "HEAD", cwd=work, home=home))[1].strip()


async def test_a_fork_is_a_copy_owned_by_the_caller(devhub, admin, org):
    owner_rest = admin.rest(org.owner.token)
    extra = await branch(owner_rest, org.repo, "extra", {"extra.txt": "extra\n"})
    _, _, main = await owner_rest.get(f"/repos/{org.repo}/git/ref/heads/main")
    bob = await admin.create_user("bob")
    rest = admin.rest(bob.token)

    status, _, fork = await rest.post(f"/repos/{org.repo}/forks")
    assert status == 202, fork
    assert (fork["full_name"], fork["owner"]["login"], fork["fork"]) == (FORK, "bob", True)
    assert (fork["parent"]["full_name"], fork["source"]["full_name"]) == (org.repo, org.repo)
    assert (fork["private"], fork["default_branch"], fork["has_issues"]) == (False, "main", False)
    assert fork["permissions"]["admin"] is True
    _, _, parent = await rest.get(f"/repos/{org.repo}")
    assert (parent["fork"], parent["forks_count"], parent["forks"]) == (False, 1, 1)
    assert "parent" not in parent
    # The fork's git holds the parent's branches.
    _, _, refs = await rest.get(f"/repos/{FORK}/git/matching-refs/heads/")
    assert {r["ref"]: r["object"]["sha"] for r in refs} == {
        "refs/heads/extra": extra,
        "refs/heads/main": main["object"]["sha"],
    }
    # Forking again answers with the fork bob already has.
    status, _, again = await rest.post(f"/repos/{org.repo}/forks")
    assert (status, again["id"]) == (202, fork["id"])
    _, _, listed = await rest.get(f"/repos/{org.repo}/forks")
    assert [f["full_name"] for f in listed] == [FORK]

    # Into an organization, renamed, with the default branch only; a fork of a fork names the
    # network's source.
    await admin.create_org("bobs", "bob")
    gizmo = await admin.fork(
        FORK, bob.token, organization="bobs", name="gizmo", default_branch_only=True
    )
    assert (gizmo["full_name"], gizmo["owner"]["type"]) == ("bobs/gizmo", "Organization")
    assert (gizmo["parent"]["full_name"], gizmo["source"]["full_name"]) == (FORK, org.repo)
    _, _, refs = await rest.get("/repos/bobs/gizmo/git/matching-refs/heads/")
    assert [r["ref"] for r in refs] == ["refs/heads/main"]


async def test_fork_refusals(devhub, admin, org):
    bob = await admin.create_user("bob")
    rest = admin.rest(bob.token)
    status, _, body = await admin.rest(None).post(f"/repos/{org.repo}/forks")
    assert (status, body["message"]) == (401, "Requires authentication")
    status, _, _ = await rest.post(f"/repos/{org.repo}/forks", {"organization": "acme"})
    assert status == 403  # bob is not a member of acme
    await admin.create_repo("acme", "empty", org.owner.token, auto_init=False)
    status, _, body = await rest.post("/repos/acme/empty/forks")
    assert status == 403
    assert body["message"].startswith("The repository exists, but it contains no Git content.")
    token = await installation_token(admin, devhub, org.installation_id)
    status, _, body = await admin.rest(token).post(f"/repos/{org.repo}/forks")
    assert (status, body["message"]) == (403, "Resource not accessible by integration")


async def test_a_private_fork_inherits_the_parents_access(devhub, admin, org, tmp_path):
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    bob = await admin.create_user("bob")
    carol = await admin.create_user("carol")
    await admin.add_collaborator("acme/secret", "bob", "pull")
    fork = await admin.fork("acme/secret", bob.token)
    assert (fork["full_name"], fork["private"], fork["visibility"]) == (
        "bob/secret",
        True,
        "private",
    )
    # acme's owner reaches the private fork through the parent; others do not.
    assert (await admin.rest(org.owner.token).get("/repos/bob/secret"))[0] == 200
    assert (await admin.rest(carol.token).get("/repos/bob/secret"))[0] == 404
    # The app is installed on acme, not on bob: its token sees nothing of bob's private fork.
    token = await installation_token(admin, devhub, org.installation_id)
    assert (await admin.rest(token).get("/repos/bob/secret"))[0] == 404
    clone_url = authed(f"{devhub.url}/bob/secret.git", token)
    code, output = await git("clone", "-q", clone_url, str(tmp_path / "c"), home=tmp_path)
    assert code != 0
    assert "not found" in output.lower()


async def test_a_pull_request_from_a_fork(devhub, admin, org, receiver, tmp_path):
    devhub.webhook_url = receiver.url
    bob, work, head = await fork_with_branch(devhub, admin, org, tmp_path)
    rest = admin.rest(bob.token)
    status, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls",
        {"title": "From the fork", "head": "bob:feature", "base": "main"},
    )
    assert status == 201, pull
    assert pull["head"]["label"] == "bob:feature"
    assert (pull["head"]["ref"], pull["head"]["sha"]) == ("feature", head)
    assert pull["head"]["user"]["login"] == "bob"
    assert (pull["head"]["repo"]["full_name"], pull["head"]["repo"]["fork"]) == (FORK, True)
    assert (pull["base"]["label"], pull["base"]["repo"]["full_name"]) == ("acme:main", org.repo)
    assert pull["maintainer_can_modify"] is True  # bob may push to his fork, so he grants it
    assert (pull["commits"], pull["changed_files"], pull["mergeable"]) == (1, 1, True)
    _, _, files = await rest.get(f"/repos/{org.repo}/pulls/1/files")
    assert [f["filename"] for f in files] == ["feature.txt"]
    _, _, listed = await rest.get(f"/repos/{org.repo}/pulls?head=bob:feature")
    assert [p["number"] for p in listed] == [1]
    _, _, listed = await rest.get(f"/repos/{org.repo}/pulls?head=acme:feature")
    assert listed == []
    status, _, body = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Again", "head": "bob:feature", "base": "main"}
    )
    assert (status, body["errors"][0]["message"]) == (
        422,
        "A pull request already exists for bob:feature.",
    )

    # The app, installed on acme, hears of it with the fork as the head repository.
    opened = await devhub.wait_for_delivery(event="pull_request", action="opened")
    payload = json.loads(opened.body)
    assert payload["repository"]["full_name"] == org.repo
    assert payload["pull_request"]["head"]["repo"]["full_name"] == FORK
    assert payload["pull_request"]["head"]["label"] == "bob:feature"

    # The base repository keeps the head as refs/pull/1/head; the app's token fetches it there.
    token = await installation_token(admin, devhub, org.installation_id)
    base_url = authed(f"{devhub.url}/{org.repo}.git", token)
    code, output = await git("ls-remote", base_url, "refs/pull/*", home=tmp_path)
    assert (code, output.split()) == (0, [head, "refs/pull/1/head"])
    checkout = tmp_path / "base"
    assert (await git("clone", "-q", base_url, str(checkout), home=tmp_path))[0] == 0
    code, output = await git(
        "fetch", "-q", "origin", "refs/pull/1/head", cwd=checkout, home=tmp_path
    )
    assert code == 0, output
    fetched = (await git("rev-parse", "FETCH_HEAD", cwd=checkout, home=tmp_path))[1].strip()
    assert fetched == head

    # A push to the fork's branch moves the pull request and says `synchronize` to acme's app.
    after = await commit_and_push(work, tmp_path, "feature", "more.txt", "more\n")
    synchronize = await devhub.wait_for_delivery(event="pull_request", action="synchronize")
    payload = json.loads(synchronize.body)
    assert (payload["before"], payload["after"]) == (head, after)
    assert payload["pull_request"]["head"]["sha"] == after
    assert payload["sender"]["login"] == "bob"
    _, _, pull = await rest.get(f"/repos/{org.repo}/pulls/1")
    assert (pull["head"]["sha"], pull["commits"]) == (after, 2)
    code, output = await git("ls-remote", base_url, "refs/pull/1/head", home=tmp_path)
    assert output.split() == [after, "refs/pull/1/head"]
    # The fork's pushes are the fork's: acme's app is not told about them.
    assert all(p["repository"]["full_name"] == org.repo for p in payloads(devhub, "push"))


async def test_the_fork_is_not_the_apps_to_change(devhub, admin, org, tmp_path):
    bob, _work, _head = await fork_with_branch(devhub, admin, org, tmp_path)
    await admin.rest(bob.token).post(
        f"/repos/{org.repo}/pulls",
        {"title": "From the fork", "head": "bob:feature", "base": "main"},
    )
    token = await installation_token(admin, devhub, org.installation_id)
    app_rest = admin.rest(token)
    # Installation tokens read public repositories, so the app sees the fork, read-only.
    status, _, fork = await app_rest.get(f"/repos/{FORK}")
    assert status == 200
    assert (fork["permissions"]["pull"], fork["permissions"]["push"]) == (True, False)
    _, _, main = await app_rest.get(f"/repos/{FORK}/git/ref/heads/main")
    status, _, body = await app_rest.post(
        f"/repos/{FORK}/git/refs", {"ref": "refs/heads/coder/x", "sha": main["object"]["sha"]}
    )
    assert (status, body["message"]) == (403, "Resource not accessible by integration")
    # git: the app's token clones the fork but may not push to it.
    work = tmp_path / "app"
    code, output = await git(
        "clone", "-q", authed(f"{devhub.url}/{FORK}.git", token), str(work), home=tmp_path
    )
    assert code == 0, output
    (work / "app.txt").write_text("app\n")
    await git("add", "app.txt", cwd=work, home=tmp_path)
    await git("commit", "-q", "-m", "app", cwd=work, home=tmp_path)
    code, output = await git("push", "origin", "HEAD:refs/heads/feature", cwd=work, home=tmp_path)
    assert code != 0
    assert "Permission to bob/widgets.git denied to coder[bot]." in output
    # refs/pull/* stay GitHub's: nobody pushes them, not even the base repository's owner.
    base = authed(f"{devhub.url}/{org.repo}.git", org.owner.token)
    code, output = await git("push", base, "HEAD:refs/pull/1/head", cwd=work, home=tmp_path)
    assert code != 0
    assert "deny updating a hidden ref" in output


async def test_pull_request_head_resolution_and_refusals(devhub, admin, org, tmp_path):
    await fork_with_branch(devhub, admin, org, tmp_path)
    alice = admin.rest(org.owner.token)
    status, _, body = await alice.post(
        f"/repos/{org.repo}/pulls", {"title": "x", "head": "carol:feature", "base": "main"}
    )
    assert (status, body["errors"][0]["field"]) == (422, "head")
    # Only someone who may push to the fork can let the base's maintainers edit its branch.
    status, _, body = await alice.post(
        f"/repos/{org.repo}/pulls",
        {"title": "x", "head": "bob:feature", "base": "main", "maintainer_can_modify": True},
    )
    assert status == 422
    assert (
        body["errors"][0]["message"] == "Fork collab can't be granted by someone without permission"
    )
    status, _, pull = await alice.post(
        f"/repos/{org.repo}/pulls", {"title": "x", "head": "bob:feature", "base": "main"}
    )
    assert (status, pull["maintainer_can_modify"], pull["user"]["login"]) == (201, False, "alice")
    # A fork in the base's own organization is named with `head_repo`.
    await admin.fork(org.repo, org.owner.token, organization="acme", name="widgets-copy")
    await branch(alice, "acme/widgets-copy", "topic", {"topic.txt": "topic\n"})
    status, _, pull = await alice.post(
        f"/repos/{org.repo}/pulls",
        {"title": "y", "head": "acme:topic", "head_repo": "acme/widgets-copy", "base": "main"},
    )
    assert status == 201, pull
    assert (pull["head"]["label"], pull["head"]["repo"]["full_name"]) == (
        "acme:topic",
        "acme/widgets-copy",
    )


async def test_merging_a_pull_request_from_a_fork(devhub, admin, org, tmp_path):
    bob, _work, head = await fork_with_branch(devhub, admin, org, tmp_path)
    await admin.rest(bob.token).post(
        f"/repos/{org.repo}/pulls",
        {"title": "From the fork", "head": "bob:feature", "base": "main"},
    )
    alice = admin.rest(org.owner.token)
    # A branch of the same name in the base repository is not the pull request's head.
    await branch(alice, org.repo, "feature", {"other.txt": "other\n"})
    _, _, pull = await alice.get(f"/repos/{org.repo}/pulls/1")
    assert pull["head"]["sha"] == head
    status, _, merged = await alice.put(f"/repos/{org.repo}/pulls/1/merge", {"sha": head})
    assert status == 200, merged
    _, _, commit = await alice.get(f"/repos/{org.repo}/git/commits/{merged['sha']}")
    assert commit["message"].startswith("Merge pull request #1 from bob/feature")
    assert [p["sha"] for p in commit["parents"]][1] == head
    _, _, content = await alice.get(f"/repos/{org.repo}/contents/feature.txt")
    assert content["type"] == "file"


async def test_ci_on_a_fork_pull_request_leaves_it_out_of_pull_requests(
    devhub, admin, org, tmp_path
):
    bob, _work, head = await fork_with_branch(devhub, admin, org, tmp_path)
    await admin.rest(bob.token).post(
        f"/repos/{org.repo}/pulls",
        {"title": "From the fork", "head": "bob:feature", "base": "main"},
    )
    run = await admin.report_ci(org.repo, head, "tests", "success")
    rest = admin.rest(org.owner.token)
    _, _, check_run = await rest.get(f"/repos/{org.repo}/check-runs/{run['check_run_id']}")
    assert check_run["pull_requests"] == []  # GitHub does not detect pushes to forks here
    _, _, workflow_run = await rest.get(f"/repos/{org.repo}/actions/runs/{run['id']}")
    assert (workflow_run["event"], workflow_run["head_branch"]) == ("pull_request", "feature")
    assert workflow_run["head_repository"]["full_name"] == FORK
    assert workflow_run["pull_requests"] == []
    # The base moving on leaves the fork's head where it is.
    await commit_file(rest, org.repo, "main", "later.txt", "later\n")
    _, _, pull = await rest.get(f"/repos/{org.repo}/pulls/1")
    assert (pull["head"]["sha"], pull["commits"]) == (head, 1)
