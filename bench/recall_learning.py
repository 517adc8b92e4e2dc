"""Can a model of the demo model's size learn the lookup a label defined in the prompt needs?

    .venv/bin/python bench/recall_learning.py                        # a fresh model (about 17 min on 2 cores)
    .venv/bin/python bench/recall_learning.py --model assets/demo-model --out bench/results/recall_learning-demo
    .venv/bin/python bench/recall_learning.py --hidden-size 256 --steps 3000 --out /tmp/recall-wide
    .venv/bin/python bench/recall_learning.py --steps 40 --checkpoints 2 --out /tmp/recall   # a minute

A fresh model with the demo model's sizes and tokenizer (`rise.demo_model.DemoModelConfig`) is trained on text-only
recall questions alone (`rise.demo_model.recall`): repeat a list of made-up names, or give the value a key has in a
`key: value.` table. At every checkpoint both are asked on held-out names (greedy) and scored by exact match, side by
side in the same model: a repeat can be answered by position, a lookup only by matching the key's content, which is
what answering "the object is red: zorpa." for a red object needs. Writes `recall_learning.json` and
`recall_learning.md` to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rise.demo_model import DemoModelConfig
from rise.demo_model.recall import RECALL_KINDS, recall_messages, recall_question
from rise.demo_model.train import train_loop
from rise.modeling import load_model_and_processor
from rise.tiny_model import build_tiny_model


def held_out_questions(kind: str, n_items: int, seed: int) -> list[tuple[str, str]]:
    """`n_items` questions of `kind` over 2–4 held-out names (the lookup's chance is the mean of 1 / count)."""
    rng = np.random.default_rng([seed, RECALL_KINDS.index(kind)])
    return [recall_question(rng, kind, int(rng.integers(2, 5)), held_out=True) for _ in range(n_items)]


@torch.no_grad()
def exact_match(model: Any, processor: Any, questions: list[tuple[str, str]], batch_size: int = 20) -> float:
    """The share of `questions` answered exactly, greedy."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"  # generation continues every row from its last token
    model.eval()
    hits = 0
    for start in range(0, len(questions), batch_size):
        batch = questions[start : start + batch_size]
        texts = [
            processor.apply_chat_template(recall_messages(prompt), tokenize=False, add_generation_prompt=True)
            for prompt, _ in batch
        ]
        inputs = tokenizer(texts, return_tensors="pt", padding=True)
        longest = max(len(tokenizer(answer)["input_ids"]) for _, answer in batch)
        output = model.generate(**inputs, max_new_tokens=longest + 4, do_sample=False)
        written = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        hits += sum(text.strip() == answer for text, (_, answer) in zip(written, batch, strict=True))
    model.train()
    return hits / len(questions)


def run(
    steps: int, checkpoints: int, n_items: int, learning_rate: float, seed: int, threads: int, sizes: dict[str, int],
    start: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train a fresh model of `sizes` (the demo model's where not given), or the model folder `start`, for `steps`,
    scored at `checkpoints` (and before training)."""
    config = DemoModelConfig(
        **sizes, max_steps=steps, max_minutes=None, batch_size=24, learning_rate=learning_rate, seed=seed,
        threads=threads, curriculum_steps=1, vision_loss_weight=0, position_loss_weight=0, mix={"recall": 1.0},
        log_every=max(1, steps // checkpoints),
    )  # fmt: skip
    questions = {kind: held_out_questions(kind, n_items, seed=30_000) for kind in RECALL_KINDS}
    chance = float(np.mean([1 / (answer_count(prompt)) for prompt, _ in questions["lookup"]]))
    curve: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        if start is None:
            build_tiny_model(folder, config.tiny_config())
        model, processor = load_model_and_processor(start or folder, device="cpu", dtype="float32")
        text = model.config.text_config  # the report names the sizes trained, not the defaults
        config = dataclasses.replace(
            config, hidden_size=text.hidden_size, num_layers=text.num_hidden_layers,
            num_heads=text.num_attention_heads, num_kv_heads=text.num_key_value_heads,
            intermediate_size=text.intermediate_size, vocab_size=text.vocab_size,
        )  # fmt: skip
        started = time.perf_counter()

        def checkpoint(stats: dict[str, Any]) -> None:
            loss = stats["loss"]
            point = {"step": stats["step"], "loss": None if loss is None else round(loss, 4)}
            point["minutes"] = round(stats["seconds"] / 60, 1)
            point |= {kind: exact_match(model, processor, questions[kind]) for kind in RECALL_KINDS}
            curve.append(point)
            print(json.dumps(point), flush=True)

        checkpoint({"step": 0, "loss": None, "seconds": 0.0})  # what the starting model already does
        training = train_loop(model, processor, config, checkpoint)
    return {
        "config": {"steps": steps, "learning_rate": learning_rate, "seed": seed} | {
            name: getattr(config, name)
            for name in ("batch_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size")
        },
        "start": start,
        "held_out_items": n_items,
        "lookup_chance": round(chance, 3),
        "training": training,
        "wall_minutes": round((time.perf_counter() - started) / 60, 1),
        "curve": curve,
        "machine": f"{platform.machine()}, {threads} threads",
    }  # fmt: skip


def answer_count(lookup_prompt: str) -> int:
    """How many keys a lookup question's table has (its last line is the key asked)."""
    return len(lookup_prompt.splitlines()) - 1


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        f"| {p['step']} | {p['minutes']} | {'–' if p['loss'] is None else p['loss']} | {p['repeat']:.2f} | "
        f"{p['lookup']:.2f} |"
        for p in result["curve"]
    ]
    config = result["config"]
    return "\n".join([
        "# Recall learning: repeat vs lookup, held-out names",
        "",
        f"`{command}`",
        "",
        f"{'A fresh' if result['start'] is None else 'The model `' + result['start'] + '`, a'} "
        f"{config['num_layers']}-layer, {config['hidden_size']}-wide model ({config['num_heads']} heads), "
        f"vocabulary {config['vocab_size']}, trained on recall questions only, batch {config['batch_size']}, "
        f"peak learning rate {config['learning_rate']}; "
        f"{result['held_out_items']} held-out questions of each kind over 2–4 names, greedy, exact match. "
        f"Lookup chance (a listed value at random): {result['lookup_chance']:.2f}.",
        "",
        "| step | training minutes | loss | repeat | lookup |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--items", type=int, default=60, help="held-out questions of each kind")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, help="decoder width (default: the demo model's, 128)")
    parser.add_argument("--layers", type=int, help="decoder layers (default: the demo model's, 4)")
    parser.add_argument("--model", help="train this model folder (e.g. assets/demo-model) instead of a fresh one")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.model and (args.hidden_size or args.layers):
        parser.error("--hidden-size and --layers size a fresh model; --model keeps the sizes of the one it trains")
    sizes = {}
    if args.hidden_size:  # a wider decoder keeps the demo model's head width (32) and MLP ratio (4)
        heads = args.hidden_size // 32
        sizes = dict(hidden_size=args.hidden_size, num_heads=heads, num_kv_heads=max(1, heads // 2))
        sizes["intermediate_size"] = 4 * args.hidden_size
    if args.layers:
        sizes["num_layers"] = args.layers
    result = run(
        args.steps, args.checkpoints, args.items, args.learning_rate, args.seed, args.threads, sizes, args.model
    )
    command = " ".join(["python bench/recall_learning.py", *(sys.argv[1:] if argv is None else argv)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recall_learning.json").write_text(json.dumps(result | {"command": command}, indent=1) + "\n")
    (out / "recall_learning.md").write_text(markdown(result, command))
    print(markdown(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
