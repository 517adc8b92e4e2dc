"""Hugging Face `datasets` exports: the SFT data and the trusted annotations, saved to disk, optionally pushed.

SFT rows are what RISE-R1 trains on (docs/design.md §1): the image, the task prompt
(`rise.prompts.annotation_messages`) and the target `<think>CoT</think><answer>…</answer>`
(`rise.parsing.format_completion`), for every trusted annotation that carries a chain of thought the reviewer did not
flag as wrong. Annotation rows are every trusted annotation with its answer in pixels (as JSON text), source, author
and time. Both come as a `DatasetDict` with the project's `train` and `eval` splits, so the held-out slice stays held
out.

Rows are generated from the database stream and written by `Dataset.from_generator` in small batches, and images are
embedded as bytes, so the saved dataset does not depend on the media folder and memory stays flat.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, Image, Value

from app.errors import AppError
from app.export.label_studio import timestamp
from db.crud.exchange import ItemRecord
from rise.parsing import format_answer, format_completion
from rise.prompts import annotation_messages
from rise.tasks import TaskSpec

KINDS = ("sft", "annotations")
SPLITS = ("train", "eval")
# Rows per Arrow write: images are embedded, so keep batches small.
WRITER_BATCH = 100

_MESSAGE = [
    {
        "role": Value("string"),
        "content": [{"type": Value("string"), "text": Value("string")}],
    }
]
SFT_FEATURES = Features(
    {
        "image": Image(),
        "prompt": _MESSAGE,
        "completion": _MESSAGE,
        "text": Value("string"),
        "answer": Value("string"),
        "query": Value("string"),
        "item_id": Value("int64"),
        "source": Value("string"),
    }
)
ANNOTATION_FEATURES = Features(
    {
        "image": Image(),
        "answer": Value("string"),
        "answer_text": Value("string"),
        "cot": Value("string"),
        "query": Value("string"),
        "item_id": Value("int64"),
        "width": Value("int32"),
        "height": Value("int32"),
        "source": Value("string"),
        "author": Value("string"),
        "created_at": Value("string"),
    }
)


class EmptyDatasetError(AppError, ValueError):
    """The project has no rows of the asked kind; the message says what produces them."""


@dataclass
class HfExportSummary:
    path: Path
    rows: int
    rows_per_split: dict[str, int]
    pushed_to: str | None = None


def _normalise_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Arrow needs one struct type per column: every content part gets both keys, `text` empty on image parts.
    return [
        {
            "role": message["role"],
            "content": [
                {"type": part.get("type", "text"), "text": part.get("text")}
                for part in (
                    message["content"]
                    if isinstance(message["content"], list)
                    else [{"type": "text", "text": message["content"]}]
                )
            ],
        }
        for message in messages
    ]


def sft_rows(record: ItemRecord, spec: TaskSpec, media_dir: Path) -> Iterator[dict[str, Any]]:
    """One SFT row per trusted annotation of the item that has an unflagged chain of thought."""
    image = None
    for annotation in record.annotations:
        if not (annotation.cot or "").strip() or annotation.reasoning_wrong:
            continue
        if image is None:
            image = {"bytes": (media_dir / record.media_path).read_bytes(), "path": record.media_path}
        target = format_completion(annotation.cot, annotation.answer, spec, record.width, record.height)
        yield {
            "image": image,
            "prompt": _normalise_messages(annotation_messages(spec, record.query)),
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": target}]}],
            "text": target,
            "answer": json.dumps(annotation.answer),
            "query": record.query,
            "item_id": record.id,
            "source": annotation.source,
        }


def annotation_rows(record: ItemRecord, spec: TaskSpec, media_dir: Path) -> Iterator[dict[str, Any]]:
    image = None
    for annotation in record.annotations:
        if image is None:
            image = {"bytes": (media_dir / record.media_path).read_bytes(), "path": record.media_path}
        yield {
            "image": image,
            "answer": json.dumps(annotation.answer),
            "answer_text": format_answer(annotation.answer, spec, record.width, record.height),
            "cot": annotation.cot,
            "query": record.query,
            "item_id": record.id,
            "width": record.width,
            "height": record.height,
            "source": annotation.source,
            "author": annotation.author,
            "created_at": timestamp(annotation.created_at),
        }


def build_and_save(
    records: Callable[[], Iterable[ItemRecord]],
    spec: TaskSpec,
    media_dir: Path,
    out_dir: Path,
    *,
    kind: str,
    repo_id: str | None = None,
    token: str | None = None,
    private: bool = True,
) -> HfExportSummary:
    """Build the dataset from `records()` (called once per split), save it to `out_dir`, push it if asked."""
    make_rows = sft_rows if kind == "sft" else annotation_rows
    features = SFT_FEATURES if kind == "sft" else ANNOTATION_FEATURES

    def generate(split: str) -> Iterator[dict[str, Any]]:
        for record in records():
            if record.split == split:
                yield from make_rows(record, spec, media_dir)

    splits: dict[str, Dataset] = {}
    with tempfile.TemporaryDirectory(prefix="rise-hf-") as cache_dir:
        for split in SPLITS:
            try:
                splits[split] = Dataset.from_generator(
                    generate,
                    features=features,
                    gen_kwargs={"split": split},
                    cache_dir=cache_dir,
                    # The generator reads a live database: never reuse a cached result for it.
                    fingerprint=f"rise-{kind}-{split}-{uuid.uuid4().hex}",
                    writer_batch_size=WRITER_BATCH,
                )
            except ValueError as error:
                # `from_generator` refuses a generator without rows, and `load_from_disk` cannot read an empty
                # split back: a split without rows is left out.
                if "corresponds to no data" not in str(error):
                    raise
        if not splits:
            raise EmptyDatasetError(
                "Nothing to export: no trusted annotation with a chain of thought (accepted predictions whose "
                "reasoning was not flagged)."
                if kind == "sft"
                else "Nothing to export: the project has no trusted annotations yet."
            )
        dataset = DatasetDict(splits)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_to_disk(str(out_dir))
        pushed = None
        if repo_id and token:
            dataset.push_to_hub(repo_id, token=token, private=private)
            pushed = repo_id
    rows = {split: len(splits[split]) if split in splits else 0 for split in SPLITS}
    return HfExportSummary(path=out_dir, rows=sum(rows.values()), rows_per_split=rows, pushed_to=pushed)
