"""Rewards in TRL's form: valid, invalid and adversarial completions, one per line with its reason."""

from __future__ import annotations

import doctest
import json
import math
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import rise.rewards.human_feedback
import rise.rewards.inputs
import rise.rewards.reconstruction
import rise.rewards.scores
import rise.rewards.task_rewards
from rise.leakage import scrub_leakage
from rise.rewards import (
    distribution_score,
    get_accuracy_reward,
    get_box_count_penalty,
    get_detection_iou_reward,
    get_distribution_reward,
    get_format_reward,
    get_grounding_iou_reward,
    get_human_feedback_reward,
    get_label_accuracy_reward,
    matched_iou_score,
    score_reconstruction,
)
from rise.tasks import TaskSpec

SHAPES = TaskSpec("classification", labels=("circle", "square", "star"), synonyms={"ball": "circle"})
EMOTIONS = TaskSpec("classification", labels=("joy", "fear", "calm"), distribution=True)
DETECTION = TaskSpec("detection", labels=("circle", "square"), frame="pixels")
QWEN_DETECTION = TaskSpec("detection", labels=("circle", "square"))  # 0..1000
GROUNDING = TaskSpec("grounding")  # 0..1000


def conversational(*texts: str) -> list[list[dict[str, str]]]:
    return [[{"role": "assistant", "content": text}] for text in texts]


def boxes(*items: tuple[str, list[float]]) -> str:
    return json.dumps([{"label": label, "box": box} for label, box in items])


def all_rewards() -> list:
    return [
        get_format_reward(SHAPES),
        get_format_reward(DETECTION, require_think=False),
        get_label_accuracy_reward(SHAPES),
        get_distribution_reward(EMOTIONS),
        get_detection_iou_reward(DETECTION, length_penalty=True),
        get_grounding_iou_reward(GROUNDING),
        get_box_count_penalty(DETECTION),
        get_human_feedback_reward(SHAPES),
    ]


