"""`rise model build-tiny`: make a small offline model folder for demos, tests and CI."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from app.commands._common import cli, console, fail

model_cli = typer.Typer(help="Model folders.", no_args_is_help=True)
cli.add_typer(model_cli, name="model")


@model_cli.command("build-tiny")
def build_tiny(
    out_dir: Path = typer.Argument(..., help="Folder to write the model to (created if missing)."),
    hidden_size: int = typer.Option(64, min=8, help="Text decoder width."),
    num_layers: int = typer.Option(2, min=1, help="Text decoder layers."),
    num_heads: int = typer.Option(4, min=1, help="Attention heads; hidden_size must be divisible by it."),
    num_kv_heads: int = typer.Option(2, min=1, help="Key/value heads; num_heads must be a multiple of it."),
    intermediate_size: int = typer.Option(256, min=8, help="Decoder MLP width."),
    vision_depth: int = typer.Option(2, min=1, help="Vision encoder layers."),
    vocab_size: int = typer.Option(512, min=270, help="Byte-level BPE vocabulary size."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
) -> None:
    """Build a Qwen2-VL-architecture model with random weights, its own tokenizer and processor, offline.

    Load it like any model folder: `rise annotate --project P --model OUT_DIR`.
    """
    from transformers.utils import logging as hf_logging

    from rise.tiny_model import TinyModelConfig, build_tiny_model  # torch and transformers: seconds to import

    hf_logging.disable_progress_bar()  # its bars would interleave with ours

    try:
        config = TinyModelConfig(
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            intermediate_size=intermediate_size,
            vision_depth=vision_depth,
            vocab_size=vocab_size,
            seed=seed,
        )
    except ValueError as error:
        raise fail(error) from None
    path = build_tiny_model(out_dir, config)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    console.print(Text(f"Wrote a tiny Qwen2-VL model to {path} ({size / 1e6:.1f} MB)."))
