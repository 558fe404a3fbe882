"""Who may start a run: the live permission API, role names, custom roles, and bots."""

import pytest

from app.permissions import Refusal, bot_allowed, check_sender, may_write, role_of


@pytest.mark.parametrize(
    ("answer", "allowed", "role"),
    [
        ({"permission": "admin", "role_name": "admin"}, True, "admin"),
        ({"permission": "write", "role_name": "maintain"}, True, "maintain"),
        ({"permission": "write", "role_name": "write"}, True, "write"),
        ({"permission": "read", "role_name": "triage"}, False, "triage"),
        ({"permission": "read", "role_name": "read"}, False, "read"),
        ({"permission": "none", "role_name": "none"}, False, "none"),
        # A custom role is judged by the base permission GitHub folds it into.
        ({"permission": "write", "role_name": "security-engineer"}, True, "security-engineer"),
        ({"permission": "read", "role_name": "auditor"}, False, "auditor"),
        # Older GitHub Enterprise Server answers without role_name.
        ({"permission": "write"}, True, "write"),
        ({}, False, "none"),
    ],
)
def test_write_maintain_and_admin_may_start_runs(answer, allowed, role):
    assert may_write(answer) is allowed
    assert role_of(answer) == role


def test_the_bot_allow_list_ignores_case():
    assert bot_allowed("Renovate[bot]", ["renovate[bot]"])
    assert not bot_allowed("dependabot[bot]", ["renovate[bot]"])


@pytest.fixture
async def people(org, admin):
    logins = {}
    for role in ("read", "triage", "write", "maintain", "admin"):
        user = await admin.create_user(f"user-{role}")
        await admin.add_collaborator(org.repo, user.login, role)
        logins[role] = user.login
    return logins


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("read", False), ("triage", False), ("write", True), ("maintain", True), ("admin", True)],
)
async def test_the_role_is_read_live(app_server, org, people, role, allowed):
    gh = app_server.access.for_installation(org.installation_id)
    check = await check_sender(gh, org.repo, login=people[role], account_type="User")
    assert check.allowed is allowed
    assert check.role == role
    assert check.refusal is (None if allowed else Refusal.NO_WRITE)


async def test_a_revoked_role_counts_at_once(app_server, org, people, admin):
    gh = app_server.access.for_installation(org.installation_id)
    assert (await check_sender(gh, org.repo, login=people["write"], account_type="User")).allowed
    await admin.add_collaborator(org.repo, people["write"], "read")
    later = await check_sender(gh, org.repo, login=people["write"], account_type="User")
    assert not later.allowed


async def test_an_outsider_and_an_unknown_login_are_refused(app_server, org, admin):
    outsider = await admin.create_user("outsider")
    gh = app_server.access.for_installation(org.installation_id)
    check = await check_sender(gh, org.repo, login=outsider.login, account_type="User")
    assert check.refusal is Refusal.NO_WRITE
    ghost = await check_sender(gh, org.repo, login="no-such-user", account_type="User")
    assert ghost.refusal is Refusal.NO_WRITE


async def test_bots_need_the_allow_list_and_no_request(app_server, org, admin):
    gh = app_server.access.for_installation(org.installation_id)
    refused = await check_sender(gh, org.repo, login="helper[bot]", account_type="Bot")
    allowed = await check_sender(
        gh, org.repo, login="helper[bot]", account_type="Bot", allowed_bots=["helper[bot]"]
    )
    assert refused.refusal is Refusal.BOT_NOT_ALLOWED
    assert allowed.allowed
    asked = [r for r in await admin.requests() if "/collaborators/" in r["path"]]
    assert asked == []
