"""Start `python -m rise.train` through `accelerate launch`, or decide that running in this process is enough.

One GPU, several GPUs or DeepSpeed ZeRO-3 is then a matter of the accelerate config file (`accelerate config`
writes one); on a machine without CUDA and with one process, the pipeline runs in-process (same code, no launcher).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

LAUNCHERS = ("auto", "accelerate", "inprocess")


def accelerate_available() -> bool:
    return importlib.util.find_spec("accelerate.commands.launch") is not None


def choose_launcher(launcher: str, *, accelerate_config: Path | None = None, num_processes: int | None = None) -> str:
    """'accelerate' or 'inprocess' for the requested launcher ('auto' decides from the hardware and the options).

    Raises:
        `ValueError`: an unknown launcher, or 'accelerate' requested where it is not installed.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"Unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}.")
    if launcher == "accelerate" and not accelerate_available():
        raise ValueError("accelerate is not installed: `pip install accelerate`, or use --launcher inprocess.")
    if launcher != "auto":
        return launcher
    import torch

    wants_launcher = accelerate_config is not None or (num_processes or 1) > 1 or torch.cuda.is_available()
    return "accelerate" if wants_launcher and accelerate_available() else "inprocess"


def accelerate_command(
    train_args: list[str], *, accelerate_config: Path | None = None, num_processes: int | None = None
) -> list[str]:
    """The `accelerate launch ... -m rise.train <train_args>` command line, run with this Python.

    Without a config file the launch settings are spelled out (one machine, no dynamo, mixed precision left to the
    training config), so accelerate needs no `accelerate config` beforehand and prints no warnings about defaults.
    """
    import torch

    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config is not None:
        command += ["--config_file", str(accelerate_config)]
        if num_processes is not None:
            command += ["--num_processes", str(num_processes)]
    else:
        processes = num_processes or 1
        command += ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no"]
        command += ["--dynamo_backend", "no"]
        if not torch.cuda.is_available():
            command.append("--cpu")
        elif processes > 1:
            command.append("--multi_gpu")
    return [*command, "-m", "rise.train", *train_args]


def run_accelerate(train_args: list[str], **kwargs) -> int:
    """Run `accelerate_command(train_args, **kwargs)`, streaming its output; returns its exit code."""
    return subprocess.run(accelerate_command(train_args, **kwargs), check=False).returncode
