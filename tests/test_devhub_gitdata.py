"""devhub's git database and contents APIs: atomic refs, fast-forward checks, contents CAS."""

from __future__ import annotations

import base64
import json

from tests.support.devhub import installation_token


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def head(rest, repo: str, branch: str = "main") -> str:
    status, _, ref = await rest.get(f"/repos/{repo}/git/ref/heads/{branch}")
    assert status == 200, ref
    return str(ref["object"]["sha"])


async def commit_file(rest, repo: str, parent: str, path: str, text: str) -> str:
    """Build blob -> tree -> commit through the git database API; return the commit sha."""
    status, _, blob = await rest.post(
        f"/repos/{repo}/git/blobs", {"content": b64(text), "encoding": "base64"}
    )
    assert status == 201
    _, _, parent_commit = await rest.get(f"/repos/{repo}/git/commits/{parent}")
    status, _, tree = await rest.post(
        f"/repos/{repo}/git/trees",
        {
            "base_tree": parent_commit["tree"]["sha"],
            "tree": [{"path": path, "mode": "100644", "type": "blob", "sha": blob["sha"]}],
        },
    )
    assert status == 201
    status, _, commit = await rest.post(
        f"/repos/{repo}/git/commits",
        {"message": f"add {path}", "tree": tree["sha"], "parents": [parent]},
    )
    assert status == 201
    assert commit["parents"][0]["sha"] == parent
    assert commit["author"]["name"] == "alice"
    return str(commit["sha"])


