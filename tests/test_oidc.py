"""Actions OIDC tokens: verified against a local issuer, then exchanged at `POST /api/token`."""

import base64
import logging
import time
from dataclasses import dataclass, field

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from app import fork_results, oidc
from app.briefing import Snapshot, render_run_request
from app.installation import ensure_labels
from app.oidc import IssuerKeys, IssuerUnavailableError, TokenRefusedError, TokenVerifier
from app.settings import load_settings
from tests.support.app import serve_app
from tests.support.devhub import installation_token, record_coder_run
from tests.test_develop import FakeRunner, Journey, install_workflow

AUDIENCE = "coder"
CODER_WORKFLOW_REF = "acme/widgets/.github/workflows/coder.yml@refs/heads/main"
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
            "event_name": "workflow_dispatch",
            "workflow_ref": CODER_WORKFLOW_REF,
            "job_workflow_ref": CODER_WORKFLOW_REF,
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
        ({"event_name": None}, "the token lacks the event_name claim"),
        ({"workflow_ref": None}, "the token lacks the workflow_ref claim"),
        ({"job_workflow_ref": None}, "the token lacks the job_workflow_ref claim"),
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
async def repos(org, admin, devhub):
    # Private: a token narrowed to widgets would still read a public gadgets, as on GitHub.
    gadgets = await admin.create_repo("acme", "gadgets", org.owner.token, private=True)
    bob = await admin.create_user("bob")
    elsewhere = await admin.create_repo("bob", "tools", bob.token)
    status, _, widgets = await admin.rest(org.owner.token).get("/repos/acme/widgets")
    assert status == 200
    # The workflow run the app dispatched: a job's token names it, and the exchange reads it.
    widgets["coder_run"] = await record_coder_run(devhub, "acme/widgets", "aaaaaaaaaaaa")
    return {"widgets": widgets, "gadgets": gadgets, "elsewhere": elsewhere}


async def ask(app_server, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = app_server.url + oidc.EXCHANGE_PATH
    async with app_server.session.post(url, headers=headers) as response:
        return response.status, await response.json()


def job_token(issuer, repo, **overrides):
    workflow_ref = f"{repo['full_name']}/.github/workflows/coder.yml@refs/heads/main"
    claims = {
        "repository": repo["full_name"],
        "repository_id": str(repo["id"]),
        "workflow_ref": workflow_ref,
        "job_workflow_ref": workflow_ref,
        "run_id": str(repo.get("coder_run", 1)),
    }
    return issuer.sign(**(claims | overrides))


@pytest.fixture
def ask_without_minting(exchange_app, admin, devhub, org):
    """Ask for a token; return the answer, after checking no token was minted for it.

    The app's own installation token is fetched first (a replica handling webhooks has one),
    so any `access_tokens` POST while the request is answered would be a runner token.
    """

    async def asked(token):
        await exchange_app.access.tokens.get(org.installation_id)
        before = len(await admin.requests())
        narrowed_before = narrowed_tokens(devhub)
        answer = await ask(exchange_app, token)
        requests = (await admin.requests())[before:]
        assert [r for r in requests if r["path"].endswith("/access_tokens")] == []
        assert narrowed_tokens(devhub) == narrowed_before
        return answer

    return asked


def narrowed_tokens(devhub):
    """The installation tokens devhub has issued narrowed to repositories (runner tokens)."""
    return [t for t in devhub.state.tokens.values() if t.repository_ids is not None]


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


async def test_a_repository_outside_the_installation_is_refused(ask_without_minting, issuer, repos):
    status, answer = await ask_without_minting(job_token(issuer, repos["elsewhere"]))
    assert (status, answer) == (401, {"message": oidc.NOT_INSTALLED})


async def test_a_repository_name_and_id_that_disagree_are_refused_before_minting(
    ask_without_minting, issuer, repos
):
    # The name of one installed repository with the id of another.
    forged = job_token(issuer, repos["widgets"], repository_id=str(repos["gadgets"]["id"]))
    status, answer = await ask_without_minting(forged)
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
    ask_without_minting, issuer, repos, overrides, reason
):
    token = job_token(issuer, repos["widgets"], **overrides)
    status, answer = await ask_without_minting(token)
    assert (status, answer) == (401, {"message": reason})


