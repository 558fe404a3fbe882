"""Settings for the token exchange and the reconcile loop: defaults, derivation, errors."""

import pytest

from app.settings import SettingsError, load_settings


@pytest.fixture
def env(private_key_pem):
    return {"APP_ID": "42", "PRIVATE_KEY": private_key_pem, "WEBHOOK_SECRET": "s3cret"}


def test_defaults_on_github_com(env):
    settings = load_settings(None, env)
    assert settings.token_issuer == "https://token.actions.githubusercontent.com"
    assert settings.oidc_audience == "coder"
    assert settings.reconcile_seconds == 300


def test_the_issuer_follows_ghe_host(env):
    ghes = load_settings(None, env | {"GHE_HOST": "ghe.example.com"})
    assert ghes.token_issuer == "https://ghe.example.com/_services/token"
    local = load_settings(None, env | {"GHE_HOST": "127.0.0.1:8080", "GHE_PROTOCOL": "http"})
    assert local.token_issuer == "http://127.0.0.1:8080/_services/token"


def test_explicit_values_win(env):
    settings = load_settings(
        None,
        env
        | {
            "GHE_HOST": "ghe.example.com",
            "CODER_OIDC_ISSUER": "https://issuer.example.com/",
            "CODER_OIDC_AUDIENCE": "my-coder",
            "CODER_RECONCILE_SECONDS": "0",
        },
    )
    assert settings.token_issuer == "https://issuer.example.com"
    assert settings.oidc_audience == "my-coder"
    assert settings.reconcile_seconds == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CODER_OIDC_ISSUER", "token.actions.githubusercontent.com"),
        ("CODER_OIDC_ISSUER", "https://issuer.example.com/?x=1"),
        ("CODER_OIDC_AUDIENCE", "two words"),
        ("CODER_RECONCILE_SECONDS", "-1"),
        ("CODER_RECONCILE_SECONDS", "soon"),
    ],
)
def test_bad_values_name_the_setting(env, name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings(None, env | {name: value})
    assert name in str(caught.value)
