"""Settings: Probot's names, .env parsing, precedence, and one-line errors that name the setting."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from app.settings import MAX_BODY_BYTES, SettingsError, load_settings, parse_env_file

SECRET = "s3cret-value-for-tests"


@pytest.fixture
def env(private_key_pem):
    return {"APP_ID": "42", "PRIVATE_KEY": private_key_pem, "WEBHOOK_SECRET": SECRET}


def error_for(environ, env_file=None):
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file, environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_minimal_settings_and_defaults(env):
    settings = load_settings(None, env)
    assert settings.app_id == 42
    assert settings.webhook_secret.get_secret_value() == SECRET
    assert settings.webhook_path == "/api/github/webhooks"
    assert (settings.host, settings.port) == ("127.0.0.1", 3000)
    assert settings.ghe_host is None
    assert settings.api_url == "https://api.github.com"
    assert settings.graphql_url == "https://api.github.com/graphql"
    assert (settings.log_level, settings.log_format) == ("INFO", "text")
    assert settings.max_concurrency == 32
    assert settings.shutdown_grace_seconds == 10
    assert settings.max_body_bytes == MAX_BODY_BYTES == 25 * 1024 * 1024


def test_settings_are_frozen(env):
    settings = load_settings(None, env)
    with pytest.raises(ValidationError):
        settings.port = 1


def test_secrets_are_not_in_the_repr(env):
    settings = load_settings(None, env)
    assert SECRET not in repr(settings)
    assert "PRIVATE KEY" not in repr(settings)
    assert SECRET in settings.secret_values()


def test_ghe_urls(env):
    settings = load_settings(None, {**env, "GHE_HOST": "ghe.example.com"})
    assert settings.api_url == "https://ghe.example.com/api/v3"
    assert settings.graphql_url == "https://ghe.example.com/api/graphql"
    local = load_settings(None, {**env, "GHE_HOST": "127.0.0.1:8080", "GHE_PROTOCOL": "http"})
    assert local.api_url == "http://127.0.0.1:8080/api/v3"
    assert local.graphql_url == "http://127.0.0.1:8080/api/graphql"


def test_every_probot_name_is_read(env):
    settings = load_settings(
        None,
        {
            **env,
            "WEBHOOK_PATH": "/hooks",
            "HOST": "192.0.2.10",
            "PORT": "8000",
            "LOG_LEVEL": "warn",
            "LOG_FORMAT": "json",
            "CODER_MAX_CONCURRENCY": "4",
            "CODER_SHUTDOWN_GRACE_SECONDS": "2.5",
            "CODER_DELIVERY_TTL_SECONDS": "60",
            "CODER_MAX_BODY_BYTES": "1024",
        },
    )
    assert settings.webhook_path == "/hooks"
    assert (settings.host, settings.port) == ("192.0.2.10", 8000)
    assert (settings.log_level, settings.log_format) == ("WARNING", "json")
    assert settings.max_concurrency == 4
    assert settings.shutdown_grace_seconds == 2.5
    assert settings.delivery_ttl_seconds == 60
    assert settings.max_body_bytes == 1024


@pytest.mark.parametrize(
    ("name", "expected"),
    [("trace", "DEBUG"), ("DEBUG", "DEBUG"), ("fatal", "CRITICAL"), ("Error", "ERROR")],
)
def test_probot_log_levels(env, name, expected):
    assert load_settings(None, {**env, "LOG_LEVEL": name}).log_level == expected


def test_port_zero_asks_the_os_for_a_free_port(env):
    assert load_settings(None, {**env, "PORT": "0"}).port == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"WEBHOOK_SECRET": None},
            "WEBHOOK_SECRET is required: coder refuses to accept unsigned webhooks",
        ),
        (
            {"WEBHOOK_SECRET": "   "},
            "WEBHOOK_SECRET is required: coder refuses to accept unsigned webhooks",
        ),
        (
            {"APP_ID": None},
            "APP_ID is required: the GitHub App's numeric id, from its settings page",
        ),
        ({"APP_ID": "abc"}, "APP_ID must be a positive integer (got 'abc')"),
        ({"APP_ID": "-3"}, "APP_ID must be a positive integer (got '-3')"),
        ({"PORT": "abc"}, "PORT must be an integer between 0 and 65535 (got 'abc')"),
        ({"PORT": "70000"}, "PORT must be an integer between 0 and 65535 (got '70000')"),
        ({"GHE_PROTOCOL": "ftp"}, "GHE_PROTOCOL must be one of http, https (got 'ftp')"),
        (
            {"LOG_LEVEL": "loud"},
            "LOG_LEVEL must be one of debug, info, warning, error, critical (got 'loud')",
        ),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json (got 'xml')"),
        (
            {"WEBHOOK_PATH": "hooks"},
            "WEBHOOK_PATH must be a path starting with '/' (got 'hooks')",
        ),
        (
            {"GHE_HOST": "https://ghe.example.com"},
            (
                "GHE_HOST must be a host name with an optional port, without a scheme "
                "(got 'https://ghe.example.com'; put the scheme in GHE_PROTOCOL)"
            ),
        ),
        (
            {"CODER_MAX_CONCURRENCY": "0"},
            "CODER_MAX_CONCURRENCY must be an integer between 1 and 10000 (got '0')",
        ),
        (
            {"CODER_SHUTDOWN_GRACE_SECONDS": "-1"},
            "CODER_SHUTDOWN_GRACE_SECONDS must be a number of seconds >= 0 (got '-1')",
        ),
        (
            {"CODER_SHUTDOWN_GRACE_SECONDS": "nan"},
            "CODER_SHUTDOWN_GRACE_SECONDS must be a number of seconds >= 0 (got 'nan')",
        ),
        (
            {"PRIVATE_KEY": None},
            "PRIVATE_KEY or PRIVATE_KEY_PATH is required: the GitHub App's private key (.pem)",
        ),
        ({"PRIVATE_KEY": "not a key"}, "PRIVATE_KEY is not a PEM-encoded RSA private key"),
    ],
)
def test_errors_are_one_line_naming_the_setting(env, overrides, message):
    environ = {**env, **overrides}
    environ = {key: value for key, value in environ.items() if value is not None}
    assert error_for(environ) == message


def test_key_errors_never_echo_the_key(env, private_key_pem):
    broken = private_key_pem.replace("A", "B", 40)
    message = error_for({**env, "PRIVATE_KEY": broken})
    assert message == "PRIVATE_KEY is not a PEM-encoded RSA private key"


def test_a_non_rsa_key_is_refused(env):
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    message = error_for({**env, "PRIVATE_KEY": ec_key.decode()})
    assert message == "PRIVATE_KEY is not a PEM-encoded RSA private key"


def test_private_key_with_escaped_newlines_like_probot(env, private_key_pem):
    one_line = private_key_pem.strip().replace("\n", "\\n")
    settings = load_settings(None, {**env, "PRIVATE_KEY": one_line})
    assert settings.private_key.get_secret_value().strip() == private_key_pem.strip()


def test_private_key_base64_encoded_like_probot(env, private_key_pem):
    encoded = base64.b64encode(private_key_pem.encode()).decode()
    settings = load_settings(None, {**env, "PRIVATE_KEY": encoded})
    assert settings.private_key.get_secret_value() == private_key_pem


def test_private_key_path(env, private_key_pem, tmp_path):
    key_file = tmp_path / "app.pem"
    key_file.write_text(private_key_pem)
    environ = {**env, "PRIVATE_KEY_PATH": str(key_file)}
    del environ["PRIVATE_KEY"]
    assert load_settings(None, environ).private_key.get_secret_value() == private_key_pem


def test_private_key_path_missing(env, tmp_path):
    missing = tmp_path / "nope.pem"
    environ = {**env, "PRIVATE_KEY_PATH": str(missing)}
    del environ["PRIVATE_KEY"]
    assert error_for(environ) == f"PRIVATE_KEY_PATH: no such file: {missing}"


def test_private_key_path_not_a_key(env, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("hello")
    environ = {**env, "PRIVATE_KEY_PATH": str(bogus)}
    del environ["PRIVATE_KEY"]
    assert error_for(environ) == (f"PRIVATE_KEY_PATH: {bogus} is not a PEM-encoded RSA private key")


def test_env_file_parsing(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n"
        "\n"
        "APP_ID=12\n"
        "export WEBHOOK_SECRET='single # not a comment'\n"
        'HOST="192.0.2.10"  # trailing comment\n'
        "PORT = 4000 # spaces around\n"
        'MULTI="line one\\nline two"\n'
        "RAW='keeps \\n as is'\n"
        "EMPTY=\n"
        'QUOTE="say \\"hi\\""\n'
    )
    assert parse_env_file(env_file) == {
        "APP_ID": "12",
        "WEBHOOK_SECRET": "single # not a comment",
        "HOST": "192.0.2.10",
        "PORT": "4000",
        "MULTI": "line one\nline two",
        "RAW": "keeps \\n as is",
        "EMPTY": "",
        "QUOTE": 'say "hi"',
    }


def test_env_file_with_a_pem_in_double_quotes(tmp_path, private_key_pem):
    escaped = private_key_pem.strip().replace("\n", "\\n")
    env_file = tmp_path / ".env"
    env_file.write_text(f'APP_ID=1\nWEBHOOK_SECRET=x\nPRIVATE_KEY="{escaped}"\n')
    settings = load_settings(env_file, {})
    assert settings.private_key.get_secret_value() == private_key_pem.strip()


def test_env_file_with_a_pem_spanning_lines(tmp_path, private_key_pem):
    env_file = tmp_path / ".env"
    env_file.write_text(f'APP_ID=1\nPRIVATE_KEY="{private_key_pem}"\nWEBHOOK_SECRET=x\n')
    settings = load_settings(env_file, {})
    assert settings.private_key.get_secret_value() == private_key_pem
    assert settings.webhook_secret.get_secret_value() == "x"


def test_the_environment_wins_over_the_file(tmp_path, env):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=1111\nHOST=10.0.0.1\n")
    settings = load_settings(env_file, {**env, "PORT": "2222"})
    assert settings.port == 2222
    assert settings.host == "10.0.0.1"


def test_empty_environment_values_count_as_unset(env):
    assert load_settings(None, {**env, "PORT": "", "GHE_HOST": ""}).port == 3000


def test_an_explicit_env_file_must_exist(tmp_path, env):
    missing = tmp_path / "absent.env"
    assert error_for(env, missing) == f"{missing}: no such file"


def test_env_file_syntax_errors_name_the_line(tmp_path, env):
    env_file = tmp_path / ".env"
    env_file.write_text("APP_ID=1\nthis is not a setting\n")
    assert error_for(env, env_file) == f"{env_file}:2: expected KEY=value"


def test_env_file_unterminated_quote(tmp_path, env):
    env_file = tmp_path / ".env"
    env_file.write_text('APP_ID=1\nWEBHOOK_SECRET="open\n')
    assert error_for(env, env_file) == f'{env_file}:2: WEBHOOK_SECRET has an unterminated " quote'
