"""Tiny offline models for tests: built once per test session from `rise.tiny_model`, never downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from rise.tiny_model import TinyModelConfig

# initializer_range 0.2 instead of 0.02: an untrained model at 0.02 writes one token over and over, so batching bugs
# and parse paths would go unseen; at 0.2 every image gets different, varied text.
TEST_MODEL_CONFIG = TinyModelConfig(initializer_range=0.2, seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Qwen2-VL model folder (config, weights, tokenizer, processor); treat it as read-only."""
    from rise.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2-vl", TEST_MODEL_CONFIG)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """`(model, processor)` loaded from `tiny_model_dir` on CPU in float32, for tests that only generate."""
    from rise.modeling import load_model_and_processor

    return load_model_and_processor(str(tiny_model_dir), device="cpu", dtype="float32")