ELSEWHERE = "acme/widgets/.github/workflows/ci.yml@refs/heads/main"
ON_A_BRANCH = "acme/widgets/.github/workflows/coder.yml@refs/heads/feature"
REUSABLE = "evil/tools/.github/workflows/coder.yml@refs/heads/main"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # Another workflow file of the same repository (anyone who may push a workflow).
        ({"workflow_ref": ELSEWHERE, "job_workflow_ref": ELSEWHERE}, oidc.WRONG_WORKFLOW),
        # coder's workflow file, as changed on another branch and dispatched there.
        ({"workflow_ref": ON_A_BRANCH, "job_workflow_ref": ON_A_BRANCH}, oidc.WRONG_REF),
        # coder's workflow calling a reusable workflow from elsewhere for the job.
        ({"job_workflow_ref": REUSABLE}, oidc.WRONG_WORKFLOW),
        # A job a pull request started, even in coder's own workflow file.
        ({"event_name": "pull_request_target"}, oidc.WRONG_EVENT),
        ({"event_name": "push"}, oidc.WRONG_EVENT),
    ],
)
async def test_only_coders_dispatched_workflow_on_the_default_branch_gets_a_token(
    ask_without_minting, issuer, repos, overrides, reason
):
    token = job_token(issuer, repos["widgets"], **overrides)
    status, answer = await ask_without_minting(token)
    assert (status, answer) == (401, {"message": reason})


async def test_the_configured_runner_workflow_is_the_one_that_counts(
    exchange_app, issuer, repos, admin, org
):
    content = base64.b64encode(b"runner: {workflow: agents.yml}\n").decode()
    status, _, answer = await admin.rest(org.owner.token).put(
        "/repos/acme/widgets/contents/.github/coder.yml",
        {"message": "use agents.yml", "content": content},
    )
    assert status == 201, answer
    agents = "acme/widgets/.github/workflows/agents.yml@refs/heads/main"
    token = job_token(issuer, repos["widgets"], workflow_ref=agents, job_workflow_ref=agents)
    assert (await ask(exchange_app, token))[0] == 200
    default = job_token(issuer, repos["widgets"])
    assert await ask(exchange_app, default) == (401, {"message": oidc.WRONG_WORKFLOW})


def test_workflow_refs_are_compared_as_github_does():
    claims = oidc.RunnerClaims(
        repository="Acme/Widgets",
        repository_id=7,
        run_id="1",
        event_name="workflow_dispatch",
        workflow_ref="acme/widgets/.github/workflows/coder.yml@refs/heads/main",
        job_workflow_ref="ACME/widgets/.github/workflows/coder.yml@refs/heads/main",
    )
    # Owner and repository names ignore case; the path and the ref do not.
    assert oidc.workflow_refusal(claims, workflow_file="coder.yml", branch="main") is None
    assert oidc.workflow_refusal(claims, workflow_file="Coder.yml", branch="main") == (
        oidc.WRONG_WORKFLOW
    )
    assert oidc.workflow_refusal(claims, workflow_file="coder.yml", branch="Main") == (
        oidc.WRONG_REF
    )


async def test_a_missing_bearer_is_refused(exchange_app):
    assert await ask(exchange_app, None) == (401, {"message": oidc.MISSING_BEARER})


# The same exchange with tokens from devhub's own issuer, the app's default on GHES.


