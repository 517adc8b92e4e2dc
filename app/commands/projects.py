"""`rise project create|list`, `rise import` and `rise demo`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from app.commands._common import cli, console, fail, migrated_runtime
from app.runtime import Runtime, open_runtime
from app.services.demo import DemoError, DemoSummary, setup_demo
from app.services.imports import NO_QUERY, ImportFailed, ImportSummary, SkippedFile, import_paths, load_query_file
from app.services.projects import ProjectError, create_project, list_projects, project_id_called
from rise.tasks import TaskType

if TYPE_CHECKING:
    from app.worker.background import BackgroundWorker

project_cli = typer.Typer(help="Create and list annotation projects.", no_args_is_help=True)
cli.add_typer(project_cli, name="project")


class RateColumn(ProgressColumn):
    """Files per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} files/s" if speed else "– files/s", style="progress.data.speed")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def _skipped_table(skipped: list[SkippedFile]) -> Table:
    table = Table(title="Skipped files", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for path, reason in skipped:
        # Text, not markup: a file called "[red]x[/red].png" must print as its name.
        table.add_row(Text(path), Text(reason))
    return table


def _print_import_summary(summary: ImportSummary, project: str) -> None:
    console.print(
        f"[bold]{escape(project)}[/bold]: added {summary.added}, duplicates {summary.duplicates}, "
        f"skipped {len(summary.skipped)} (of {summary.files} files)"
    )
    if summary.skipped:
        console.print(_skipped_table(summary.skipped))
    if any(skip.reason == NO_QUERY for skip in summary.skipped):
        console.print("Give grounding queries with --query TEXT (every file) or --queries FILE (per file).")


@project_cli.command("create")
def project_create(
    name: str = typer.Argument(..., help="Unique project name."),
    task: TaskType = typer.Option(..., "--task", "-t", help="What the model produces for each image."),
    labels: str = typer.Option("", "--labels", "-l", help="Comma-separated labels, e.g. circle,square,triangle."),
    eval_fraction: float = typer.Option(0.1, help="Share of items held out for evaluation, in [0, 1)."),
    description: str = typer.Option("", help="Shown to reviewers."),
    distribution: bool = typer.Option(False, help="Classification answers are probability distributions."),
) -> None:
    """Create a project, e.g. `rise project create shapes --task classification --labels circle,square`."""
    label_list = [label.strip() for label in labels.split(",")] if labels.strip() else []
    with migrated_runtime(user_errors=(ProjectError,)) as runtime:
        project = create_project(
            runtime,
            name,
            task,
            label_list,
            description=description,
            eval_fraction=eval_fraction,
            distribution=distribution,
        )
    shown_labels = ", ".join(project.labels) or "no labels"
    console.print(Text(f"Created project {project.name!r} ({project.task_type.value}; {shown_labels})."))
    console.print(Text(f"Next: rise import --project {project.name} PATH..."))


@project_cli.command("list")
def project_list() -> None:
    """List projects with their item counts."""
    with migrated_runtime() as runtime:
        overviews = list_projects(runtime)
    if not overviews:
        console.print("No projects yet. Create one with `rise project create NAME --task ... --labels ...`.")
        return
    table = Table()
    for column in ("name", "task", "labels", "train", "eval", "annotated"):
        table.add_column(column, justify="right" if column in {"train", "eval", "annotated"} else "left")
    for view in overviews:
        table.add_row(
            Text(view.name),
            view.task_type.value,
            Text(", ".join(view.labels)),
            str(view.train_items),
            str(view.eval_items),
            str(view.annotated_items),
        )
    console.print(table)


@cli.command("import")
def import_command(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive) and glob patterns."),
    project: str = typer.Option(..., "--project", "-p", help="Project to import into."),
    query: str | None = typer.Option(None, help="Grounding query for every imported image."),
    queries: Path | None = typer.Option(
        None, help="JSON ({file: query}) or CSV (file,query) of per-image grounding queries, paths relative to it."
    ),
) -> None:
    """Import images; duplicates (same content) are skipped, and so are broken, oversized and non-image files."""
    with migrated_runtime(user_errors=(ImportFailed, ProjectError)) as runtime:
        project_id = project_id_called(runtime, project)
        query_map = load_query_file(queries) if queries else None
        with _progress() as bar:
            task_id = bar.add_task("Importing", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task_id, completed=done, total=total)

            summary = import_paths(runtime, project_id, paths, query=query, queries=query_map, progress=report)
    _print_import_summary(summary, project)