async def test_blob_tree_commit_round_trip(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    main = await head(rest, org.repo)
    sha = await commit_file(rest, org.repo, main, "docs/a.txt", "hello\n")
    status, _, tree = await rest.get(f"/repos/{org.repo}/git/trees/{sha}?recursive=1")
    assert status == 200
    assert {e["path"] for e in tree["tree"]} == {"README.md", "docs", "docs/a.txt"}
    blob = next(e for e in tree["tree"] if e["path"] == "docs/a.txt")
    status, _, got = await rest.get(f"/repos/{org.repo}/git/blobs/{blob['sha']}")
    assert status == 200
    assert base64.b64decode(got["content"]) == b"hello\n"
    assert got["encoding"] == "base64"
    assert (await rest.get(f"/repos/{org.repo}/git/blobs/{'0' * 40}"))[0] == 404


async def test_create_ref_is_atomic(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    main = await head(rest, org.repo)
    body = {"ref": "refs/heads/coder/42-fix", "sha": main}
    status, _, ref = await rest.post(f"/repos/{org.repo}/git/refs", body)
    assert status == 201
    assert ref["ref"] == "refs/heads/coder/42-fix"
    assert ref["object"] == {
        "sha": main,
        "type": "commit",
        "url": f"{devhub.api_url}/repos/{org.repo}/git/commits/{main}",
    }
    status, _, body = await rest.post(f"/repos/{org.repo}/git/refs", body)
    assert (status, body["message"]) == (422, "Reference already exists")
    _, _, matching = await rest.get(f"/repos/{org.repo}/git/matching-refs/heads/coder/")
    assert [r["ref"] for r in matching] == ["refs/heads/coder/42-fix"]


async def test_update_ref_refuses_non_fast_forward(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    main = await head(rest, org.repo)
    ahead = await commit_file(rest, org.repo, main, "a.txt", "a")
    sideways = await commit_file(rest, org.repo, main, "b.txt", "b")
    path = f"/repos/{org.repo}/git/refs/heads/main"
    status, _, ref = await rest.patch(path, {"sha": ahead})
    assert (status, ref["object"]["sha"]) == (200, ahead)
    status, _, body = await rest.patch(path, {"sha": sideways, "force": False})
    assert (status, body["message"]) == (422, "Update is not a fast forward")
    status, _, ref = await rest.patch(path, {"sha": sideways, "force": True})
    assert (status, ref["object"]["sha"]) == (200, sideways)


async def test_delete_ref(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    main = await head(rest, org.repo)
    await rest.post(f"/repos/{org.repo}/git/refs", {"ref": "refs/heads/tmp", "sha": main})
    assert (await rest.delete(f"/repos/{org.repo}/git/refs/heads/tmp"))[0] == 204
    status, _, body = await rest.delete(f"/repos/{org.repo}/git/refs/heads/tmp")
    assert (status, body["message"]) == (422, "Reference does not exist")
    assert (await rest.get(f"/repos/{org.repo}/git/ref/heads/tmp"))[0] == 404


async def test_contents_put_is_compare_and_swap(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    path = f"/repos/{org.repo}/contents/state/claims.json"
    status, _, created = await rest.put(path, {"message": "claims", "content": b64("{}")})
    assert status == 201
    first_sha = created["content"]["sha"]
    assert created["commit"]["message"] == "claims"
    status, _, updated = await rest.put(
        path, {"message": "update", "content": b64('{"a": 1}'), "sha": first_sha}
    )
    assert status == 200
    second_sha = updated["content"]["sha"]
    # A writer that read the first version loses the race.
    status, _, body = await rest.put(
        path, {"message": "stale", "content": b64('{"b": 2}'), "sha": first_sha}
    )
    assert status == 409
    assert body["message"] == f"state/claims.json does not match {first_sha}"
    # Updating an existing file without a sha is GitHub's 422.
    status, _, body = await rest.put(path, {"message": "blind", "content": b64("x")})
    assert status == 422
    assert body["message"] == 'Invalid request.\n\n"sha" wasn\'t supplied.'
    status, _, current = await rest.get(path)
    assert status == 200
    assert current["sha"] == second_sha
    assert json.loads(base64.b64decode(current["content"])) == {"a": 1}
    devhub.contract_violations.clear()  # the sha-less update above is invalid on purpose


async def test_contents_on_a_branch_and_delete(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    main = await head(rest, org.repo)
    await rest.post(f"/repos/{org.repo}/git/refs", {"ref": "refs/heads/coder/state", "sha": main})
    path = f"/repos/{org.repo}/contents/queue/main.json"
    status, _, created = await rest.put(
        path, {"message": "q", "content": b64("[]"), "branch": "coder/state"}
    )
    assert status == 201
    assert (await rest.get(path))[0] == 404  # not on main
    assert (await rest.get(f"{path}?ref=coder/state"))[0] == 200
    status, _, body = await rest.delete(
        path, {"message": "rm", "sha": "0" * 40, "branch": "coder/state"}
    )
    assert (status, body["message"]) == (409, f"queue/main.json does not match {'0' * 40}")
    status, _, deleted = await rest.delete(
        path, {"message": "rm", "sha": created["content"]["sha"], "branch": "coder/state"}
    )
    assert (status, deleted["content"]) == (200, None)
    assert (await rest.get(f"{path}?ref=coder/state"))[0] == 404


async def test_directory_listing_and_branches(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    contents = f"/repos/{org.repo}/contents/src"
    await rest.put(f"{contents}/app.py", {"message": "m", "content": b64("x")})
    await rest.put(f"{contents}/lib/util.py", {"message": "m", "content": b64("y")})
    status, _, listing = await rest.get(contents)
    assert status == 200
    assert {(e["path"], e["type"]) for e in listing} == {
        ("src/app.py", "file"),
        ("src/lib", "dir"),
    }
    status, _, branches = await rest.get(f"/repos/{org.repo}/branches")
    assert [b["name"] for b in branches] == ["main"]
    assert branches[0]["protected"] is False
    status, _, body = await rest.get(f"/repos/{org.repo}/branches/nope")
    assert (status, body["message"]) == (404, "Branch not found")


async def test_readers_cannot_write_and_tokens_need_contents_write(devhub, admin, org):
    carol = await admin.create_user("carol")
    await admin.add_collaborator(org.repo, "carol", "pull")
    rest = admin.rest(carol.token)
    status, _, _ = await rest.put(
        f"/repos/{org.repo}/contents/x.txt", {"message": "m", "content": b64("x")}
    )
    assert status == 404  # GitHub hides write endpoints from readers
    token = await installation_token(
        admin, devhub, org.installation_id, permissions={"contents": "read"}
    )
    main = await head(admin.rest(token), org.repo)
    status, _, body = await admin.rest(token).post(
        f"/repos/{org.repo}/git/refs", {"ref": "refs/heads/x", "sha": main}
    )
    assert (status, body["message"]) == (403, "Resource not accessible by integration")


async def test_workflow_files_need_the_workflows_permission(devhub, admin, org):
    token = await installation_token(
        admin, devhub, org.installation_id, permissions={"contents": "write"}
    )
    path = f"/repos/{org.repo}/contents/.github/workflows/coder.yml"
    status, _, _ = await admin.rest(token).put(path, {"message": "m", "content": b64("on: push")})
    assert status == 403
    full = await installation_token(admin, devhub, org.installation_id)
    status, _, _ = await admin.rest(full).put(path, {"message": "m", "content": b64("on: push")})
    assert status == 201


async def test_ref_changes_send_push_and_create_webhooks(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    rest = admin.rest(org.owner.token)
    main = await head(rest, org.repo)
    await rest.post(f"/repos/{org.repo}/git/refs", {"ref": "refs/heads/feature", "sha": main})
    await rest.put(
        f"/repos/{org.repo}/contents/f.txt",
        {"message": "feature work", "content": b64("f"), "branch": "feature"},
    )
    push = await devhub.wait_for_delivery(
        event="push", predicate=lambda d: json.loads(d.body)["created"] is False
    )
    payload = json.loads(push.body)
    assert payload["ref"] == "refs/heads/feature"
    assert payload["before"] == main
    assert [c["message"] for c in payload["commits"]] == ["feature work"]
    assert payload["commits"][0]["added"] == ["f.txt"]
    assert payload["head_commit"]["id"] == payload["after"]
    assert payload["pusher"]["name"] == "alice"
    assert payload["repository"]["full_name"] == org.repo
    assert isinstance(payload["repository"]["created_at"], int)
    created = await devhub.wait_for_delivery(
        event="push", predicate=lambda d: json.loads(d.body)["created"] is True
    )
    assert json.loads(created.body)["commits"] == []  # no commits new to the repository
