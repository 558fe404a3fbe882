"""How the demo counts a run's API calls (DESIGN §8): every rate-limited call, progress apart."""

from app.demo_budget import api_calls

APP = {"token_owner": "coder[bot]", "token_repository_ids": None}
RUNNER = {"token_owner": "coder[bot]", "token_repository_ids": [7]}
JWT = {"token_owner": "app/coder", "token_repository_ids": None}
REPO = "/api/v3/repos/acme/widgets"
GRAPHQL = "/api/graphql"


def request(who, method, path, *, rate_limited=True):
    return {"method": method, "path": path, "rate_limited": rate_limited, **who}


def paths(calls):
    return [(r["method"], r["path"].removeprefix(REPO)) for r in calls]


def test_every_rate_limited_call_counts_and_only_mid_run_edits_are_progress():
    log = [
        request(APP, "GET", f"{REPO}/collaborators/alice/permission"),
        request(APP, "GET", f"{REPO}/contents/.github/coder.yml", rate_limited=False),  # a 304
        request(APP, "POST", f"{REPO}/actions/workflows/coder.yml/dispatches"),
        # The exchange, on the runner's behalf, with the app's JWT.
        request(JWT, "GET", f"{REPO}/installation"),
        request(JWT, "POST", "/api/v3/app/installations/8/access_tokens"),
        request(RUNNER, "POST", GRAPHQL),  # the pull request and the ids the end needs
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),  # the start: in_progress
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),  # progress
        request(RUNNER, "PATCH", f"{REPO}/pulls/2"),  # progress
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),  # progress
        request(RUNNER, "PATCH", f"{REPO}/pulls/2"),  # progress, too
        request(RUNNER, "POST", f"{REPO}/check-runs"),  # carried to the pushed commit
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),  # the end: "continued on"
        # The end: the final body, ready for review and coder:running off, in one request.
        request(RUNNER, "POST", GRAPHQL),
    ]
    calls = api_calls(log)
    assert paths(calls.app) == [
        ("GET", "/collaborators/alice/permission"),
        ("POST", "/actions/workflows/coder.yml/dispatches"),
    ]
    assert paths(calls.jwt) == [
        ("GET", "/installation"),
        ("POST", "/api/v3/app/installations/8/access_tokens"),
    ]
    assert paths(calls.runner) == [
        ("PATCH", "/check-runs/27"),
        ("POST", "/check-runs"),
        ("PATCH", "/check-runs/27"),
    ]
    assert paths(calls.progress) == [
        ("PATCH", "/check-runs/27"),
        ("PATCH", "/pulls/2"),
        ("PATCH", "/check-runs/27"),
        ("PATCH", "/pulls/2"),
    ]
    assert len(calls.graphql) == 2
    progress = {id(r) for r in calls.progress}
    assert id(log[7]) in progress
    assert id(log[6]) not in progress  # the start edit is not progress
    assert id(log[12]) not in progress  # nor is the end


def test_when_the_end_request_fails_the_rest_fallback_s_body_edit_is_the_final_one():
    log = [
        request(RUNNER, "POST", GRAPHQL),
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),  # the start
        request(RUNNER, "PATCH", f"{REPO}/pulls/2"),  # progress
        request(RUNNER, "POST", f"{REPO}/check-runs"),
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),  # the end
        # The end request, which did not land (a reset: GitHub never counted it).
        request(RUNNER, "POST", GRAPHQL, rate_limited=False),
        request(RUNNER, "PATCH", f"{REPO}/pulls/2"),  # the final status line, over REST
        request(RUNNER, "POST", GRAPHQL),  # ready for review, on its own
        request(RUNNER, "DELETE", f"{REPO}/issues/1/labels/coder:running"),
    ]
    calls = api_calls(log)
    assert [id(r) for r in calls.progress] == [id(log[2])]
    assert paths(calls.runner) == [
        ("PATCH", "/check-runs/27"),
        ("POST", "/check-runs"),
        ("PATCH", "/check-runs/27"),
        ("PATCH", "/pulls/2"),
        ("DELETE", "/issues/1/labels/coder:running"),
    ]
    assert len(calls.graphql) == 2


def test_a_run_with_one_edit_of_each_and_no_end_request_has_no_progress_edits():
    log = [
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),
        request(RUNNER, "PATCH", f"{REPO}/check-runs/27"),
        request(RUNNER, "PATCH", f"{REPO}/pulls/2"),
    ]
    calls = api_calls(log)
    assert calls.progress == []
    assert len(calls.runner) == 3
