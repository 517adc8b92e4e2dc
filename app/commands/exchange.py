"""`rise export label-studio|label-studio-config|coco|hf` and `rise ls push|pull|import`: data in and out.

rise export label-studio shapes out/shapes.json         # tasks + out/shapes.label_config.xml
rise export coco shapes out/coco.json --source predictions
rise export hf shapes out/shapes-sft --kind sft
rise ls push shapes --url http://localhost:8080          # key from LABEL_STUDIO_API_KEY
rise ls pull 12 --into shapes-reviewed                   # a Label Studio project, by id or title
rise ls import export.json --into shapes-gt --image-root images/
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from app.commands._common import cli, console, fail, migrated_runtime
from app.export.label_studio_config import LabelingConfigError
from app.export.label_studio_push import LabelStudioError
from app.services import exports
from app.services.label_studio_import import LabelStudioImportError, LabelStudioImportReport
from app.services.projects import ProjectError, project_id_called

export_cli = typer.Typer(help="Export a project: Label Studio, COCO, Hugging Face datasets.", no_args_is_help=True)
ls_cli = typer.Typer(help="Exchange projects with a Label Studio server or its export files.", no_args_is_help=True)
cli.add_typer(export_cli, name="export")
cli.add_typer(ls_cli, name="ls")

URL_HELP = "Label Studio URL (default: $LABEL_STUDIO_URL)."
KEY_HELP = "Label Studio API key (default: $LABEL_STUDIO_API_KEY). Never printed."


_ERRORS = (exports.ExportError, LabelStudioError, LabelStudioImportError, LabelingConfigError, ProjectError)


@export_cli.command("label-studio")
def export_label_studio(
    project: str = typer.Argument(..., help="Project name."),
    out: Path = typer.Argument(..., help="Task JSON file to write; the labeling config goes beside it."),
    image_root_url: str = typer.Option(
        None, help="URL under which a server serves the media folder. Default: Label Studio local files."
    ),
    inline_images: bool = typer.Option(False, help="Embed each image in its task as a data URI."),
) -> None:
    """Write Label Studio tasks with predictions (model, score, CoT) and annotations (author, time)."""
    with migrated_runtime(user_errors=_ERRORS) as runtime:
        summary = exports.export_label_studio(
            runtime,
            project_id_called(runtime, project),
            out,
            image_root_url=image_root_url,
            inline_images=inline_images,
        )
    console.print(
        f"Wrote {summary.tasks:,} tasks ({summary.predictions:,} predictions, {summary.annotations:,} annotations) "
        f"to {summary.path}; labeling config: {out.with_name(out.stem + '.label_config.xml')}"
    )
    if summary.predictions_without_answer:
        console.print(f"Left out {summary.predictions_without_answer:,} predictions without a readable answer.")
    if not image_root_url and not inline_images:
        console.print(
            "Images are referenced as Label Studio local files: start Label Studio with "
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={runtime.settings.data_dir}"
        )


@export_cli.command("label-studio-config")
def export_label_studio_config(
    project: str = typer.Argument(..., help="Project name."),
    out: Path = typer.Argument(None, help="XML file to write (default: print it)."),
) -> None:
    """The Label Studio labeling config (XML) for a project."""
    with migrated_runtime(user_errors=_ERRORS) as runtime:
        config = exports.label_studio_config(runtime, project_id_called(runtime, project))
    if out is None:
        typer.echo(config, nl=False)
    else:
        out.write_text(config, encoding="utf-8")
        console.print(f"Wrote {out}")


@export_cli.command("coco")
def export_coco(
    project: str = typer.Argument(..., help="Project name (detection or grounding)."),
    out: Path = typer.Argument(..., help="COCO JSON file to write."),
    source: str = typer.Option("annotations", help="annotations (trusted) or predictions (latest, with score)."),
) -> None:
    """Write the project's boxes as COCO detection JSON."""
    with migrated_runtime(user_errors=_ERRORS) as runtime:
        summary = exports.export_coco(runtime, project_id_called(runtime, project), out, source=source)
    console.print(f"Wrote {summary.images:,} images and {summary.boxes:,} boxes to {summary.path}")
    if summary.images_without_answer:
        console.print(f"{summary.images_without_answer:,} images have no {source} yet and are listed without boxes.")


