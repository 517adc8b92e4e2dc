"""A team of reviewers over HTTP, each signed in with an account of their own, through the endpoints the page calls.

Used by `bench/review_browser.py`. Each reviewer is a session of its own, like a browser tab, speaking Gradio's queue
protocol as the page does (`QueueClient`: join the queue with the event's inputs, read the answer from the session's
event stream). It signs in (`login`), loads the queue (`load_queue`), then accepts what is on screen `rounds` times
(`review_accept`) and fetches each next item's image. A round trip is the verdict call plus the image fetch.
Afterwards the database says whether every verdict a reviewer was told was saved is there, and whether any item got
two reviews.

`gradio_client` would do the same, but it polls for answers every 50 ms and costs more CPU per call than the server
does, on the same two cores: it would measure itself.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from app.runtime import Runtime
from app.services.browser_sessions import cookie_name_for
from db.models import Review, User

_ITEM = re.compile(r'class="rise-stage" data-item="(\d+)"')
_ANSWER = re.compile(r"<b>Answer:</b> ([^<]*)</div>")
_IMAGE = re.compile(r'<img class="rise-stage-image[^"]*" src="([^"]+)"')
# The probability table's value while it is hidden, as the page sends it.
EMPTY_TABLE = {"headers": ["label", "probability"], "data": [], "metadata": None}
_SAVED = re.compile(r"Item #(\d+) accepted\.")
# Where the first (shown) slide of a staged panel ends: the next one is hidden (`app.ui.stage`).
_HIDDEN_SLIDE = re.compile(r'<div class="rise-slide" data-item="\d+" hidden>')


@dataclass
class Screen:
    item_id: int | None
    answer: str | None
    image_url: str | None


@dataclass
class ReviewerLog:
    username: str
    latencies_ms: list[float] = field(default_factory=list)
    saved: list[int] = field(default_factory=list)  # items the reviewer was told were accepted
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


def _html_outputs(outputs: Any) -> list[str]:
    return [value for value in (outputs if isinstance(outputs, tuple | list) else [outputs]) if isinstance(value, str)]


def read_screen(outputs: Any, previous: Screen) -> Screen:
    """What the page would show after these outputs: the card's item and answer, and the image's address (an
    output a screen update left out keeps what was there)."""
    item_id, answer, image_url = previous.item_id, previous.answer, previous.image_url
    for text in _html_outputs(outputs):
        first_slide = _HIDDEN_SLIDE.split(text, maxsplit=1)[0]
        if 'class="rise-card"' in first_slide and (match := _ITEM.search(first_slide)):
            item_id = int(match.group(1))
            answer_match = _ANSWER.search(first_slide)
            answer = html.unescape(answer_match.group(1)) if answer_match else None
        elif "rise-empty" in text:
            item_id = None
        if image := _IMAGE.search(first_slide):
            image_url = html.unescape(image.group(1))
    return Screen(item_id, answer, image_url)


def status_text(outputs: Any) -> str:
    for text in _html_outputs(outputs):
        if 'data-testid="review-status"' in text:
            return html.unescape(re.sub(r"<[^>]+>", "", text))
    return ""


class QueueClient:
    """One browser-like session of a Gradio app: calls its events by `api_name` through the queue, as the page does."""

    def __init__(self, address: str) -> None:
        url = urllib.parse.urlsplit(address)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.root = url.path.rstrip("/")
        self.session_hash = uuid.uuid4().hex[:12]
        self.headers: dict[str, str] = {}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        config = json.loads(self.get(f"{self.root}/config"))
        self.events = {dep["api_name"]: dep for dep in config["dependencies"] if dep.get("api_name")}
        self.stateful = {c["id"] for c in config["components"] if c.get("type") == "state"}

    def get(self, path: str) -> bytes:
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return body

    def sign_in(self, username: str, password: str) -> None:
        """Sign in as the page does, and send the token it answers with as the cookie the page would store."""
        token = self.call("login", username, password)[-1]
        if not token:
            raise RuntimeError(f"sign-in of {username} refused")
        self.headers["Cookie"] = f"{cookie_name_for(self.port)}={token}"

    def call(self, api_name: str, *values: Any) -> list[Any]:
        """Run the event with these values for its inputs that are not states (those live in the session)."""
        event = self.events[api_name]
        given = iter(values)
        data = [None if component in self.stateful else next(given) for component in event["inputs"]]
        body = json.dumps(
            {"data": data, "fn_index": event["id"], "trigger_id": None, "session_hash": self.session_hash}
        )
        self.connection.request(
            "POST", f"{self.root}/gradio_api/queue/join", body, {**self.headers, "Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        joined = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{api_name}: HTTP {response.status} {joined}")
        return self._answer(api_name, joined["event_id"])

    def _answer(self, api_name: str, event_id: str) -> list[Any]:
        stream = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            stream.request(
                "GET", f"{self.root}/gradio_api/queue/data?session_hash={self.session_hash}", headers=self.headers
            )
            response = stream.getresponse()
            while line := response.readline():
                if not line.startswith(b"data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id or message.get("msg") != "process_completed":
                    continue
                output = message.get("output") or {}
                if not message.get("success"):
                    raise RuntimeError(f"{api_name}: {output.get('error') or output}")
                return output["data"]
            raise RuntimeError(f"{api_name}: the event stream ended without an answer")
        finally:
            stream.close()


def review(
    address: str,
    username: str,
    password: str,
    project_id: int,
    rounds: int,
    log: ReviewerLog,
    start: threading.Barrier,
) -> None:
    """One reviewer: sign in and load the queue, wait for the others at `start`, then accept `rounds` items."""
    try:
        client = QueueClient(address)
        client.sign_in(username, password)
        screen = read_screen(client.call("load_queue", project_id, "confidence", "", "", ""), Screen(None, None, None))
    except Exception as error:  # a failed sign-in or load is one error of this reviewer; the others go on
        log.errors.append(f"start: {error}")
        screen = Screen(None, None, None)
    start.wait()
    log.started = time.perf_counter()
    try:
        _review_rounds(client, address, screen, rounds, log)
    finally:
        log.finished = time.perf_counter()


def _review_rounds(client: QueueClient, address: str, screen: Screen, rounds: int, log: ReviewerLog) -> None:
    for _ in range(rounds):
        if screen.item_id is None:
            return
        started = time.perf_counter()
        try:
            outputs = client.call(
                # After the event's name, the filters (order, label, verdict, model) and the editors: boxes, label,
                # distribution, "reasoning is wrong", the reviewer's reasoning, comment (`ReviewTab.edit_inputs`).
                "review_accept",
                "confidence",
                "",
                "",
                "",
                None,
                screen.answer,
                EMPTY_TABLE,
                False,
                "",
                "",
            )
            shown = read_screen(outputs, screen)
            if shown.image_url and shown.item_id is not None:
                client.get(f"{client.root}/{shown.image_url}")
        except Exception as error:
            log.errors.append(str(error)[:200])
            continue
        log.latencies_ms.append((time.perf_counter() - started) * 1000)
        if match := _SAVED.search(status_text(outputs)):
            log.saved.append(int(match.group(1)))
        else:
            log.errors.append(f"no verdict saved: {status_text(outputs)[:200]}")
        screen = shown


@dataclass
class TeamResult:
    reviewers: int
    seconds: float
    logs: list[ReviewerLog]
    lost_verdicts: int
    double_reviews: int

    def summary(self) -> dict[str, Any]:
        from bench.review_browser import percentile

        samples = [ms for log in self.logs for ms in log.latencies_ms]
        verdicts = sum(len(log.saved) for log in self.logs)
        return {
            "reviewers": self.reviewers,
            "verdicts": verdicts,
            "verdicts_per_s": round(verdicts / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(samples, 50), 1),
            "p95_ms": round(percentile(samples, 95), 1),
            "p99_ms": round(percentile(samples, 99), 1),
            "max_ms": round(max(samples, default=float("nan")), 1),
            "errors": sum(len(log.errors) for log in self.logs),
            "lost_verdicts": self.lost_verdicts,
            "double_reviews": self.double_reviews,
            "first_errors": [error for log in self.logs for error in log.errors][:3],
        }


def check_database(runtime: Runtime, logs: list[ReviewerLog]) -> tuple[int, int]:
    """Verdicts reviewers were told were saved but are not stored, and items with more than one review."""
    with runtime.sessions() as session:
        rows = session.execute(select(User.username, Review.item_id).join(User, User.id == Review.reviewer_id))
        stored = {(username, item_id) for username, item_id in rows}
        doubles = session.scalar(
            select(func.count()).select_from(
                select(Review.item_id).group_by(Review.item_id).having(func.count() > 1).subquery()
            )
        )
    lost = sum(1 for log in logs for item_id in log.saved if (log.username, item_id) not in stored)
    return lost, int(doubles or 0)


def team_load(
    address: str, runtime: Runtime, usernames: list[str], password: str, project_id: int, rounds: int
) -> TeamResult:
    """`usernames` review at once, `rounds` verdicts each; throughput counts from the moment all are signed in."""
    logs = [ReviewerLog(name) for name in usernames]
    start = threading.Barrier(len(logs))
    threads = [
        threading.Thread(target=review, args=(address, log.username, password, project_id, rounds, log, start))
        for log in logs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = max(log.finished for log in logs) - min(log.started for log in logs)
    lost, doubles = check_database(runtime, logs)
    return TeamResult(len(usernames), seconds, logs, lost, doubles)
