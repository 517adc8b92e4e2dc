"""bench/gpu_step.py: on a machine without a GPU it says so and exits cleanly; its step code runs on a toy model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_step.py"


def test_without_a_gpu_it_says_so_and_exits_zero():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hide any GPU, so this checks the no-GPU path everywhere
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "No CUDA GPU found" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine run the real benchmark instead")
def test_step_code_runs_on_a_toy_model_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_step", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a toy model gains nothing from threads that spin against other test processes
    try:
        args = ["--dims", "tiny", "--allow-cpu", "--steps", "1", "--num-generations", "2"]
        args += ["--max-completion-length", "8", "--reconstruction-tokens", "6", "--image-size", "64"]
        assert bench.main([*args, "--out", str(tmp_path / "result.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads((tmp_path / "result.json").read_text())
    assert [stage["stage"] for stage in result["stages"]] == ["rise_cot", "rft"]
    assert all(len(stage["step_seconds"]) == 1 for stage in result["stages"])
    assert "rise/reconstruction_accuracy" in result["stages"][0]["last_log"]
