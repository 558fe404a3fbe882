"""Logging: text and JSON lines, and no token or secret ever reaches the output."""

import io
import json
import logging

import pytest

from app.logs import REDACTED, Redactor, configure_logging

SECRET = "hook-secret-42"
TOKENS = [
    "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxIn0.c2lnbmF0dXJl",
]


def fail_with(message):
    raise RuntimeError(message)


@pytest.fixture
def output():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.parametrize("token", TOKENS)
def test_token_shapes_are_redacted(token):
    redacted = Redactor()(f"calling with {token} now")
    assert token not in redacted
    assert redacted == f"calling with {REDACTED} now"


@pytest.mark.parametrize("token", TOKENS)
def test_a_line_holding_a_token_is_always_suspected(token):
    # `suspects` lets clean lines skip redaction, so it must never miss one that is not clean.
    redact = Redactor([SECRET])
    assert redact.suspects(f"calling with {token} now")
    assert redact.suspects(f"the secret is {SECRET}")
    assert redact.suspects("AUTHORIZATION: token abc123")


def test_a_delivery_line_is_not_suspected():
    line = "delivery 72d3162e-cc78-11e3-81ab-4c9367dc0958 issues.labeled acme/widgets: ok (3 ms)"
    assert not Redactor([SECRET]).suspects(line)
    assert Redactor([SECRET])(line) == line


def test_a_token_only_in_an_extra_field_is_redacted_in_the_record(output):
    handler = configure_logging("INFO", "text", stream=output)
    records = []
    # Runs after the redacting filter, so it sees what every handler's formatter would.
    handler.addFilter(lambda record: records.append(record) or True)
    logging.getLogger("test.extra").info("clean message", extra={"remote": TOKENS[0]})
    assert records[0].remote == REDACTED
    assert records[0].getMessage() == "clean message"


def test_authorization_values_are_redacted_but_the_header_name_stays():
    redact = Redactor()
    assert redact("Authorization: token abc123") == f"Authorization: {REDACTED}"
    assert redact("{'authorization': 'Bearer xyz'}") == f"{{'authorization': '{REDACTED}'}}"


def test_pem_blocks_are_redacted(private_key_pem):
    redacted = Redactor()(f"key is {private_key_pem} ok")
    assert "PRIVATE KEY" not in redacted
    assert redacted.startswith(f"key is {REDACTED}")


def test_configured_secrets_are_redacted():
    assert Redactor([SECRET, ""])(f"secret={SECRET}!") == f"secret={REDACTED}!"


def test_text_lines_redact_messages_args_and_tracebacks(output):
    configure_logging("INFO", "text", secrets=[SECRET], stream=output)
    log = logging.getLogger("test.redaction")
    log.info("token %s and secret %s", TOKENS[0], SECRET)
    try:
        fail_with(f"failed with {TOKENS[1]}")
    except RuntimeError:
        log.exception("while calling GitHub")
    text = output.getvalue()
    assert "token [REDACTED] and secret [REDACTED]" in text
    assert "RuntimeError: failed with [REDACTED]" in text
    for secret in (SECRET, TOKENS[0], TOKENS[1]):
        assert secret not in text


def test_json_lines_carry_extra_fields_and_redact_them(output):
    configure_logging("DEBUG", "json", secrets=[SECRET], stream=output)
    logging.getLogger("app.webhooks").info(
        "delivery %s",
        "d-1",
        extra={"event": "issues", "delivery_id": "d-1", "ms": 3.5, "note": f"has {SECRET}"},
    )
    lines = output.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "delivery d-1"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "app.webhooks"
    assert (entry["event"], entry["delivery_id"], entry["ms"]) == ("issues", "d-1", 3.5)
    assert entry["note"] == f"has {REDACTED}"
    assert "time" in entry


def test_json_lines_carry_values_plain_json_would(output):
    configure_logging("INFO", "json", stream=output)
    logging.getLogger("test.json").info(
        "values", extra={"counts": {1: 2}, "big": 2**70, "when": {"a", "b"} - {"b"}}
    )
    entry = json.loads(output.getvalue())
    assert (entry["counts"], entry["big"], entry["when"]) == ({"1": 2}, 2**70, "{'a'}")


def test_level_is_applied(output):
    configure_logging("WARNING", "text", stream=output)
    logging.getLogger("test.level").info("quiet")
    logging.getLogger("test.level").warning("loud")
    assert "quiet" not in output.getvalue()
    assert "loud" in output.getvalue()


def test_a_broken_format_string_still_logs(output):
    configure_logging("INFO", "text", stream=output)
    logging.getLogger("test.broken").info("%d items", "not a number")
    assert "%d items" in output.getvalue()
