"""devhub's users, organizations, repositories and collaborators."""

from __future__ import annotations

from tests.support.devhub import installation_token


async def test_user_and_org_lookups(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    status, _, me = await rest.get("/user")
    assert status == 200
    assert me["login"] == "alice"
    assert me["user_view_type"] == "private"
    assert "total_private_repos" in me
    status, _, other = await admin.rest(None).get("/users/alice")
    assert status == 200
    assert "total_private_repos" not in other
    status, _, acme = await rest.get("/orgs/acme")
    assert (status, acme["login"], acme["type"]) == (200, "acme", "Organization")
    assert acme["public_repos"] == 1
    assert (await rest.get("/orgs/alice"))[0] == 404
    assert (await rest.get("/users/nobody"))[0] == 404


async def test_installation_token_cannot_read_user(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    status, _, body = await admin.rest(token).get("/user")
    assert (status, body["message"]) == (403, "Resource not accessible by integration")


async def test_org_memberships(devhub, admin, org):
    bob = await admin.create_user("bob")
    alice_rest = admin.rest(org.owner.token)
    status, _, membership = await alice_rest.put("/orgs/acme/memberships/bob", {"role": "member"})
    assert status == 200
    assert (membership["state"], membership["role"]) == ("active", "member")
    assert membership["user"]["login"] == "bob"
    status, _, seen = await admin.rest(bob.token).get("/orgs/acme/memberships/alice")
    assert (status, seen["role"]) == (200, "admin")
    # A member is not an owner and cannot change memberships.
    status, _, _ = await admin.rest(bob.token).put("/orgs/acme/memberships/bob", {"role": "admin"})
    assert status == 403
    outsider = await admin.create_user("eve")
    assert (await admin.rest(outsider.token).get("/orgs/acme/memberships/bob"))[0] == 404


async def test_app_reads_memberships_with_members_read(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    status, _, membership = await admin.rest(token).get("/orgs/acme/memberships/alice")
    assert (status, membership["role"]) == (200, "admin")


async def test_repository_json_is_complete_and_points_at_devhub(devhub, admin, org):
    status, _, repo = await admin.rest(org.owner.token).get(f"/repos/{org.repo}")
    assert status == 200
    assert repo["full_name"] == "acme/widgets"
    assert repo["default_branch"] == "main"
    assert repo["clone_url"] == f"{devhub.url}/acme/widgets.git"
    assert repo["url"] == f"{devhub.api_url}/repos/acme/widgets"
    assert repo["html_url"] == f"{devhub.url}/acme/widgets"
    assert repo["owner"]["login"] == "acme"
    assert repo["organization"]["login"] == "acme"
    assert repo["permissions"] == {
        "admin": True,
        "maintain": True,
        "push": True,
        "triage": True,
        "pull": True,
    }


async def test_auto_init_creates_a_real_commit(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    status, _, branch = await rest.get(f"/repos/{org.repo}/branches/main")
    assert status == 200
    assert branch["commit"]["commit"]["message"] == "Initial commit"
    status, _, readme = await rest.get(f"/repos/{org.repo}/contents/README.md")
    assert status == 200
    assert readme["name"] == "README.md"


async def test_create_repo_errors(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    status, _, body = await rest.post("/orgs/acme/repos", {"name": "widgets"})
    assert status == 422
    assert body["message"] == "Repository creation failed."
    assert body["errors"][0]["message"] == "name already exists on this account"
    outsider = await admin.create_user("eve")
    status, _, body = await admin.rest(outsider.token).post("/orgs/acme/repos", {"name": "x"})
    assert status == 403
    assert body["message"].startswith("You need admin access to the organization")
    status, _, repo = await admin.rest(outsider.token).post("/user/repos", {"name": "x"})
    assert (status, repo["full_name"], repo["owner"]["type"]) == (201, "eve/x", "User")


async def test_private_repos_are_hidden_from_outsiders(devhub, admin, org):
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    outsider = await admin.create_user("eve")
    rest = admin.rest(outsider.token)
    assert (await rest.get("/repos/acme/secret"))[0] == 404
    assert (await admin.rest(None).get("/repos/acme/secret"))[0] == 404
    _, _, listed = await rest.get("/orgs/acme/repos")
    assert [r["name"] for r in listed] == ["widgets"]
    _, _, all_repos = await admin.rest(org.owner.token).get("/orgs/acme/repos?sort=full_name")
    assert [r["name"] for r in all_repos] == ["secret", "widgets"]


async def test_user_repos_lists_what_the_user_can_reach(devhub, admin, org):
    bob = await admin.create_user("bob")
    await admin.create_repo("bob", "own", bob.token)
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    await admin.add_collaborator("acme/secret", "bob", "push")
    status, _, repos = await admin.rest(bob.token).get("/user/repos")
    assert status == 200
    assert [r["full_name"] for r in repos] == ["acme/secret", "bob/own"]
    push = {r["full_name"]: r["permissions"]["push"] for r in repos}
    assert push == {"acme/secret": True, "bob/own": True}


async def test_collaborators_invite_then_update(devhub, admin, org):
    bob = await admin.create_user("bob")
    rest = admin.rest(org.owner.token)
    path = f"/repos/{org.repo}/collaborators/bob"
    assert (await rest.get(path))[0] == 404
    status, _, invitation = await rest.put(path, {"permission": "triage"})
    assert status == 201
    assert invitation["permissions"] == "triage"
    assert invitation["invitee"]["login"] == "bob"
    assert (await rest.get(path))[0] == 204
    status, _, _ = await rest.put(path, {"permission": "maintain"})
    assert status == 204
    status, _, listed = await rest.get(f"/repos/{org.repo}/collaborators")
    assert status == 200
    roles = {c["login"]: c["role_name"] for c in listed}
    assert roles == {"alice": "admin", "bob": "maintain"}
    assert (await admin.rest(bob.token).get(f"/repos/{org.repo}/collaborators"))[0] == 200
    assert (await rest.delete(path))[0] == 204
    assert (await rest.get(path))[0] == 404


async def test_permission_endpoint_folds_roles_like_github(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    expected = {
        "pull": ("read", "read"),
        "triage": ("read", "triage"),
        "push": ("write", "write"),
        "maintain": ("write", "maintain"),
        "admin": ("admin", "admin"),
    }
    for index, (given, (permission, role_name)) in enumerate(expected.items()):
        login = f"user-{index}"
        await admin.create_user(login)
        await admin.add_collaborator(org.repo, login, given)
        status, _, body = await rest.get(f"/repos/{org.repo}/collaborators/{login}/permission")
        assert status == 200
        assert (body["permission"], body["role_name"]) == (permission, role_name), given
        assert body["user"]["login"] == login
    _, _, owner = await rest.get(f"/repos/{org.repo}/collaborators/alice/permission")
    assert owner["permission"] == "admin"  # org owners are admins on org repositories
    await admin.create_user("stranger")
    _, _, stranger = await rest.get(f"/repos/{org.repo}/collaborators/stranger/permission")
    assert stranger["permission"] == "read"  # a public repository


async def test_reader_cannot_list_collaborators_or_add_them(devhub, admin, org):
    carol = await admin.create_user("carol")
    await admin.add_collaborator(org.repo, "carol", "pull")
    rest = admin.rest(carol.token)
    status, _, body = await rest.get(f"/repos/{org.repo}/collaborators")
    assert (status, body["message"]) == (
        403,
        "Must have push access to view repository collaborators.",
    )
    status, _, _ = await rest.put(f"/repos/{org.repo}/collaborators/carol", {"permission": "admin"})
    assert status == 403


async def test_new_repo_in_an_all_repos_installation_is_announced(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    await admin.create_repo("acme", "gadgets", org.owner.token)
    added = await devhub.wait_for_delivery(event="installation_repositories", action="added")
    payload = __import__("json").loads(added.body)
    assert [r["full_name"] for r in payload["repositories_added"]] == ["acme/gadgets"]
    assert payload["installation"]["id"] == org.installation_id
