"""The Dashboard tab: how far review has come and how the model versions are doing.

Progress, the verdict mix, per-label accept rates, reviewer throughput and each model version's metrics over time,
all from `app.services.dashboard.dashboard_stats`. Refreshed when the tab opens, when the project changes, and by its
button.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr
import pandas as pd

from app.runtime import Runtime
from app.services.dashboard import DashboardStats, dashboard_stats
from app.ui import render
from app.ui.session import UserInfo

VERDICT_ORDER = ("accept", "correct", "reject")
VERDICT_COLOURS = {"accept": "#16a34a", "correct": "#2563eb", "reject": "#dc2626"}  # the review buttons' colours
# The components a refresh sets, by their names in `DashboardTab`.
REFRESH_FIELDS: tuple[str, ...] = ("summary", "verdicts", "labels", "reviewers", "metrics")


@dataclass
class DashboardTab:
    summary: gr.HTML
    verdicts: gr.BarPlot
    labels: gr.Dataframe
    reviewers: gr.Dataframe
    metrics: gr.LinePlot
    refresh: gr.Button

    def progress_target(self) -> list[Any]:
        """Where the refresh shows its progress (`build_dashboard_tab`)."""
        return [self.summary]

    def outputs(self) -> list[Any]:
        return [getattr(self, name) for name in REFRESH_FIELDS]

    def components(self, update: dict[str, Any]) -> dict[Any, Any]:
        """`update` keyed by component, as a Gradio handler returns it; a name that is not a refresh field fails."""
        unknown = set(update) - set(REFRESH_FIELDS)
        if unknown:
            raise KeyError(f"Not a dashboard component: {sorted(unknown)}")
        return {getattr(self, name): value for name, value in update.items()}


def _stat(value: str, caption: str) -> str:
    return (
        f'<div class="rise-stat"><div class="rise-stat-value">{render.escape(value)}</div>'
        f'<div class="rise-stat-label">{render.escape(caption)}</div></div>'
    )


def summary_html(stats: DashboardStats) -> str:
    counts = {verdict: int(stats.verdict_counts.get(verdict, 0)) for verdict in VERDICT_ORDER}
    decided = sum(counts.values())
    accept_rate = f"{counts['accept'] / decided:.0%}" if decided else "–"
    remaining = max(stats.predicted - stats.reviewed, 0)
    tiles = "".join(
        [
            _stat(str(stats.total), "items"),
            _stat(str(stats.predicted), "with a model answer"),
            _stat(str(stats.reviewed), "reviewed"),
            _stat(str(remaining), "waiting for review"),
            _stat(accept_rate, "accepted as proposed"),
        ]
    )
    bar = render.progress_bar_html(
        stats.reviewed, stats.total, f"{stats.reviewed} of {stats.total} items reviewed ({stats.progress:.0%})"
    )
    return f'<div data-testid="dashboard-summary"><div class="rise-stat-row">{tiles}</div>{bar}</div>'


def verdict_frame(stats: DashboardStats | None) -> pd.DataFrame:
    counts = stats.verdict_counts if stats is not None else {}
    return pd.DataFrame({"verdict": list(VERDICT_ORDER), "count": [int(counts.get(v, 0)) for v in VERDICT_ORDER]})


def label_rows(stats: DashboardStats) -> list[list[Any]]:
    return [
        [label, stats.per_label_reviewed.get(label, 0), f"{rate:.0%}"]
        for label, rate in sorted(stats.per_label_accept_rate.items())
    ]


def _per_hour(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def reviewer_rows(stats: DashboardStats) -> list[list[Any]]:
    return [
        [r.username, r.reviews, r.reviews_last_24h, _seconds(r.seconds_per_review), _per_hour(r.reviews_per_hour)]
        for r in sorted(stats.reviewer_throughput, key=lambda r: -r.reviews)
    ]


def metrics_frame(stats: DashboardStats | None) -> pd.DataFrame:
    rows = [] if stats is None else stats.metrics_rows()
    return pd.DataFrame(
        [{"time": r["created_at"], "value": r["value"], "series": f"{r['metric']} ({r['model']})"} for r in rows],
        columns=["time", "value", "series"],
    )


def _empty(message: str) -> dict[str, Any]:
    return {
        "summary": render.empty_queue_html(message),
        "verdicts": verdict_frame(None),
        "labels": [],
        "reviewers": [],
        "metrics": metrics_frame(None),
    }


def refresh(runtime: Runtime, user: UserInfo | None, project_id: int | None) -> dict[str, Any]:
    """The chosen project's dashboard, as an update over `REFRESH_FIELDS`."""
    if user is None or project_id is None:
        return _empty("Pick a project to see its progress.")
    try:
        stats = dashboard_stats(runtime, project_id)
    except ValueError as error:  # the project was deleted meanwhile
        return _empty(str(error))
    return {
        "summary": summary_html(stats),
        "verdicts": verdict_frame(stats),
        "labels": label_rows(stats),
        "reviewers": reviewer_rows(stats),
        "metrics": metrics_frame(stats),
    }


def on_refresh(runtime: Runtime, tab: DashboardTab, user: UserInfo | None, project_id: int | None) -> dict[Any, Any]:
    """`refresh` keyed by `tab`'s components, as its events answer."""
    return tab.components(refresh(runtime, user, project_id))


def build_dashboard_tab(runtime: Runtime, *, user_state: gr.State, project: gr.Dropdown) -> DashboardTab:
    summary = gr.HTML(render.empty_queue_html("Pick a project to see its progress."), js_on_load=None)
    with gr.Row():
        verdicts = gr.BarPlot(
            verdict_frame(None),
            x="verdict",
            y="count",
            color="verdict",
            color_map=VERDICT_COLOURS,
            label="Verdict mix",
            height=260,
        )
        labels = gr.Dataframe(
            headers=["label", "reviewed", "accepted"], interactive=False, label="Accept rate per predicted label"
        )
    reviewers = gr.Dataframe(
        headers=["reviewer", "verdicts", "last 24 h", "seconds / item", "items / hour"],
        interactive=False,
        label="Reviewer throughput",
    )
    metrics = gr.LinePlot(
        metrics_frame(None),
        x="time",
        y="value",
        color="series",
        label="Model versions: evaluation metrics over time",
        caption="One line per metric; a point per model version, once it has been evaluated on the held-out items.",
        height=300,
    )
    refresh_button = gr.Button("Refresh", size="sm", elem_id="dashboard-refresh")
    tab = DashboardTab(
        summary=summary, verdicts=verdicts, labels=labels, reviewers=reviewers, metrics=metrics, refresh=refresh_button
    )
    handler = partial(on_refresh, runtime, tab)
    # Progress shows on the summary only: the page re-reads every component an event ever showed progress on, at
    # each later event, and the plots' data would be read again on every review key press.
    progress_on = tab.progress_target()
    refresh_button.click(
        handler, [user_state, project], tab.outputs(), api_name="dashboard_refresh", show_progress_on=progress_on
    )
    project.change(handler, [user_state, project], tab.outputs(), show_progress="hidden", show_progress_on=progress_on)
    return tab
