"""Rights never outlive a change: every action of a signed-in session reads its user again from the database, and a
new password, a new role or a deactivation ends the sessions signed in before it. Checked through the real server
with Gradio's client, which keeps one session across its calls as a browser tab does."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from typer.testing import CliRunner

import app.commands.users  # noqa: F401  (registers `rise user` on the CLI)
from app.commands._common import cli
from app.commands.serve import SQLITE_TEAM_SIZE, SqliteTeamNote
from app.services import auth
from app.services.browser_sessions import BrowserSessions

PASSWORD = "boss-password"


@pytest.fixture
def served(runtime, serve_app):
    auth.create_user(runtime, "boss", PASSWORD, role="admin")
    return serve_app(runtime, require_login=True)


def signed_in_client(url: str, username: str = "boss", password: str = PASSWORD) -> Client:
    client = Client(url, verbose=False)
    client.predict(username, password, api_name="/login")
    return client


def create_account(client: Client, username: str) -> None:
    client.predict(username, f"{username}-password", "admin", api_name="/users_create")


def usernames(runtime) -> list[str]:
    return [user.username for user in auth.list_users(runtime)]


@pytest.mark.parametrize(
    "change",
    [
        lambda runtime: auth.set_role(runtime, "boss", "reviewer"),
        lambda runtime: auth.set_active(runtime, "boss", False),
        lambda runtime: auth.set_password(runtime, "boss", "a brand new password"),
    ],
    ids=["made a reviewer", "deactivated", "new password"],
)
def test_a_session_signed_in_before_a_change_of_the_account_can_do_nothing(served, change):
    client = signed_in_client(served.url)
    create_account(client, "eve")  # an admin's session may
    change(served.runtime)
    with pytest.raises(Exception, match="Sign in first"):
        create_account(client, "mallory")
    assert usernames(served.runtime) == ["boss", "eve"]


def test_a_fresh_sign_in_gets_the_rights_of_the_day(served):
    before = signed_in_client(served.url)
    auth.set_role(served.runtime, "boss", "reviewer")
    auth.set_role(served.runtime, "boss", "admin")
    with pytest.raises(Exception, match="Sign in first"):  # back to admin, but the old session ended all the same
        create_account(before, "mallory")
    create_account(signed_in_client(served.url), "eve")
    assert usernames(served.runtime) == ["boss", "eve"]


ADMIN_EVENTS = [
    "project_create", "project_upload", "project_annotate", "export_download", "export_push", "users_refresh",
    "users_create", "runs_refresh", "retrain_start", "retrain_cancel", "retrain_promote", "retrain_rollback",
    "retrain_reannotate", "retrain_policy",
]  # fmt: skip


def test_a_reviewer_is_refused_every_admin_event_through_the_api(served):
    auth.create_user(served.runtime, "ada", "ada-password")
    client = signed_in_client(served.url, "ada", "ada-password")
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ADMIN_EVENTS:
        parameters = endpoints[f"/{name}"]["parameters"]
        values = [p["parameter_default"] if p["parameter_has_default"] else None for p in parameters]
        with pytest.raises(Exception, match="Only admins can do this"):
            client.predict(*values, api_name=f"/{name}")
    assert usernames(served.runtime) == ["ada", "boss"]


class TestSessionEpoch:
    def test_only_a_real_change_ends_sessions(self, runtime):
        user = auth.create_user(runtime, "ada", "ada-password")
        assert auth.current_user(runtime, user) == user
        assert auth.set_role(runtime, "ada", "reviewer").session_epoch == user.session_epoch  # the same role
        assert auth.set_active(runtime, "ada", True).session_epoch == user.session_epoch  # already active
        assert auth.current_user(runtime, user) == user
        admin = auth.set_role(runtime, "ada", "admin")
        assert admin.session_epoch == user.session_epoch + 1 and auth.current_user(runtime, user) is None
        assert auth.current_user(runtime, admin) == admin  # the session signed in since

    def test_a_deactivated_user_is_nobody_even_under_the_current_epoch(self, runtime):
        user = auth.create_user(runtime, "ada", "ada-password")
        gone = auth.set_active(runtime, "ada", False)
        assert auth.current_user(runtime, gone) is None and auth.current_user(runtime, user) is None
        assert auth.authenticate(runtime, "ada", "ada-password") is None

    def test_unknown_users_and_signed_out_sessions_are_nobody(self, runtime):
        assert auth.current_user(runtime, None) is None
        assert auth.current_user(runtime, auth.UserInfo(id=999, username="ghost", role="admin")) is None
        with pytest.raises(auth.AuthError, match="No user named 'ghost'"):
            auth.set_role(runtime, "ghost", "admin")


def test_rise_user_role_deactivate_and_activate(runtime):
    env = {"RISE_DATA_DIR": str(runtime.settings.data_dir), "RISE_DATABASE_URL": runtime.settings.database_url}
    auth.create_user(runtime, "bob", "bob-password")
    runner = CliRunner()
    promoted = runner.invoke(cli, ["user", "role", "bob", "admin"], env=env)
    assert promoted.exit_code == 0 and "'bob' is an admin" in promoted.output
    off = runner.invoke(cli, ["user", "deactivate", "bob"], env=env)
    assert off.exit_code == 0 and auth.authenticate(runtime, "bob", "bob-password") is None
    on = runner.invoke(cli, ["user", "activate", "bob"], env=env)
    assert on.exit_code == 0 and auth.authenticate(runtime, "bob", "bob-password").role == "admin"
    unknown = runner.invoke(cli, ["user", "role", "nobody", "admin"], env=env)
    bad_role = runner.invoke(cli, ["user", "role", "bob", "superuser"], env=env)
    assert unknown.exit_code == 1 and "No user named 'nobody'" in unknown.output and bad_role.exit_code == 2
    assert "rise user create NAME" in " ".join(unknown.output.split())  # the command line's own hint


def test_each_sign_in_tells_how_many_different_users_are_signed_in(runtime):
    counts: list[int] = []
    sessions = BrowserSessions(on_sign_in=counts.append)
    ada = auth.create_user(runtime, "ada", "ada-password")
    bob = auth.create_user(runtime, "bob", "bob-password")
    first = sessions.issue(ada)
    sessions.issue(ada)  # a second tab of the same reviewer
    sessions.issue(bob)
    sessions.revoke(first)
    sessions.issue(bob)
    assert counts == [1, 1, 2, 2]


def test_rise_serve_on_sqlite_names_postgresql_once_the_team_outgrows_it(capsys):
    note = SqliteTeamNote()
    for signed_in in [1, SQLITE_TEAM_SIZE, SQLITE_TEAM_SIZE + 1, SQLITE_TEAM_SIZE + 1, 3, SQLITE_TEAM_SIZE + 3]:
        note(signed_in)
    said = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert re.findall(r"(\d+) reviewers are signed in", said) == [str(SQLITE_TEAM_SIZE + 1), str(SQLITE_TEAM_SIZE + 3)]
    assert said.count("PostgreSQL is the backend") == 2
