"""`rise annotate`: a model proposes annotations for a project's unannotated items."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from app.commands._common import cli, console, fail, migrated_runtime
from app.services.projects import ProjectError, project_id_called

if TYPE_CHECKING:
    from app.services.annotation import AnnotationRunSummary


class ImagesPerSecondColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} images/s" if speed else "– images/s", style="progress.data.speed")


def _print_summary(summary: AnnotationRunSummary) -> None:
    if summary.pending == 0:
        console.print(
            Text(
                f"Nothing to annotate in {summary.project!r}: every item has a prediction from this model "
                "or a trusted annotation."
            )
        )
        return
    console.print(
        Text(
            f"{summary.project}: stored {summary.stored} predictions ({summary.parsed} parsed, "
            f"{summary.failed} with a parse error), skipped {len(summary.skipped)}, in {summary.seconds:.1f} s "
            f"({summary.images_per_second:.2f} images/s)."
        )
    )
    if summary.skipped:
        table = Table(title="Skipped items (retried on the next run)", title_justify="left")
        table.add_column("item")
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for skipped in summary.skipped:
            table.add_row(str(skipped.item_id), Text(skipped.name), Text(skipped.reason))
        console.print(table)


@cli.command()
def annotate(
    project: str = typer.Option(..., "--project", "-p", help="Project whose unannotated items to annotate."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Model version name, Hub id (e.g. Qwen/Qwen2-VL-2B-Instruct) or model folder; default: the project's "
        "serving version, else its default model.",
    ),
    adapter: str | None = typer.Option(None, help="PEFT (LoRA) adapter folder to apply on top of the model."),
    batch_size: int = typer.Option(16, min=1, help="Images per generate call."),
    max_new_tokens: int = typer.Option(256, min=1, help="Longest completion in tokens."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 decodes greedily; above 0 samples."),
    top_p: float = typer.Option(1.0, min=0.0, max=1.0, help="Nucleus sampling threshold."),
    num_samples: int = typer.Option(
        1, min=1, help="Samples per image; above 1 the answer most samples agree on is kept (needs temperature > 0)."
    ),
    seed: int = typer.Option(0, help="Random seed, so a run can be repeated."),
    constrain_labels: bool = typer.Option(
        True,
        "--constrain-labels/--free-answers",
        help="Classification: decode each answer from the project's labels only (the reasoning stays free); "
        "--free-answers stores what the model writes unaided.",
    ),
    limit: int | None = typer.Option(None, min=1, help="Annotate at most this many items."),
    device: str | None = typer.Option(None, help="cuda, cuda:1 or cpu; default: cuda if available."),
    dtype: str | None = typer.Option(None, help="bfloat16, float16 or float32; default: bfloat16 on cuda."),
) -> None:
    """Store a prediction (answer, reasoning, confidence) for every item that has none from this model and no
    trusted annotation. Batches commit as they finish: rerun the same command to resume after an interruption."""
    # Imported here: torch and transformers take seconds to import, which no other command should pay for.
    from transformers.utils import logging as hf_logging

    from app.services.annotation import run_annotation
    from rise.annotate import GenerationSettings
    from rise.modeling import ModelLoadError

    hf_logging.disable_progress_bar()  # its bars would interleave with ours

    try:
        settings = GenerationSettings(
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            num_samples=num_samples,
            seed=seed,
            constrain_labels=constrain_labels,
        )
    except ValueError as error:
        raise fail(error) from None
    progress = Progress(
        TextColumn(f"Annotating {escape(project)}"),
        BarColumn(),
        MofNCompleteColumn(),
        ImagesPerSecondColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    try:
        with migrated_runtime() as runtime, progress:
            task_id = progress.add_task("annotate", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task_id, completed=done, total=total)

            summary = run_annotation(
                runtime,
                project_id_called(runtime, project),
                model,
                settings=settings,
                progress=report,
                adapter=adapter,
                limit=limit,
                device=device,
                dtype=dtype,
            )
    except (ProjectError, ModelLoadError, ValueError) as error:
        raise fail(error) from None
    _print_summary(summary)
