"""coder-agent's environment contract: what it requires, and how it refuses what is wrong."""

from __future__ import annotations

import json

import pytest

from actions.agent.env import EnvError, load_env
from app.ids import run_id

RUN_ID = run_id("acme/widgets", "develop", 7, "delivery-1")


def environment(tmp_path, **overrides):
    base = {
        "GITHUB_REPOSITORY": "acme/widgets",
        "GITHUB_SERVER_URL": "http://127.0.0.1:9",
        "GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
        "GITHUB_GRAPHQL_URL": "http://127.0.0.1:9/api/graphql",
        "GITHUB_RUN_ID": "31",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/oidc?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
        "CODER_APP_URL": "http://127.0.0.1:8/",
        "CODER_RUN_ID": RUN_ID,
        "CODER_ISSUE": "7",
        "CODER_PULL": "8",
        "CODER_CHECK_RUN": "9",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def test_a_complete_environment_loads(tmp_path):
    env = load_env(environment(tmp_path))
    assert (env.run_id, env.issue, env.pull, env.check_run) == (RUN_ID, 7, 8, 9)
    assert env.repository == "acme/widgets"
    assert env.clone_url == "http://127.0.0.1:9/acme/widgets.git"
    assert env.actions_run_url == "http://127.0.0.1:9/acme/widgets/actions/runs/31"
    assert env.reach.oidc is not None
    assert env.reach.oidc.app_url == "http://127.0.0.1:8"
    assert env.reach.app_key is None
    assert env.output_path == tmp_path / "output"


def test_the_run_id_matches_app_ids_format(tmp_path):
    assert load_env(environment(tmp_path)).run_id == RUN_ID
    for bad in ["ABCDEFGHIJKL", "abc", "abcdefghijk1", "abcdefghijklm", "../../etc/pa", "a b"]:
        with pytest.raises(EnvError, match="CODER_RUN_ID"):
            load_env(environment(tmp_path, CODER_RUN_ID=bad))


@pytest.mark.parametrize("name", ["CODER_ISSUE", "CODER_PULL", "CODER_CHECK_RUN"])
@pytest.mark.parametrize("value", ["0", "-3", "3.5", "seven", "1e3", "٣", "99999999999999999999"])
def test_numbers_must_be_positive_integers(tmp_path, name, value):
    with pytest.raises(EnvError, match=f"{name} must be a positive integer"):
        load_env(environment(tmp_path, **{name: value}))


def test_every_problem_is_named_on_one_line(tmp_path):
    with pytest.raises(EnvError) as caught:
        load_env(environment(tmp_path, CODER_ISSUE=None, CODER_PULL="x", GITHUB_REPOSITORY="bad"))
    message = str(caught.value)
    assert "\n" not in message
    assert "CODER_ISSUE is not set" in message
    assert "CODER_PULL must be a positive integer (got 'x')" in message
    assert "GITHUB_REPOSITORY must be owner/name" in message


def test_missing_ids_are_read_from_the_dispatch_payload(tmp_path):
    event = tmp_path / "event.json"
    inputs = {"run_id": RUN_ID, "issue": "7", "pull": 8, "check_run": "9"}
    event.write_text(json.dumps({"inputs": inputs, "repository": {"full_name": "acme/widgets"}}))
    env = load_env(
        environment(
            tmp_path,
            GITHUB_EVENT_PATH=str(event),
            CODER_RUN_ID=None,
            CODER_ISSUE=None,
            CODER_PULL=None,
            CODER_CHECK_RUN="",  # an unset `${{ }}` arrives as an empty string
        )
    )
    assert (env.run_id, env.issue, env.pull, env.check_run) == (RUN_ID, 7, 8, 9)


def test_without_any_way_to_a_token_it_says_how_to_get_one(tmp_path):
    with pytest.raises(EnvError, match="id-token: write") as caught:
        load_env(environment(tmp_path, CODER_APP_URL=None))
    assert caught.value.reach is None


def test_the_app_key_is_the_fallback(tmp_path):
    key = "-----BEGIN RSA PRIVATE KEY-----\\nabc\\n-----END RSA PRIVATE KEY-----"
    env = load_env(
        environment(tmp_path, CODER_APP_URL="", CODER_APP_ID="12", CODER_PRIVATE_KEY=key)
    )
    assert env.reach.oidc is None
    assert env.reach.app_key is not None
    assert env.reach.app_key.app_id == 12
    assert env.reach.app_key.private_key.count("\n") == 2  # one-line secrets get their newlines


def test_the_fallback_also_takes_probots_secret_names(tmp_path):
    key = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"
    env = load_env(environment(tmp_path, CODER_APP_URL="", APP_ID="34", PRIVATE_KEY=key))
    assert env.reach.app_key is not None
    assert (env.reach.app_key.app_id, env.reach.app_key.private_key_name) == (34, "PRIVATE_KEY")
    assert env.reach.app_key.private_key.count("\n") == 2


def test_coders_own_secret_names_come_first(tmp_path):
    env = load_env(
        environment(
            tmp_path,
            CODER_APP_URL="",
            CODER_APP_ID="12",
            CODER_PRIVATE_KEY="coder's key",
            APP_ID="34",
            PRIVATE_KEY="another app's key",
        )
    )
    assert env.reach.app_key is not None
    assert (env.reach.app_key.app_id, env.reach.app_key.private_key) == (12, "coder's key")
    # An empty CODER_ secret (unset in the repository) lets the other name through.
    env = load_env(
        environment(tmp_path, CODER_APP_URL="", CODER_APP_ID="", APP_ID="34", PRIVATE_KEY="k")
    )
    assert env.reach.app_key is not None
    assert env.reach.app_key.app_id == 34


def test_a_bad_app_id_is_named_as_it_was_set(tmp_path):
    with pytest.raises(EnvError, match="APP_ID must be the app's numeric id") as caught:
        load_env(environment(tmp_path, APP_ID="my-app", PRIVATE_KEY="k"))
    assert "CODER_APP_ID" not in str(caught.value)


def test_a_failure_keeps_what_is_needed_to_report_it(tmp_path):
    with pytest.raises(EnvError) as caught:
        load_env(environment(tmp_path, CODER_ISSUE="x"))
    reach = caught.value.reach
    assert reach is not None
    assert reach.repository == "acme/widgets"
    assert reach.check_run == 9
    assert reach.api_url == "http://127.0.0.1:9/api/v3"


def test_no_report_without_a_valid_check_run(tmp_path):
    with pytest.raises(EnvError) as caught:
        load_env(environment(tmp_path, CODER_CHECK_RUN="nope"))
    assert caught.value.reach is not None
    assert caught.value.reach.check_run is None
