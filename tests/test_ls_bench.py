"""The export benchmark runs (quick mode) and stays within its memory limit; the full run is `bench/export.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "export.py"


def test_quick_export_benchmark_reports_time_and_peak_memory_within_limits():
    run = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "peak memory:" in run.stdout and "s CPU" in run.stdout
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert (result["tasks"], result["predictions"], result["annotations"]) == (2000, 2000, 666)
    assert 0 < result["peak_rss_mb"] < 300
    assert 0 < result["cpu_seconds"] < 10
