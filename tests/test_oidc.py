"""Actions OIDC tokens: verified against a local issuer, then exchanged at `POST /api/token`."""

import logging
import time
from dataclasses import dataclass, field

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from app import oidc
from app.oidc import IssuerKeys, IssuerUnavailableError, TokenRefusedError, TokenVerifier
from app.settings import load_settings
from tests.support.app import serve_app

AUDIENCE = "coder"
RUNNER_PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "checks": "write",
    "issues": "write",
    "metadata": "read",
}


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys():
    return {"k1": new_key(), "k2": new_key(), "rogue": new_key()}


@dataclass
class Issuer:
    """A loopback OIDC issuer: discovery document, JWKS, and a count of fetches."""

    keys: dict
    url: str = ""
    published: dict = field(default_factory=dict)
    fetches: list = field(default_factory=list)
    keys_status: int = 200

    def publish(self, **keys):
        self.published = {
            kid: jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            | {"kid": kid, "alg": "RS256", "use": "sig"}
            for kid, key in keys.items()
        }

    def claims(self, **overrides):
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "sub": "repo:acme/widgets:ref:refs/heads/main",
            "repository": "acme/widgets",
            "repository_id": "7",
            "run_id": "99",
        } | overrides

    def sign(self, key=None, kid="k1", algorithm="RS256", **overrides):
        claims = {k: v for k, v in self.claims(**overrides).items() if v is not None}
        signing_key = self.keys[kid] if key is None else key
        return jwt.encode(claims, signing_key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
async def issuer(keys):
    state = Issuer(keys)
    app = web.Application()

    async def discovery(_request):
        state.fetches.append("discovery")
        return web.json_response({"issuer": state.url, "jwks_uri": state.url + "/jwks"})

    async def jwks(_request):
        state.fetches.append("jwks")
        if state.keys_status != 200:
            return web.json_response({"message": "down"}, status=state.keys_status)
        return web.json_response({"keys": list(state.published.values())})

    app.router.add_get("/issuer/.well-known/openid-configuration", discovery)
    app.router.add_get("/issuer/jwks", jwks)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state.url = str(server.make_url("/issuer"))
    state.publish(k1=keys["k1"])
    yield state
    await server.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


def verifier_for(issuer, session, clock=None):
    issuer_keys = IssuerKeys(session, issuer.url, clock=clock or Clock())
    return TokenVerifier(issuer_keys, issuer=issuer.url, audience=AUDIENCE), issuer_keys


async def test_a_good_token_is_verified_and_the_keys_are_cached(issuer, session):
    verifier, issuer_keys = verifier_for(issuer, session)
    claims = await verifier.verify(issuer.sign())
    assert (claims.repository, claims.repository_id, claims.run_id) == ("acme/widgets", 7, "99")
    await verifier.verify(issuer.sign())
    assert issuer.fetches == ["discovery", "jwks"]
    assert issuer_keys.fetches == 1


async def refusal(verifier, token):
    with pytest.raises(TokenRefusedError) as caught:
        await verifier.verify(token)
    return caught.value.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else"}, oidc.WRONG_AUDIENCE),
        ({"iss": "https://token.actions.githubusercontent.com"}, oidc.WRONG_ISSUER),
        ({"exp": int(time.time()) - 3600}, oidc.EXPIRED),
        ({"nbf": int(time.time()) + 3600}, oidc.NOT_YET_VALID),
        ({"iat": int(time.time()) + 3600}, oidc.NOT_YET_VALID),
        ({"repository": None}, "the token lacks the repository claim"),
        ({"repository_id": None}, "the token lacks the repository_id claim"),
        ({"exp": None}, "the token lacks the exp claim"),
        ({"repository_id": "seven"}, oidc.BAD_REPOSITORY),
        ({"repository": "widgets"}, oidc.BAD_REPOSITORY),
    ],
)
async def test_bad_claims_are_refused(issuer, session, overrides, reason):
    verifier, _ = verifier_for(issuer, session)
    assert await refusal(verifier, issuer.sign(**overrides)) == reason


