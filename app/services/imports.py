"""Import image files into a project: expand paths, validate, store by content hash, insert items in batches.

Every file ends in exactly one of three places in the `ImportSummary`: added, duplicate (its content is already in the
project, from an earlier import or earlier in this one) or skipped with a reason. Nothing is decoded twice and
re-importing a folder only hashes its files.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sqlalchemy.exc import IntegrityError

from app.errors import AppError
from app.media import ImageRejected, prepare_image, sha256_hex, write_media
from app.runtime import Runtime
from app.services.projects import project_with_id
from db.crud import projects as crud
from db.crud.projects import NewItem
from db.models import Split
from rise.tasks import TaskType

ProgressCallback = Callable[[int, int], None]
# Rows per transaction: large enough that commits do not dominate, small enough that an interrupted import of a huge
# folder keeps most of its work (a re-run then only hashes what is already in).
BATCH_SIZE = 200
_GLOB_CHARS = frozenset("*?[")
_MAX_NAME_CHARS = 1024  # Item.original_name is VARCHAR(1024)
# Why a grounding image without a query is skipped; a caller can add how its users give queries.
NO_QUERY = "no query: a grounding item needs one, given for every file or per file"


class ImportFailed(AppError, ValueError):
    """The import as a whole cannot run (unknown project, unreadable query file); the message says what to fix."""


class SkippedFile(NamedTuple):
    path: str
    reason: str


@dataclass
class ImportSummary:
    added: int = 0
    duplicates: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    # Every file that is in the project after the import (added now or before) -> its item id.
    item_ids: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return self.added + self.duplicates + len(self.skipped)


def split_for(sha256: str, eval_fraction: float) -> Split:
    """Deterministic train/eval split from the content hash, so the same image always lands on the same side."""
    return Split.eval if int(sha256[:16], 16) / 16**16 < eval_fraction else Split.train


def safe_original_name(path: Path) -> str:
    """The file name as text the database accepts: undecodable bytes (kept by Python as lone surrogates) become
    U+FFFD. Everything else is kept verbatim; it is displayed escaped, never interpreted."""
    name = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return name[:_MAX_NAME_CHARS]


def _display(path: Path | str) -> str:
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _walk_folder(folder: Path) -> list[Path]:
    # Hidden files and folders (.DS_Store, .git, editor backups) are never images someone meant to import.
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[SkippedFile]]:
    """Files named by `paths` (files, folders walked recursively, glob patterns), each once, in a stable order."""
    found: list[Path] = []
    missing: list[SkippedFile] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(_walk_folder(path))
        elif path.exists() or path.is_symlink():
            found.append(path)
        elif _GLOB_CHARS & set(str(raw)):
            matches = [Path(match) for match in sorted(glob.glob(str(raw), recursive=True))]
            if not matches:
                missing.append(SkippedFile(_display(raw), "no file matches this pattern"))
            for match in matches:
                found.extend(_walk_folder(match) if match.is_dir() else [match])
        else:
            missing.append(SkippedFile(_display(raw), "no such file or folder"))
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), missing


def load_query_file(path: str | Path) -> dict[str, str]:
    """Read a file -> query mapping for grounding imports.

    JSON: `{"images/a.png": "the red circle", ...}`. CSV: a header with `file` and `query` columns. File names are
    relative to the mapping file's folder. Returns absolute, resolved paths as keys.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFailed(f"Cannot read the query file {path}: {error}") from None
    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportFailed(f'{path} is not valid JSON ({error}). Expected {{"a.png": "the red circle"}}') from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ImportFailed(f'{path} must hold one JSON object of file name -> query, e.g. {{"a.png": "…"}}')
        pairs = list(mapping.items())
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"file", "query"} <= set(reader.fieldnames):
            raise ImportFailed(f"{path} needs a header row with `file` and `query` columns, e.g. `file,query`.")
        pairs = [(row["file"] or "", row["query"] or "") for row in reader]
    else:
        raise ImportFailed(f"Query files must end in .json or .csv, got {path.name!r}.")
    base = path.parent
    return {str((base / name).resolve()): query.strip() for name, query in pairs if name and query.strip()}


@dataclass(frozen=True)
class _Target:
    project_id: int
    task_type: TaskType
    eval_fraction: float