@pytest.fixture
async def devhub_tokens(devhub, org, admin):
    """Return a minting function for acme/widgets tokens, audience `coder` unless changed."""
    status, _, widgets = await admin.rest(org.owner.token).get("/repos/acme/widgets")
    assert status == 200
    run = await record_coder_run(devhub, "acme/widgets", "bbbbbbbbbbbb")

    def mint(**claims):
        defaults = {
            "repository": "acme/widgets",
            "repository_id": str(widgets["id"]),
            "aud": AUDIENCE,
            "run_id": str(run),
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


# The whole path: the app dispatched the job, so it already knows everything the token claims.


@pytest.fixture
async def exchanging_runner(devhub, tmp_path):
    runner = await FakeRunner().start(devhub, tmp_path, "exchange")
    yield runner
    await runner.close()


async def test_a_job_the_app_dispatched_costs_one_call_to_exchange(
    devhub, admin, org, app_server, exchanging_runner
):
    await ensure_labels(app_server.access.for_installation(org.installation_id), "acme/widgets")
    journey = Journey(devhub, admin, org, app_server)
    await install_workflow(journey)
    number = await journey.issue()
    before = len(await admin.requests())
    await journey.label(number)
    report = await exchanging_runner.reports.get()
    assert report["exchange"]["status"] == 200
    # devhub's runner gives the job GitHub's claims for a dispatched run of coder's workflow.
    assert report["claims"] == {
        "event_name": "workflow_dispatch",
        "workflow_ref": CODER_WORKFLOW_REF,
        "job_workflow_ref": CODER_WORKFLOW_REF,
    }
    requests = (await admin.requests())[before:]
    with_jwt = [
        (r["method"], r["path"].removeprefix("/api/v3"))
        for r in requests
        if str(r["token_owner"]).startswith("app/") and r["path"] != "/api/v3/app"
    ]
    assert with_jwt == [("POST", f"/app/installations/{org.installation_id}/access_tokens")]
    repo_reads = [
        r for r in requests if r["method"] == "GET" and r["path"] == "/api/v3/repos/acme/widgets"
    ]
    assert repo_reads == []


async def hand_in(app_server, token, body):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = app_server.url + fork_results.RESULT_PATH
    async with app_server.session.post(url, headers=headers, json=body) as response:
        return response.status, await response.json()


RESULT = {"check_run": 1, "conclusion": "success", "title": "t", "summary": "s", "patch": None}


async def test_only_a_read_only_run_hands_its_result_to_the_app(app_server, devhub_tokens):
    assert await hand_in(app_server, None, RESULT) == (401, {"message": oidc.MISSING_BEARER})
    bad = await hand_in(app_server, devhub_tokens(aud="other"), RESULT)
    assert bad == (401, {"message": oidc.WRONG_AUDIENCE})
    # A job whose workflow run is not a read-only coder run writes its own check run.
    refused = await hand_in(app_server, devhub_tokens(), RESULT)
    assert refused == (403, {"message": fork_results.NOT_READ_ONLY})
    # A run coder did not dispatch (no such run, or not coder's title) gets nothing at all.
    unknown = await hand_in(app_server, devhub_tokens(run_id="424242"), RESULT)
    assert unknown == (401, {"message": oidc.NOT_DISPATCHED})
    for broken in ({**RESULT, "conclusion": "cancelled"}, {**RESULT, "check_run": "1"}, []):
        status, answer = await hand_in(app_server, devhub_tokens(), broken)
        assert (status, answer) == (422, {"message": fork_results.BAD_RESULT})


async def test_a_read_only_run_gets_a_token_that_only_reads(
    exchange_app, issuer, repos, devhub, admin
):
    run = await record_coder_run(devhub, "acme/widgets", "cccccccccccc", read_only=True)
    status, answer = await ask(exchange_app, job_token(issuer, repos["widgets"], run_id=str(run)))
    assert status == 200, answer
    assert answer["read_only"] is True
    assert answer["permissions"] == dict(oidc.READ_ONLY_PERMISSIONS)
    rest = admin.rest(answer["token"])
    assert (await rest.get("/repos/acme/widgets/issues"))[0] == 200
    assert (await rest.post("/repos/acme/widgets/labels", {"name": "from-a-fork"}))[0] == 403


async def test_a_run_without_coders_title_gets_no_token(exchange_app, issuer, repos, devhub):
    run = await record_coder_run(devhub, "acme/widgets", "dddddddddddd")
    devhub.state.repo("acme", "widgets").workflow_runs[run].display_title = "my own run-name"
    status, answer = await ask(exchange_app, job_token(issuer, repos["widgets"], run_id=str(run)))
    assert (status, answer) == (401, {"message": oidc.NOT_DISPATCHED})
    no_run = job_token(issuer, repos["widgets"], run_id=None)
    assert await ask(exchange_app, no_run) == (401, {"message": "the token lacks the run_id claim"})


async def test_a_read_only_job_may_write_only_its_own_check_run(
    app_server, devhub_tokens, devhub, admin, org
):
    run = await record_coder_run(devhub, "acme/widgets", "eeeeeeeeeeee", read_only=True)
    app = admin.rest(await installation_token(admin, devhub, org.installation_id))
    _, _, main = await app.get("/repos/acme/widgets/branches/main")
    snapshot = Snapshot.taken(
        repo="acme/widgets",
        issue_number=1,
        title="t",
        body="b",
        labeled_by="alice",
        run_id="ffffffffffff",
        workflow="fix",
        model="sonnet",
    )
    status, _, other = await app.post(
        "/repos/acme/widgets/check-runs",
        {
            "name": "coder/fix",
            "head_sha": main["commit"]["sha"],
            "external_id": "ffffffffffff",
            "output": {"title": "q", "summary": "q", "text": render_run_request(snapshot)},
        },
    )
    assert status == 201, other
    body = {**RESULT, "check_run": other["id"]}
    answer = await hand_in(app_server, devhub_tokens(run_id=str(run)), body)
    assert answer == (403, {"message": fork_results.NOT_ITS_RUN})
    _, _, unchanged = await app.get(f"/repos/acme/widgets/check-runs/{other['id']}")
    assert unchanged["status"] == "queued"
