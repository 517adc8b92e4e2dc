"""Plain training records -> a Hugging Face dataset on disk: the input of every training stage.

A snapshot is a folder that travels to the GPU box on its own (no database, no media folder):

    snapshot/
      snapshot.json     the task (labels, synonyms, prompt overrides, coordinate frame), counts, provenance
      dataset/train/    a `datasets.Dataset` saved to disk, images embedded as PNG/JPEG bytes
      dataset/eval/     the held-out split, in the same form (absent when empty)

Each row is one item: `item_id`, `image`, `width`, `height`, `query`, `answer` (the trusted annotation as JSON in
original-image pixels, or null when the item only has rejected answers), `answer_source` (import / accept /
correct), `cot` (a reviewer-accepted reasoning not flagged as wrong, or null) and `rejected_answers` (a JSON list of
answers reviewers rejected for that image). Held-out items (`eval`) are only ever read by evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Image, Value, load_from_disk

from rise.answers import normalize_answer
from rise.tasks import Answer, CoordinateFrame, TaskSpec

SNAPSHOT_INFO = "snapshot.json"
DATASET_DIR = "dataset"
SPLITS = ("train", "eval")
# The answer source whose reasoning a reviewer wrote (with a correction, or an accept that came with one); an
# accepted item's reasoning is the model's, which the reviewer let stand.
WRITTEN_SOURCE = "correct"

FEATURES = Features(
    {
        "item_id": Value("int64"),
        "image": Image(),
        "width": Value("int32"),
        "height": Value("int32"),
        "query": Value("string"),
        "answer": Value("string"),
        "answer_source": Value("string"),
        "cot": Value("string"),
        "rejected_answers": Value("string"),
    }
)


@dataclass
class TrainingRecord:
    """One item's training signal, as plain values.

    Args:
        item_id (`int`): the item's id in the app, carried through every stage's logs.
        image (`str | Path | bytes`): the image file (or its bytes); the snapshot embeds the bytes.
        width (`int`), height (`int`): the original image size (answers are in these pixels).
        split (`str`): "train" or "eval" (held out: never trained on).
        answer (`Answer | None`): the trusted annotation y, or `None` when the item only has rejected answers.
        answer_source (`str | None`): where y came from: "import", "accept" or "correct".
        query (`str | None`): the grounding query.
        cot (`str | None`): a reviewer-accepted reasoning that was not flagged as wrong.
        rejected_answers (`list[Answer]`): answers a reviewer rejected for this image.
    """

    item_id: int
    image: str | Path | bytes
    width: int
    height: int
    split: str = "train"
    answer: Answer | None = None
    answer_source: str | None = None
    query: str | None = None
    cot: str | None = None
    rejected_answers: list[Answer] = field(default_factory=list)


@dataclass
class Snapshot:
    """A loaded snapshot: the task, the two splits and what `snapshot.json` says about them."""

    path: Path
    spec: TaskSpec
    train: Dataset
    eval: Dataset
    info: dict[str, Any]

    def split(self, name: str) -> Dataset:
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; a snapshot has {', '.join(SPLITS)}.")
        return self.train if name == "train" else self.eval


def spec_to_dict(spec: TaskSpec) -> dict[str, Any]:
    values = dataclasses.asdict(spec)
    values["task_type"] = spec.task_type.value
    values["frame"] = spec.frame.value
    values["labels"] = list(spec.labels)
    return values


def spec_from_dict(values: dict[str, Any]) -> TaskSpec:
    return TaskSpec(
        task_type=values["task_type"],
        labels=tuple(values.get("labels", ())),
        synonyms=dict(values.get("synonyms", {})),
        distribution=bool(values.get("distribution", False)),
        prompt_overrides=dict(values.get("prompt_overrides", {})),
        frame=CoordinateFrame(values.get("frame", CoordinateFrame.qwen2_vl.value)),
    )


def _image_cell(image: str | Path | bytes, item_id: int) -> dict[str, Any]:
    if isinstance(image, bytes):
        return {"bytes": image, "path": f"item_{item_id}"}
    path = Path(image)
    # The bytes, not the path: the snapshot must load on a machine that has no media folder.
    return {"bytes": path.read_bytes(), "path": path.name}


def _answer_cells(record: TrainingRecord, spec: TaskSpec) -> tuple[str | None, str]:
    """The record's answer and rejected answers as canonical JSON; `ValueError` naming the item if one is invalid."""
    try:
        answer = None
        if record.answer is not None:
            answer = json.dumps(normalize_answer(record.answer, spec, record.width, record.height))
        rejected = [normalize_answer(a, spec, record.width, record.height) for a in record.rejected_answers]
    except ValueError as error:
        raise ValueError(f"Item {record.item_id}: {error}") from None
    return answer, json.dumps(rejected)


