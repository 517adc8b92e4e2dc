"""The count tables the reading benchmarks print (reasoning_use, judge_reading, odd_one_out_use): printed, and
where asked written as `<name>.json` (the rows) and `<name>.md` (the table under a title)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any


def publish_table(table: str, rows: list[Any], out: Path | None, name: str, title: str) -> None:
    """Print `table`; with `out`, also write the dataclass `rows` and the titled table there."""
    print(table, end="")
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps([asdict(row) for row in rows], indent=2))
    (out / f"{name}.md").write_text(f"# {title}\n\n{table}")
