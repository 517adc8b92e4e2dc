"""One config dataclass per training stage, and the pipeline config that holds them all.

Every field carries its help text in `metadata["help"]`; cross-field checks live in `__post_init__` and their
messages name the fix. The configs are plain dataclasses rather than subclasses of TRL's, because one pipeline run
holds several stages whose TRL configs would share field names (`learning_rate`, `output_dir`, ...); each stage turns
its config into the TRL config it needs (`rise.training.trainer_setup.trl_arguments`), which also picks CPU or GPU
settings (`use_cpu` without CUDA, bf16 only where the GPU supports it), so CPU runs need no flags.

A pipeline config is YAML or JSON with one section per stage; any field can be overridden as `section.field=value`:

    model: Qwen/Qwen2-VL-2B-Instruct
    data: runs/shapes/data
    output_dir: runs/shapes
    rise_cot: {max_steps: 200, judge: base, reconstruction_input: image_and_cot}
    sft: {num_train_epochs: 3}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

JUDGES = ("base", "policy", "frozen")
RECONSTRUCTION_INPUTS = ("image_and_cot", "cot_only", "information_gain")
GRPO_COMPLETIONS = ("reasoning", "reconstruction")
RFT_STARTS = ("sft", "base")
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class TrainerSettings:
    """What every training stage shares: optimisation, LoRA or full fine-tuning, precision, limits.

    > Optimisation

    learning_rate / max_steps / num_train_epochs / per_device_train_batch_size / gradient_accumulation_steps / seed

    > Parameters

    use_lora / lora_r / lora_alpha / lora_dropout / lora_target_modules

    > Hardware and limits

    bf16 / gradient_checkpointing / logging_steps / save_steps / max_seconds / extra_trl_args
    """

    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate of AdamW."})
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to train; -1 trains for num_train_epochs instead."}
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the stage's data; only used when max_steps is -1."}
    )
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Examples (GRPO: completions) per device per forward pass."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds data order, sampling and LoRA initialisation."})
    use_lora: bool = field(
        default=True,
        metadata={
            "help": "Train a LoRA adapter on the frozen model (the default: small files, stable judge). False "
            "fine-tunes every weight and saves a whole model."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (the update is scaled alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        metadata={
            "help": "Module names LoRA wraps. The defaults are the language model's attention and MLP projections "
            "(Qwen2-VL's vision tower names its layers differently, so it stays frozen)."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bfloat16 mixed precision. None: on where a CUDA GPU supports it, off on CPU."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass: less memory, about 20% slower."},
    )
    logging_steps: int = field(default=1, metadata={"help": "Log metrics every this many optimizer steps."})
    save_steps: int | None = field(
        default=None,
        metadata={"help": "Also save a checkpoint every this many steps. None: only the final model is saved."},
    )
    max_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Wall-clock limit for the stage's training loop; it stops after the step that crosses it and "
            "saves what it has. None: no limit."
        },
    )
    extra_trl_args: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Further keyword arguments for the TRL config, passed through verbatim, e.g. "
            '{"deepspeed": "zero3.json", "warmup_ratio": 0.05}.'
        },
    )

    def __post_init__(self) -> None:
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}; e.g. 1e-5.")
        _check(
            self.max_steps > 0 or (self.max_steps == -1 and self.num_train_epochs > 0),
            f"Set max_steps to a positive number of steps, or max_steps=-1 with num_train_epochs > 0 "
            f"(got max_steps={self.max_steps}, num_train_epochs={self.num_train_epochs}).",
        )
        _check(self.per_device_train_batch_size >= 1, "per_device_train_batch_size must be at least 1.")
        _check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1.")
        _check(self.lora_r >= 1 and self.lora_alpha > 0, "Set lora_r >= 1 and lora_alpha > 0, e.g. 16 and 32.")
        _check(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        _check(
            not self.use_lora or bool(self.lora_target_modules),
            "use_lora=True needs lora_target_modules, e.g. ['q_proj', 'v_proj'].",
        )
        _check(self.logging_steps >= 1, "logging_steps must be at least 1.")
        _check(self.save_steps is None or self.save_steps >= 1, "save_steps must be at least 1, or None.")
        _check(
            self.max_seconds is None or self.max_seconds > 0,
            f"max_seconds must be positive or None (no limit), got {self.max_seconds}.",
        )


def _grpo_post_init(config: Any) -> None:
    _check(
        config.num_generations >= 2,
        f"GRPO compares completions within a group: set num_generations >= 2 (got {config.num_generations}).",
    )
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    _check(
        per_step % config.num_generations == 0,
        f"per_device_train_batch_size × gradient_accumulation_steps ({per_step}) must be a multiple of "
        f"num_generations ({config.num_generations}); e.g. set per_device_train_batch_size={config.num_generations}.",
    )
    _check(config.max_completion_length >= 1, "max_completion_length must be at least 1 token.")
    _check(config.temperature > 0, f"GRPO needs sampling: set temperature > 0 (got {config.temperature}), e.g. 1.0.")
    _check(config.beta >= 0, f"beta (the KL coefficient) must be >= 0, got {config.beta}.")


@dataclass
class RiseCoTConfig(TrainerSettings):
    """Stage 1, RISE-CoT: GRPO where the completion is the reasoning for (image, trusted annotation) and the reward
    reconstructs the annotation from the scrubbed reasoning (docs/design.md §1), or, as the authors' code trains it,
    where the completion is that reconstruction (`grpo_completion`).

    > Sampling the reasoning

    grpo_completion / num_generations / max_completion_length / temperature / beta / reconstruction_temperature

    > The reconstruction reward

    judge / reconstruction_input / leak_factor / reconstruction_max_new_tokens / reconstruction_batch_size

    > The reviewers' form

    written_reasoning_steps / written_reasoning_learning_rate / written_reasoning_judge
    """

    learning_rate: float = field(
        default=1e-5,
        metadata={"help": "Peak learning rate. The authors' code uses 2e-6 for a full fine-tune; LoRA needs more."},
    )
    max_steps: int = field(default=200, metadata={"help": "GRPO steps (the authors' code: 200)."})
    grpo_completion: str = field(
        default="reasoning",
        metadata={
            "help": "What GRPO trains. 'reasoning': the reasonings are the completions and the judge scores them "
            "without learning. 'reconstruction' (the authors' code): the reasonings are sampled without gradient "
            "and the completion is the policy's reconstruction of the annotation from each, so the policy is the "
            "judge and learns to read reasonings from the trusted annotations; `judge` is not used."
        },
    )
    num_generations: int = field(default=8, metadata={"help": "Reasonings sampled per image (a GRPO group), G."})
    max_completion_length: int = field(default=256, metadata={"help": "Longest reasoning in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the reasoning."})
    beta: float = field(
        default=0.04,
        metadata={
            "help": "KL coefficient against the starting model (0.04, GRPO's own; TRL's default is 0). Under a "
            "judge that does not know the rule the reward cannot tell a right description from a wrong one, and "
            "with 0 the reasoning drifts from what the starting model saw (docs/design.md)."
        },
    )
    reconstruction_temperature: float = field(
        default=0.7,
        metadata={
            "help": "Sampling temperature of the reconstructions GRPO trains with grpo_completion='reconstruction' "
            "(the authors' code: 0.7)."
        },
    )
    judge: str = field(
        default="base",
        metadata={
            "help": "Who reconstructs the annotation. 'base': the policy with its LoRA adapter disabled (needs "
            "use_lora); 'policy': the live policy itself (the paper's closed loop, prone to drift under a full "
            "fine-tune); 'frozen': a frozen copy of the starting model."
        },
    )
    reconstruction_input: str = field(
        default="image_and_cot",
        metadata={
            "help": "What the judge sees. 'image_and_cot': the image and the scrubbed reasoning (the paper); "
            "'cot_only': the reasoning alone, so it must carry the evidence; 'information_gain': reward "
            "acc(image + reasoning) - acc(image + empty reasoning)."
        },
    )
    leak_factor: float = field(
        default=0.1,
        metadata={"help": "Multiplies the accuracy of a reasoning that gave the answer away (paper: 0.1)."},
    )
    reconstruction_max_new_tokens: int = field(
        default=128, metadata={"help": "Longest reconstruction the judge writes (greedy)."}
    )
    reconstruction_batch_size: int = field(
        default=16,
        metadata={
            "help": "Reconstructions per generate call inside the reward; with grpo_completion='reconstruction', "
            "reasonings per sampling call."
        },
    )
    written_reasoning_steps: int = field(
        default=0,
        metadata={
            "help": "Before GRPO, supervised steps of every weight on the reasoning prompt -> the reasonings "
            "reviewers wrote with their corrections; GRPO then starts from that model, so RISE-CoT writes in the "
            "reviewers' form on the items they only accepted too. Skipped when no reviewer wrote one. 0: none "
            "(the paper)."
        },
    )
    written_reasoning_learning_rate: float = field(
        default=1e-5, metadata={"help": "Peak learning rate of those supervised steps (every weight trains)."}
    )
    written_reasoning_judge: bool = field(
        default=True,
        metadata={
            "help": "Those steps also teach the judge to read the reviewers' form: the scrubbed written reasoning "
            "(and the image) -> the reviewer's answer, so a rollout qualifies only where its steps lead to its "
            "label. Applies with judge='base' (the model those steps train, adapter off) and a judge that sees the "
            "image (not reconstruction_input='cot_only')."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _grpo_post_init(self)
        _check(self.judge in JUDGES, f"Unknown judge {self.judge!r}; set judge to one of {', '.join(JUDGES)}.")
        _check(
            self.grpo_completion in GRPO_COMPLETIONS,
            f"Unknown grpo_completion {self.grpo_completion!r}; choose one of {', '.join(GRPO_COMPLETIONS)}.",
        )
        _check(
            not (self.grpo_completion == "reconstruction" and self.reconstruction_input == "information_gain"),
            "grpo_completion='reconstruction' trains one reconstruction per reasoning; the information gain needs a "
            "second, from an empty reasoning, that the policy does not write. Use image_and_cot or cot_only.",
        )
        _check(self.reconstruction_temperature > 0, "reconstruction_temperature must be positive (GRPO samples).")
        _check(
            self.reconstruction_input in RECONSTRUCTION_INPUTS,
            f"Unknown reconstruction_input {self.reconstruction_input!r}; choose one of "
            f"{', '.join(RECONSTRUCTION_INPUTS)}.",
        )
        _check(
            not (self.grpo_completion == "reasoning" and self.judge == "base" and not self.use_lora),
            "judge='base' reconstructs with the LoRA adapter disabled, but use_lora=False trains every weight. "
            "Set judge='frozen' (a frozen copy of the starting model) or use_lora=True.",
        )
        _check(0.0 <= self.leak_factor <= 1.0, f"leak_factor must be in [0, 1] (paper: 0.1), got {self.leak_factor}.")
        _check(self.reconstruction_max_new_tokens >= 1, "reconstruction_max_new_tokens must be at least 1.")
        _check(self.reconstruction_batch_size >= 1, "reconstruction_batch_size must be at least 1.")
        _check(self.written_reasoning_steps >= 0, "written_reasoning_steps must be 0 (none) or more.")
        _check(self.written_reasoning_learning_rate > 0, "written_reasoning_learning_rate must be positive.")


@dataclass
class FilterConfig:
    """Stage 2, filter: which reasonings become SFT data.

    Per item the best-reward rollout qualifies when its reconstruction accuracy reaches `tau` and it did not leak;
    reviewer-accepted reasonings (not flagged as wrong) qualify too.
    """

    tau: float | None = field(
        default=None,
        metadata={
            "help": "Reconstruction accuracy a reasoning needs. None: the task's default, 1.0 for single labels "
            "(the reconstruction is correct), box_tau for boxes, 0.9 for label distributions."
        },
    )
    box_tau: float = field(
        default=0.75, metadata={"help": "Default threshold for detection and grounding (matched IoU)."}
    )
    include_human_cots: bool = field(
        default=True, metadata={"help": "Reviewer-accepted reasonings not flagged as wrong are SFT data too."}
    )
    prefer_human_cots: bool = field(
        default=True,
        metadata={"help": "When an item has both, train on the reviewer-accepted reasoning rather than a rollout."},
    )
    prefer_accepted_cots: bool = field(
        default=True,
        metadata={
            "help": "Where prefer_human_cots holds, let a model reasoning a reviewer accepted win too; False gives "
            "the item to a qualifying rollout instead (a reasoning a reviewer wrote still wins), for RISE-CoT "
            "that learnt the reviewers' written form (rise_cot.written_reasoning_steps) when accepted ones lack it."
        },
    )

    min_selected: int = field(
        default=0,
        metadata={
            "help": "When fewer reasonings than this qualify, add the best clean rollouts of the other items "
            "(written with the answer in view, not verified by reconstruction) up to this many, so a model that "
            "does not yet know the labels still gets SFT data. 0: only qualified reasonings (the paper)."
        },
    )
    consensus: bool = field(
        default=True,
        metadata={
            "help": "Among an item's equally rewarded rollouts, keep the one that agrees most with the item's other "
            "rollouts (word overlap), not the first: a sampled reasoning's slips (a wrong colour, a missing object) "
            "are its own, what most samples say is likelier right. False: the first best (the paper is silent)."
        },
    )

    def __post_init__(self) -> None:
        _check(self.tau is None or 0.0 <= self.tau <= 1.0, f"tau must be in [0, 1] or None, got {self.tau}.")
        _check(self.min_selected >= 0, f"min_selected must be at least 0, got {self.min_selected}.")
        _check(0.0 <= self.box_tau <= 1.0, f"box_tau must be in [0, 1], got {self.box_tau}.")


@dataclass
class SFTStageConfig(TrainerSettings):
    """Stage 2, SFT: image + task prompt -> `<think>reasoning</think><answer>y</answer>` (or, for the baseline,
    `<answer>y</answer>` alone), from the base model."""

    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (LoRA)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Passes over the filtered data."})
    answers_only: bool = field(
        default=False,
        metadata={"help": "Train on the answer alone, without reasoning (the SFT baseline)."},
    )
    reading_share: float = field(
        default=0.0,
        metadata={
            "help": "Share of reasoning rows repeated as reading rows: blank image, the reasoning in the prompt, "
            "the answer as target, so the answer learns to follow the reasoning instead of the image alone. "
            "0: none (the paper's SFT)."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Truncate longer sequences (image tokens included). None: no truncation."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.max_length is None or self.max_length >= 16, "max_length must be at least 16 tokens, or None.")
        _check(0.0 <= self.reading_share <= 1.0, "reading_share must be between 0 and 1.")


@dataclass
class RFTStageConfig(TrainerSettings):
    """Stage 2, RFT: GRPO on the annotation prompt with task rewards and the human-feedback reward.

    > Start and sampling

    start_from / num_generations / max_completion_length / temperature / beta

    > Rewards (weights; 0 leaves a reward out)

    format_weight / accuracy_weight / length_weight / human_feedback_weight / overlong_buffer / rejection_penalty
    """

    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate."})
    max_steps: int = field(default=200, metadata={"help": "GRPO steps."})
    start_from: str = field(
        default="sft",
        metadata={
            "help": "'sft': continue from the SFT stage's model (RISE-R1); 'base': start from the base model "
            "(the Visual-RFT baseline)."
        },
    )
    num_generations: int = field(default=8, metadata={"help": "Completions sampled per image (a GRPO group)."})
    max_completion_length: int = field(default=256, metadata={"help": "Longest completion in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient against the starting model (TRL default)."})
    format_weight: float = field(
        default=1.0, metadata={"help": "Weight of the format reward (<think>…</think><answer>valid</answer>)."}
    )
    accuracy_weight: float = field(
        default=1.0, metadata={"help": "Weight of the task accuracy reward against the trusted annotation."}
    )
    length_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the length rewards: a penalty for padding detections with extra boxes (VLM-R1's "
            "odLength) and a soft penalty for completions running into max_completion_length."
        },
    )
    overlong_buffer: int = field(
        default=32,
        metadata={
            "help": "Completions longer than max_completion_length - overlong_buffer tokens are penalised linearly "
            "up to -1 (DAPO's soft overlong punishment). 0 turns it off."
        },
    )
    human_feedback_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the human-feedback reward: agree with trusted answers, avoid rejected ones."},
    )
    rejection_penalty: float = field(
        default=-1.0, metadata={"help": "Added when an answer repeats one a reviewer rejected for that image."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _grpo_post_init(self)
        _check(self.start_from in RFT_STARTS, f"start_from must be one of {', '.join(RFT_STARTS)}.")
        weights = (self.format_weight, self.accuracy_weight, self.length_weight, self.human_feedback_weight)
        _check(all(w >= 0 for w in weights), "Reward weights must be >= 0 (0 leaves that reward out).")
        _check(any(w > 0 for w in weights), "All reward weights are 0: set at least accuracy_weight > 0.")
        _check(
            0 <= self.overlong_buffer < self.max_completion_length,
            f"overlong_buffer must be in [0, max_completion_length={self.max_completion_length}).",
        )
        _check(self.rejection_penalty <= 0, f"rejection_penalty must not be positive, got {self.rejection_penalty}.")


@dataclass
class EvalConfig:
    """Evaluation on held-out items: greedy annotation, then accuracy or distribution distance, mean IoU, mAP@0.5."""

    batch_size: int = field(default=16, metadata={"help": "Images per generate call."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest completion in tokens."})
    iou_threshold: float = field(default=0.5, metadata={"help": "IoU at which a box counts as found (mAP@0.5)."})
    split: str = field(default="eval", metadata={"help": "Snapshot split to evaluate on (held-out items: 'eval')."})
    include_base: bool = field(
        default=True, metadata={"help": "Also evaluate the untrained base model, as the reference to beat."}
    )

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1 and self.max_new_tokens >= 1, "batch_size and max_new_tokens must be >= 1.")
        _check(0 < self.iou_threshold <= 1, f"iou_threshold must be in (0, 1], got {self.iou_threshold}.")


def _visual_rft_defaults() -> RFTStageConfig:
    # Visual-RFT: GRPO from the base model with the format and accuracy rewards only.
    return RFTStageConfig(start_from="base", length_weight=0.0, human_feedback_weight=0.0, overlong_buffer=0)


SECTIONS: dict[str, type] = {
    "rise_cot": RiseCoTConfig,
    "filter": FilterConfig,
    "sft": SFTStageConfig,
    "rft": RFTStageConfig,
    "baseline_sft": SFTStageConfig,
    "visual_rft": RFTStageConfig,
    "evaluation": EvalConfig,
}


@dataclass
class PipelineConfig:
    """A whole RISE run: the base model, the data snapshot, where outputs go, and one section per stage."""

    model: str = field(
        default="Qwen/Qwen2-VL-2B-Instruct", metadata={"help": "Base model: Hub id or local model folder."}
    )
    data: str = field(default="", metadata={"help": "Training-data snapshot folder (from `rise train` or the app)."})
    output_dir: str = field(default="", metadata={"help": "Folder for every stage's outputs and stage markers."})
    rise_cot: RiseCoTConfig = field(default_factory=RiseCoTConfig, metadata={"help": "Stage 1, RISE-CoT."})
    filter: FilterConfig = field(default_factory=FilterConfig, metadata={"help": "Stage 2, reasoning filter."})
    sft: SFTStageConfig = field(default_factory=SFTStageConfig, metadata={"help": "Stage 2, SFT on reasoning."})
    rft: RFTStageConfig = field(default_factory=RFTStageConfig, metadata={"help": "Stage 2, RFT."})
    baseline_sft: SFTStageConfig = field(
        default_factory=lambda: SFTStageConfig(answers_only=True),
        metadata={"help": "Baseline: SFT on answers only."},
    )
    visual_rft: RFTStageConfig = field(
        default_factory=_visual_rft_defaults, metadata={"help": "Baseline: Visual-RFT (GRPO from the base model)."}
    )
    evaluation: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Held-out evaluation."})

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _section_from_dict(name, cls, value))

    def require_paths(self) -> None:
        """Raise a `ValueError` naming the fix when `data` or `output_dir` is missing."""
        _check(bool(self.model), "Set model, e.g. model: Qwen/Qwen2-VL-2B-Instruct or a local model folder.")
        _check(bool(self.data), "Set data to a training-data snapshot folder (made by `rise train` or the app).")
        _check(bool(self.output_dir), "Set output_dir to the folder where the stages write their outputs.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineConfig:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        _check(not unknown, f"Unknown pipeline config keys {unknown}; known: {known}.")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> PipelineConfig:
        """Read a YAML or JSON pipeline config file."""
        text = Path(path).read_text()
        values = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        _check(isinstance(values, dict), f"{path} must hold a mapping of config keys, e.g. `model: ...`.")
        return cls.from_dict(values or {})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    def with_overrides(self, overrides: list[str]) -> PipelineConfig:
        """A copy with `section.field=value` (or `field=value` for top-level fields) applied; values are YAML."""
        values = self.to_dict()
        for override in overrides:
            key, sep, raw = override.partition("=")
            _check(bool(sep) and bool(key.strip()), f"Override {override!r} must look like sft.max_steps=10.")
            target = values
            *parents, leaf = key.strip().split(".")
            for parent in parents:
                _check(
                    isinstance(target.get(parent), dict), f"Override {override!r}: {parent!r} is not a config section."
                )
                target = target[parent]
            _check(leaf in target, f"Override {override!r}: unknown field {leaf!r}; known: {sorted(target)}.")
            target[leaf] = yaml.safe_load(raw) if raw.strip() else None
        return PipelineConfig.from_dict(values)


def _section_from_dict(name: str, cls: type, values: dict[str, Any]) -> Any:
    if name == "visual_rft":
        base = dataclasses.asdict(_visual_rft_defaults())
    elif name == "baseline_sft":
        base = dataclasses.asdict(SFTStageConfig(answers_only=True))
    else:
        base = {}
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(types))
    _check(not unknown, f"Unknown fields {unknown} in the {name!r} section; known: {sorted(types)}.")
    coerced = {key: _coerce_number(f"{name}.{key}", value, types[key]) for key, value in values.items()}
    return cls(**{**base, **coerced})


def _coerce_number(name: str, value: Any, type_name: str) -> Any:
    """YAML reads `2e-6` (no dot) as text; numbers given as text become numbers where the field wants one."""
    if not isinstance(value, str) or not type_name.startswith(("float", "int")):
        return value
    try:
        return float(value) if type_name.startswith("float") else int(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}; e.g. {name.rsplit('.', 1)[-1]}: 2.0e-6") from None
