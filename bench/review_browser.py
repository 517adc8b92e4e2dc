"""Review latency where the reviewer sits: real Chromium on a `rise serve` server, and a team of reviewers over HTTP.

    .venv/bin/python bench/review_browser.py                 # SQLite and PostgreSQL, 100,000 items
    .venv/bin/python bench/review_browser.py --quick         # 3,000 items, 60 key presses, 1 and 4 reviewers
    .venv/bin/python bench/review_browser.py --backends sqlite --presses 200 --team 1,8

For each backend a fresh database gets one classification project of `--items` items, as `bench/review_latency.py`
fills it (a fifth already reviewed, so the queue's front is not the table's front), with a real synthetic image for
every item the run can reach. Then `rise serve --login` runs as its own process, exactly as a team would run it,
and two things are measured against it:

- **Felt latency.** One Chromium page signs in and presses `A` as fast as the screen allows, `--presses` times.
  Each sample runs from the key press (the page's own `keydown` time) to the first animation frame on which the
  next item's number, its reasoning and its fully loaded image are on screen. A press after which the item does not
  change within `--lost-after` seconds is a lost key press (the run presses again and goes on).
- **Team load.** 1, 4, 8 and 16 reviewers (`--team`), each signed in with an account of their own, review at once
  over HTTP through the endpoints the page calls (`bench/review_team.py`). Afterwards the database is checked for
  verdicts that a reviewer was told were saved but are not there, and for items reviewed twice.

Results go to `bench/results/review_browser.{json,md}` (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, update

from app.runtime import Runtime, open_runtime
from app.services import auth
from app.settings import load_settings
from bench.review_latency import fill, postgres_database, prereview, sync_queue
from bench.review_team import team_load
from db.models import Item, ReviewQueueEntry, Role
from rise.synthetic import SceneConfig, generate_scene

ROOT = Path(__file__).resolve().parents[1]
RISE = ROOT / ".venv" / "bin" / "rise"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "bench-password-1"
TARGETS = {
    "felt_p50_ms": 80.0,
    "felt_p95_ms": 150.0,
    "team8_verdicts_per_s": 30.0,
    "team8_p95_ms": 300.0,
    "team16_postgresql_p95_ms": 400.0,
    "sqlite_team8_p99_ms": 300.0,
}


def percentile(samples: list[float], p: int) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


# The project ------------------------------------------------------------------------------------------------------


def queue_front(runtime: Runtime, project_id: int, count: int) -> list[int]:
    """The first `count` unreviewed items in the order the queue hands them out (least confident first)."""
    Q = ReviewQueueEntry
    with runtime.sessions() as session:
        stmt = (
            select(Q.item_id)
            .where(Q.project_id == project_id, Q.verdict.is_(None))
            .order_by(Q.score, Q.item_id)
            .limit(count)
        )
        return list(session.scalars(stmt))


def give_images(runtime: Runtime, item_ids: list[int], seed: int) -> None:
    """A real, distinct synthetic scene for each of `item_ids`, so that every next item is an image to fetch."""
    media = runtime.settings.media_dir
    (media / "bench").mkdir(parents=True, exist_ok=True)
    config = SceneConfig()
    rows = []
    for item_id in item_ids:
        relative = f"bench/{item_id}.png"
        generate_scene(seed * 1_000_003 + item_id, config).image.save(media / relative)
        rows.append({"id": item_id, "media_path": relative})
    with runtime.sessions.begin() as session:
        session.execute(update(Item), rows)


def prepare(url: str, data_dir: Path, args: argparse.Namespace) -> tuple[int, list[str]]:
    """Fill the database; returns the project id and the reviewers' user names (all with password `PASSWORD`)."""
    settings = load_settings({"RISE_DATA_DIR": str(data_dir), "RISE_DATABASE_URL": url})
    runtime = open_runtime(settings, upgrade=True)
    try:
        project_id, bulk_users = fill(runtime, args.items, 1, args.seed)
        sync_queue(runtime)
        prereview(runtime, project_id, bulk_users[0], int(args.items * 0.2))
        reachable = args.presses + 20 + sum(size * args.rounds for size in args.team) + 200
        give_images(runtime, queue_front(runtime, project_id, reachable), args.seed)
        names = [f"bench{i}" for i in range(max(args.team, default=1))]
        for name in names:
            auth.create_user(runtime, name, PASSWORD, Role.reviewer)
        if runtime.engine.dialect.name == "postgresql":
            with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        return project_id, names
    finally:
        runtime.close()


