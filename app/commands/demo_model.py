"""`rise model build-demo`: train the demo base model (perception only) from scratch and write its model folder."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text

from app.commands._common import console, fail
from app.commands.model import model_cli

DEFAULT_OUT = Path("assets/demo-model")


def parse_mix(text: str) -> dict[str, float]:
    """`detection=0.4,grounding=0.3` as a mix; ValueError says what is wrong."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.partition("=")
        try:
            mix[kind.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"Write the mix as kind=weight,... (e.g. detection=0.4,grounding=0.3), not {part!r}")
    return mix


@model_cli.command("build-demo")
def build_demo_model(
    out_dir: Path = typer.Argument(DEFAULT_OUT, help="Model folder to write (created; its model files are replaced)."),
    minutes: float = typer.Option(30.0, min=0.1, help="Wall-clock budget of the training loop."),
    steps: int = typer.Option(20_000, min=1, help="Optimizer steps at most (the time budget usually ends first)."),
    batch_size: int = typer.Option(24, min=1, help="Examples per step."),
    learning_rate: float = typer.Option(3e-3, min=0.0, help="Peak learning rate."),
    threads: int | None = typer.Option(
        None, min=1, help="torch CPU threads; on a machine shared with other jobs, 1 is often fastest."
    ),
    seed: int = typer.Option(0, help="Seed of the weights and the training stream."),
    eval_images: int = typer.Option(200, min=0, help="Held-out scenes per prompt type for the metrics; 0 skips."),
    continue_from: Path | None = typer.Option(
        None, help="Go on training this demo model folder instead of starting from random weights."
    ),
    mix: str | None = typer.Option(
        None,
        help="Example mix as kind=weight,... (kinds: describe, detection, grounding, classification, defined, "
        "reasoning, reconstruction, recall); default: the built-in mix.",
    ),
    curriculum_steps: int = typer.Option(
        1500, min=1, help="Steps over which the objects per scene grow from one to four (1: four from the start)."
    ),
    position_loss_weight: float = typer.Option(
        1.0,
        min=0.0,
        help="Weight of the auxiliary loss that puts each image token's place and its object's box into the decoder "
        "(better boxes); 0 turns it off.",
    ),
    label_choice_loss: bool = typer.Option(
        False,
        "--label-choice-loss",
        help="Train classification answers on the choice among the listed labels, as the app decodes them "
        "(the logits its label constraint leaves), instead of on spelling each label.",
    ),
) -> None:
    """Train a small Qwen2-VL from scratch on synthetic scenes, for perception only: captions (each object's colour,
    shape, size and coarse position), detection and grounding of named objects, in the app's prompt formats. Prints
    held-out perception metrics and writes an ordinary model folder with a model card (README.md).

    It learns no project's labelling rule; that is what RISE training is for.
    """
    from transformers.utils import logging as hf_logging

    from rise.demo_model import DemoModelConfig, train_demo_model  # torch and transformers: seconds to import
    from rise.demo_model.card import metrics_table
    from rise.demo_model.train import starting_summary

    hf_logging.disable_progress_bar()  # its bars would interleave with ours
    try:
        extra = {} if mix is None else {"mix": parse_mix(mix)}
        config = DemoModelConfig(
            **extra,
            curriculum_steps=curriculum_steps,
            position_loss_weight=position_loss_weight,
            label_choice_loss=label_choice_loss,
            max_minutes=minutes,
            max_steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            threads=threads,
            seed=seed,
            eval_images=eval_images,
        )
        if continue_from is not None:
            starting_summary(continue_from)  # an error line here, before any training, not a traceback
    except ValueError as error:
        raise fail(error) from None

    def report(stats: dict) -> None:
        console.print(
            f"step {stats['step']:>6}  loss {stats['loss']:.3f}  lr {stats['lr']:.2e}  "
            f"objects<={stats['max_objects']}  {stats['examples_per_second']:.0f} examples/s  "
            f"{stats['seconds'] / 60:.1f} min"
        )

    # The card records the whole command, defaults included, so the folder says how to rebuild it.
    options = ["--minutes", f"{minutes:g}", "--steps", str(steps), "--batch-size", str(batch_size)]
    options += ["--learning-rate", f"{learning_rate:g}", "--seed", str(seed), "--eval-images", str(eval_images)]
    options += ["--threads", str(threads)] if threads else []
    options += ["--curriculum-steps", str(curriculum_steps), "--position-loss-weight", f"{position_loss_weight:g}"]
    options += ["--label-choice-loss"] if label_choice_loss else []
    options += ["--mix", mix] if mix else []
    options += ["--continue-from", str(continue_from)] if continue_from else []
    command = "rise model " + shlex.join(["build-demo", str(out_dir), *options])
    result = train_demo_model(
        out_dir, config, progress=report, evaluate=eval_images > 0, command=command, continue_from=continue_from
    )
    training = result["training"]
    console.print(
        f"Trained {result['parameters'] / 1e6:.2f} M parameters for {training['steps']} steps "
        f"({training['examples']:,} examples, {training['seconds'] / 60:.1f} min)."
    )
    if result["metrics"]:
        console.print(escape(metrics_table(result["metrics"])))
    size = sum(f.stat().st_size for f in Path(out_dir).iterdir() if f.is_file())
    console.print(Text(f"Wrote the demo model to {out_dir} ({size / 1e6:.1f} MB), with its card in README.md."))


@model_cli.command("measure-demo")
def measure_demo(
    folder: Path = typer.Argument(DEFAULT_OUT, help="A demo model folder built by `rise model build-demo`."),
) -> None:
    """Measure a demo model's held-out metrics again (perception and label lists) and rewrite its card with them."""
    from transformers.utils import logging as hf_logging

    from rise.demo_model.card import metrics_table
    from rise.demo_model.train import remeasure_demo_model

    hf_logging.disable_progress_bar()
    try:
        result = remeasure_demo_model(folder)
    except ValueError as error:
        raise fail(error) from None
    console.print(escape(metrics_table(result["metrics"])))
    console.print(Text(f"Rewrote {folder / 'training_summary.json'} and the card {folder / 'README.md'}."))