async def test_a_small_clock_skew_is_tolerated(issuer, session):
    verifier, _ = verifier_for(issuer, session)
    now = int(time.time())
    claims = await verifier.verify(issuer.sign(iat=now + 20, nbf=now + 20))
    assert claims.repository == "acme/widgets"


async def test_a_forged_signature_is_refused(issuer, session):
    verifier, _ = verifier_for(issuer, session)
    # Signed by another key under a published key id.
    assert (
        await refusal(verifier, issuer.sign(issuer.keys["rogue"], kid="k1")) == oidc.BAD_SIGNATURE
    )


async def test_only_rs256_is_accepted(issuer, session):
    verifier, _ = verifier_for(issuer, session)
    public_pem = issuer.published["k1"]["n"]  # any string an attacker knows
    hs256 = issuer.sign(public_pem, algorithm="HS256")
    assert await refusal(verifier, hs256) == oidc.WRONG_ALGORITHM
    unsigned = jwt.encode(issuer.claims(), None, algorithm="none", headers={"kid": "k1"})
    assert await refusal(verifier, unsigned) == oidc.WRONG_ALGORITHM
    assert await refusal(verifier, "not.a.jwt") == oidc.MALFORMED
    assert issuer.fetches == []  # refused before any key was looked up


async def test_an_unknown_kid_refetches_the_keys_once(issuer, session):
    clock = Clock()
    verifier, issuer_keys = verifier_for(issuer, session, clock)
    await verifier.verify(issuer.sign())
    # GitHub rotated its keys: the new kid appears in the JWKS.
    issuer.publish(k1=issuer.keys["k1"], k2=issuer.keys["k2"])
    clock.now += oidc.JWKS_MIN_REFRESH_SECONDS
    claims = await verifier.verify(issuer.sign(kid="k2"))
    assert claims.repository == "acme/widgets"
    assert issuer.fetches == ["discovery", "jwks", "jwks"]
    assert issuer_keys.fetches == 2


async def test_made_up_kids_do_not_hammer_the_issuer(issuer, session):
    clock = Clock()
    verifier, _ = verifier_for(issuer, session, clock)
    await verifier.verify(issuer.sign())
    for n in range(5):
        reason = await refusal(verifier, issuer.sign(issuer.keys["rogue"], kid=f"made-up-{n}"))
        assert reason == oidc.UNKNOWN_KEY
    assert issuer.fetches == ["discovery", "jwks"]
    clock.now += oidc.JWKS_MIN_REFRESH_SECONDS
    assert (
        await refusal(verifier, issuer.sign(issuer.keys["rogue"], kid="made-up"))
        == oidc.UNKNOWN_KEY
    )
    assert issuer.fetches == ["discovery", "jwks", "jwks"]


async def test_an_unreachable_key_set_is_not_a_refusal(issuer, session):
    verifier, _ = verifier_for(issuer, session)
    issuer.keys_status = 500
    with pytest.raises(IssuerUnavailableError):
        await verifier.verify(issuer.sign())


# `POST /api/token` against devhub, with the local issuer as CODER_OIDC_ISSUER.


@pytest.fixture
async def exchange_app(devhub, issuer):
    settings = load_settings(None, devhub.app_env() | {"CODER_OIDC_ISSUER": issuer.url})
    running = await serve_app(settings)
    yield running
    await running.close()


@pytest.fixture
async def repos(org, admin):
    gadgets = await admin.create_repo("acme", "gadgets", org.owner.token)
    bob = await admin.create_user("bob")
    elsewhere = await admin.create_repo("bob", "tools", bob.token)
    status, _, widgets = await admin.rest(org.owner.token).get("/repos/acme/widgets")
    assert status == 200
    return {"widgets": widgets, "gadgets": gadgets, "elsewhere": elsewhere}


