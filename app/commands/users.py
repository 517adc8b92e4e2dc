"""`rise user create|list|passwd|role|deactivate|activate`: reviewer and admin accounts.

rise user create ada --role admin          # asks for the password twice
echo "$PASSWORD" | rise user create bob --password-stdin
rise user passwd bob
rise user role bob admin                   # or reviewer
rise user deactivate bob                   # bob can no longer sign in; activate lets him again
rise user list

A new password, a role that changes or a deactivation signs the user out of every session at once.
"""

from __future__ import annotations

import sys

import typer
from rich.table import Table
from rich.text import Text

from app.commands._common import cli, console, migrated_runtime
from app.services import auth
from db.models import Role

user_cli = typer.Typer(help="Create, list and change reviewer and admin accounts.", no_args_is_help=True)
cli.add_typer(user_cli, name="user")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        # The first line only, without its newline: `echo "$PASSWORD" | rise user create ...`.
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_cli.command("create")
def create(
    username: str = typer.Argument(..., help="Login name: letters, digits and . _ @ -"),
    role: Role = typer.Option(Role.reviewer, "--role", help="reviewer: reviews items; admin: also manages projects."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create an account. The password is asked for (twice) unless --password-stdin is given."""
    password = _read_password(password_stdin)
    with migrated_runtime(user_errors=(auth.AuthError,)) as runtime:
        user = auth.create_user(runtime, username, password, role)
    console.print(Text(f"Created {user.role} {user.username!r} (id {user.id}).", style="green"))


@user_cli.command("passwd")
def passwd(
    username: str = typer.Argument(..., help="The account whose password to change."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Set a new password for an account; it signs the user out everywhere."""
    password = _read_password(password_stdin)
    with migrated_runtime(user_errors=(auth.AuthError,)) as runtime:
        user = auth.set_password(runtime, username, password)
    console.print(Text(f"Password changed for {user.username!r}.", style="green"))


@user_cli.command("role")
def role(
    username: str = typer.Argument(..., help="The account whose role to set."),
    new_role: Role = typer.Argument(..., metavar="ROLE", help="reviewer or admin."),
) -> None:
    """Make an account a reviewer or an admin; a change signs the user out everywhere."""
    with migrated_runtime(user_errors=(auth.AuthError,)) as runtime:
        user = auth.set_role(runtime, username, new_role)
    console.print(Text(f"{user.username!r} is {'an' if user.role == 'admin' else 'a'} {user.role}.", style="green"))


@user_cli.command("deactivate")
def deactivate(username: str = typer.Argument(..., help="The account that may no longer sign in.")) -> None:
    """Stop an account from signing in, and sign it out everywhere."""
    with migrated_runtime(user_errors=(auth.AuthError,)) as runtime:
        user = auth.set_active(runtime, username, False)
    console.print(Text(f"{user.username!r} can no longer sign in.", style="green"))


@user_cli.command("activate")
def activate(username: str = typer.Argument(..., help="The account that may sign in again.")) -> None:
    """Let a deactivated account sign in again."""
    with migrated_runtime(user_errors=(auth.AuthError,)) as runtime:
        user = auth.set_active(runtime, username, True)
    console.print(Text(f"{user.username!r} can sign in again.", style="green"))


@user_cli.command("list")
def list_users() -> None:
    """List the accounts."""
    with migrated_runtime() as runtime:
        users = auth.list_users(runtime)
    if not users:
        console.print("No users yet. Create one: rise user create NAME --role admin")
        return
    table = Table("id", "username", "role", "active")
    for user in users:
        # Text(...) so that a name like "[red]" prints as written, not as rich markup.
        table.add_row(str(user.id), Text(user.username), user.role, "yes" if user.is_active else "no")
    console.print(table)
