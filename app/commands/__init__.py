"""CLI sub-commands; importing this package registers all of them on `app.cli.cli` (one import per module, in the
order `rise --help` lists them)."""

from app.commands import database  # noqa: F401  (first, so that `rise init` heads the list)

# isort: split
from app.commands import (
    annotate,  # noqa: F401
    demo_model,  # noqa: F401
    exchange,  # noqa: F401
    model,  # noqa: F401
    projects,  # noqa: F401
    serve,  # noqa: F401
    train,  # noqa: F401
    users,  # noqa: F401
    worker,  # noqa: F401
)