class TestFormatReward:
    def test_valid_and_invalid_formats(self):
        completions = conversational(
            "<think>Round edges.</think><answer>circle</answer>",  # canonical: 1.0
            "<think>\nRound.\n</think>\n<answer>Ball</answer><|im_end|>",  # newlines, synonym, end token: 1.0
            "<think>Round edges.</think><answer>oval</answer>",  # tags right but not a label: 0.0
            "<answer>circle</answer>",  # no reasoning: 0.0
            "circle",  # bare answer: 0.0
            "<think>a</think><answer>circle</answer><answer>square</answer>",  # two answers: 0.0
            "<think>Use <think> tags</think><answer>circle</answer>",  # echoed tag inside the reasoning: 0.0
        )
        assert get_format_reward(SHAPES)(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    def test_answer_only_format_for_reconstruction(self):
        reward = get_format_reward(SHAPES, require_think=False)
        assert reward(["<answer>circle</answer>", "<think>.</think><answer>circle</answer>", "circle"]) == [
            1.0,  # the answer alone is what the reconstruction prompt asks for
            1.0,  # a think block first is tolerated
            0.0,  # no tags at all
        ]

    def test_box_format_needs_a_box_inside_the_image(self):
        completions = [
            f"<think>.</think><answer>{boxes(('circle', [0, 0, 10, 10]))}</answer>",  # inside: 1.0
            f"<think>.</think><answer>{boxes(('circle', [100, 100, 110, 110]))}</answer>",  # outside 64x64: 0.0
        ]
        assert get_format_reward(DETECTION)(completions, width=[64, 64], height=[64, 64]) == [1.0, 0.0]


class TestLabelAccuracyReward:
    def test_valid_invalid_and_adversarial_answers(self):
        completions = conversational(
            "<think>Round.</think><answer>circle</answer>",  # right: 1.0
            "<think>Round.</think><answer>Ball.</answer>",  # right through a synonym, case and punctuation: 1.0
            "<think>Corners.</think><answer>square</answer>",  # wrong label: 0.0
            "<think>Round.</think><answer>circle, square, star</answer>",  # every label at once: 0.0
            "<think>Round.</think><answer>circle</answer><answer>square</answer>",  # last answer counts: 0.0
            "<answer>circle</answer> <think>Corners.</think><answer>star</answer>",  # echo then own answer: 0.0
            "<think>The answer is circle.</think>",  # the label only in the reasoning: 0.0
            "",  # nothing: 0.0
        )
        rewards = get_label_accuracy_reward(SHAPES)(completions, solution=["circle"] * 8)
        assert rewards == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    def test_plain_string_completions_are_accepted(self):
        assert get_label_accuracy_reward(SHAPES)(["<answer>star</answer>"], solution=["star"]) == [1.0]

    def test_multimodal_message_content_is_read(self):
        # why: VLM chat templates give content as a list of typed parts
        completion = [[{"role": "assistant", "content": [{"type": "text", "text": "<answer>star</answer>"}]}]]
        assert get_label_accuracy_reward(SHAPES)(completion, solution=["star"]) == [1.0]

    def test_invalid_gold_is_skipped_with_none(self):
        # why: as trl.rewards.accuracy_reward, an unusable gold answer gives None so TRL ignores the example
        rewards = get_label_accuracy_reward(SHAPES)(["<answer>star</answer>"] * 3, solution=["hexagon", "", None])
        assert rewards == [None, None, None]

    def test_wrong_task_raises(self):
        with pytest.raises(ValueError, match="single-label"):
            get_label_accuracy_reward(EMOTIONS)


class TestDistributionReward:
    def test_identical_distribution_scores_one_and_others_less(self):
        gold = '{"joy": 0.7, "fear": 0.2, "calm": 0.1}'
        completions = [
            '<answer>{"joy": 0.7, "fear": 0.2, "calm": 0.1}</answer>',  # identical: 1.0
            '<answer>{"joy": 70, "fear": 20, "calm": 10}</answer>',  # same shape in percent: 1.0
            '<answer>{"joy": 0.1, "fear": 0.2, "calm": 0.7}</answer>',  # mass on the wrong label: < 1
            '<answer>{"joy": 0.6, "fear": 0.3, "calm": 0.1}</answer>',  # close to the gold: above the wrong one
            '<answer>{"joy": 0.7, "anger": 0.3}</answer>',  # unknown label rejected: 0.0
            "<answer>joy</answer>",  # a label is not a distribution: 0.0
        ]
        rewards = get_distribution_reward(EMOTIONS)(completions, solution=[gold] * 6)
        assert rewards[:2] == [pytest.approx(1.0), pytest.approx(1.0)]
        assert 0.0 < rewards[2] < rewards[3] < 1.0
        assert rewards[4:] == [0.0, 0.0]

    def test_score_is_exp_of_minus_half_kl_minus_half_mse(self):
        # hand-computed: KL(q||p) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75), MSE = (0.25² + 0.25²) / 2
        kl = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
        expected = math.exp(-0.5 * kl - 0.5 * 0.0625)
        assert distribution_score({"a": 0.25, "b": 0.75}, {"a": 0.5, "b": 0.5}) == pytest.approx(expected)

    def test_zero_probability_on_a_gold_label_stays_finite(self):
        # why: log(q/0) is infinite; the floor keeps the reward a small positive number, not NaN
        score = distribution_score({"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 0.0})
        assert 0.0 < score < 0.01


class TestDetectionIouReward:
    GOLD = boxes(("circle", [0, 0, 10, 10]), ("square", [20, 20, 30, 30]))

    def test_hungarian_matching(self):
        completions = [
            f"<answer>{boxes(('square', [20, 20, 30, 30]), ('circle', [0, 0, 10, 10]))}</answer>",  # any order: 1.0
            f"<answer>{boxes(('circle', [0, 0, 10, 10]))}</answer>",  # one of two found: 1 / 2
            f"<answer>{boxes(('circle', [0, 0, 10, 10]), ('square', [20, 20, 30, 30]), ('square', [40, 40, 50, 50]))}"
            "</answer>",  # a third, spurious box: 2 / 3
            f"<answer>{boxes(('square', [0, 0, 10, 10]), ('circle', [20, 20, 30, 30]))}</answer>",  # labels swapped: 0
            f"<answer>{boxes(('circle', [0, 0, 10, 5]), ('square', [20, 20, 30, 30]))}</answer>",  # half box: 1.5 / 2
            "<answer>[]</answer>",  # nothing found: 0.0
            "<answer>circle at the top</answer>",  # unreadable: 0.0
        ]
        rewards = get_detection_iou_reward(DETECTION)(
            completions, solution=[self.GOLD] * 7, width=[64] * 7, height=[64] * 7
        )
        assert rewards == pytest.approx([1.0, 0.5, 2 / 3, 0.0, 0.75, 0.0, 0.0])

    def test_labels_can_be_ignored(self):
        completion = [f"<answer>{boxes(('square', [0, 0, 10, 10]), ('circle', [20, 20, 30, 30]))}</answer>"]
        reward = get_detection_iou_reward(DETECTION, match_labels=False)
        assert reward(completion, solution=[self.GOLD], width=[64], height=[64]) == [1.0]

    def test_empty_gold_and_empty_answer_is_perfect(self):
        # why: "nothing here" is a right answer for an image without objects
        assert get_detection_iou_reward(DETECTION)(
            ["<answer>[]</answer>"], solution=["[]"], width=[8], height=[8]
        ) == [1.0]

    def test_length_penalty_is_vlm_r1_odlength(self):
        padded = boxes(*[("circle", [0, 0, 10, 10])] * 4)
        gold = boxes(("circle", [0, 0, 10, 10]))
        # IoU part: 1 matched box / max(1, 4) = 0.25; odLength factor 1/4: 0.0625
        plain = get_detection_iou_reward(DETECTION)(
            [f"<answer>{padded}</answer>"], solution=[gold], width=[64], height=[64]
        )
        penalised = get_detection_iou_reward(DETECTION, length_penalty=True)(
            [f"<answer>{padded}</answer>"], solution=[gold], width=[64], height=[64]
        )
        assert (plain, penalised) == ([0.25], [0.0625])

    def test_model_frame_is_converted_before_comparing(self):
        # 200x100 image: Qwen2-VL [0, 0, 500, 1000] is pixels [0, 0, 100, 100]
        reward = get_detection_iou_reward(QWEN_DETECTION)
        completion = ['<answer>[{"label": "circle", "box": [0, 0, 500, 1000]}]</answer>']
        assert reward(completion, solution=[boxes(("circle", [0, 0, 100, 100]))], width=[200], height=[100]) == [1.0]

    def test_matched_iou_score_directly(self):
        gold = [{"label": "a", "box": [0, 0, 10, 10]}]
        assert matched_iou_score([], []) == 1.0  # both empty
        assert matched_iou_score([], gold) == 0.0  # missed
        assert matched_iou_score(gold, []) == 0.0  # hallucinated


class TestGroundingIouReward:
    def test_iou_in_pixels(self):
        gold = "[0, 0, 100, 100]"  # pixels of a 200x100 image
        completions = [
            "<think>Left half.</think><answer>[0, 0, 500, 1000]</answer>",  # exact: 1.0
            "<answer>[250, 0, 750, 1000]</answer>",  # half overlapping: 50 / 150
            '<answer>{"bbox_2d": [0, 0, 500, 1000]}</answer>',  # Qwen2.5-VL's object form: 1.0
            "<answer>[500, 0, 1000, 1000]</answer>",  # the other half: 0.0
            "<answer>[[0, 0, 500, 1000], [500, 0, 1000, 1000]]</answer>",  # two boxes for one query: 0.0
            "<answer>[1200, 0, 1500, 1000]</answer>",  # entirely outside the image: 0.0
        ]
        rewards = get_grounding_iou_reward(GROUNDING)(
            completions, solution=[gold] * 6, width=[200] * 6, height=[100] * 6
        )
        assert rewards == pytest.approx([1.0, 1 / 3, 1.0, 0.0, 0.0, 0.0])

    def test_sizes_come_from_images_when_no_columns(self):
        # why: TRL passes the dataset's `image` column to rewards; its size is the original size
        images = [Image.new("RGB", (200, 100))]
        reward = get_grounding_iou_reward(GROUNDING)
        assert reward(["<answer>[0, 0, 500, 1000]</answer>"], solution=["[0, 0, 100, 100]"], image=images) == [1.0]
        assert reward(["<answer>[0, 0, 500, 1000]</answer>"], solution=["[0, 0, 100, 100]"], images=[images]) == [1.0]

    def test_example_without_size_is_skipped(self):
        # why: a box cannot be compared without its image size; None lets TRL ignore the example instead of a 0
        reward = get_grounding_iou_reward(GROUNDING)
        completions = ["<answer>[0, 0, 500, 1000]</answer>"] * 2
        assert reward(completions, solution=["[0, 0, 100, 100]"] * 2, width=[200, None], height=[100, None]) == [
            1.0,
            None,
        ]

    def test_missing_sizes_raise_with_the_fix(self):
        with pytest.raises(ValueError, match="add integer `width` and `height` columns"):
            get_grounding_iou_reward(GROUNDING)(["<answer>[0, 0, 1, 1]</answer>"], solution=["[0, 0, 1, 1]"])


class TestBoxCountPenalty:
    def test_padding_is_penalised(self):
        gold = boxes(("circle", [0, 0, 10, 10]), ("square", [20, 20, 30, 30]))
        completions = [
            f"<answer>{boxes(*[('circle', [0, 0, 10, 10])] * 4)}</answer>",  # 4 boxes for 2: -1 * (1 - 2/4)
            f"<answer>{boxes(('circle', [0, 0, 10, 10]))}</answer>",  # fewer boxes: no penalty here
            "<answer>not boxes</answer>",  # unreadable: left to the format reward
        ]
        penalty = get_box_count_penalty(DETECTION, max_penalty=-1.0)
        assert penalty(completions, solution=[gold] * 3, width=[64] * 3, height=[64] * 3) == [-0.5, 0.0, 0.0]

    def test_positive_penalty_raises(self):
        with pytest.raises(ValueError, match="should not be positive"):
            get_box_count_penalty(DETECTION, max_penalty=0.5)


class TestReconstructionScore:
    def test_leakage_penalty_fires_on_a_cot_that_names_the_label(self):
        cot = "The outline has no corners. It is clearly a circle. The edge is smooth."
        scrubbed, leaked = scrub_leakage(cot, SHAPES)
        assert (scrubbed, leaked) == ("The outline has no corners. The edge is smooth.", True)
        honest = score_reconstruction("<answer>circle</answer>", "circle", False, SHAPES)
        leaking = score_reconstruction("<answer>circle</answer>", "circle", leaked, SHAPES)
        assert (honest.reward, leaking.reward) == (2.0, pytest.approx(1.1))  # 1 × 1 + 1 and 1 × 0.1 + 1

    @pytest.mark.parametrize(
        ("reconstruction", "reward", "accuracy", "format_score"),
        [
            ("<answer>circle</answer>", 2.0, 1.0, 1.0),  # right and well formed
            ("<answer>square</answer>", 1.0, 0.0, 1.0),  # wrong but well formed: the format part only
            ("circle", 1.0, 1.0, 0.0),  # right but without tags: the accuracy part only
            ("<answer>hexagon</answer>", 0.0, 0.0, 0.0),  # not a label: nothing
            ("<answer>circle</answer><answer>square</answer>", 0.0, 0.0, 0.0),  # two answers: last one, malformed
        ],
    )
    def test_reward_parts(self, reconstruction, reward, accuracy, format_score):
        score = score_reconstruction(reconstruction, "circle", False, SHAPES)
        assert (score.reward, score.accuracy, score.format) == (reward, accuracy, format_score)

    def test_boxes_use_iou_and_the_model_frame(self):
        score = score_reconstruction("<answer>[0, 0, 500, 1000]</answer>", [0, 0, 50, 50], True, GROUNDING, 100, 50)
        assert (score.accuracy, score.reward, score.answer) == (1.0, pytest.approx(1.1), [0.0, 0.0, 50.0, 50.0])

    def test_invalid_gold_raises(self):
        with pytest.raises(ValueError, match="not one of the labels"):
            score_reconstruction("<answer>circle</answer>", "hexagon", False, SHAPES)

    def test_leak_factor_outside_unit_interval_raises(self):
        with pytest.raises(ValueError, match="leak_factor"):
            score_reconstruction("<answer>circle</answer>", "circle", False, SHAPES, leak_factor=2.0)


class TestHumanFeedbackReward:
    def test_agreement_and_rejection(self):
        completions = [
            "<answer>square</answer>",  # matches the correction: +1
            "<answer>circle</answer>",  # repeats the rejected answer: -1
            "<answer>star</answer>",  # neither: 0
            "<answer>circle</answer>",  # only a rejection known, and repeated: -1
            "<answer>hexagon</answer>",  # unreadable: 0
            "<answer>circle</answer>",  # no verdict for this image: skipped
        ]
        rewards = get_human_feedback_reward(SHAPES)(
            completions,
            trusted_answer=["square", "square", "square", None, "square", None],
            rejected_answers=['["circle"]', '["circle"]', '["circle"]', ["circle"], '["circle"]', "[]"],
        )
        assert rewards == [1.0, -1.0, 0.0, -1.0, 0.0, None]

    def test_box_rejection_matches_by_iou_threshold(self):
        rejected = json.dumps([[0, 0, 100, 100]])
        completions = [
            "<answer>[0, 0, 500, 1000]</answer>",  # the rejected box again (IoU 1): penalised
            "<answer>[0, 0, 400, 1000]</answer>",  # IoU 0.8 with the rejected box: still the same answer
            "<answer>[0, 0, 250, 1000]</answer>",  # IoU 0.5: a different answer, no penalty
        ]
        reward = get_human_feedback_reward(GROUNDING, match_threshold=0.75)
        rewards = reward(completions, rejected_answers=[rejected] * 3, width=[200] * 3, height=[100] * 3)
        assert rewards == [-1.0, -1.0, 0.0]

    @pytest.mark.parametrize(
        "kwargs",
        [{"agreement_weight": -1.0}, {"rejection_penalty": 0.5}, {"match_threshold": 0.0}],
    )
    def test_bad_weights_raise(self, kwargs):
        with pytest.raises(ValueError, match="should"):
            get_human_feedback_reward(SHAPES, **kwargs)


class TestAllRewards:
    @pytest.mark.parametrize("reward", all_rewards(), ids=lambda reward: reward.__name__)
    def test_reward_survives_pickle(self, reward):
        # why: TRL's async rollout workers pickle reward functions into a child process
        restored = pickle.loads(pickle.dumps(reward))
        assert restored.__name__ == reward.__name__
        columns = {"solution": ["circle"], "trusted_answer": ["circle"], "width": [64], "height": [64]}
        assert restored(["<answer>circle</answer>"], **columns) == reward(["<answer>circle</answer>"], **columns)

    @pytest.mark.parametrize("reward", all_rewards(), ids=lambda reward: reward.__name__)
    def test_extra_kwargs_are_ignored(self, reward):
        columns = {"solution": ["circle"], "trusted_answer": ["circle"], "width": [64], "height": [64]}
        extra = {"prompts": [[]], "completion_ids": [[1, 2]], "trainer_state": object(), "log_metric": print}
        assert reward(["<answer>circle</answer>"], **columns, **extra) == reward(
            ["<answer>circle</answer>"], **columns
        )

    def test_names_are_distinct_for_trl_logs(self):
        names = [reward.__name__ for reward in all_rewards()]
        assert len(set(names)) == len(names) - 1  # the two format rewards share a name; every other differs

    def test_accuracy_factory_picks_the_task_reward(self):
        assert [get_accuracy_reward(spec).__name__ for spec in (SHAPES, EMOTIONS, DETECTION, GROUNDING)] == [
            "label_accuracy_reward",
            "distribution_reward",
            "detection_iou_reward",
            "grounding_iou_reward",
        ]


# Property-based: no reward raises on arbitrary completion text.

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<|box_start|>", "<|box_end|>", "[", "]", "{", "}", "(", ")",
    ",", ":", '"', '"label"', '"box"', "circle", "joy", "0", "-5", "1000", "1e999", "NaN", "\n", " ",
]  # fmt: skip
arbitrary_text = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(FRAGMENTS), max_size=50).map("".join))
GOLD_BY_REWARD = {
    "format_reward": "circle",
    "label_accuracy_reward": "circle",
    "distribution_reward": '{"joy": 1}',
    "detection_iou_reward": boxes(("circle", [0, 0, 10, 10])),
    "grounding_iou_reward": "[0, 0, 10, 10]",
    "box_count_penalty_reward": boxes(("circle", [0, 0, 10, 10])),
    "human_feedback_reward": "circle",
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(arbitrary_text, min_size=1, max_size=4), data=st.data())
def test_no_reward_raises_on_arbitrary_text(texts, data):
    reward = data.draw(st.sampled_from(all_rewards()), label="reward")
    gold = GOLD_BY_REWARD[reward.__name__]
    n = len(texts)
    columns = {"solution": [gold] * n, "trusted_answer": [gold] * n, "rejected_answers": [f"[{json.dumps(gold)}]"] * n}
    rewards = reward(texts, width=[64] * n, height=[64] * n, **columns)
    assert len(rewards) == n
    assert all(r is None or math.isfinite(r) for r in rewards)


@settings(max_examples=100, deadline=None)
@given(
    text=arbitrary_text,
    leaked=st.booleans(),
    spec_and_gold=st.sampled_from(
        [(SHAPES, "circle"), (EMOTIONS, '{"joy": 1}'), (DETECTION, "[]"), (GROUNDING, "[0, 0, 10, 10]")]
    ),
)
def test_score_reconstruction_never_raises_on_arbitrary_text(text, leaked, spec_and_gold):
    spec, gold = spec_and_gold
    score = score_reconstruction(text, gold, leaked, spec, 64, 64)
    assert 0.0 <= score.reward <= 2.0


@pytest.mark.parametrize(
    "module",
    [
        rise.rewards.human_feedback,
        rise.rewards.inputs,
        rise.rewards.reconstruction,
        rise.rewards.scores,
        rise.rewards.task_rewards,
    ],
    ids=lambda module: module.__name__,
)
def test_docstring_examples_run(module):
    # why: the >>> examples are the documentation of record; they must stay true
    assert doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0
