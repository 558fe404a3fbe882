"""devhub's Actions variables (repository and organization) and the secrets admin API."""

from __future__ import annotations

import pytest

from devhub.testing import DevHubError
from tests.support.devhub import installation_token


async def test_repository_variables(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    variables = f"/repos/{org.repo}/actions/variables"
    status, _, created = await rest.post(variables, {"name": "coder_app_url", "value": "http://a"})
    assert (status, created) == (201, {})
    status, _, taken = await rest.post(variables, {"name": "CODER_APP_URL", "value": "http://b"})
    assert (status, taken["message"]) == (409, "Already exists - Variable already exists")
    status, _, bad = await rest.post(variables, {"name": "GITHUB_X", "value": "v"})
    assert (status, bad["errors"][0]["field"]) == (422, "name")
    status, _, one = await rest.get(f"{variables}/Coder_App_Url")
    assert (status, one["name"], one["value"]) == (200, "CODER_APP_URL", "http://a")
    status, _, _ = await rest.patch(f"{variables}/CODER_APP_URL", {"value": "http://c"})
    assert status == 204
    _, _, listed = await rest.get(variables)
    assert listed["total_count"] == 1
    assert listed["variables"][0]["value"] == "http://c"
    # The app reads them with `actions_variables: read`, and cannot write them.
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    status, _, seen = await bot.get(f"{variables}/CODER_APP_URL")
    assert (status, seen["value"]) == (200, "http://c")
    status, _, _ = await bot.post(variables, {"name": "X", "value": "y"})
    assert status == 403
    status, _, _ = await rest.delete(f"{variables}/CODER_APP_URL")
    assert status == 204
    status, _, _ = await rest.get(f"{variables}/CODER_APP_URL")
    assert status == 404


async def test_organization_variables(devhub, admin, org):
    rest = admin.rest(org.owner.token)
    variables = "/orgs/acme/actions/variables"
    status, _, _ = await rest.post(
        variables, {"name": "REGION", "value": "eu", "visibility": "all"}
    )
    assert status == 201
    status, _, one = await rest.get(f"{variables}/REGION")
    assert (status, one["visibility"], one["value"]) == (200, "all", "eu")
    status, _, _ = await rest.patch(f"{variables}/REGION", {"value": "us"})
    assert status == 204
    _, _, listed = await rest.get(variables)
    assert [v["value"] for v in listed["variables"]] == ["us"]
    member = await admin.create_user("bob")
    await rest.put("/orgs/acme/memberships/bob", {"role": "member"})
    status, _, _ = await admin.rest(member.token).get(variables)
    assert status == 403
    status, _, _ = await rest.delete(f"{variables}/REGION")
    assert status == 204


async def test_secrets_admin_api(devhub, admin, org):
    await admin.set_secret(org.repo, "coder_app_id", "1")
    await admin.set_org_secret("acme", "SHARED", "s")
    assert devhub.state.repo("acme", "widgets").secrets == {"CODER_APP_ID": "1"}
    with pytest.raises(DevHubError) as refused:
        await admin.set_secret("acme/nope", "X", "1")
    assert refused.value.status == 404
