"""The permission API as the app uses it: org owners, members, collaborators and bots."""

from __future__ import annotations

from tests.support.devhub import installation_token


async def permission(rest, repo, login):
    status, _, body = await rest.get(f"/repos/{repo}/collaborators/{login}/permission")
    assert status == 200, body
    return body["permission"], body["role_name"]


async def test_permission_levels_as_the_app_sees_them(devhub, admin, org):
    alice = admin.rest(org.owner.token)
    await admin.create_user("member")
    await alice.put("/orgs/acme/memberships/member", {"role": "member"})
    await admin.create_user("writer")
    await admin.add_collaborator(org.repo, "writer", "push")
    await admin.create_user("maintainer")
    await admin.add_collaborator(org.repo, "maintainer", "maintain")
    await admin.create_user("helper[bot]", "Bot")
    await admin.create_user("stranger")
    await admin.create_repo("acme", "private", org.owner.token, private=True)
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    assert await permission(bot, org.repo, "alice") == ("admin", "admin")
    assert await permission(bot, org.repo, "member") == ("read", "read")
    assert await permission(bot, org.repo, "writer") == ("write", "write")
    assert await permission(bot, org.repo, "maintainer") == ("write", "maintain")
    # Bots and strangers read a public repository and nothing more.
    assert await permission(bot, org.repo, "helper[bot]") == ("read", "read")
    assert await permission(bot, org.repo, "stranger") == ("read", "read")
    assert await permission(bot, "acme/private", "stranger") == ("none", "none")
    assert await permission(bot, "acme/private", "member") == ("read", "read")
    status, _, _ = await bot.get(f"/repos/{org.repo}/collaborators/acme/permission")
    assert status == 404  # an organization is not a user
