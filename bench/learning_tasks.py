"""The labelling tasks the learning benchmarks teach the demo base model, as synthetic items with exact answers.

| task | type | what must be learnt | why it is there |
|---|---|---|---|
| mood | classification | sunny / stormy / balanced: which colour family has more objects, or a tie | a rule the base model has never seen, over several objects, with a tie class |
| odd-one-out | grounding | the box of "the object that differs from the others" | context-driven: the target is defined by the other objects |
| shape | classification | the shape of the single object | simple: the base model names shapes in its reasoning, and is asked a lone object's shape in training |
| named-object | grounding | the box of an object named by its attributes ("the red circle") | simple: the base model was trained on such queries |

Items are a pure function of (task, seed); the benchmark draws training and held-out items from disjoint seed ranges.
"""  # noqa: E501

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from rise.synthetic import (
    ODD_ONE_OUT_QUERY,
    Scene,
    caption,
    generate_grounding_example,
    generate_scene_for_rule,
    get_rule,
    odd_one_out_working,
)
from rise.tasks import TaskSpec, TaskType
from rise.training.records import TrainingRecord, write_snapshot

EVAL_SEED_OFFSET = 1_000_000  # held-out items come from seeds no training item uses


@dataclass(frozen=True)
class SyntheticItem:
    image: Image.Image
    answer: Any  # pixels, `rise.tasks` shapes
    query: str | None = None
    caption: str | None = None  # the scene's exact description: perfect reasoning (`bench/reasoning_ceiling.py`)
    # That description with the steps to the answer written in: the rule's (`LabelRule.working`), or for the odd one
    # out `odd_one_out_working`.
    working: str | None = None
    scene: Scene | None = None  # what was drawn, for reading a model's description against it


@dataclass(frozen=True)
class BenchTask:
    name: str
    spec: TaskSpec
    make_item: Callable[[int], SyntheticItem]
    description: str
    # Optimiser steps per method unless `--steps` says otherwise: enough for every method's held-out curve to
    # flatten on the demo model.
    steps: int = 240
    # Learning rate of the SFT stages (RISE's and the baseline's), which fine-tune every weight. Boxes need smaller
    # steps: at 2e-3 SFT took named-object from the base's 0.43 to 0.18, at 5e-4 it rose to 0.49
    # (bench/results/learning-box-sft-5e-4).
    sft_learning_rate: float = 5e-4

    @property
    def metric(self) -> str:
        """The headline metric: accuracy for labels, IoU > 0.5 rate for one box."""
        return "accuracy" if self.spec.task_type is TaskType.classification else "accuracy_at_iou"


def _rule_item(rule_name: str) -> Callable[[int], SyntheticItem]:
    rule = get_rule(rule_name)

    def make(seed: int) -> SyntheticItem:
        scene, label = generate_scene_for_rule(rule, seed)  # labels drawn uniformly, the tie class included
        working = rule.working(scene) if rule.working else None
        return SyntheticItem(scene.image, label, caption=caption(scene), working=working, scene=scene)

    return make


def _grounding_item(kind: str) -> Callable[[int], SyntheticItem]:
    def make(seed: int) -> SyntheticItem:
        example = generate_grounding_example(seed, kind=kind)
        working = odd_one_out_working(example.scene) if kind == "odd-one-out" else None
        scene = example.scene
        return SyntheticItem(scene.image, example.box, example.query, caption(scene), working, scene)

    return make


TASKS: dict[str, BenchTask] = {
    "mood": BenchTask(
        "mood",
        TaskSpec(TaskType.classification, labels=get_rule("mood").labels),
        _rule_item("mood"),
        "sunny / stormy / balanced by colour family majority (tie class)",
        # RISE's curve was still rising at 240 steps (0.57, 0.67, 0.66 at steps 160-240 on one demo model), and SFT
        # on answers peaks and falls within 480.
        steps=480,
        # A new rule takes larger steps: on one feedback-loop round's data SFT reached 0.48 held out at 5e-4, 0.54 at
        # 2e-3 (single runs), and mood's learning results come from 2e-3.
        sft_learning_rate=2e-3,
    ),
    "odd-one-out": BenchTask(
        "odd-one-out",
        TaskSpec(TaskType.grounding),
        _grounding_item("odd-one-out"),
        f'box of "{ODD_ONE_OUT_QUERY}"',
    ),
    "shape": BenchTask(
        "shape",
        TaskSpec(TaskType.classification, labels=get_rule("shape").labels),
        _rule_item("shape"),
        "shape of the single object",
    ),
    "named-object": BenchTask(
        "named-object",
        TaskSpec(TaskType.grounding),
        _grounding_item("attribute"),
        'box of an object named by its attributes ("the red circle")',
    ),
}


def get_task(name: str) -> BenchTask:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"Unknown benchmark task {name!r}; choose from {sorted(TASKS)}") from None


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


REASONINGS = ("caption", "worked")


def exact_reasoning(item: SyntheticItem, kind: str) -> str | None:
    """A perfect reasoning for the item: its scene's exact caption, or with "worked" its worked reasoning (the caption
    with the steps to the answer written in, `SyntheticItem.working`) where the task has one."""
    if kind not in REASONINGS:
        raise ValueError(f"Unknown reasoning {kind!r}; choose from {REASONINGS}")
    if kind == "worked" and item.working:
        return item.working
    return item.caption


def item_seed(index: int, held_out: bool, seed: int = 0) -> int:
    """The seed `task_records` makes item `index` (its `item_id`) from."""
    return seed * 100_003 + index + (EVAL_SEED_OFFSET if held_out else 0)


def task_records(
    task: BenchTask, n_train: int, n_eval: int, seed: int = 0, *, reasoning: str | None = None
) -> list[TrainingRecord]:
    """`n_train` trusted training items and `n_eval` held-out items; the same arguments give the same items. With a
    `reasoning` ("caption" or "worked", `exact_reasoning`) each training item carries that as a reviewer's
    reasoning."""
    records = []
    for index in range(n_train + n_eval):
        held_out = index >= n_train
        item = task.make_item(item_seed(index, held_out, seed))
        records.append(
            TrainingRecord(
                item_id=index,
                image=png_bytes(item.image),
                width=item.image.width,
                height=item.image.height,
                split="eval" if held_out else "train",
                answer=item.answer,
                answer_source="import",
                query=item.query,
                cot=exact_reasoning(item, reasoning) if reasoning and not held_out else None,
            )
        )
    return records


def write_task_snapshot(task: BenchTask, out_dir: Path, n_train: int, n_eval: int, seed: int = 0) -> Path:
    """A training-data snapshot (`rise.training.records`) of the task: what `rise train` would take from a project."""
    records = task_records(task, n_train, n_eval, seed)
    return write_snapshot(out_dir, task.spec, records, info={"benchmark_task": task.name, "seed": seed})
