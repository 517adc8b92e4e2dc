"""Accounts: scrypt hashes with a salt per user, sign-in, and `rise user`."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

import app.commands.users  # noqa: F401  (registers `rise user` on the CLI)
from app.cli import cli
from app.services import auth
from db.models import User

PASSWORD = "correct horse battery"


class TestPasswordHashes:
    def test_a_hash_verifies_its_password_only(self):
        record = auth.hash_password(PASSWORD)
        assert auth.verify_password(PASSWORD, record)
        assert not auth.verify_password(PASSWORD + " ", record)
        assert PASSWORD not in record

    def test_each_hash_has_its_own_salt(self):
        first, second = auth.hash_password(PASSWORD), auth.hash_password(PASSWORD)
        assert first != second
        assert first.split("$")[4] != second.split("$")[4]

    @pytest.mark.parametrize(
        "record",
        [
            "",  # empty
            "!unusable",  # an account without a password
            "pbkdf2$1$2$3$c2FsdA==$aGFzaA==",  # another scheme
            "scrypt$16384$8$1$not base64!$aGFzaA==",  # corrupt salt
            "scrypt$1073741824$8$1$c2FsdA==$aGFzaA==",  # a tampered cost that would exhaust memory
        ],
    )
    def test_malformed_records_never_verify(self, record):
        assert auth.verify_password(PASSWORD, record) is False


class TestAccounts:
    def test_create_and_authenticate(self, runtime):
        created = auth.create_user(runtime, "ada", PASSWORD, "admin")

        assert (created.username, created.role, created.is_admin) == ("ada", "admin", True)
        assert auth.authenticate(runtime, "ada", PASSWORD) == created
        assert auth.authenticate(runtime, " ada ", PASSWORD) == created
        with runtime.sessions() as session:
            assert session.get(User, created.id).password_hash.startswith("scrypt$")

    def test_wrong_password_unknown_user_and_deactivated_user_are_all_refused(self, runtime):
        created = auth.create_user(runtime, "bob", PASSWORD)
        assert auth.authenticate(runtime, "bob", "wrong password") is None
        assert auth.authenticate(runtime, "nobody", PASSWORD) is None
        with runtime.sessions.begin() as session:
            session.execute(update(User).where(User.id == created.id).values(is_active=False))
        assert auth.authenticate(runtime, "bob", PASSWORD) is None

    @pytest.mark.parametrize(
        ("username", "password", "role", "message"),
        [
            ("ada", PASSWORD, "reviewer", "already exists"),  # taken (created first below)
            ("", PASSWORD, "reviewer", "not allowed"),
            ("ada lovelace", PASSWORD, "reviewer", "not allowed"),  # spaces
            ("<script>", PASSWORD, "reviewer", "not allowed"),
            ("eve", "short", "reviewer", "at least 8 characters"),
            ("eve", "x" * 2000, "reviewer", "at most 1024"),
            ("eve", PASSWORD, "superuser", "reviewer, admin"),
        ],
    )
    def test_bad_accounts_are_refused_with_the_fix(self, runtime, username, password, role, message):
        auth.create_user(runtime, "ada", PASSWORD)
        with pytest.raises(auth.AuthError, match=message):
            auth.create_user(runtime, username, password, role)

    def test_ensure_user_creates_once_and_cannot_sign_in(self, runtime):
        local = auth.ensure_user(runtime, "local", "admin")
        assert auth.ensure_user(runtime, "local", "reviewer") == local
        assert local.role == "admin"
        assert auth.authenticate(runtime, "local", "") is None
        assert [u.username for u in auth.list_users(runtime)] == ["local"]

    def test_set_password_replaces_the_old_one(self, runtime):
        auth.create_user(runtime, "ada", PASSWORD)
        auth.set_password(runtime, "ada", "a new passphrase")
        assert auth.authenticate(runtime, "ada", PASSWORD) is None
        assert auth.authenticate(runtime, "ada", "a new passphrase") is not None


class TestUserCommand:
    @pytest.fixture
    def env(self, runtime):
        return {"RISE_DATA_DIR": str(runtime.settings.data_dir), "RISE_DATABASE_URL": runtime.settings.database_url}

    def test_create_reads_the_password_from_stdin(self, runtime, env):
        result = CliRunner().invoke(
            cli, ["user", "create", "ada", "--role", "admin", "--password-stdin"], input=f"{PASSWORD}\n", env=env
        )
        assert result.exit_code == 0, result.output
        assert "Created admin 'ada'" in result.output
        assert auth.authenticate(runtime, "ada", PASSWORD).role == "admin"

    def test_create_prompts_twice_and_lists(self, runtime, env):
        result = CliRunner().invoke(cli, ["user", "create", "bob"], input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
        assert result.exit_code == 0, result.output
        assert auth.authenticate(runtime, "bob", PASSWORD).role == "reviewer"
        listed = CliRunner().invoke(cli, ["user", "list"], env=env)
        assert "bob" in listed.output and "reviewer" in listed.output

    def test_a_taken_name_or_short_password_fails_with_exit_code_1(self, runtime, env):
        auth.create_user(runtime, "ada", PASSWORD)
        taken = CliRunner().invoke(cli, ["user", "create", "ada", "--password-stdin"], input=f"{PASSWORD}\n", env=env)
        short = CliRunner().invoke(cli, ["user", "create", "eve", "--password-stdin"], input="short\n", env=env)
        assert (taken.exit_code, short.exit_code) == (1, 1)
        assert "already exists" in taken.output and "at least 8" in short.output

    def test_passwd_changes_the_password(self, runtime, env):
        auth.create_user(runtime, "ada", PASSWORD)
        result = CliRunner().invoke(
            cli, ["user", "passwd", "ada", "--password-stdin"], input="another one!\n", env=env
        )
        assert result.exit_code == 0, result.output
        assert auth.authenticate(runtime, "ada", "another one!") is not None