@export_cli.command("hf")
def export_hf(
    project: str = typer.Argument(..., help="Project name."),
    out: Path = typer.Argument(..., help="Folder for the dataset (Dataset.save_to_disk)."),
    kind: str = typer.Option("sft", help="sft (image, prompt, <think>CoT</think><answer>…) or annotations."),
    repo_id: str = typer.Option(None, help="Also push to this Hub dataset repository, e.g. me/shapes-sft."),
    hf_token: str = typer.Option(None, help="Hub token for --repo-id (default: $HF_TOKEN). Never printed."),
    public: bool = typer.Option(False, help="Make a newly created Hub repository public."),
) -> None:
    """Save the SFT data or the trusted annotations as a Hugging Face dataset."""
    token = hf_token or (os.environ.get("HF_TOKEN") if repo_id else None)
    with migrated_runtime() as runtime:
        try:
            summary = exports.export_hf_dataset(
                runtime,
                project_id_called(runtime, project),
                out,
                kind=kind,
                repo_id=repo_id,
                token=token,
                private=not public,
            )
        except _ERRORS as error:
            raise fail(error) from None
        except Exception as error:  # the Hub push: its errors name the repository, never the token
            raise fail(f"{type(error).__name__}: {error}") from None
    console.print(f"Saved {summary.rows:,} rows ({kind}) to {summary.path}")
    if summary.pushed_to:
        console.print(f"Pushed to https://huggingface.co/datasets/{summary.pushed_to}")


@ls_cli.command("push")
def ls_push(
    project: str = typer.Argument(..., help="Project name."),
    url: str = typer.Option(None, help=URL_HELP),
    api_key: str = typer.Option(None, help=KEY_HELP),
    title: str = typer.Option(None, help="Label Studio project title (default: the project name); reused if found."),
    images: str = typer.Option("upload", help="upload the files, reference them by url, or inline them."),
    image_root_url: str = typer.Option(None, help="With --images url: the URL that serves the media folder."),
) -> None:
    """Push a project to a Label Studio server: labeling config, images, tasks with predictions and annotations."""
    with migrated_runtime(user_errors=_ERRORS) as runtime:
        summary = exports.push_to_label_studio(
            runtime,
            project_id_called(runtime, project),
            url=url,
            api_key=api_key,
            title=title,
            image_mode=images,
            image_root_url=image_root_url,
        )
    verb = "Created" if summary.created_project else "Updated"
    console.print(f"{verb} Label Studio project {summary.project_title!r}: {summary.project_url}")
    console.print(
        f"Imported {summary.tasks:,} tasks, {summary.predictions:,} predictions, {summary.annotations:,} "
        f"annotations; uploaded {summary.images_uploaded:,} images; {summary.already_there:,} already there."
    )


def _print_report(report: LabelStudioImportReport, project: str) -> None:
    console.print(
        f"Read {report.tasks:,} tasks into {project!r}: {report.items_added:,} new items, {report.items_existing:,} "
        f"existing; {report.annotations_added:,} annotations and {report.predictions_added:,} predictions added, "
        f"{report.duplicates:,} already there, {report.cancelled_annotations:,} cancelled annotations ignored."
    )
    for note in report.notes:
        console.print(Text(f"Note: {note}", style="yellow"))
    if report.skipped:
        table = Table(title=f"Skipped tasks ({len(report.skipped):,})", title_justify="left")
        table.add_column("task")
        table.add_column("reason", overflow="fold")
        for skipped in report.skipped[:200]:
            name = str(skipped.task_id) if skipped.task_id is not None else f"#{skipped.index}"
            table.add_row(Text(name), Text("; ".join(skipped.reasons)))
        console.print(table)
        if len(report.skipped) > 200:
            console.print(f"... and {len(report.skipped) - 200:,} more.")
        if any("image root" in reason for skipped in report.skipped for reason in skipped.reasons):
            console.print("The image root is --image-root: the folder the tasks' image files are in.")


@ls_cli.command("import")
def ls_import(
    file: Path = typer.Argument(..., help="Label Studio JSON export (a list of tasks)."),
    into: str = typer.Option(..., "--into", help="RISE project; created from --config when it does not exist."),
    image_root: Path = typer.Option(None, help="Folder that image paths and local-files references are below."),
    label_studio_media: Path = typer.Option(None, help="Label Studio's media folder, for /data/upload/ images."),
    config: Path = typer.Option(None, help="Label Studio labeling config XML, to create the project from."),
) -> None:
    """Import a Label Studio JSON export: annotations become trusted annotations, predictions stay predictions."""
    from app.services.label_studio_import import import_label_studio_file

    with migrated_runtime(user_errors=(*_ERRORS, OSError)) as runtime:
        report = import_label_studio_file(
            runtime,
            into,
            file,
            image_root=image_root,
            label_studio_media=label_studio_media,
            config_xml=config.read_text(encoding="utf-8") if config else None,
        )
    _print_report(report, into)


@ls_cli.command("pull")
def ls_pull(
    label_studio_project: str = typer.Argument(..., help="Label Studio project id or title."),
    into: str = typer.Option(..., "--into", help="RISE project; created from the server's config if missing."),
    url: str = typer.Option(None, help=URL_HELP),
    api_key: str = typer.Option(None, help=KEY_HELP),
    image_root: Path = typer.Option(None, help="Folder that local-files references are below."),
) -> None:
    """Import a project from a live Label Studio server through a snapshot export."""
    from app.services.label_studio_import import pull_from_label_studio

    with migrated_runtime(user_errors=_ERRORS) as runtime:
        report = pull_from_label_studio(
            runtime, into, label_studio_project, url=url, api_key=api_key, image_root=image_root
        )
    _print_report(report, into)
