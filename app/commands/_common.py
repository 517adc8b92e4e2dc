"""What every `rise` sub-command shares: the root `cli` it registers on, the console it prints to, one way to report a
user error, and a runtime on an initialised database.

The root lives here rather than in `app.cli` so that the command modules never import `app.cli`, which imports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text

from app.runtime import Runtime, open_runtime
from app.settings import Settings
from db.crud.projects import ProjectNotFoundError
from db.migrate import current_revision, head_revision

cli = typer.Typer(
    name="rise",
    help="RISE Annotate: a vision-language model proposes annotations with its reasoning; you review them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()


@cli.callback()
def _root() -> None:
    """RISE Annotate: a vision-language model proposes annotations with its reasoning; you review them."""
    # An explicit callback keeps `rise init` a sub-command even if no other command module is registered.


# How the command line gives each input that an error's `setting` can name (`ProjectError.setting`,
# `AppError.setting`): the services and the database layer say what is wrong in words any caller can show, and the
# command line adds its own syntax for the fix.
CLI_HINTS = {
    "task_type": "Example: --task classification",
    "labels": "Example: --labels circle,square",
    "eval_fraction": "Example: --eval-fraction 0.1",
    "model": "Example: --model Qwen/Qwen2-VL-2B-Instruct (or a model folder)",
    "model_version": "List them with `rise versions list --project NAME`.",
    "manifest": "Example: --manifest assets/demo/manifest.json",
    "demo_model": "Build it with `rise model build-demo`.",
    "hub_repository": "Example: --repo-id me/shapes-sft --hf-token hf_... (or set HF_TOKEN)",
    "image_root_url": "Example: --images url --image-root-url https://files.example.com/rise-media/",
    "username": "Example: `rise user create NAME`",
    "label_studio_config": "Example: --config tasks.label_config.xml",
}


def _hint(error: BaseException) -> str:
    if isinstance(error, ProjectNotFoundError):
        return f"Example: `rise project create {error.name} --task classification --labels cat,dog`"
    return CLI_HINTS.get(getattr(error, "setting", None) or "", "")


def with_cli_hint(error: BaseException) -> str:
    """`error`'s message, plus the command-line form of the fix for each input at fault: named by the error itself,
    or by an error a service caught and raised again as its own (which keeps it as its `__cause__` or
    `__context__`). The innermost cause's hint comes first: it is what went wrong first."""
    hints: list[str] = []
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        hint = _hint(cause)
        if hint and hint not in hints:
            hints.insert(0, hint)
        cause = cause.__cause__ or cause.__context__
    return " ".join([str(error), *hints])


def fail(problem: str | BaseException) -> typer.Exit:
    """Print `problem` as one red error line (an error: its message, `with_cli_hint`); raise the returned exit (code
    1) to end the command."""
    message = problem if isinstance(problem, str) else with_cli_hint(problem)
    console.print(Text(f"Error: {message}", style="bold red"))
    return typer.Exit(code=1)


@contextmanager
def migrated_runtime(
    settings: Settings | None = None, *, user_errors: tuple[type[Exception], ...] = ()
) -> Iterator[Runtime]:
    """The configured runtime, refusing a database that `rise init` has not created or upgraded; closed on exit.

    `user_errors` raised inside the block (the services' errors whose message says the fix) become one red line and
    exit code 1.
    """
    runtime = open_runtime(settings)
    try:
        revision = current_revision(runtime.engine)
        if revision != head_revision():
            state = "has no schema yet" if revision is None else f"is at schema {revision}, not {head_revision()}"
            raise fail(f"The database {state}. Run `rise init` first.")
        yield runtime
    except user_errors as error:
        raise fail(error) from None
    finally:
        runtime.close()