# The server -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(url: str, data_dir: Path) -> Iterator[str]:
    """`rise serve --login` on a free loopback port, as its own process; yields its address."""
    port = free_port()
    env = {
        **os.environ,
        "RISE_DATA_DIR": str(data_dir),
        "RISE_DATABASE_URL": url,
        "GRADIO_TEMP_DIR": str(data_dir / "gradio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        [str(RISE), "serve", "--login", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    address = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rise serve exited: {(data_dir / 'serve.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(address, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("rise serve did not answer within 120 s") from None
                time.sleep(0.3)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# Felt latency -----------------------------------------------------------------------------------------------------

# The item on screen: the number on the shown slide of the item card, its reasoning and its image (`app.ui.stage`).
_SHOWN = """
() => {
  const shown = (id) => {
    const slides = document.querySelectorAll("#" + id + " .rise-slide");
    return Array.from(slides).find((slide) => !slide.hidden && slide.offsetParent !== null) || null;
  };
  const card = shown("review-card");
  const match = card ? card.textContent.match(/Item #(\\d+)/) : null;
  const cot = shown("review-cot");
  const image = shown("review-image");
  const img = image ? image.querySelector("img") : null;
  const ready = !!(cot && cot.textContent.trim() && img && img.complete && img.naturalWidth > 0);
  return {item: match ? match[1] : null, ready: ready};
}
"""
# Installed before the page's own scripts, so the page measures itself and the driver's own delays do not count:
# the time of every `a` key press as the page saw it, and, from a check on every animation frame, the frame on which
# each new item was first on screen with its reasoning and its image loaded. That frame is timed when the check runs,
# just before it is painted, not by the frame's start time, which comes before a key press handled in the same frame.
_RECORDER = (
    "window.__bench = {presses: [], shown: [], last: null};"
    'window.addEventListener("keydown", (event) => {'
    '  if (event.key === "a") { window.__bench.presses.push(performance.now()); }'
    "}, true);"
    "const __benchShown = (" + _SHOWN.strip() + ");"
    "const __benchFrame = () => {"
    "  const shown = __benchShown();"
    "  if (shown.ready && shown.item && shown.item !== window.__bench.last) {"
    "    window.__bench.last = shown.item; window.__bench.shown.push({item: shown.item, t: performance.now()});"
    "  }"
    "  requestAnimationFrame(__benchFrame);"
    "};"
    "requestAnimationFrame(__benchFrame);"
)
# For the driver's pacing only: true once another item than `previous` is on screen, ready.
_OTHER_ITEM_SHOWN = "(previous) => { const last = window.__bench.last; return !!last && last !== previous; }"
_CURRENT_ITEM = "() => window.__bench.last"
# Each press's latency: from the press to the first frame after it that showed a new item.
_LATENCIES = """
() => {
  const {presses, shown} = window.__bench;
  return presses.map((pressed) => {
    const next = shown.find((event) => event.t >= pressed);
    return next ? next.t - pressed : null;
  });
}
"""


@dataclass
class FeltResult:
    presses: int
    samples_ms: list[float] = field(default_factory=list)
    lost: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "presses": self.presses,
            "verdicts": len(self.samples_ms),
            "p50_ms": round(percentile(self.samples_ms, 50), 1),
            "p95_ms": round(percentile(self.samples_ms, 95), 1),
            "max_ms": round(max(self.samples_ms, default=float("nan")), 1),
            "lost_presses": self.lost,
        }


def felt_latency(address: str, username: str, presses: int, lost_after_s: float) -> FeltResult:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    result = FeltResult(presses=presses)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(_RECORDER)
            page.goto(address)
            page.locator("#login-username input, #login-username textarea").fill(username)
            page.locator("#login-password input").fill(PASSWORD)
            page.click("#login-submit")
            page.wait_for_function(_OTHER_ITEM_SHOWN, arg=None, timeout=60_000)
            page.wait_for_timeout(500)  # let the page settle before the first press
            for _ in range(presses):
                shown = page.evaluate(_CURRENT_ITEM)
                page.keyboard.press("a")
                try:
                    page.wait_for_function(_OTHER_ITEM_SHOWN, arg=shown, polling="raf", timeout=lost_after_s * 1000)
                except PlaywrightTimeout:
                    result.lost += 1
            # A lost press pairs with the item that the next press brought: it counts as a slow one.
            latencies = page.evaluate(_LATENCIES)
            result.samples_ms = [ms for ms in latencies if ms is not None]
        finally:
            browser.close()
    return result


# The run ----------------------------------------------------------------------------------------------------------


def run_backend(backend: str, url: str, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    project_id, names = prepare(url, data_dir, args)
    prepared_s = time.perf_counter() - started
    print(f"{backend}: {args.items:,} items ready in {prepared_s:.0f} s", flush=True)
    report: dict[str, Any] = {"backend": backend, "items": args.items, "prepare_s": round(prepared_s, 1)}
    runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(data_dir), "RISE_DATABASE_URL": url}))
    try:
        with served(url, data_dir) as address:
            if args.presses:
                felt = felt_latency(address, names[0], args.presses, args.lost_after)
                report["felt"] = felt.summary()
                print(f"{backend}: felt latency {report['felt']}", flush=True)
            report["team"] = []
            for size in args.team:
                team = team_load(address, runtime, names[-size:], PASSWORD, project_id, args.rounds).summary()
                report["team"].append(team)
                print(f"{backend}: team {team}", flush=True)
    finally:
        runtime.close()
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=500, help="key presses of the felt-latency reviewer")
    parser.add_argument("--team", default="1,4,8,16", help="team sizes for the load test, comma-separated")
    parser.add_argument("--rounds", type=int, default=60, help="verdicts per reviewer in the load test")
    parser.add_argument("--lost-after", type=float, default=5.0, help="seconds after which a key press is lost")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=None, help="an existing, empty database instead of a throwaway one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "review_browser")
    parser.add_argument("--quick", action="store_true", help="3,000 items, 60 presses, teams of 1 and 4")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.presses, args.team, args.rounds = 3_000, 60, "1,4", 20
    args.team = [int(size) for size in str(args.team).split(",") if size.strip()]
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if set(args.backends) - {"sqlite", "postgresql"}:
        parser.error("--backends takes sqlite and/or postgresql")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = round(os.getloadavg()[0], 2)
    reports = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix="rise-bench-browser-") as tmp:
            if backend == "sqlite":
                reports.append(run_backend(backend, f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), args))
            else:
                with postgres_database(args.postgres_url) as url:
                    reports.append(run_backend(backend, url, Path(tmp), args))
    record = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # The machine's other work, as far as it shows: these figures are only comparable on a quiet machine.
            "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2),
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": TARGETS,
        "backends": reports,
    }
    table = markdown_table(reports)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    command = " ".join(["python bench/review_browser.py", *(sys.argv[1:] if argv is None else argv)])
    args.out.with_suffix(".md").write_text(
        f"# Review latency in the browser and over HTTP\n\n`{command}` on {record['created']}, {os.cpu_count()} CPUs,"
        f" load average {load_before} before the run and {record['machine']['load_after']} after it.\n\n{table}\n"
    )
    return 0