def _print_demo_summary(summary: DemoSummary) -> None:
    # Six narrow columns fit an 80-column terminal; the task is in the project name and in `rise project list`.
    table = Table(title=f"Demo from {summary.manifest}", title_justify="left")
    for column in ("project", "status"):
        table.add_column(column, no_wrap=True)
    for column in ("added", "duplicates", "skipped", "ground truth"):
        table.add_column(column, justify="right", min_width=len(column))
    for view in summary.projects:
        table.add_row(
            Text(view.name),
            "created" if view.created else "existing",
            str(view.imported.added),
            str(view.imported.duplicates),
            str(len(view.imported.skipped)),
            str(view.annotations_added),
        )
    console.print(table)
    problems = [skip for view in summary.projects for skip in (*view.imported.skipped, *view.bad_answers)]
    if problems:
        console.print(_skipped_table(problems))


def _launch_ui(runtime: Runtime) -> bool:
    """Serve the review UI if this installation has it (`app.ui` and `rise serve`); returns whether it ran."""
    if importlib.util.find_spec("app.ui") is None:
        return False
    try:
        from app.commands.serve import launch_ui
    except ImportError:
        return False
    launch_ui(runtime)
    return True


def _annotate_demo(runtime: Runtime, summary: DemoSummary, model: Path | None) -> None:
    """Predictions (answers and reasoning) by the demo model for the demo items that have no trusted annotation."""
    from app.services.demo import DEFAULT_DEMO_MODEL, annotate_demo
    from rise.modeling import ModelLoadError

    if model is None and not (DEFAULT_DEMO_MODEL / "config.json").is_file():
        console.print(f"No demo model in {DEFAULT_DEMO_MODEL}: build one with `rise model build-demo`.")
        return
    with _progress() as bar:
        tasks: dict[str, int] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(escape(f"{name} predictions"), total=total)
            bar.update(tasks[name], completed=done, total=total)

        try:
            runs = annotate_demo(
                runtime, [p.id for p in summary.projects], model or DEFAULT_DEMO_MODEL, progress=report
            )
        except ModelLoadError as error:
            raise fail(error) from None
    stored = ", ".join(f"{run.project} {run.stored}" for run in runs)
    console.print(Text(f"Predictions stored by {runs[0].model if runs else model}: {stored}."))


@cli.command()
def demo(
    manifest: Path | None = typer.Option(None, help="Demo manifest; default assets/demo/manifest.json."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Open the review UI once the demo is set up."),
    annotate: bool = typer.Option(
        True, "--annotate/--no-annotate", help="Let the demo model annotate the items that have no ground truth."
    ),
    model: Path | None = typer.Option(None, help="Model folder that annotates the demo; default assets/demo-model."),
    worker: bool = typer.Option(
        True,
        "--worker/--no-worker",
        help="While the UI serves, run a worker in the background (lower CPU priority) that takes the jobs the "
        "Retrain button and the re-annotations queue; it stops with the demo.",
    ),
) -> None:
    """Create or upgrade the database, set up the demo projects from the bundled images (idempotent), open the UI."""
    runtime = open_runtime(upgrade=True)
    background = None
    try:
        with _progress() as bar:
            tasks: dict[str, int] = {}

            def report(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(escape(name), total=total)
                bar.update(tasks[name], completed=done, total=total)

            summary = setup_demo(runtime, manifest, progress=report)
        _print_demo_summary(summary)
        if annotate:
            _annotate_demo(runtime, summary, model)
        if serve and worker:
            background = _start_worker(runtime)
        if not (serve and _launch_ui(runtime)):
            console.print("Demo ready. Open the review UI with `rise serve`.")
    except (DemoError, ProjectError, ImportFailed) as error:
        raise fail(error) from None
    finally:
        if background is not None:
            background.stop()
        runtime.close()


def _start_worker(runtime: Runtime) -> BackgroundWorker:
    """The demo's background worker (`app.worker.background`) on the demo's database, logging to its data folder."""
    from app.worker.background import BackgroundWorker

    settings = runtime.settings
    log_path = settings.data_dir / "worker.log"
    env = {"RISE_DATA_DIR": str(settings.data_dir), "RISE_DATABASE_URL": settings.database_url}
    background = BackgroundWorker(log_path, env=env)
    background.start()
    console.print(Text(f"A worker runs in the background for Retrain and re-annotation jobs (log: {log_path})."))
    return background
