"""The reasoning filter: best qualifying rollout per item, reviewer reasonings, and why the rest did not qualify."""

from __future__ import annotations

import pytest

from rise.tasks import TaskSpec
from rise.training.config import FilterConfig
from rise.training.cot_filter import (
    ALL_EMPTY,
    ALL_LEAKED,
    BELOW_TAU,
    NO_ROLLOUTS,
    default_tau,
    read_selected,
    select_cots,
    write_filter_outputs,
)
from tests.utils.training import synthetic_snapshot


def rollout(item_id: int, cot: str, accuracy: float, reward: float, leaked: bool = False) -> dict:
    return {"item_id": item_id, "cot": cot, "accuracy": accuracy, "reward": reward, "leaked": leaked}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    # Items 0-5 train (item 5 has only a rejected answer), 6-7 held out; item 1 has a reviewer's reasoning.
    return synthetic_snapshot(
        tmp_path_factory.mktemp("snap"),
        cots={1: "A reviewer's reasoning."},
        rejected={5: ["circle"]},
        without_answer=(5,),
    )


ROLLOUTS = [
    rollout(0, "Weak evidence.", 1.0, 1.5),  # qualifies, but a better one follows
    rollout(0, "Best evidence.", 1.0, 2.0),  # the best-reward qualifying rollout
    rollout(0, "Names the label.", 1.0, 1.1, leaked=True),  # leaked: never SFT data
    rollout(1, "A model's reasoning.", 1.0, 2.0),  # loses to the reviewer's reasoning by default
    rollout(2, "Leaky.", 1.0, 1.1, leaked=True),  # every rollout of item 2 leaked
    rollout(3, "Wrong reconstruction.", 0.0, 1.0),  # below tau
    rollout(4, "   ", 1.0, 2.0),  # empty after stripping
    rollout(6, "Held-out item.", 1.0, 2.0),  # held out: the filter never looks at it
]


