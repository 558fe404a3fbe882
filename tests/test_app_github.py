"""GitHub access against devhub: tokens, retries, rate limits, conditional requests, GraphQL."""

import asyncio
import time

import aiohttp
import gidgethub
import pytest

from app.github import AppAuth, GitHubAccess, InstallationTokens
from app.retry import RetryPolicy
from app.settings import load_settings
from tests.support.app import RecordingSleep

TOKENS_PATH = "/access_tokens"


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def sleep():
    return RecordingSleep()


@pytest.fixture
def settings(devhub):
    return load_settings(None, devhub.app_env())


@pytest.fixture
def access(settings, session, sleep):
    return GitHubAccess(settings, session, sleep=sleep)


def requests_to(requests, path_suffix, method=None):
    return [
        r
        for r in requests
        if r["path"].endswith(path_suffix) and (method is None or r["method"] == method)
    ]


async def test_fifty_concurrent_token_requests_make_one_post(access, admin, org):
    tokens = await asyncio.gather(*(access.tokens.get(org.installation_id) for _ in range(50)))
    assert len(set(tokens)) == 1
    assert tokens[0].startswith("ghs_")
    assert await access.tokens.get(org.installation_id) == tokens[0]
    posts = requests_to(await admin.requests(), TOKENS_PATH, "POST")
    assert len(posts) == 1
    assert posts[0]["token_owner"] == "app/coder"


async def test_tokens_are_refreshed_five_minutes_before_they_expire(settings, session, admin, org):
    now = [time.time()]
    auth = AppAuth(settings.app_id, settings.private_key.get_secret_value())
    tokens = InstallationTokens(auth, session, settings.api_url, clock=lambda: now[0])
    first = await tokens.get(org.installation_id)
    # devhub's tokens last an hour, like GitHub's.
    now[0] += 54 * 60
    assert await tokens.get(org.installation_id) == first
    now[0] += 2 * 60
    assert await tokens.get(org.installation_id) != first
    assert len(requests_to(await admin.requests(), TOKENS_PATH, "POST")) == 2


