"""devhub's Actions OIDC issuer: discovery, JWKS, persisted key, and the token-minting helper."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from devhub.hub import DevHub


async def _json(admin, url):
    async with admin.session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def verify(admin, devhub, token, *, audience="coder"):
    """Verify a token the way a relying party does: discovery, then JWKS, then the claims."""
    discovery = await _json(admin, devhub.oidc_issuer + "/.well-known/openid-configuration")
    client = jwt.PyJWKClient(discovery["jwks_uri"])
    key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
    return jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=discovery["issuer"]
    )


async def test_discovery_and_jwks(devhub, admin):
    discovery = await _json(admin, f"{devhub.url}/_services/token/.well-known/openid-configuration")
    assert discovery["issuer"] == f"{devhub.url}/_services/token"
    assert discovery["jwks_uri"] == f"{devhub.url}/_services/token/.well-known/jwks"
    assert discovery["response_types_supported"] == ["id_token"]
    assert {"sub", "repository", "run_id", "job_workflow_ref"} <= set(discovery["claims_supported"])
    keys = (await _json(admin, discovery["jwks_uri"]))["keys"]
    assert len(keys) == 1
    assert (keys[0]["kty"], keys[0]["alg"], keys[0]["use"]) == ("RSA", "RS256", "sig")
    assert keys[0]["kid"]


async def test_minted_tokens_verify_and_carry_chosen_claims(devhub, admin):
    token = devhub.mint_oidc_token(aud="coder", repository="acme/widgets", run_id="5")
    claims = await verify(admin, devhub, token)
    assert claims["sub"] == "repo:acme/widgets:ref:refs/heads/main"
    assert (claims["repository"], claims["repository_owner"], claims["run_id"]) == (
        "acme/widgets",
        "acme",
        "5",
    )
    assert (
        jwt.get_unverified_header(token)["kid"]
        == (await _json(admin, devhub.oidc_issuer + "/.well-known/jwks"))["keys"][0]["kid"]
    )


async def test_minted_tokens_can_be_wrong_on_purpose(devhub, admin):
    wrong_audience = devhub.mint_oidc_token(aud="someone-else", repository="acme/widgets")
    with pytest.raises(jwt.InvalidAudienceError):
        await verify(admin, devhub, wrong_audience)
    expired = devhub.mint_oidc_token(
        aud="coder", repository="acme/widgets", exp=int(time.time()) - 60
    )
    with pytest.raises(jwt.ExpiredSignatureError):
        await verify(admin, devhub, expired)
    other_repo = devhub.mint_oidc_token(aud="coder", repository="evil/repo")
    assert (await verify(admin, devhub, other_repo))["sub"] == "repo:evil/repo:ref:refs/heads/main"
    no_sub = devhub.mint_oidc_token(aud="coder", repository="acme/widgets", sub=None)
    assert "sub" not in await verify(admin, devhub, no_sub)


async def test_the_signing_key_survives_a_restart(tmp_path):
    first = DevHub(tmp_path / "hub")
    second = DevHub(tmp_path / "hub")
    assert first.oidc.kid == second.oidc.kid
    assert first.oidc.jwks() == second.oidc.jwks()


async def test_the_id_token_endpoint_wants_a_running_jobs_token(devhub, admin):
    url = f"{devhub.url}/_services/token/idtoken?api-version=2.0&audience=coder"
    async with admin.session.get(url) as response:
        assert response.status == 401
    async with admin.session.get(url, headers={"Authorization": "bearer nope"}) as response:
        assert response.status == 401
        assert (await response.json())["message"] == "Bad credentials"