class TestSelectCots:
    def test_best_clean_rollout_and_reviewer_reasoning_are_selected(self, snapshot):
        report = select_cots(snapshot, ROLLOUTS, FilterConfig())
        chosen = {s.item_id: (s.cot, s.source) for s in report.selected}
        assert chosen == {0: ("Best evidence.", "rollout"), 1: ("A reviewer's reasoning.", "human")}

    def test_too_few_qualified_are_topped_up_with_unverified_rationales(self, snapshot):
        extra = [rollout(3, "A better try.", 0.4, 0.9), rollout(3, "Leaky try.", 0.9, 0.5, leaked=True)]
        report = select_cots(snapshot, [*ROLLOUTS, *extra], FilterConfig(min_selected=5))
        chosen = {s.item_id: (s.cot, s.source, s.accuracy) for s in report.selected}
        # item 3's best clean rollout joins; leaked (2) and empty (4) reasonings never do, whatever the shortfall
        assert chosen[3] == ("A better try.", "rationale", 0.4) and len(chosen) == 3
        assert report.rejected == {2: ALL_LEAKED, 4: ALL_EMPTY}
        assert report.summary()["unverified_rationales"] == 1

    def test_no_top_up_when_enough_qualified(self, snapshot):
        report = select_cots(snapshot, ROLLOUTS, FilterConfig(min_selected=2))
        assert all(s.source != "rationale" for s in report.selected) and 3 in report.rejected

    def test_every_other_item_gets_its_reason(self, snapshot):
        report = select_cots(snapshot, ROLLOUTS, FilterConfig())
        assert report.rejected == {2: ALL_LEAKED, 3: BELOW_TAU, 4: ALL_EMPTY}
        assert report.items == 5  # item 5 has no trusted answer, 6-7 are held out
        summary = report.summary()
        assert summary["qualified"] == 2 and summary["from_reviewers"] == 1 and summary["from_rollouts"] == 1

    def test_items_never_sampled_are_reported(self, snapshot):
        report = select_cots(snapshot, [], FilterConfig(include_human_cots=False))
        assert set(report.rejected.values()) == {NO_ROLLOUTS} and report.selected == []

    def test_rollout_wins_when_reviewer_reasoning_is_not_preferred(self, snapshot):
        report = select_cots(snapshot, ROLLOUTS, FilterConfig(prefer_human_cots=False))
        assert {s.item_id: s.source for s in report.selected}[1] == "rollout"

    def test_written_reasoning_keeps_its_item_when_accepted_ones_give_way(self, tmp_path):
        # Item 1's reasoning is the model's, accepted; item 2's a reviewer wrote with a correction.
        snapshot = synthetic_snapshot(
            tmp_path,
            n_train=3,
            n_eval=0,
            cots={1: "The model's accepted reasoning.", 2: "A reviewer's written reasoning."},
            sources={1: "accept", 2: "correct"},
        )
        rollouts = [rollout(1, "A verified rollout.", 1.0, 2.0), rollout(2, "Another verified rollout.", 1.0, 2.0)]
        by_default = {s.item_id: s.cot for s in select_cots(snapshot, rollouts, FilterConfig()).selected}
        assert by_default == {1: "The model's accepted reasoning.", 2: "A reviewer's written reasoning."}
        report = select_cots(snapshot, rollouts, FilterConfig(prefer_accepted_cots=False))
        assert {s.item_id: s.cot for s in report.selected} == {
            1: "A verified rollout.",
            2: "A reviewer's written reasoning.",
        }
        # Without a qualifying rollout the accepted reasoning is still SFT data.
        fallback = select_cots(snapshot, rollouts[1:], FilterConfig(prefer_accepted_cots=False))
        assert {s.item_id: s.source for s in fallback.selected} == {1: "human", 2: "human"}

    def test_lower_tau_lets_a_wrong_reconstruction_through(self, snapshot):
        report = select_cots(snapshot, ROLLOUTS, FilterConfig(tau=0.0))
        assert 3 in {s.item_id for s in report.selected}

    def test_consensus_breaks_a_tie_for_what_most_samples_say(self, snapshot):
        ordered = [
            rollout(0, "A large green circle. A small blue square.", 1.0, 2.0),  # the slip, sampled first
            rollout(0, "A large red circle. A small blue square.", 1.0, 2.0),
            rollout(0, "A large red circle. A small blue square.", 1.0, 2.0),
            rollout(0, "A large red circle on the left. A small blue square.", 0.0, 1.0),  # agrees, lower reward
        ]
        first = {s.item_id: s.cot for s in select_cots(snapshot, ordered, FilterConfig(consensus=False)).selected}
        chosen = {s.item_id: s.cot for s in select_cots(snapshot, ordered, FilterConfig()).selected}  # the default
        assert first[0] == "A large green circle. A small blue square."
        assert chosen[0] == "A large red circle. A small blue square."

    def test_consensus_picks_unverified_rationales_too(self, snapshot):
        below = [
            rollout(3, "Two red shapes.", 0.0, 1.0),
            rollout(3, "Two blue shapes.", 0.0, 1.0),
            rollout(3, "Two blue shapes.", 0.0, 1.0),
        ]
        report = select_cots(snapshot, [*ROLLOUTS, *below], FilterConfig(min_selected=5, consensus=True))
        assert {s.item_id: s.cot for s in report.selected}[3] == "Two blue shapes."

    def test_outputs_round_trip(self, snapshot, tmp_path):
        report = select_cots(snapshot, ROLLOUTS, FilterConfig())
        summary = write_filter_outputs(report, tmp_path)
        assert summary["qualified"] == 2
        assert read_selected(tmp_path) == report.selected
        assert (tmp_path / "report.json").is_file()


def test_default_tau_per_task():
    config = FilterConfig()
    assert default_tau(TaskSpec("classification", labels=("a", "b")), config) == 1.0
    assert default_tau(TaskSpec("grounding"), config) == 0.75
    assert default_tau(TaskSpec("detection", labels=("a",)), FilterConfig(box_tau=0.5)) == 0.5
    assert default_tau(TaskSpec("grounding"), FilterConfig(tau=0.3)) == 0.3


def test_missing_filter_output_names_the_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="--stage filter"):
        read_selected(tmp_path)
