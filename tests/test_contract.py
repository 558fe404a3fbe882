"""The GitHub contract fixtures and the validators devhub's strict mode runs on every request."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from devhub.contract import (
    OPENAPI_FIXTURE,
    WEBHOOKS_FIXTURE,
    OpenAPIContract,
    WebhookContract,
    default_fixture_dir,
    to_json_schema,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "github"
EXAMPLES = FIXTURES / "webhook-examples"
CONTRACT_LIST = tomllib.loads((ROOT / "scripts" / "github-contract.toml").read_text())
MIT_GRANT = "Permission is hereby granted, free of charge, to any person obtaining a copy"
MAX_OPENAPI_SLICE_BYTES = 1_500_000

# Where @octokit/webhooks-examples 7.6.1 (payloads captured in 2019) lag the current schemas in
# @octokit/openapi-webhooks 12.1.0: fields GitHub added later, and installation timestamps that
# were integers then and are documented as strings now. Pinned exactly, so any new disagreement,
# or one that goes away on a version bump, fails here. See docs/contract-tests.md.
KNOWN_DRIFT: dict[str, set[str]] = {
    "installation.created.json": {
        " at /installation/created_at: 1557933591 is not of type 'string'",
        " at /installation/updated_at: 1557933591 is not of type 'string'",
        " at /installation: 'app_slug' is a required property",
    },
    "installation_repositories.added.json": {
        " at /installation/created_at: 1557933591 is not of type 'string'",
        " at /installation/updated_at: 1557933591 is not of type 'string'",
        " at /installation: 'app_slug' is a required property",
        " at /installation: 'suspended_by' is a required property",
        " at /installation: 'suspended_at' is a required property",
        ": 'requester' is a required property",
    },
    "issue_comment.created.json": {
        " at /comment: 'performed_via_github_app' is a required property",
        " at /comment: 'reactions' is a required property",
        " at /issue/labels/0: 'description' is a required property",
        " at /issue: 'active_lock_reason' is a required property",
        " at /issue: 'reactions' is a required property",
    },
    "pull_request.opened.json": {" at /pull_request: 'auto_merge' is a required property"},
    "pull_request_review.submitted.json": {
        " at /pull_request/base/repo: 'has_discussions' is a required property",
        " at /pull_request/base/repo: 'topics' is a required property",
        " at /pull_request/base/repo: 'visibility' is a required property",
        " at /pull_request/head/repo: 'has_discussions' is a required property",
        " at /pull_request/head/repo: 'topics' is a required property",
        " at /pull_request/head/repo: 'visibility' is a required property",
        " at /pull_request: 'active_lock_reason' is a required property",
        " at /pull_request: 'auto_merge' is a required property",
        " at /pull_request: 'draft' is a required property",
    },
    "pull_request_review_comment.created.json": {
        " at /comment: 'line' is a required property",
        " at /comment: 'original_line' is a required property",
        " at /comment: 'original_start_line' is a required property",
        " at /comment: 'reactions' is a required property",
        " at /comment: 'side' is a required property",
        " at /comment: 'start_line' is a required property",
        " at /comment: 'start_side' is a required property",
        " at /pull_request/base/repo: 'has_discussions' is a required property",
        " at /pull_request/base/repo: 'topics' is a required property",
        " at /pull_request/base/repo: 'visibility' is a required property",
        " at /pull_request/head/repo: 'topics' is a required property",
        " at /pull_request/head/repo: 'visibility' is a required property",
        " at /pull_request: 'active_lock_reason' is a required property",
    },
    "push.json": {
        " at /repository: 'has_discussions' is a required property",
        " at /repository: 'topics' is a required property",
        " at /repository: 'visibility' is a required property",
    },
}


@pytest.fixture(scope="module")
def openapi() -> OpenAPIContract:
    return OpenAPIContract.load(FIXTURES / OPENAPI_FIXTURE)


@pytest.fixture(scope="module")
def webhooks() -> WebhookContract:
    return WebhookContract.load(FIXTURES / WEBHOOKS_FIXTURE)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


# --- the fixture files --------------------------------------------------------------------


def test_fixture_files_exist_and_default_dir_finds_them():
    assert default_fixture_dir() == FIXTURES
    for name in (OPENAPI_FIXTURE, WEBHOOKS_FIXTURE, "SOURCES", "LICENSE"):
        assert (FIXTURES / name).is_file(), name
    expected = {f"{name}.json" for name in CONTRACT_LIST["examples"]["events"]}
    assert {path.name for path in EXAMPLES.glob("*.json")} == expected


def test_sources_names_every_pinned_version_with_its_integrity():
    lines = (FIXTURES / "SOURCES").read_text().splitlines()
    for package, version in CONTRACT_LIST["packages"].items():
        entry = next(line for line in lines if line.startswith(f"{package} "))
        name, pinned, integrity = entry.split(" ")
        assert (name, pinned) == (package, version)
        assert integrity.startswith("sha512-")
    assert any(line.startswith("fetched: ") for line in lines)


def test_license_holds_the_mit_text_for_every_package():
    text = (FIXTURES / "LICENSE").read_text()
    assert MIT_GRANT in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    for package, version in CONTRACT_LIST["packages"].items():
        assert f"{package}@{version}" in text


def test_openapi_slice_holds_exactly_the_listed_operations_and_stays_small():
    document = json.loads((FIXTURES / OPENAPI_FIXTURE).read_text())
    operation_ids = [
        operation["operationId"]
        for path_item in document["paths"].values()
        for operation in path_item.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert sorted(operation_ids) == sorted(CONTRACT_LIST["openapi"]["operations"])
    assert (FIXTURES / OPENAPI_FIXTURE).stat().st_size < MAX_OPENAPI_SLICE_BYTES


@pytest.mark.parametrize("fixture", [OPENAPI_FIXTURE, WEBHOOKS_FIXTURE])
def test_slices_are_closed_under_their_component_refs(fixture):
    document = json.loads((FIXTURES / fixture).read_text())
    for ref in all_refs(document):
        node = document
        for token in ref.removeprefix("#/").split("/"):
            assert token in node, f"{fixture}: dangling {ref}"
            node = node[token]


def test_webhook_slice_holds_exactly_the_listed_keys():
    document = json.loads((FIXTURES / WEBHOOKS_FIXTURE).read_text())
    assert sorted(document["webhooks"]) == sorted(CONTRACT_LIST["webhooks"]["keys"])


# --- webhook payloads ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_published_examples_validate_against_the_webhook_schemas(webhooks, name):
    event = name.split(".")[0]
    payload = example(name)
    key = webhooks.key_for(event, payload.get("action"))
    problems = webhooks.validate(event, payload)
    label = f"{event}.{payload['action']}" if "action" in payload else event
    prefix = f"webhook {label} ({key}): payload"
    assert all(problem.startswith(prefix) for problem in problems), problems
    assert {problem.removeprefix(prefix) for problem in problems} == KNOWN_DRIFT.get(name, set())


def test_a_payload_missing_a_required_field_names_it(webhooks):
    payload = example("issues.labeled.json")
    del payload["issue"]["title"]
    assert webhooks.validate("issues", payload) == [
        "webhook issues.labeled (issues-labeled): payload at /issue: 'title' is a required property"
    ]


def test_a_payload_field_of_the_wrong_type_names_it(webhooks):
    payload = example("issues.labeled.json")
    payload["issue"]["number"] = "1"
    payload["label"]["name"] = 7
    problems = webhooks.validate("issues", payload)
    assert any(p.endswith("""at /issue/number: "1" is not of type 'integer'""") for p in problems)
    assert any("at /label/name: 7 is not of type 'string'" in p for p in problems)


def test_the_event_header_and_action_pick_the_schema(webhooks):
    assert webhooks.key_for("pull_request", "ready_for_review") == "pull-request-ready-for-review"
    assert webhooks.key_for("installation_repositories", "added") == (
        "installation-repositories-added"
    )
    assert webhooks.key_for("push", None) == "push"
    # repository_dispatch's action is whatever event_type the client sent.
    assert webhooks.key_for("repository_dispatch", "coder-run") == (
        "repository-dispatch-sample.collected"
    )
    payload = example("issues.labeled.json")
    assert webhooks.validate("issues", {**payload, "action": "exploded"}) == [
        (
            "webhook issues.exploded: no schema in the webhook slice; "
            "add it to scripts/github-contract.toml and run `make fixtures`"
        )
    ]
    assert webhooks.validate("issues", {**payload, "action": "unlabeled"}) == []


# --- OpenAPI 3.0 nullable -> JSON Schema ---------------------------------------------------


def test_a_nullable_enum_without_null_in_the_real_data_accepts_null(openapi):
    document = json.loads((FIXTURES / OPENAPI_FIXTURE).read_text())
    body = document["paths"]["/repos/{owner}/{repo}/issues/{issue_number}"]["patch"]
    state_reason = body["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "state_reason"
    ]
    # One of the ~71 places where GitHub marks an enum nullable but leaves null out of it.
    assert state_reason["nullable"] is True
    assert None not in state_reason["enum"]
    path = "/repos/o/r/issues/1"
    assert openapi.validate_request("PATCH", path, {}, {"state_reason": None}) == []
    assert openapi.validate_request("PATCH", path, {}, {"state_reason": "not_planned"}) == []
    assert openapi.validate_request("PATCH", path, {}, {"state_reason": "bored"}) == [
        (
            "PATCH /repos/o/r/issues/1 (issues/update): request body at /state_reason: "
            '"bored" is not one of ["completed", "not_planned", "duplicate", "reopened", null]'
        )
    ]


def test_translation_never_edits_the_source_schema():
    source = {"type": "string", "nullable": True, "enum": ["a"], "description": "why"}
    original = copy.deepcopy(source)
    translated = to_json_schema(source)
    assert source == original
    assert translated == {"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]}


def test_one_of_with_several_nullable_branches_accepts_null_once(openapi):
    # validation-error's errors[].value is oneOf three nullable branches; null must still pass.
    body = {
        "message": "Validation Failed",
        "documentation_url": "https://docs.github.com/rest/issues/labels#create-a-label",
        "errors": [{"resource": "Label", "code": "already_exists", "field": "name", "value": None}],
    }
    assert openapi.validate_response("POST", "/repos/o/r/labels", 422, body) == []


# --- requests -----------------------------------------------------------------------------


def test_operation_for_prefers_literal_segments_and_spans_multi_segment_params(openapi):
    assert openapi.operation_for("GET", "/repos/o/r/issues/1") == "issues/get"
    # Both /issues/comments/{comment_id} and /issues/{issue_number}/comments match this path.
    assert openapi.operation_for("GET", "/repos/o/r/issues/comments/comments") == (
        "issues/get-comment"
    )
    assert openapi.operation_for("GET", "/repos/o/r/issues/1/comments") == "issues/list-comments"
    assert openapi.operation_for("GET", "/repos/o/r/git/ref/heads/coder/42-x") == "git/get-ref"
    assert openapi.operation_for("GET", "/repos/o/r/contents/.github/coder.yml") == (
        "repos/get-content"
    )
    assert openapi.operation_for("GET", "/repos/o/r/commits/coder/42-x/check-runs") == (
        "checks/list-for-ref"
    )
    assert openapi.operation_for("HEAD", "/repos/o/r") == "repos/get"
    assert openapi.operation_for("GET", "/repos/o/r/issues/1/bogus") is None
    assert openapi.operation_for("DELETE", "/repos/o/r/issues/1") is None


def test_create_label_needs_a_name(openapi):
    path = "/repos/o/r/labels"
    assert openapi.validate_request("POST", path, {}, {"color": "ededed"}) == [
        "POST /repos/o/r/labels (issues/create-label): request body: 'name' is a required property"
    ]
    assert openapi.validate_request("POST", path, {}, {"name": "coder:develop"}) == []
    assert openapi.validate_request("POST", path, {}, None) == [
        "POST /repos/o/r/labels (issues/create-label): request body is required"
    ]


def test_query_parameters_are_coerced_and_unknown_ones_ignored(openapi):
    path = "/repos/o/r/issues"
    assert openapi.validate_request("GET", path, {"per_page": "100"}, None) == []
    assert openapi.validate_request("GET", path, {"per_page": "100", "utm": "x"}, None) == []
    assert openapi.validate_request("GET", path, {"per_page": "many"}, None) == [
        (
            "GET /repos/o/r/issues (issues/list-for-repo): query parameter 'per_page': "
            "\"many\" is not of type 'integer'"
        )
    ]
    assert openapi.validate_request("GET", "/search/issues", {}, None) == [
        "GET /search/issues (search/issues-and-pull-requests): query parameter 'q' is required"
    ]
    run = "/repos/o/r/actions/runs/7"
    assert openapi.validate_request("GET", run, {"exclude_pull_requests": "true"}, None) == []


def test_path_parameters_are_validated_and_percent_decoded(openapi):
    assert openapi.validate_request("GET", "/repos/o/r/issues/abc", {}, None) == [
        (
            "GET /repos/o/r/issues/abc (issues/get): path parameter 'issue_number': "
            "\"abc\" is not of type 'integer'"
        )
    ]
    label = "/repos/o/r/labels/good%20first%20issue"
    assert openapi.operation_for("GET", label) == "issues/get-label"
    assert openapi.validate_request("GET", label, {}, None) == []
    # workflow_id is oneOf integer or file name.
    for workflow in ("coder.yml", "1234"):
        path = f"/repos/o/r/actions/workflows/{workflow}/dispatches"
        assert openapi.validate_request("POST", path, {}, {"ref": "main"}) == []


def test_an_operation_outside_the_slice_is_a_violation(openapi):
    hint = "no operation in the OpenAPI slice; add it to scripts/github-contract.toml"
    assert openapi.validate_request("GET", "/foo/bar", {}, None) == [
        f"GET /foo/bar: {hint} and run `make fixtures`"
    ]
    assert openapi.validate_response("put", "/foo/bar", 200, {}) == [
        f"PUT /foo/bar: {hint} and run `make fixtures`"
    ]


# --- responses ----------------------------------------------------------------------------


def test_a_realistic_label_response_passes_and_a_broken_one_fails(openapi):
    # The label from GitHub's own example payload is the REST `label` shape.
    label = example("issues.labeled.json")["label"]
    path = "/repos/o/r/labels/bug"
    assert openapi.validate_response("GET", path, 200, label) == []
    broken = {**label, "id": str(label["id"])}
    del broken["color"]
    assert openapi.validate_response("GET", path, 200, broken) == [
        (
            "GET /repos/o/r/labels/bug (issues/get-label): response 200: body at /id: "
            "\"1362934389\" is not of type 'integer'"
        ),
        (
            "GET /repos/o/r/labels/bug (issues/get-label): response 200: body: "
            "'color' is a required property"
        ),
    ]
    assert openapi.validate_response("GET", path, 200, None) == [
        (
            "GET /repos/o/r/labels/bug (issues/get-label): response 200: "
            "no body; GitHub sends application/json"
        )
    ]


def test_response_statuses_follow_the_operation_and_github_error_conventions(openapi):
    not_found = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
    path = "/repos/o/r/labels/bug"
    assert openapi.validate_response("GET", path, 404, not_found) == []
    # Undocumented error statuses are fine when they carry GitHub's error body.
    assert openapi.validate_response("GET", path, 503, {"message": "Unavailable"}) == []
    assert openapi.validate_response("GET", path, 500, "oops") == [
        (
            "GET /repos/o/r/labels/bug (issues/get-label): response 500: "
            "GitHub's error bodies are objects with a string 'message'"
        )
    ]
    assert openapi.validate_response("GET", path, 201, {}) == [
        (
            "GET /repos/o/r/labels/bug (issues/get-label): response 201: "
            "status not documented for this operation (200, 404)"
        )
    ]
    # Conditional requests: any GET may answer 304, always without a body; HEAD has no body.
    assert openapi.validate_response("GET", path, 304, None) == []
    assert openapi.validate_response("HEAD", path, 200, None) == []
    assert openapi.validate_response("DELETE", path, 204, None) == []
    assert openapi.validate_response("DELETE", path, 204, {}) == [
        (
            "DELETE /repos/o/r/labels/bug (issues/delete-label): response 204: "
            "carries a body; GitHub sends none with 204"
        )
    ]


def test_check_run_response_accepts_a_null_conclusion(openapi):
    check_run = example("check_run.requested_action.json")["check_run"]
    path = f"/repos/o/r/check-runs/{check_run['id']}"
    problems = openapi.validate_response("GET", path, 200, {**check_run, "conclusion": None})
    assert not [p for p in problems if "/conclusion" in p]
    problems = openapi.validate_response("GET", path, 200, {**check_run, "conclusion": "meh"})
    assert any('at /conclusion: "meh" is not one of' in p for p in problems)


def test_loading_is_cached_per_file(openapi, webhooks):
    assert OpenAPIContract.load(FIXTURES / OPENAPI_FIXTURE) is openapi
    assert WebhookContract.load(FIXTURES / WEBHOOKS_FIXTURE) is webhooks
