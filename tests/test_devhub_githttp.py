"""Git over smart HTTP against devhub: clone and push with tokens, access rules, push webhooks."""

from __future__ import annotations

import asyncio
import json
import os

from tests.support.devhub import installation_token


async def git(*args: str, cwd=None, home) -> tuple[int, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.com",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.com",
    }
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def authed(url: str, token: str) -> str:
    return url.replace("http://", f"http://x-access-token:{token}@")


async def test_clone_commit_push_and_the_push_webhook(devhub, admin, org, receiver, tmp_path):
    devhub.webhook_url = receiver.url
    clone_url = f"{devhub.url}/{org.repo}.git"
    work = tmp_path / "work"
    code, output = await git("clone", authed(clone_url, org.owner.token), str(work), home=tmp_path)
    assert code == 0, output
    assert (work / "README.md").is_file()
    (work / "hello.txt").write_text("hello\n")
    assert (await git("add", "hello.txt", cwd=work, home=tmp_path))[0] == 0
    assert (await git("commit", "-m", "Say hello", cwd=work, home=tmp_path))[0] == 0
    code, output = await git("push", "origin", "HEAD:main", cwd=work, home=tmp_path)
    assert code == 0, output

    push = await devhub.wait_for_delivery(event="push")
    payload = json.loads(push.body)
    assert payload["ref"] == "refs/heads/main"
    assert [c["message"].strip() for c in payload["commits"]] == ["Say hello"]
    assert payload["commits"][0]["added"] == ["hello.txt"]
    assert payload["pusher"]["name"] == "alice"
    assert payload["sender"]["login"] == "alice"
    _, _, ref = await admin.rest(org.owner.token).get(f"/repos/{org.repo}/git/ref/heads/main")
    assert ref["object"]["sha"] == payload["after"]


async def test_new_branch_push_by_an_installation(devhub, admin, org, receiver, tmp_path):
    devhub.webhook_url = receiver.url
    token = await installation_token(admin, devhub, org.installation_id)
    work = tmp_path / "work"
    clone_url = authed(f"{devhub.url}/{org.repo}.git", token)
    assert (await git("clone", clone_url, str(work), home=tmp_path))[0] == 0
    (work / "x.txt").write_text("x\n")
    await git("add", "x.txt", cwd=work, home=tmp_path)
    await git("commit", "-m", "x", cwd=work, home=tmp_path)
    code, output = await git("push", "origin", "HEAD:refs/heads/coder/1-x", cwd=work, home=tmp_path)
    assert code == 0, output
    # coder's app.yml subscribes to `push` (not `create`): a new branch is a push with created.
    push = await devhub.wait_for_delivery(event="push")
    payload = json.loads(push.body)
    assert (payload["ref"], payload["created"]) == ("refs/heads/coder/1-x", True)
    assert payload["sender"]["login"] == "coder[bot]"
    assert [c["message"].strip() for c in payload["commits"]] == ["x"]
    status, _, branch = await admin.rest(token).get(f"/repos/{org.repo}/branches/coder/1-x")
    assert status == 200
    assert branch["commit"]["commit"]["message"].strip() == "x"
    # git tries without credentials first and sends them after devhub's 401 challenge.
    pushes = [r for r in await admin.requests() if r["path"].endswith("/git-receive-pack")]
    assert [(r["method"], r["status"], r["token_owner"]) for r in pushes] == [
        ("POST", 200, "coder[bot]")
    ]


async def test_private_repo_needs_credentials(devhub, admin, org, tmp_path):
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    url = f"{devhub.url}/acme/secret.git"
    code, output = await git("clone", url, str(tmp_path / "anon"), home=tmp_path)
    assert code != 0
    assert "Authentication failed" in output or "could not read Username" in output
    eve = await admin.create_user("eve")
    code, output = await git("clone", authed(url, eve.token), str(tmp_path / "eve"), home=tmp_path)
    assert code != 0
    assert "not found" in output.lower()
    code, _ = await git("clone", authed(url, org.owner.token), str(tmp_path / "ok"), home=tmp_path)
    assert code == 0


async def test_readers_and_read_tokens_cannot_push(devhub, admin, org, tmp_path):
    carol = await admin.create_user("carol")
    await admin.add_collaborator(org.repo, "carol", "pull")
    read_token = await installation_token(
        admin, devhub, org.installation_id, permissions={"contents": "read"}
    )
    for name, token in (("carol", carol.token), ("bot", read_token)):
        work = tmp_path / name
        url = authed(f"{devhub.url}/{org.repo}.git", token)
        assert (await git("clone", url, str(work), home=tmp_path))[0] == 0
        (work / "y.txt").write_text("y\n")
        await git("add", "y.txt", cwd=work, home=tmp_path)
        await git("commit", "-m", "y", cwd=work, home=tmp_path)
        code, output = await git("push", "origin", "HEAD:main", cwd=work, home=tmp_path)
        assert code != 0, name
        assert "denied" in output or "403" in output, output


async def test_unknown_repository_is_404(devhub, admin, org):
    async with admin.session.get(
        f"{devhub.url}/acme/nope.git/info/refs?service=git-upload-pack"
    ) as response:
        assert response.status == 404