async def test_a_failed_token_fetch_is_shared_but_not_cached(settings, session, sleep, admin, org):
    access = GitHubAccess(settings, session, sleep=sleep, policy=RetryPolicy(max_attempts=1))
    await admin.add_fault(kind="status", status=502, method="POST", path=TOKENS_PATH, times=1)
    results = await asyncio.gather(
        *(access.tokens.get(org.installation_id) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(result, gidgethub.GitHubBroken) for result in results)
    assert (await access.tokens.get(org.installation_id)).startswith("ghs_")
    assert len(requests_to(await admin.requests(), TOKENS_PATH, "POST")) == 2


async def test_a_token_post_is_retried_after_a_server_error(access, sleep, admin, org):
    # Minting a token twice is harmless, so this one POST is retried like a GET.
    await admin.add_fault(kind="status", status=503, method="POST", path=TOKENS_PATH, times=1)
    assert (await access.tokens.get(org.installation_id)).startswith("ghs_")
    assert len(sleep.calls) == 1


async def test_narrowed_tokens(access, admin, org):
    # Private: installation tokens read public repositories beyond their narrowing, as on GitHub.
    await admin.create_repo("acme", "gadgets", org.owner.token, private=True)
    narrow = await access.tokens.get(
        org.installation_id, repositories=["acme/widgets"], permissions={"issues": "read"}
    )
    same = await access.tokens.get(
        org.installation_id, repositories=["widgets"], permissions={"issues": "read"}
    )
    full = await access.tokens.get(org.installation_id)
    assert narrow == same
    assert narrow != full
    rest = admin.rest(narrow)
    assert (await rest.get("/repos/acme/widgets/issues"))[0] == 200
    assert (await rest.get("/repos/acme/gadgets"))[0] == 404
    status, _, _ = await rest.post("/repos/acme/widgets/issues", {"title": "not allowed"})
    assert status == 403
    assert (await admin.rest(full).get("/repos/acme/gadgets"))[0] == 200
    assert len(requests_to(await admin.requests(), TOKENS_PATH, "POST")) == 2


async def test_a_502_on_a_get_is_retried(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    await admin.add_fault(kind="status", status=502, method="GET", path="^/repos/acme/widgets$")
    repo = await gh.getitem("/repos/acme/widgets")
    assert repo["full_name"] == "acme/widgets"
    assert len(sleep.calls) == 1
    gets = requests_to(await admin.requests(), "/repos/acme/widgets", "GET")
    assert [r["status"] for r in gets] == [502, 200]
    assert gh.last_ok is not None


async def test_reset_connections_on_a_get_are_retried(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    # Two resets: aiohttp itself silently resends an idempotent request once when a pooled
    # connection turns out to be dead, so at least one reset reaches our retry loop.
    await admin.add_fault(kind="reset", method="GET", path="^/repos/acme/widgets$", times=2)
    assert (await gh.getitem("/repos/acme/widgets"))["name"] == "widgets"
    assert 1 <= len(sleep.calls) <= 2
    gets = requests_to(await admin.requests(), "/repos/acme/widgets", "GET")
    assert [r["status"] for r in gets] == [0, 0, 200]


async def test_a_502_on_a_post_is_not_resent(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    await admin.add_fault(kind="status", status=502, method="POST", path="/issues$")
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.post("/repos/acme/widgets/issues", data={"title": "once"})
    assert sleep.calls == []
    assert len(requests_to(await admin.requests(), "/repos/acme/widgets/issues", "POST")) == 1


async def test_a_reset_after_sending_a_post_is_not_resent(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    await gh.getitem("/repos/acme/widgets")  # open a connection and mint the token first
    await admin.add_fault(kind="reset", method="POST", path="/issues$")
    with pytest.raises(aiohttp.ClientError):
        await gh.post("/repos/acme/widgets/issues", data={"title": "once"})
    assert sleep.calls == []


async def test_secondary_rate_limit_waits_retry_after(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    await admin.add_fault(kind="secondary_rate_limit", retry_after=42, path="^/repos/acme/widgets$")
    assert (await gh.getitem("/repos/acme/widgets"))["name"] == "widgets"
    # The wait is at the installation's gate, computed from the clock when it closed.
    assert sleep.calls == [pytest.approx(42.0, abs=0.5)]


async def test_primary_exhaustion_parks_one_installation_not_another(access, sleep, admin, org):
    bob = await admin.create_user("bob")
    await admin.create_org("beta", "bob")
    await admin.create_repo("beta", "things", bob.token)
    other = await admin.install("beta", "all")
    acme, beta = access.for_installation(org.installation_id), access.for_installation(other)
    await access.tokens.get(org.installation_id)
    await access.tokens.get(other)
    await admin.add_fault(kind="primary_rate_limit", retry_after=600, path="^/repos/acme/widgets$")
    sleep.hold()
    first = asyncio.create_task(acme.getitem("/repos/acme/widgets"))
    await sleep.wait_for_calls(1)
    assert sleep.calls[0] >= 600
    assert access.gate(org.installation_id).parked_until() is not None
    assert access.gate(other).parked_until() is None
    # The other installation is not held up at all.
    assert (await beta.getitem("/repos/beta/things"))["full_name"] == "beta/things"
    # The parked installation's next request waits at the gate without being sent.
    second = asyncio.create_task(
        access.for_installation(org.installation_id).getitem("/repos/acme/widgets/labels")
    )
    await sleep.wait_for_calls(2)
    assert requests_to(await admin.requests(), "/repos/acme/widgets/labels") == []
    sleep.release()
    assert (await first)["full_name"] == "acme/widgets"
    assert isinstance(await second, list)
    assert len(sleep.calls) == 2


async def test_a_404_right_after_the_event_is_retried_until_it_appears(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id, event_received_at=time.time())

    async def open_the_issue(_seconds):
        sleep.hook = None
        status, _, _ = await admin.rest(org.owner.token).post(
            "/repos/acme/widgets/issues", {"title": "late"}
        )
        assert status == 201

    sleep.hook = open_the_issue
    issue = await gh.getitem("/repos/acme/widgets/issues/1")
    assert issue["title"] == "late"
    assert sleep.calls == [1.0]


async def test_a_404_right_after_the_event_gives_up_after_two_retries(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id, event_received_at=time.time())
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem("/repos/acme/widgets/issues/99")
    assert caught.value.status_code == 404
    assert sleep.calls == [1.0, 1.0]
    assert len(requests_to(await admin.requests(), "/issues/99")) == 3


async def test_a_404_long_after_any_event_is_final(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    with pytest.raises(gidgethub.BadRequest):
        await gh.getitem("/repos/acme/widgets/issues/99")
    assert sleep.calls == []


async def test_repeated_gets_are_conditional(access, admin, org):
    gh = access.for_installation(org.installation_id)
    first = await gh.getitem("/repos/acme/widgets")
    second = await gh.getitem("/repos/acme/widgets")
    assert first == second
    gets = requests_to(await admin.requests(), "/repos/acme/widgets", "GET")
    assert [r["status"] for r in gets] == [200, 304]
    assert gets[1]["rate_limited"] is False


async def test_the_etag_cache_is_shared_but_keyed_per_installation(access, org):
    gh = access.for_installation(org.installation_id)
    await gh.getitem("/repos/acme/widgets")
    keys = list(access.cache)
    assert keys
    assert all(key.startswith(f"installation:{org.installation_id}:") for key in keys)


async def test_graphql_goes_to_the_ghes_endpoint_with_the_installation_token(access, admin, org):
    gh = access.for_installation(org.installation_id)
    data = await gh.graphql(
        "query($owner: String!, $name: String!) {"
        " repository(owner: $owner, name: $name) { name } }",
        owner="acme",
        name="widgets",
    )
    assert data == {"repository": {"name": "widgets"}}
    calls = requests_to(await admin.requests(), "/api/graphql", "POST")
    assert len(calls) == 1
    assert calls[0]["token_owner"] == "coder[bot]"


async def test_a_graphql_query_is_retried_after_a_server_error(access, sleep, admin, org):
    gh = access.for_installation(org.installation_id)
    await admin.add_fault(kind="status", status=502, method="POST", path="^/api/graphql$")
    data = await gh.graphql("query { viewer { login } }")
    assert data["viewer"]["login"] == "coder[bot]"
    assert len(sleep.calls) == 1


async def test_the_app_slug_is_read_once(access, admin):
    assert await access.bot_login() == "coder[bot]"
    assert await access.app_slug() == "coder"
    assert access.known_bot_login == "coder[bot]"
    assert len(requests_to(await admin.requests(), "/api/v3/app", "GET")) == 1


async def test_health_tracks_the_last_call(access, admin, org):
    assert access.health.healthy is None
    gh = access.for_installation(org.installation_id)
    await gh.getitem("/repos/acme/widgets")
    assert access.health.healthy is True
    await admin.add_fault(kind="status", status=500, method="GET", path="/nothing$", times=None)
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem("/repos/acme/nothing")
    assert access.health.healthy is False
    assert access.health.last_error_reason == "HTTP 500"
