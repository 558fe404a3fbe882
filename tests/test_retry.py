"""The pure retry decision, case by case, against GitHub's documented rate-limit rules."""

import aiohttp
import pytest

from app.retry import Action, RetryPolicy, decide

NOW = 1_700_000_000.0
SECONDARY_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes."


def policy(**overrides):
    # Jitter pinned to its maximum so delays are exact.
    return RetryPolicy(random=lambda: 1.0, **overrides)


def decision(
    *,
    attempt=1,
    method="GET",
    status=None,
    headers=None,
    error=None,
    since_event=None,
    message="",
    idempotent=None,
    retry_policy=None,
):
    return decide(
        attempt=attempt,
        method=method,
        status=status,
        headers=headers or {},
        error=error,
        now=NOW,
        since_event=since_event,
        policy=retry_policy or policy(),
        message=message,
        idempotent=idempotent,
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_on_get_back_off_exponentially(status):
    delays = [decision(attempt=n, status=status).delay for n in (1, 2, 3, 4)]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert decision(status=status).action is Action.RETRY


def test_backoff_is_capped():
    assert decision(attempt=4, status=502, retry_policy=policy(max_delay=1.5)).delay == 1.5


def test_jitter_is_full_and_comes_from_the_injected_random():
    draws = iter([0.0, 0.25])
    jittered = RetryPolicy(random=lambda: next(draws))
    assert decision(attempt=3, status=502, retry_policy=jittered).delay == 0.0
    assert decision(attempt=3, status=502, retry_policy=jittered).delay == 0.5


def test_attempts_are_bounded():
    bounded = policy(max_attempts=3)
    assert decision(attempt=2, status=502, retry_policy=bounded).retry
    final = decision(attempt=3, status=502, retry_policy=bounded)
    assert final.action is Action.GIVE_UP


def test_server_error_with_retry_after_waits_at_least_that_long():
    assert decision(status=503, headers={"retry-after": "7"}).delay == 7.0


@pytest.mark.parametrize(
    "error",
    [aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, TimeoutError, ConnectionResetError],
)
def test_transport_errors_on_get_are_retried(error):
    assert decision(error=error).action is Action.RETRY


def test_non_transient_errors_are_not_retried():
    assert decision(error=aiohttp.InvalidURL).action is Action.GIVE_UP
    assert decision(error=ValueError).action is Action.GIVE_UP


def test_post_is_not_resent_after_a_server_error():
    result = decision(method="POST", status=502)
    assert result.action is Action.GIVE_UP
    assert "create_once" in result.reason


@pytest.mark.parametrize(
    "error", [aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, TimeoutError]
)
def test_post_is_not_resent_after_an_ambiguous_transport_error(error):
    assert decision(method="POST", error=error).action is Action.GIVE_UP


@pytest.mark.parametrize("error", [aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError])
def test_post_is_resent_when_the_connection_never_opened(error):
    assert decision(method="POST", error=error).action is Action.RETRY


def test_idempotent_override_lets_a_query_post_be_retried():
    assert decision(method="POST", status=502, idempotent=True).action is Action.RETRY
    assert decision(method="GET", status=502, idempotent=False).action is Action.GIVE_UP


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_writes_are_retried_like_gets(method):
    assert decision(method=method, status=502).action is Action.RETRY


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_with_retry_after_waits_exactly_that(status):
    result = decision(status=status, headers={"retry-after": "30"}, message=SECONDARY_MESSAGE)
    assert result.action is Action.RETRY
    assert result.delay == 30.0


def test_retry_after_as_http_date():
    headers = {"retry-after": "Tue, 14 Nov 2023 22:15:00 GMT"}  # NOW + 100 s
    assert decision(status=429, headers=headers).delay == pytest.approx(100.0)


def test_secondary_limit_with_nothing_remaining_waits_for_reset():
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 90)}
    result = decision(status=403, headers=headers, message=SECONDARY_MESSAGE)
    assert result.action is Action.RETRY
    assert result.delay == 90.0


def test_secondary_limit_without_hints_waits_at_least_a_minute_growing():
    delays = [decision(attempt=n, status=403, message=SECONDARY_MESSAGE).delay for n in (1, 2, 3)]
    assert delays == [60.0, 120.0, 240.0]


def test_secondary_wait_is_capped():
    capped = policy(secondary_max_wait=100.0, max_attempts=10)
    assert (
        decision(attempt=5, status=403, message=SECONDARY_MESSAGE, retry_policy=capped).delay
        == 100.0
    )


def test_secondary_minimum_cannot_be_configured_below_a_minute():
    with pytest.raises(ValueError, match="60"):
        RetryPolicy(secondary_min_wait=5)


def test_bare_429_is_treated_as_secondary():
    assert decision(status=429).delay == 60.0


def test_abuse_detection_message_is_secondary():
    message = "You have triggered an abuse detection mechanism."
    assert decision(status=403, message=message).delay == 60.0


def test_secondary_limit_is_bounded_too():
    result = decision(attempt=5, status=403, message=SECONDARY_MESSAGE)
    assert result.action is Action.GIVE_UP


def test_secondary_limit_applies_to_posts_too():
    # A rate-limited request was refused, not executed: resending cannot duplicate it.
    result = decision(method="POST", status=403, headers={"retry-after": "5"})
    assert result.action is Action.RETRY


@pytest.mark.parametrize("status", [403, 429])
def test_primary_exhaustion_parks_until_reset(status):
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 1800)}
    result = decision(status=status, headers=headers, message="API rate limit exceeded")
    assert result.action is Action.PARK
    assert result.park_until == NOW + 1800
    assert result.retry


def test_plain_403_is_a_permission_error():
    headers = {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": str(int(NOW) + 60)}
    result = decision(status=403, headers=headers, message="Resource not accessible by integration")
    assert result.action is Action.GIVE_UP


def test_404_right_after_the_event_is_retried_twice():
    fresh = [decision(attempt=n, status=404, since_event=2.0) for n in (1, 2, 3)]
    assert [d.action for d in fresh] == [Action.RETRY, Action.RETRY, Action.GIVE_UP]
    assert fresh[0].delay == 1.0


def test_404_long_after_the_event_is_final():
    assert decision(status=404, since_event=60.0).action is Action.GIVE_UP


def test_404_without_an_event_is_final():
    assert decision(status=404).action is Action.GIVE_UP


def test_404_on_a_write_is_final():
    assert decision(method="PATCH", status=404, since_event=1.0).action is Action.GIVE_UP


@pytest.mark.parametrize("status", [400, 401, 409, 410, 422])
def test_client_errors_are_final(status):
    assert decision(status=status).action is Action.GIVE_UP


def test_success_is_not_retried():
    assert decision(status=200).action is Action.GIVE_UP