def _open_target(runtime: Runtime, project_id: int) -> tuple[_Target, set[str]]:
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, ImportFailed)
        target = _Target(project.id, TaskType(project.task_type), project.eval_fraction)
        return target, crud.item_shas(session=session, project_id=project.id)


def _insert_batch(runtime: Runtime, target: _Target, batch: list[NewItem]) -> int:
    """Insert `batch`, leaving out hashes a concurrent import committed meanwhile; returns how many were new."""
    for attempt in range(2):
        try:
            with runtime.sessions.begin() as session:
                taken = crud.item_ids_by_sha(
                    session=session, project_id=target.project_id, shas=[new.sha256 for new in batch]
                )
                fresh = [new for new in batch if new.sha256 not in taken]
                crud.create_items(session=session, project_id=target.project_id, items=fresh)
                return len(fresh)
        except IntegrityError:
            # Another import won the race between our check and our insert; the re-check now sees its rows.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def import_paths(
    runtime: Runtime,
    project_id: int,
    paths: Iterable[str | Path],
    *,
    query: str | None = None,
    queries: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportSummary:
    """Import image files into the project.

    Args:
        paths: files, folders (walked recursively, hidden entries ignored) and glob patterns.
        query: the grounding query for every file that `queries` does not cover.
        queries: resolved absolute path -> query (see `load_query_file`); wins over `query`.
        progress: called as `progress(done, total)` after each file.

    Raises:
        ImportFailed: the project does not exist.
    """
    target, known_shas = _open_target(runtime, project_id)
    files, summary_skips = expand_paths(paths)
    summary = ImportSummary(skipped=summary_skips)
    queries = queries or {}
    max_pixels = runtime.settings.max_image_pixels
    accepted: dict[str, str] = {}  # display path -> sha256, for the item ids at the end
    pending: list[NewItem] = []
    total = len(files)

    for done, path in enumerate(files, start=1):
        shown = _display(path)
        try:
            item = _prepare_one(path, target, known_shas, queries, query, max_pixels, runtime)
        except ImageRejected as rejected:
            summary.skipped.append(SkippedFile(shown, rejected.reason))
        else:
            if isinstance(item, NewItem):
                pending.append(item)
                known_shas.add(item.sha256)
                accepted[shown] = item.sha256
            else:
                summary.duplicates += 1
                accepted[shown] = item
        if len(pending) >= batch_size:
            added = _insert_batch(runtime, target, pending)
            summary.added += added
            summary.duplicates += len(pending) - added
            pending = []
        if progress is not None:
            progress(done, total)
    if pending:
        added = _insert_batch(runtime, target, pending)
        summary.added += added
        summary.duplicates += len(pending) - added

    with runtime.sessions.begin() as session:
        ids = crud.item_ids_by_sha(session=session, project_id=target.project_id, shas=accepted.values())
    summary.item_ids = {shown: ids[sha] for shown, sha in accepted.items() if sha in ids}
    return summary


def _prepare_one(
    path: Path,
    target: _Target,
    known_shas: set[str],
    queries: Mapping[str, str],
    default_query: str | None,
    max_pixels: int,
    runtime: Runtime,
) -> NewItem | str:
    """A new item for `path` (its image already stored), or the sha256 of the duplicate it is.

    Raises:
        ImageRejected: the file cannot become an item; the reason goes to the summary.
    """
    if not path.is_file():
        raise ImageRejected("not a regular file" if path.exists() else "no such file (or a broken link)")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageRejected(f"cannot read the file: {error.strerror or error}") from None
    sha = sha256_hex(data)
    if sha in known_shas:
        return sha
    image = prepare_image(data, max_pixels=max_pixels)
    item_query = queries.get(str(path.resolve())) or (default_query.strip() if default_query else None) or None
    if target.task_type is TaskType.grounding and not item_query:
        raise ImageRejected(NO_QUERY)
    media_path = write_media(runtime.settings.media_dir, sha, image)
    meta = {"exif_transposed": True} if image.transposed else {}
    return NewItem(
        sha256=sha,
        media_path=media_path,
        original_name=safe_original_name(path),
        width=image.width,
        height=image.height,
        split=split_for(sha, target.eval_fraction),
        query=item_query,
        meta=meta,
    )
