"""devhub's auth and GitHub App surface: tokens, JWT checks, installations, token narrowing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.devhub import app_jwt, installation_token

JWT_DOCS = "https://docs.github.com/rest"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_token_on_user_is_requires_authentication(devhub, admin):
    status, _, body = await admin.rest(None).get("/user")
    assert status == 401
    assert body["message"] == "Requires authentication"
    assert body["documentation_url"].startswith("https://docs.github.com/")


async def test_unknown_token_is_bad_credentials_even_on_public_endpoints(devhub, admin):
    status, _, body = await admin.rest("ghp_not-a-real-token").get("/users/devhub-admin")
    assert status == 401
    assert body == {
        "message": "Bad credentials",
        "documentation_url": JWT_DOCS,
        "status": "401",
    }


async def test_token_and_bearer_schemes_both_authenticate(devhub, admin):
    alice = await admin.create_user("alice")
    for scheme in ("token", "Bearer"):
        headers = {"Authorization": f"{scheme} {alice.token}"}
        status, _, body = await admin.rest(None).get("/user", headers=headers)
        assert status == 200
        assert body["login"] == "alice"
        assert body["type"] == "User"


async def test_get_app_with_jwt(devhub, admin):
    status, _, body = await admin.rest(None).get("/app", headers=bearer(app_jwt(devhub)))
    assert status == 200
    assert body["id"] == devhub.app_id == 1
    assert body["slug"] == devhub.app_slug == "coder"
    assert body["permissions"]["issues"] == "write"  # from app.yml
    assert "issues" in body["events"]


async def test_jwt_rejections_use_githubs_messages(devhub, admin):
    now = int(time.time())
    cases = {
        "'Expiration time' claim ('exp') must be a numeric value representing the future "
        "time at which the assertion expires": {"iat": now - 700, "exp": now - 100},
        "'Expiration time' claim ('exp') is too far in the future": {
            "iat": now - 60,
            "exp": now + 660,
        },
        "'Issued at' claim ('iat') must be an Integer representing the time that the "
        "assertion was issued": {"iat": now + 600, "exp": now + 700},
        "A JSON web token could not be decoded": {"iss": "999"},
    }
    for message, claims in cases.items():
        token = app_jwt(devhub, **claims)
        status, _, body = await admin.rest(None).get("/app", headers=bearer(token))
        assert (status, body["message"]) == (401, message)


async def test_jwt_signed_with_another_key_is_rejected(devhub, admin):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = int(time.time())
    token = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": "1"}, pem, algorithm="RS256")
    status, _, body = await admin.rest(None).get("/app", headers=bearer(token))
    assert (status, body["message"]) == (401, "A JSON web token could not be decoded")


async def test_jwt_only_endpoints_refuse_other_tokens(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    for credential in (token, org.owner.token):
        status, _, body = await admin.rest(credential).get("/app/installations")
        assert (status, body["message"]) == (401, "A JSON web token could not be decoded")


async def test_jwt_cannot_act_on_repositories(devhub, admin, org):
    headers = bearer(app_jwt(devhub))
    status, _, body = await admin.rest(None).get(f"/repos/{org.repo}/issues", headers=headers)
    assert (status, body["message"]) == (403, "Resource not accessible by integration")


async def test_installations_are_listed_and_found_by_account_and_repo(devhub, admin, org):
    rest, headers = admin.rest(None), bearer(app_jwt(devhub))
    status, _, listed = await rest.get("/app/installations", headers=headers)
    assert status == 200
    assert [i["id"] for i in listed] == [org.installation_id]
    assert listed[0]["account"]["login"] == "acme"
    assert listed[0]["target_type"] == "Organization"
    for path in (
        f"/app/installations/{org.installation_id}",
        "/orgs/acme/installation",
        f"/repos/{org.repo}/installation",
    ):
        status, _, found = await rest.get(path, headers=headers)
        assert (status, found["id"]) == (200, org.installation_id), path
    status, _, _ = await rest.get("/users/alice/installation", headers=headers)
    assert status == 404
    status, _, _ = await rest.get("/app/installations/424242", headers=headers)
    assert status == 404


async def test_access_token_shape_and_expiry(devhub, admin, org):
    status, _, body = await admin.rest(None).post(
        f"/app/installations/{org.installation_id}/access_tokens",
        headers=bearer(app_jwt(devhub)),
    )
    assert status == 201
    assert body["token"].startswith("ghs_")
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert body["repository_selection"] == "all"
    assert body["permissions"]["contents"] == "write"
    assert "repositories" not in body


async def test_installation_token_sees_only_the_installed_account(devhub, admin, org):
    bob = await admin.create_user("bob")
    await admin.create_repo("bob", "private-stuff", bob.token, private=True)
    token = await installation_token(admin, devhub, org.installation_id)
    rest = admin.rest(token)
    assert (await rest.get(f"/repos/{org.repo}"))[0] == 200
    assert (await rest.get("/repos/bob/private-stuff"))[0] == 404


async def test_token_narrowed_to_a_repository_gets_404_elsewhere(devhub, admin, org):
    await admin.create_repo("acme", "gadgets", org.owner.token)
    await admin.create_repo("acme", "secret", org.owner.token, private=True)
    token = await installation_token(admin, devhub, org.installation_id, repositories=["gadgets"])
    rest = admin.rest(token)
    assert (await rest.get("/repos/acme/gadgets"))[0] == 200
    status, _, body = await rest.get("/repos/acme/secret")
    assert (status, body["message"]) == (404, "Not Found")
    # Public repositories outside the narrowing are read as anyone reads them, never written.
    status, _, widgets = await rest.get(f"/repos/{org.repo}")
    assert (status, widgets["permissions"]["push"]) == (200, False)
    status, _, body = await rest.post(f"/repos/{org.repo}/issues", {"title": "not allowed"})
    assert (status, body["message"]) == (403, "Resource not accessible by integration")
    status, _, listed = await rest.get("/installation/repositories")
    assert status == 200
    assert listed["total_count"] == 1
    assert listed["repository_selection"] == "selected"
    assert [r["full_name"] for r in listed["repositories"]] == ["acme/gadgets"]


async def test_token_narrowed_by_repository_id(devhub, admin, org):
    repo = await admin.create_repo("acme", "gadgets", org.owner.token)
    status, _, body = await admin.rest(None).post(
        f"/app/installations/{org.installation_id}/access_tokens",
        {"repository_ids": [repo["id"]]},
        headers=bearer(app_jwt(devhub)),
    )
    assert status == 201
    assert [r["name"] for r in body["repositories"]] == ["gadgets"]
    assert body["repository_selection"] == "selected"


async def test_token_narrowed_to_read_cannot_write(devhub, admin, org):
    token = await installation_token(
        admin, devhub, org.installation_id, permissions={"issues": "read"}
    )
    rest = admin.rest(token)
    assert (await rest.get(f"/repos/{org.repo}/issues"))[0] == 200
    status, _, body = await rest.post(f"/repos/{org.repo}/issues", {"title": "nope"})
    assert (status, body["message"]) == (403, "Resource not accessible by integration")


async def test_asking_for_more_than_the_installation_has_is_422(devhub, admin, org):
    rest, headers = admin.rest(None), bearer(app_jwt(devhub))
    path = f"/app/installations/{org.installation_id}/access_tokens"
    status, _, body = await rest.post(
        path, {"permissions": {"administration": "write"}}, headers=headers
    )
    assert (status, body["message"]) == (
        422,
        "The permissions requested are not granted to this installation.",
    )
    status, _, body = await rest.post(path, {"repositories": ["missing"]}, headers=headers)
    assert status == 422
    assert body["message"].startswith("There is at least one repository that does not exist")


async def test_expired_installation_token_is_bad_credentials(devhub, admin, org):
    token = await installation_token(admin, devhub, org.installation_id)
    devhub.state.tokens[token].expires_at = datetime.now(UTC) - timedelta(seconds=1)
    status, _, body = await admin.rest(token).get(f"/repos/{org.repo}")
    assert (status, body["message"]) == (401, "Bad credentials")


async def test_installation_repositories_needs_an_installation_token(devhub, admin, org):
    status, _, body = await admin.rest(org.owner.token).get("/installation/repositories")
    assert status == 403
    assert "installation" in body["message"]
