"""Where does an odd-one-out box go wrong: in what the model saw, in its steps, in the object it names, or in the box
it draws for that object? Each model annotates the learning benchmark's held-out odd-one-out items, and each
prediction's reasoning is read against the scene that was drawn.

    .venv/bin/python bench/odd_one_out_use.py assets/demo-model /tmp/ceiling/full-worked/sft/final \\
        --out bench/results/odd-one-out-use
    .venv/bin/python bench/odd_one_out_use.py --predictions RUN/seed-0/evaluate/rise.predictions.jsonl \\
        --rollouts RUN/seed-0/rise_cot/rollouts --out /tmp/use   # a learning run's RISE, read without annotating
    .venv/bin/python bench/odd_one_out_use.py --quick MODEL --out /tmp/use   # two items; what the tests run

Each argument is a model folder (a base model, or a pipeline stage's `final` after fine-tuning every weight), or
held-out predictions an evaluation wrote, or a RISE-CoT rollout folder of a learning run (its reasonings read
against the training item whose box RISE-CoT was given: "named right" is then "names the object at that box"). The
reasoning is read as `rise.synthetic.odd_one_out_working` writes it: one sentence per object ("A small red circle at
the top left"), each with its colour, shape and how many of those came so far when the model writes steps (": red
circle one"), then the object it names ("The blue circle at the bottom differs from the others.", or as a model taught
to name a query's object says it, "… is the object that differs from the others."). Counted per model:

- *description exact*: every sentence gives its object's size, colour, shape and place, as the caption does;
- *odd one seen*: the sentence for the odd object gives its colour and shape (when there is one sentence per object),
  and *others seen*, the same for the other objects, which differ from each other in place only;
- *description singles it out*: in the model's own description exactly one object is unlike the others, and it is
  the odd one;
- *steps follow description*: every step names its sentence's colour and shape and their running count;
- *named right*: the last sentence names the odd object's colour and shape; *naming follows description*: it names
  the one kind the model's own description has once;
- *box on the named object*: the box has IoU > 0.5 with an object of the kind named; *right when named right*: the
  box is right (IoU > 0.5 with the odd one's) among items whose naming is right.

Writes `odd_one_out_use.json` and `.md`, and each model's predictions, under `--out`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.learning import BenchSettings
from bench.learning_tasks import get_task, item_seed, task_records
from bench.tables import publish_table
from rise.boxes import box_iou
from rise.synthetic import Scene, grounding_candidates
from rise.synthetic.vocabulary import POSITION_PHRASES, number_word
from rise.training.reconstruction import read_rollouts

# The learning benchmark's held-out items, which follow its training items.
N_TRAIN, N_EVAL = BenchSettings.n_train, BenchSettings.n_eval
SENTENCE_RE = re.compile(r"An? (\w+) (\w+) (\w+) ((?:at|on|in) the [a-z ]+?)(?:: (\w+) (\w+) (\w+))?\.")
# The sentence that names one object: the worked reasoning's "The blue circle at the bottom differs from the
# others.", or a model taught to name a grounding query's object (`rise.synthetic.naming_sentence`): "The blue circle
# at the bottom is the object that differs from the others.", or with a query it made up, "… is the circle."
NAMED_RE = re.compile(r"The (\w+) (\w+) (?:(?:at|on|in) the [a-z ]+? )?(?:differs from the others|is [a-z ]+)\.")


@dataclass
class OddOneOutUse:
    """Counts over one model's held-out predictions."""

    model: str
    items: int = 0
    right: int = 0  # the box has IoU > 0.5 with the odd one's
    description_exact: int = 0
    odd_seen: int = 0
    others_seen: int = 0
    others: int = 0  # the objects other than the odd one, in descriptions with one sentence per object
    description_singles_it_out: int = 0
    with_steps: int = 0
    steps_follow_description: int = 0
    names_one: int = 0
    named_right: int = 0
    naming_follows_description: int = 0
    box_on_named: int = 0
    right_when_named_right: int = 0

    def add(self, reasoning: str, box: Any, scene: Scene) -> None:
        """Count one prediction: its reasoning (the text inside `<think>`) and box, against the odd-one-out scene
        drawn."""
        [(_, odd)] = grounding_candidates(scene, "odd-one-out")
        odd_kind = (scene.objects[odd].colour, scene.objects[odd].shape)
        sentences = SENTENCE_RE.findall(reasoning)
        truth = [(o.size, o.colour, o.shape, POSITION_PHRASES[o.position]) for o in scene.objects]
        described = [(size, colour, shape, place) for size, colour, shape, place, *_ in sentences]
        kinds = [(colour, shape) for _, colour, shape, _ in described]
        self.items += 1
        self.description_exact += described == truth
        if len(described) == len(truth):
            self.odd_seen += kinds[odd] == odd_kind
            for index, obj in enumerate(scene.objects):
                if index != odd:
                    self.others += 1
                    self.others_seen += kinds[index] == (obj.colour, obj.shape)
        lone = [kind for kind in set(kinds) if kinds.count(kind) == 1]
        self.description_singles_it_out += len(kinds) == len(truth) and len(lone) == 1 and kinds[odd] == lone[0]
        steps = [sentence[4:] for sentence in sentences if sentence[4]]
        self.with_steps += bool(steps)
        self.steps_follow_description += bool(steps) and len(steps) == len(sentences) and _steps_follow(sentences)
        named = NAMED_RE.search(reasoning)
        named_kind = named.groups() if named else None
        self.names_one += named is not None
        self.named_right += named_kind == odd_kind
        self.naming_follows_description += named_kind is not None and len(lone) == 1 and named_kind == lone[0]
        if not (isinstance(box, list) and len(box) == 4):
            return
        right = box_iou(box, scene.objects[odd].box) > 0.5
        self.right += right
        self.right_when_named_right += right and named_kind == odd_kind
        self.box_on_named += any(
            (o.colour, o.shape) == named_kind and box_iou(box, o.box) > 0.5 for o in scene.objects
        )


