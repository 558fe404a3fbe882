"""App JWTs: RS256, iat 60 s in the past, expiry 9 minutes, issuer = app id, reused ~1 minute."""

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.github import AppAuth, PrefixedCache

NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def claims(token, private_key_pem):
    public_key = serialization.load_pem_private_key(
        private_key_pem.encode(), password=None
    ).public_key()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    # Verified with the public key; expiry checked against the fake clock, not the wall clock.
    return jwt.decode(token, public_key, algorithms=["RS256"], options={"verify_exp": False})


def test_jwt_claims(private_key_pem):
    token = AppAuth(12345, private_key_pem, clock=Clock()).jwt()
    assert claims(token, private_key_pem) == {
        "iat": int(NOW) - 60,
        "exp": int(NOW) + 540,
        "iss": "12345",
    }


def test_jwt_is_signed_by_the_app_key(private_key_pem):
    token = AppAuth(1, private_key_pem, clock=Clock()).jwt()
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        claims(tampered, private_key_pem)


def test_jwt_is_reused_for_a_minute_then_renewed(private_key_pem):
    clock = Clock()
    auth = AppAuth(1, private_key_pem, clock=clock)
    first = auth.jwt()
    clock.now += 59
    assert auth.jwt() == first
    clock.now += 2
    renewed = auth.jwt()
    assert renewed != first
    assert claims(renewed, private_key_pem)["iat"] == int(NOW) + 61 - 60


def test_a_clock_going_backwards_mints_a_new_jwt(private_key_pem):
    clock = Clock()
    auth = AppAuth(1, private_key_pem, clock=clock)
    first = auth.jwt()
    clock.now -= 30
    assert auth.jwt() != first


def test_prefixed_cache_views_do_not_see_each_other():
    shared = {}
    one, two = PrefixedCache(shared, "installation:1:"), PrefixedCache(shared, "installation:2:")
    entry = ('"etag"', None, {"secret": "one's body"}, None)
    one["https://api/x"] = entry
    assert one["https://api/x"] == entry
    assert "https://api/x" not in two
    with pytest.raises(KeyError):
        two["https://api/x"]
    assert list(one) == ["https://api/x"]
    assert len(two) == 0
    assert len(shared) == 1
    del one["https://api/x"]
    assert shared == {}
