"""The runner's token: OIDC exchanged at the app, retried like any GitHub call, never guessed."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from actions.agent.auth import RUNNER_PERMISSIONS, AuthError, exchange_oidc, obtain_token
from actions.agent.env import AppKeySource, OidcSource, Reach
from app.oidc import RUNNER_PERMISSIONS as APP_RUNNER_PERMISSIONS
from app.retry import RetryPolicy

REQUEST_TOKEN = "request-token"
JOB_JWT = "eyJhbGciOiJSUzI1NiJ9.job.token"
POLICY = RetryPolicy(max_attempts=3, base_delay=0.0)


class Stand:
    """Actions' ID-token endpoint and the app's /api/token, answering as scripted."""

    def __init__(self):
        self.token_answers = [(200, {"token": "ghs_minted", "expires_at": "2030-01-01T00:00:00Z"})]
        self.seen = []

    async def id_token(self, request):
        self.seen.append(("id-token", dict(request.query), request.headers.get("Authorization")))
        if request.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
            return web.json_response({"message": "bad request token"}, status=401)
        return web.json_response({"value": JOB_JWT})

    async def exchange(self, request):
        self.seen.append(("exchange", {}, request.headers.get("Authorization")))
        status, body = (
            self.token_answers.pop(0) if len(self.token_answers) > 1 else (self.token_answers[0])
        )
        return web.json_response(body, status=status)


@pytest.fixture
async def stand():
    spec = Stand()
    app = web.Application()
    app.router.add_get("/_apis/idtoken", spec.id_token)
    app.router.add_post("/api/token", spec.exchange)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    spec.url = str(server.make_url("")).rstrip("/")
    yield spec
    await server.close()


def oidc(stand):
    return OidcSource(f"{stand.url}/_apis/idtoken?api-version=2.0", REQUEST_TOKEN, stand.url)


async def no_sleep(_seconds):
    return None


async def test_the_job_token_is_asked_for_our_audience_and_exchanged(stand):
    async with ClientSession() as session:
        token = await exchange_oidc(session, oidc(stand), policy=POLICY, sleep=no_sleep)
    assert token.token == "ghs_minted"
    assert token.source == "oidc"
    assert token.expires_at == "2030-01-01T00:00:00Z"
    assert token.also_secret == (JOB_JWT,)
    (_, query, authorization), (_, _, bearer) = stand.seen
    assert query == {"api-version": "2.0", "audience": "coder"}
    assert authorization == f"bearer {REQUEST_TOKEN}"
    assert bearer == f"Bearer {JOB_JWT}"


async def test_a_refusal_says_why_without_the_token(stand):
    stand.token_answers = [(401, {"message": "the token is for another audience"})]
    async with ClientSession() as session:
        with pytest.raises(AuthError) as caught:
            await exchange_oidc(session, oidc(stand), policy=POLICY, sleep=no_sleep)
    assert str(caught.value) == (
        "the app refused the token exchange (401): the token is for another audience"
    )
    assert JOB_JWT not in str(caught.value)


async def test_a_flaky_app_is_retried_with_the_shared_policy(stand):
    stand.token_answers = [
        (502, {"message": "GitHub cannot be reached"}),
        (503, {"message": "the OIDC issuer cannot be reached"}),
        (200, {"token": "ghs_after_retries"}),
    ]
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)

    async with ClientSession() as session:
        token = await exchange_oidc(session, oidc(stand), policy=POLICY, sleep=sleep)
    assert token.token == "ghs_after_retries"
    assert len(sleeps) == 2


async def test_an_unreachable_app_is_an_auth_error(stand, closed_port):
    source = OidcSource(oidc(stand).request_url, REQUEST_TOKEN, f"http://127.0.0.1:{closed_port}")
    async with ClientSession() as session:
        with pytest.raises(AuthError, match=r"POST http://127\.0\.0\.1:[0-9]+/api/token failed"):
            await exchange_oidc(session, source, policy=POLICY, sleep=no_sleep)


async def test_without_an_app_key_an_oidc_failure_is_final(stand):
    stand.token_answers = [(401, {"message": "the token has expired"})]
    reach = Reach("acme/widgets", stand.url, stand.url + "/graphql", oidc(stand), None, 9)
    async with ClientSession() as session:
        with pytest.raises(AuthError, match="expired"):
            await obtain_token(session, reach, policy=POLICY, sleep=no_sleep)


async def test_a_broken_app_key_is_a_clear_error(stand):
    reach = Reach(
        "acme/widgets", stand.url, stand.url + "/graphql", None, AppKeySource(1, "not a key"), 9
    )
    async with ClientSession() as session:
        with pytest.raises(AuthError, match="CODER_PRIVATE_KEY is not a usable RSA key"):
            await obtain_token(session, reach, policy=POLICY, sleep=no_sleep)
    probot_named = AppKeySource(1, "not a key", "PRIVATE_KEY")
    reach = Reach("acme/widgets", stand.url, stand.url + "/graphql", None, probot_named, 9)
    async with ClientSession() as session:
        with pytest.raises(AuthError, match=r"^PRIVATE_KEY is not a usable RSA key"):
            await obtain_token(session, reach, policy=POLICY, sleep=no_sleep)


def test_the_fallback_asks_for_what_the_app_grants_through_oidc():
    assert dict(APP_RUNNER_PERMISSIONS) == RUNNER_PERMISSIONS


async def test_the_apps_refusal_is_never_worked_around_with_the_app_key(stand):
    # A key that would work if it were tried: it must not be (a read-only run, a job coder
    # did not dispatch). Only an app the job cannot reach sends it to the key.
    stand.token_answers = [(401, {"message": "the token is from a workflow run that is not one"})]
    reach = Reach(
        "acme/widgets", stand.url, stand.url + "/graphql", oidc(stand), AppKeySource(1, "x"), 9
    )
    async with ClientSession() as session:
        with pytest.raises(AuthError) as refused:
            await obtain_token(session, reach, policy=POLICY, sleep=no_sleep)
    assert refused.value.refused
    assert "not one" in str(refused.value)
    assert [kind for kind, _, _ in stand.seen] == ["id-token", "exchange"]