async def ask(app_server, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = app_server.url + oidc.EXCHANGE_PATH
    async with app_server.session.post(url, headers=headers) as response:
        return response.status, await response.json()


def job_token(issuer, repo, **overrides):
    claims = {"repository": repo["full_name"], "repository_id": str(repo["id"])} | overrides
    return issuer.sign(**claims)


async def test_a_job_gets_a_token_for_its_repository_only(
    exchange_app, issuer, repos, admin, caplog
):
    caplog.set_level(logging.DEBUG)
    jwt_value = job_token(issuer, repos["widgets"])
    status, answer = await ask(exchange_app, jwt_value)
    assert status == 200, answer
    assert answer["repository"] == "acme/widgets"
    assert answer["permissions"] == RUNNER_PERMISSIONS
    assert answer["expires_at"]
    rest = admin.rest(answer["token"])
    assert (await rest.get("/repos/acme/widgets"))[0] == 200
    assert (await rest.get("/repos/acme/gadgets"))[0] == 404
    # It writes what a run writes, and nothing it was not given.
    assert (await rest.post("/repos/acme/widgets/labels", {"name": "from-the-job"}))[0] == 201
    grant = await rest.put("/repos/acme/widgets/collaborators/bob", {"permission": "admin"})
    assert grant[0] == 403
    assert answer["token"] not in caplog.text
    assert jwt_value not in caplog.text


async def test_a_repository_outside_the_installation_is_refused(exchange_app, issuer, repos):
    status, answer = await ask(exchange_app, job_token(issuer, repos["elsewhere"]))
    assert (status, answer) == (401, {"message": oidc.NOT_INSTALLED})


async def test_a_repository_name_and_id_that_disagree_are_refused(exchange_app, issuer, repos):
    # The name of one installed repository with the id of another.
    forged = job_token(issuer, repos["widgets"], repository_id=str(repos["gadgets"]["id"]))
    status, answer = await ask(exchange_app, forged)
    assert (status, answer) == (401, {"message": oidc.BAD_REPOSITORY})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "not-coder"}, oidc.WRONG_AUDIENCE),
        ({"iss": "https://token.actions.githubusercontent.com"}, oidc.WRONG_ISSUER),
        ({"exp": 1_000_000}, oidc.EXPIRED),
    ],
)
async def test_bad_tokens_get_401_with_only_the_reason(
    exchange_app, issuer, repos, overrides, reason
):
    status, answer = await ask(exchange_app, job_token(issuer, repos["widgets"], **overrides))
    assert (status, answer) == (401, {"message": reason})


async def test_a_missing_bearer_is_refused(exchange_app):
    assert await ask(exchange_app, None) == (401, {"message": oidc.MISSING_BEARER})


# The same exchange with tokens from devhub's own issuer, the app's default on GHES.


@pytest.fixture
async def devhub_tokens(devhub, org, admin):
    """Return a minting function for acme/widgets tokens, audience `coder` unless changed."""
    status, _, widgets = await admin.rest(org.owner.token).get("/repos/acme/widgets")
    assert status == 200

    def mint(**claims):
        defaults = {
            "repository": "acme/widgets",
            "repository_id": str(widgets["id"]),
            "aud": AUDIENCE,
        }
        return devhub.mint_oidc_token(**(defaults | claims))

    return mint


async def test_devhub_job_tokens_are_exchanged(app_server, devhub_tokens):
    status, answer = await ask(app_server, devhub_tokens())
    assert status == 200, answer
    assert (answer["repository"], answer["permissions"]) == ("acme/widgets", RUNNER_PERMISSIONS)


def tamper(token):
    header, payload, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return ".".join([header, payload, signature[:10] + flipped + signature[11:]])


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": None}, "the token lacks the aud claim"),
        ({"aud": "http://127.0.0.1/acme"}, oidc.WRONG_AUDIENCE),
        ({"iss": "https://token.actions.githubusercontent.com"}, oidc.WRONG_ISSUER),
        ({"exp": 1_000_000, "iat": 999_000, "nbf": 999_000}, oidc.EXPIRED),
        ({"repository": "bob/tools", "repository_id": "999999"}, oidc.NOT_INSTALLED),
        ({"repository_id": None}, "the token lacks the repository_id claim"),
    ],
)
async def test_bad_devhub_tokens_are_refused(app_server, devhub_tokens, claims, reason):
    assert await ask(app_server, devhub_tokens(**claims)) == (401, {"message": reason})


async def test_a_tampered_devhub_token_is_refused(app_server, devhub_tokens):
    status, answer = await ask(app_server, tamper(devhub_tokens()))
    assert (status, answer) == (401, {"message": oidc.BAD_SIGNATURE})