def _rows(records: Iterable[TrainingRecord], spec: TaskSpec, split: str) -> Iterator[dict[str, Any]]:
    for record in records:
        if record.split != split:
            continue
        answer, rejected = _answer_cells(record, spec)
        yield {
            "item_id": record.item_id,
            "image": _image_cell(record.image, record.item_id),
            "width": record.width,
            "height": record.height,
            "query": record.query,
            "answer": answer,
            "answer_source": record.answer_source,
            "cot": record.cot,
            "rejected_answers": rejected,
        }


def write_snapshot(
    out_dir: str | Path, spec: TaskSpec, records: list[TrainingRecord], info: dict[str, Any] | None = None
) -> Path:
    """Write `records` (both splits) as a snapshot folder, replacing any snapshot already there.

    Answers are validated against `spec` (`ValueError` names the bad one: the caller checks records first) and
    stored in canonical form. Images are read from their files and embedded.

    Returns:
        `Path`: `out_dir`, loadable with `load_snapshot`.
    """
    out_dir = Path(out_dir)
    unknown = sorted({r.split for r in records} - set(SPLITS))
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown} in the records; use 'train' or 'eval'.")
    for record in records:
        if record.split == "eval" and record.answer is None:
            raise ValueError(f"Held-out item {record.item_id} has no trusted answer; evaluation needs one.")
        _answer_cells(record, spec)  # every answer checked before anything is written
    dataset_dir = out_dir / DATASET_DIR
    build_dir = out_dir / ".build"
    for stale in (dataset_dir, build_dir):
        if stale.exists():
            shutil.rmtree(stale)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    try:
        for split in SPLITS:
            if not any(r.split == split for r in records):
                splits[split] = _empty_split()
                continue
            # A generator writes the rows to Arrow files as it goes, so a large project's images are never all in
            # memory at once; the fingerprint stands in for hashing every record.
            splits[split] = Dataset.from_generator(
                _rows,
                features=FEATURES,
                cache_dir=str(build_dir),
                gen_kwargs={"records": records, "spec": spec, "split": split},
                fingerprint=f"rise-snapshot-{split}-{uuid.uuid4().hex}",
                split=split,
            )
            # An empty split is not written: `datasets` saves it as zero shards that it then cannot load.
            if len(splits[split]):
                splits[split].save_to_disk(str(dataset_dir / split))
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    summary = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": spec_to_dict(spec),
        "counts": {split: len(splits[split]) for split in SPLITS},
        "with_answer": sum(r.answer is not None for r in records if r.split == "train"),
        "with_cot": sum(r.cot is not None for r in records if r.split == "train"),
        "with_rejections": sum(bool(r.rejected_answers) for r in records if r.split == "train"),
        **(info or {}),
    }
    (out_dir / SNAPSHOT_INFO).write_text(json.dumps(summary, indent=1))
    return out_dir


def load_snapshot(path: str | Path) -> Snapshot:
    """Load a snapshot folder written by `write_snapshot`; a clear error when the folder is not one."""
    path = Path(path)
    info_file = path / SNAPSHOT_INFO
    if not info_file.is_file() or not (path / DATASET_DIR).is_dir():
        raise FileNotFoundError(
            f"{path} is not a training-data snapshot (no {SNAPSHOT_INFO} and {DATASET_DIR}/). Make one with "
            "`rise train --project NAME ...`, which snapshots the project's verdicts first."
        )
    info = json.loads(info_file.read_text())
    splits = {}
    for split in SPLITS:
        split_dir = path / DATASET_DIR / split
        splits[split] = load_from_disk(str(split_dir)) if split_dir.is_dir() else _empty_split()
    spec = spec_from_dict(info["task"])
    return Snapshot(path=path, spec=spec, train=splits["train"], eval=splits["eval"], info=info)


def _empty_split() -> Dataset:
    return Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES)


def load_answer(text: str | None) -> Answer | None:
    """A snapshot's JSON answer cell as the answer value (`None` stays `None`)."""
    return None if text is None else json.loads(text)
