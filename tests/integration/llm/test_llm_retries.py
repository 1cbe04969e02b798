"""LlmClient's retry policy over real HTTP, with the sleep injected: Retry-After waits, backoff with
jitter, bounded attempts and the final error, checked from the waits the client asked for (no test here
really sleeps)."""

from __future__ import annotations

import email.utils
import json
import random
import time
from typing import Any

import pytest

from gifcat.adapters.llm.client import LlmCallError, LlmClient
from tests.support.fake_openai import FakeOpenAI, Reply, answer, error, rate_limited, server_error

MESSAGES = [{"role": "user", "content": "Pizza GIF"}]
SCHEMA = {"type": "object", "properties": {"primary": {"type": "string"}}}


class Sleeps(list[float]):
    """Stands in for time.sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(server: FakeOpenAI, sleeps: Sleeps, **knobs: Any) -> LlmClient:
    return LlmClient(model="m", api_key="sk-test", base_url=server.base_url, sleep=sleeps, **knobs)


@pytest.fixture
def server() -> Any:
    with FakeOpenAI() as fake:
        yield fake


# -- Retry-After -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "0"}, 0.0)],
    ids=["seconds", "milliseconds", "zero"],
)
@pytest.mark.parametrize("jitter", [0.0, 1.0], ids=["no-jitter", "full-jitter"])
def test_retry_after_is_waited_for_plus_at_most_a_tenth(
    server: FakeOpenAI, header: dict[str, str], seconds: float, jitter: float
) -> None:
    server.push(error(429, headers=header), answer("food"))
    sleeps = Sleeps()
    reply = client(server, sleeps, backoff_s=5.0, jitter=lambda: jitter).complete(MESSAGES, SCHEMA)
    assert json.loads(reply.content or "")["primary"] == "food" and reply.attempts == 2
    # the server's wait (not the 2.5-5 s backoff), stretched by the jitter by at most a tenth
    assert sleeps == [pytest.approx(seconds * (1 + 0.1 * jitter))]
    assert reply.notes == [f"llm: HTTP 429, retry 1 in {sleeps[0]:.2f}s"]


def test_retry_after_as_an_http_date(server: FakeOpenAI) -> None:
    server.push(rate_limited(email.utils.formatdate(time.time() + 20, usegmt=True)), answer("food"))
    sleeps = Sleeps()
    client(server, sleeps).complete(MESSAGES, SCHEMA)
    (wait,) = sleeps
    assert 18 <= wait <= 22  # the date has whole seconds; the jitter adds up to a tenth


def test_retry_after_at_the_cap_is_waited_and_beyond_it_fails_at_once(server: FakeOpenAI) -> None:
    server.push(rate_limited(30), answer("food"))
    sleeps = Sleeps()
    client(server, sleeps, max_retry_after_s=30).complete(MESSAGES, SCHEMA)
    assert len(sleeps) == 1 and 30 <= sleeps[0] <= 33

    server.push(rate_limited(31))
    sleeps = Sleeps()
    with pytest.raises(LlmCallError) as err:
        client(server, sleeps, max_retry_after_s=30).complete(MESSAGES, SCHEMA)
    assert err.value.reason == "HTTP 429: Retry-After 31s exceeds max_retry_after_s 30s"
    assert err.value.attempts == 1 and sleeps == []  # rather than sleeping through a Lambda's timeout


def test_a_5xx_with_retry_after_waits_for_it_too(server: FakeOpenAI) -> None:
    server.push(error(503, headers={"Retry-After": "3"}), answer("food"))
    sleeps = Sleeps()
    client(server, sleeps, backoff_s=0.01).complete(MESSAGES, SCHEMA)
    assert len(sleeps) == 1 and 3 <= sleeps[0] <= 3.3


# -- backoff with jitter ---------------------------------------------------------------------------


def test_backoff_doubles_within_equal_jitter_bounds_and_spreads_callers(server: FakeOpenAI) -> None:
    firsts = []
    for seed in range(5):
        server.push(server_error(502), server_error(503), server_error(500), answer("food"))
        sleeps = Sleeps()
        knobs = {"backoff_s": 1.0, "max_backoff_s": 3.0, "max_attempts": 4}
        reply = client(server, sleeps, jitter=random.Random(seed).random, **knobs).complete(MESSAGES, SCHEMA)
        assert reply.attempts == 4 and len(sleeps) == 3
        # base 1, 2, then 4 capped at 3; each wait is half its base plus a random half
        for wait, base in zip(sleeps, (1.0, 2.0, 3.0), strict=True):
            assert base / 2 <= wait <= base
        firsts.append(sleeps[0])
    assert len(set(firsts)) == len(firsts)  # callers failing together do not retry together


def test_the_last_failure_is_not_followed_by_a_wait(server: FakeOpenAI) -> None:
    server.push(*[server_error(500)] * 3)
    sleeps = Sleeps()
    with pytest.raises(LlmCallError) as err:
        client(server, sleeps, max_attempts=3, jitter=lambda: 1.0).complete(MESSAGES, SCHEMA)
    assert err.value.reason == "HTTP 500; gave up after 3 attempt(s)"
    assert err.value.attempts == 3 and sleeps == [0.5, 1.0]
    assert err.value.notes == ["llm: HTTP 500, retry 1 in 0.50s", "llm: HTTP 500, retry 2 in 1.00s"]


def test_a_200_that_is_not_a_completion_backs_off_like_a_5xx(server: FakeOpenAI) -> None:
    busy = Reply(status=200, body="<html>busy</html>", headers={"Content-Type": "text/html"})
    server.push(busy, answer("food"))
    sleeps = Sleeps()
    reply = client(server, sleeps, backoff_s=2.0, jitter=lambda: 0.0).complete(MESSAGES, SCHEMA)
    assert reply.attempts == 2 and sleeps == [1.0]


def test_a_client_error_is_neither_retried_nor_waited_for(server: FakeOpenAI) -> None:
    server.push(error(400, "bad request"))
    sleeps = Sleeps()
    with pytest.raises(LlmCallError, match=r"^HTTP 400: ") as err:
        client(server, sleeps).complete(MESSAGES, SCHEMA)
    assert err.value.attempts == 1 and sleeps == [] and len(server.chat_requests) == 1


def test_the_format_fallback_is_not_a_failed_attempt() -> None:
    with FakeOpenAI(reject_json_schema=True) as fake:
        sleeps = Sleeps()
        reply = client(fake, sleeps, max_attempts=1).complete(MESSAGES, SCHEMA)
    assert reply.attempts == 2 and reply.mode == "json_object_schema" and sleeps == []