def _steps_follow(sentences: list[tuple[str, ...]]) -> bool:
    counts: dict[tuple[str, str], int] = {}
    for _, colour, shape, _, step_colour, step_shape, count in sentences:
        counts[(colour, shape)] = counts.get((colour, shape), 0) + 1
        if (step_colour, step_shape, count) != (colour, shape, number_word(counts[(colour, shape)])):
            return False
    return True


def odd_one_out_use(model: str, predictions: list[dict[str, Any]]) -> OddOneOutUse:
    """Count, over evaluation predictions (`rise.training.evaluate`'s rows: item id, raw text, box), where each
    held-out odd-one-out answer goes wrong."""
    task = get_task("odd-one-out")
    use = OddOneOutUse(model=model)
    for row in predictions:
        item = task.make_item(item_seed(row["item_id"], held_out=True))
        assert item.scene is not None  # every benchmark item keeps the scene it was drawn from
        reasoning = (row.get("raw_text") or "").split("</think>")[0]
        use.add(reasoning, row.get("answer"), item.scene)
    return use


def rollout_use(name: str, rollouts: list[dict[str, Any]]) -> OddOneOutUse:
    """The same counts over RISE-CoT rollouts (`rise.training.reconstruction.read_rollouts`) of the benchmark's
    training items, each read with the box RISE-CoT was given: does the reasoning name the object at that box?"""
    task = get_task("odd-one-out")
    use = OddOneOutUse(model=name)
    for row in rollouts:
        item = task.make_item(item_seed(row["item_id"], held_out=False))
        assert item.scene is not None
        use.add(row.get("cot") or "", item.answer, item.scene)
    return use


def annotate(model: str, out: Path, n_eval: int, max_new_tokens: int) -> list[dict[str, Any]]:
    """The model's predictions on the learning benchmark's first `n_eval` held-out odd-one-out items, written to
    `out`."""
    from rise.training.config import EvalConfig
    from rise.training.evaluate import evaluate_model
    from rise.training.records import load_snapshot, write_snapshot

    task = get_task("odd-one-out")
    with tempfile.TemporaryDirectory(prefix="rise-odd-") as folder:
        records = [r for r in task_records(task, N_TRAIN, n_eval) if r.split == "eval"]
        snapshot = load_snapshot(write_snapshot(Path(folder), task.spec, records, info={"benchmark_task": task.name}))
        evaluate_model(model, snapshot, EvalConfig(batch_size=30, max_new_tokens=max_new_tokens), out_path=out)
    return [json.loads(line) for line in out.with_suffix(".predictions.jsonl").read_text().splitlines()]


def markdown_table(uses: list[OddOneOutUse]) -> str:
    lines = [
        "| model | items | right (IoU > 0.5) | description exact | odd one seen | others seen "
        "| description singles it out | steps written | steps follow description | names one | named right "
        "| naming follows description | box on the named object | right when named right |",
        "|---" * 14 + "|",
    ]
    for use in uses:
        lines.append(
            f"| {use.model} | {use.items} | {use.right} | {use.description_exact} | {use.odd_seen} "
            f"| {use.others_seen}/{use.others} | {use.description_singles_it_out} | {use.with_steps} "
            f"| {use.steps_follow_description} | {use.names_one} | {use.named_right} "
            f"| {use.naming_follows_description} | {use.box_on_named} "
            f"| {use.right_when_named_right}/{use.named_right} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model folders, each annotating the held-out items")
    parser.add_argument(
        "--predictions",
        type=Path,
        action="append",
        default=[],
        help="held-out predictions an evaluation wrote (a learning run's evaluate/rise.predictions.jsonl)",
    )
    parser.add_argument(
        "--rollouts",
        type=Path,
        action="append",
        default=[],
        help="a RISE-CoT rollout folder of a learning run on odd-one-out (read with the box it was given)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for odd_one_out_use.json, .md, predictions")
    parser.add_argument("--n-eval", type=int, default=N_EVAL, help="held-out items (default: the benchmark's)")
    parser.add_argument("--quick", action="store_true", help="two items, eight tokens: a plumbing check")
    args = parser.parse_args(argv)
    missing = [model for model in args.models if not (Path(model) / "config.json").is_file()]
    if missing:
        print(f"Not a model folder (no config.json): {', '.join(missing)}")
        return 2
    n_eval, max_new_tokens = (2, 8) if args.quick else (args.n_eval, 160)
    args.out.mkdir(parents=True, exist_ok=True)
    uses = []
    for index, model in enumerate(args.models):
        predictions = annotate(model, args.out / f"model-{index}.json", n_eval, max_new_tokens)
        uses.append(odd_one_out_use(model, predictions))
    for path in args.predictions:
        uses.append(odd_one_out_use(str(path), [json.loads(line) for line in path.read_text().splitlines()]))
    for folder in args.rollouts:
        uses.append(rollout_use(f"{folder} (RISE-CoT, box given)", list(read_rollouts(folder))))
    if not uses:
        parser.error("give at least one model folder, --predictions file or --rollouts folder")
    publish_table(markdown_table(uses), uses, args.out, "odd_one_out_use", "Where odd-one-out answers go wrong")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
