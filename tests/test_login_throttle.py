"""Failed sign-ins back off per account and per address, exponentially after a few free ones, and are logged: on a
clock the test moves by hand, and through the real server's login event."""

from __future__ import annotations

import logging

import pytest
from gradio_client import Client

from app.services import auth
from app.services.login_throttle import ACCOUNT_FREE_FAILURES, ADDRESS_FREE_FAILURES, MAX_LOCK_S, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def fail(throttle: LoginThrottle, times: int, username: str = "ada", address: str = "10.0.0.1") -> None:
    for _ in range(times):
        throttle.failed(username, address)


class TestLoginThrottle:
    def test_a_few_failures_are_free_then_each_doubles_the_wait(self, clock):
        throttle = LoginThrottle(clock=clock)
        fail(throttle, ACCOUNT_FREE_FAILURES)
        assert throttle.wait_seconds("ada", "10.0.0.1") == 0
        waits = []
        for _ in range(4):
            fail(throttle, 1)
            waits.append(throttle.wait_seconds("ada", "10.0.0.1"))
        assert waits == [1.0, 2.0, 4.0, 8.0]
        clock.now += 8.0
        assert throttle.wait_seconds("ada", "10.0.0.1") == 0  # the lock ran out; the next failure locks for 16 s

    def test_the_wait_never_exceeds_the_cap(self, clock):
        throttle = LoginThrottle(clock=clock)
        fail(throttle, ACCOUNT_FREE_FAILURES + 60)
        assert throttle.wait_seconds("ada", "10.0.0.1") == MAX_LOCK_S

    def test_a_success_forgets_the_accounts_failures(self, clock):
        throttle = LoginThrottle(clock=clock)
        fail(throttle, ACCOUNT_FREE_FAILURES)
        throttle.succeeded("ada", "10.0.0.1")
        fail(throttle, ACCOUNT_FREE_FAILURES)
        assert throttle.wait_seconds("ada", "10.0.0.1") == 0

    def test_an_address_trying_many_accounts_is_locked_for_all_of_them(self, clock):
        throttle = LoginThrottle(clock=clock)
        for index in range(ADDRESS_FREE_FAILURES + 1):
            throttle.failed(f"user{index}", "10.0.0.66")
        assert throttle.wait_seconds("someone-else", "10.0.0.66") == 1.0
        assert throttle.wait_seconds("someone-else", "10.0.0.7") == 0  # other addresses are not concerned

    def test_memory_holds_at_most_max_keys(self, clock):
        throttle = LoginThrottle(clock=clock, max_keys=10)
        for index in range(100):
            throttle.failed(f"name{index}", f"10.0.{index}.1")
        assert len(throttle._failures) == 10


def test_guessing_through_the_server_is_locked_out_and_logged(runtime, serve_app, clock, caplog):
    auth.create_user(runtime, "boss", "boss-password", role="admin")
    app = serve_app(runtime, require_login=True, throttle=LoginThrottle(clock=clock))  # time stands still
    client = Client(app.url, verbose=False)
    caplog.set_level(logging.WARNING, logger="rise.auth")
    messages = [client.predict("boss", f"guess {n}", api_name="/login")[-3] for n in range(ACCOUNT_FREE_FAILURES + 1)]
    assert all("Wrong username or password" in message for message in messages)
    # The right password now waits for the lock to run out: it is not even checked.
    result = client.predict("boss", "boss-password", api_name="/login")
    assert "Too many failed sign-ins. Try again in 1 s." in result[-3]
    assert not isinstance(result[-1], str)  # no token: the page's token box is left as it was
    failures = [record for record in caplog.records if record.getMessage().startswith("Failed sign-in for 'boss'")]
    assert len(failures) == ACCOUNT_FREE_FAILURES + 1 and "from 127.0.0.1" in failures[-1].getMessage()
    assert any("Sign-in refused for 'boss'" in record.getMessage() for record in caplog.records)
    clock.now += 1.0
    assert client.predict("boss", "boss-password", api_name="/login")[-1]  # signed in: a token for the browser
