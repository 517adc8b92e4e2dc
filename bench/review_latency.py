"""Server-side latency of one review round trip, "submit a verdict + lease the next item", at 100,000 items.

    .venv/bin/python bench/review_latency.py                        # SQLite and PostgreSQL, 100,000 items
    .venv/bin/python bench/review_latency.py --quick                # 2,000 items, a few seconds
    .venv/bin/python bench/review_latency.py --backends sqlite --items 20000 --rounds 500 --reviewers 4
    .venv/bin/python bench/review_latency.py --postgres-url postgresql+psycopg://user@host/db   # an existing, empty db

Each backend gets a fresh database, migrated like `rise init`, filled by bulk inserts with one project of `--items`
items, one prediction each (random scores), of which the least confident `--prereviewed` share already carry a
verdict, as after a while of reviewing (so the queue's front is not the table's front). Then each reviewer runs
`submit_verdict` (which records the verdict, releases the lease and leases the next item) `--rounds` times, and the
wall time of each call is one sample: what the review service costs, without the browser and the network.

SQLite is a file in WAL mode with the app's settings. PostgreSQL is a throwaway cluster from `tests/utils/pg.py`
(started with fsync off, as for the tests) unless `--postgres-url` names another server; it is vacuumed and
analysed after the bulk load, as autovacuum would do on a live server.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, update

from app.runtime import Runtime, open_runtime
from app.services import review
from app.settings import load_settings
from db.crud import review_queue as queue_crud
from db.models import (
    Annotation,
    AnnotationSource,
    Item,
    Prediction,
    Project,
    Review,
    ReviewQueueEntry,
    Role,
    Split,
    User,
    Verdict,
    utcnow,
)
from rise.tasks import TaskType

LABELS = ("circle", "square", "triangle")
TARGET_P95_MS = 50.0
INSERT_CHUNK = 5_000


@dataclass
class BenchResult:
    backend: str
    items: int
    prereviewed: int
    reviewers: int
    fill_s: float
    sync_s: float
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]

    def line(self) -> str:
        p95 = self.percentile(95)
        return (
            f"{self.backend:<10} items={self.items:,} prereviewed={self.prereviewed:,} reviewers={self.reviewers} "
            f"rounds={len(self.latencies_ms)} p50={self.percentile(50):.1f} ms p95={p95:.1f} ms "
            f"p99={self.percentile(99):.1f} ms max={max(self.latencies_ms, default=float('nan')):.1f} ms "
            f"p95<{TARGET_P95_MS:.0f}ms={'yes' if p95 < TARGET_P95_MS else 'NO'} "
            f"(bulk fill {self.fill_s:.1f} s, first queue sync {self.sync_s:.1f} s)"
        )


# Filling the database


def _chunks(rows: list[dict], size: int = INSERT_CHUNK) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def fill(runtime: Runtime, n_items: int, n_reviewers: int, seed: int) -> tuple[int, list[int]]:
    """One classification project with `n_items` predicted items and `n_reviewers` reviewers; bulk inserts only."""
    rng = random.Random(seed)
    with runtime.sessions.begin() as session:
        project_id = session.scalar(
            insert(Project)
            .values(name="bench", task_type=TaskType.classification, labels=list(LABELS))
            .returning(Project.id)
        )
        user_ids = [
            session.scalar(
                insert(User)
                .values(username=f"reviewer{i}", password_hash="!bench", role=Role.reviewer)
                .returning(User.id)
            )
            for i in range(n_reviewers)
        ]
        items = []
        for i in range(n_items):
            sha = f"{i:064x}"
            items.append(
                {
                    "project_id": project_id,
                    "sha256": sha,
                    "media_path": f"{sha[:2]}/{sha}.png",
                    "original_name": f"scene_{i:06d}.png",
                    "width": 64,
                    "height": 64,
                    "split": Split.eval if i % 10 == 0 else Split.train,
                }
            )
        for chunk in _chunks(items):
            session.execute(insert(Item), chunk)
        item_ids = list(session.scalars(select(Item.id).where(Item.project_id == project_id).order_by(Item.id)))
        predictions = []
        for item_id in item_ids:
            label = rng.choice(LABELS)
            cot = f"The outline has {rng.randint(0, 8)} corners and the fill is even."
            predictions.append(
                {
                    "item_id": item_id,
                    "model_name": "bench-v1",
                    "raw_text": f"<think>{cot}</think><answer>{label}</answer>",
                    "cot": cot,
                    "answer": label,
                    "score": round(rng.random(), 4),
                }
            )
        for chunk in _chunks(predictions):
            session.execute(insert(Prediction), chunk)
    return project_id, user_ids


def sync_queue(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        queue_crud.sync_review_queue(session=session)


def prereview(runtime: Runtime, project_id: int, user_id: int, count: int) -> None:
    """Accept the `count` least confident items, as the review service would have, in bulk."""
    if count <= 0:
        return
    Q = ReviewQueueEntry
    now = utcnow()
    with runtime.sessions.begin() as session:
        front = session.execute(
            select(Q.item_id, Q.prediction_id, Prediction.answer, Prediction.cot)
            .join(Prediction, Prediction.id == Q.prediction_id)
            .where(Q.project_id == project_id)
            .order_by(Q.score, Q.item_id)
            .limit(count)
        ).all()
        reviews = [
            {
                "item_id": row.item_id,
                "prediction_id": row.prediction_id,
                "reviewer_id": user_id,
                "verdict": Verdict.accept,
                "created_at": now,
            }
            for row in front
        ]
        review_ids = []
        for chunk in _chunks(reviews):
            stmt = insert(Review).returning(Review.id, sort_by_parameter_order=True)
            review_ids.extend(session.scalars(stmt, chunk))
        annotations = [
            {
                "item_id": row.item_id,
                "answer": row.answer,
                "cot": row.cot,
                "source": AnnotationSource.accept,
                "review_id": review_id,
                "created_by_id": user_id,
            }
            for row, review_id in zip(front, review_ids, strict=True)
        ]
        for chunk in _chunks(annotations):
            session.execute(insert(Annotation), chunk)
        queue_rows = [
            {"item_id": row.item_id, "verdict": Verdict.accept, "review_id": review_id, "verdict_at": now}
            for row, review_id in zip(front, review_ids, strict=True)
        ]
        for chunk in _chunks(queue_rows):
            session.execute(update(Q), chunk)


# Measuring


def review_rounds(runtime: Runtime, project_id: int, user_id: int, rounds: int, seed: int, out: list[float]) -> None:
    rng = random.Random(seed)
    task = review.next_task(runtime, project_id=project_id, user_id=user_id)
    for _ in range(rounds):
        if task is None:
            return
        verdict = rng.choices(["accept", "correct", "reject"], weights=[6, 2, 2])[0]
        correction = next(label for label in LABELS if label != task.answer) if verdict == "correct" else None
        started = time.perf_counter()
        task = review.submit_verdict(
            runtime, user_id=user_id, item_id=task.item_id, verdict=verdict, corrected_answer=correction
        )
        out.append((time.perf_counter() - started) * 1000)


def run_backend(backend: str, url: str, data_dir: Path, args: argparse.Namespace) -> BenchResult:
    settings = load_settings({"RISE_DATA_DIR": str(data_dir), "RISE_DATABASE_URL": url})
    runtime = open_runtime(settings, upgrade=True)
    try:
        started = time.perf_counter()
        project_id, user_ids = fill(runtime, args.items, args.reviewers, args.seed)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        sync_queue(runtime)
        sync_s = time.perf_counter() - started
        n_prereviewed = int(args.items * args.prereviewed)
        prereview(runtime, project_id, user_ids[0], n_prereviewed)
        if runtime.engine.dialect.name == "postgresql":
            # VACUUM cannot run inside a transaction block.
            with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        result = BenchResult(backend, args.items, n_prereviewed, args.reviewers, fill_s, sync_s)
        per_reviewer = [[] for _ in user_ids]
        threads = [
            threading.Thread(
                target=review_rounds,
                args=(runtime, project_id, user_id, args.rounds, args.seed + i, per_reviewer[i]),
            )
            for i, user_id in enumerate(user_ids)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.latencies_ms = [ms for samples in per_reviewer for ms in samples]
        return result
    finally:
        runtime.close()


@contextmanager
def postgres_database(url: str | None) -> Iterator[str]:
    """`url` as given, or a database on a throwaway cluster that is removed afterwards."""
    if url:
        yield url
        return
    from tests.utils.pg import start_postgres  # the test suite's helper: initdb + pg_ctl in a temporary folder

    server = start_postgres()
    try:
        yield server.create_database("bench")
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items (each with one prediction)")
    parser.add_argument("--rounds", type=int, default=300, help="verdicts per reviewer")
    parser.add_argument("--reviewers", type=int, default=1, help="concurrent reviewers (threads)")
    parser.add_argument("--prereviewed", type=float, default=0.2, help="share of items reviewed before measuring")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres-url", default=None, help="an existing, empty database instead of a throwaway one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 items and 40 rounds: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.rounds = 2_000, 40
    if args.items < 1 or args.rounds < 1 or args.reviewers < 1 or not 0 <= args.prereviewed < 1:
        parser.error("--items, --rounds and --reviewers must be positive and --prereviewed in [0, 1)")
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; use sqlite and/or postgresql")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"review round trip (submit verdict + lease next item), target p95 < {TARGET_P95_MS:.0f} ms", flush=True)
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix="rise-bench-") as tmp:
            if backend == "sqlite":
                result = run_backend(backend, f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), args)
            else:
                with postgres_database(args.postgres_url) as url:
                    result = run_backend(backend, url, Path(tmp), args)
        print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
