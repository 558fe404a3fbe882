"""Tokens devhub mints look like GitHub's, and none reaches the app's log during a delivery."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import string
import zlib

import pytest
from gidgethub.routing import Router

from app.logs import REDACTED, Redactor, configure_logging
from app.settings import load_settings
from tests.support.app import serve_app
from tests.support.devhub import app_jwt

# https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/
GITHUB_TOKEN = re.compile(r"^gh[ps]_[A-Za-z0-9]{36}$")
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
GUARD = 30  # seconds; only so that a regression fails instead of hanging


def checksum_ok(token: str) -> bool:
    """Check the last 6 characters: the base62 CRC32 of the 30 before them."""
    entropy, checksum = token[4:-6], token[-6:]
    value = 0
    for char in checksum:
        value = value * len(BASE62) + BASE62.index(char)
    return value == zlib.crc32(entropy.encode())


@pytest.fixture
def output():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.parametrize(
    "token",
    [
        "ghs_abcdefghij-klmnopqrstuvwxyz-0123456789",  # '-' before and after the 16th character
        "ghp_-abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abc-defghijklmnopqrstuvwxyz",
    ],
)
def test_tokens_with_a_dash_are_redacted_whole(token):
    assert Redactor()(f"calling with {token} now") == f"calling with {REDACTED} now"


def test_a_token_glued_to_other_text_is_redacted():
    token = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
    url = f"https://x-access-token%3A{token}@github.com/acme/widgets.git"
    assert token not in Redactor()(url)


async def test_devhub_mints_tokens_in_githubs_format(devhub, admin, org):
    users = [await admin.create_user(f"user{n}") for n in range(20)]
    assert all(GITHUB_TOKEN.match(user.token) for user in users), [u.token for u in users]
    assert all(checksum_ok(user.token) for user in users)
    assert len({user.token for user in users}) == len(users)
    status, _, body = await admin.rest(None).post(
        f"/app/installations/{org.installation_id}/access_tokens",
        None,
        headers={"Authorization": f"Bearer {app_jwt(devhub)}"},
    )
    assert status == 201
    assert body["token"].startswith("ghs_")
    assert GITHUB_TOKEN.match(body["token"])
    assert checksum_ok(body["token"])


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_minted_token_never_reaches_the_app_log(devhub, admin, org, output, log_format):
    minted: list[str] = []
    router = Router()

    @router.register("issues", action="opened")
    async def leak_the_token(event, gh):
        # A handler that went wrong in the worst way: the token is in a message, an `extra`
        # field, and the traceback of the error the queue logs.
        token = await running.access.tokens.get(event.data["installation"]["id"])
        minted.append(token)
        remote = f"http://x-access-token:{token}@127.0.0.1/{org.repo}.git"
        logging.getLogger("app.test").warning("pushing to %s", remote, extra={"remote": remote})
        raise RuntimeError(f"git push {remote} failed (token {token})")

    env = devhub.app_env() | {"CODER_RECONCILE_SECONDS": "0"}
    settings = load_settings(None, env)
    configure_logging("DEBUG", log_format, secrets=settings.secret_values(), stream=output)
    running = await serve_app(settings, routers=[router])
    try:
        event = {
            "action": "opened",
            "issue": {"number": 1},
            "repository": {"full_name": org.repo},
            "installation": {"id": org.installation_id},
            "sender": {"login": "alice", "type": "User"},
        }
        status, _ = await running.deliver("issues", event, delivery_id="leaky")
        assert status == 202
        outcome = await asyncio.wait_for(running.queue.wait_for("leaky"), GUARD)
        assert outcome.startswith("error: RuntimeError")
    finally:
        await running.close()
    logged = output.getvalue()
    assert minted
    assert GITHUB_TOKEN.match(minted[0])
    assert "delivery leaky" in logged
    assert "Traceback" in logged or '"exception"' in logged
    assert minted[0] not in logged
    assert minted[0][4:20] not in logged  # not even a piece of it
    assert REDACTED in logged