def _held(label: str, value: float, target: float, *, at_least: bool = False) -> str:
    if value != value:  # NaN: nothing measured
        return f"{label}: –"
    held = value >= target if at_least else value < target
    return f"{label}: {'yes' if held else '**no**'}"


def _team_checks(backend: str, team: dict[str, Any]) -> list[str]:
    clean = team["errors"] + team["lost_verdicts"] + team["double_reviews"] == 0
    checks = [f"0 errors, lost, double: {'yes' if clean else '**no**'}"]
    if team["reviewers"] == 8:
        rate = TARGETS["team8_verdicts_per_s"]
        checks.append(_held(f"≥{rate:.0f}/s", team["verdicts_per_s"], rate, at_least=True))
        checks.append(_held(f"p95<{TARGETS['team8_p95_ms']:.0f}", team["p95_ms"], TARGETS["team8_p95_ms"]))
        if backend == "sqlite":
            p99 = TARGETS["sqlite_team8_p99_ms"]
            checks.append(_held(f"p99<{p99:.0f}", team["p99_ms"], p99))
    if team["reviewers"] == 16 and backend == "postgresql":
        p95 = TARGETS["team16_postgresql_p95_ms"]
        checks.append(_held(f"p95<{p95:.0f}", team["p95_ms"], p95))
    return checks


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """Felt latency and team load per backend, each figure beside its targets and whether they hold."""
    lines = [
        "| backend | measure | verdicts | verdicts/s | p50 ms | p95 ms | p99 ms | max ms | lost presses or errors "
        "| lost verdicts | double reviews | targets held |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for report in reports:
        backend = report["backend"]
        if felt := report.get("felt"):
            held = [
                _held(f"p50<{TARGETS['felt_p50_ms']:.0f}", felt["p50_ms"], TARGETS["felt_p50_ms"]),
                _held(f"p95<{TARGETS['felt_p95_ms']:.0f}", felt["p95_ms"], TARGETS["felt_p95_ms"]),
                f"0 lost: {'yes' if felt['lost_presses'] == 0 else '**no**'}",
            ]
            lines.append(
                f"| {backend} | felt, 1 browser | {felt['verdicts']} | | {felt['p50_ms']} | {felt['p95_ms']} | | "
                f"{felt['max_ms']} | {felt['lost_presses']} | | | {', '.join(held)} |"
            )
        for team in report.get("team", []):
            lines.append(
                f"| {backend} | {team['reviewers']} over HTTP | {team['verdicts']} | {team['verdicts_per_s']} | "
                f"{team['p50_ms']} | {team['p95_ms']} | {team['p99_ms']} | {team['max_ms']} | {team['errors']} | "
                f"{team['lost_verdicts']} | {team['double_reviews']} | {', '.join(_team_checks(backend, team))} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
