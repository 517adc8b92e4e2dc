"""Train the demo base model from scratch: a small Qwen2-VL that sees, on perception examples only.

    python -c "from rise.demo_model import DemoModelConfig, train_demo_model; train_demo_model('models/demo')"
    rise model build-demo assets/demo-model --minutes 30

Plain supervised training in one process, no TRL: fresh synthetic examples every step (`rise.demo_model.examples`),
encoded without the processor's per-example overhead (`rise.demo_model.batching`), AdamW with linear warmup and a
cosine decay that follows whichever budget runs out first, steps or wall-clock minutes, so a run on a busy machine
still ends with a decayed learning rate. The result is an ordinary model folder (`rise.modeling` loads it) with a
model card.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise.demo_model.batching import IGNORE_INDEX, BatchEncoder
from rise.demo_model.examples import DEFAULT_MIX, PerceptionExample, check_mix, make_example, sample_kind
from rise.demo_model.vision_targets import CellHead, cell_targets, stack_targets
from rise.tiny_model import TinyModelConfig, build_tiny_model

Progress = Callable[[dict[str, Any]], None]
SUMMARY_FILE = "training_summary.json"
# The config fields that fix the model's shape (a continued run keeps its starting model's).
SIZE_FIELDS = (
    "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "vision_depth", "vision_embed_dim",
    "vision_heads", "vocab_size",
)  # fmt: skip


@dataclass
class DemoModelConfig:
    """What the demo base model is and how it is trained.

    > Model (rise.tiny_model.TinyModelConfig fields)

    hidden_size / num_layers / num_heads / num_kv_heads / intermediate_size / vision_depth / vision_embed_dim /
    vision_heads / vocab_size

    > Training

    max_steps / max_minutes / batch_size / learning_rate / min_lr_ratio / warmup_steps / weight_decay / grad_clip /
    curriculum_steps / vision_loss_weight / position_loss_weight / label_choice_loss / mix / seed / threads

    > Evaluation

    eval_images / eval_seed
    """

    hidden_size: int = field(default=128, metadata={"help": "Text decoder width."})
    num_layers: int = field(default=4, metadata={"help": "Text decoder layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    num_kv_heads: int = field(default=2, metadata={"help": "Key/value heads."})
    intermediate_size: int = field(default=512, metadata={"help": "Decoder MLP width."})
    vision_depth: int = field(default=2, metadata={"help": "Vision encoder layers."})
    vision_embed_dim: int = field(default=128, metadata={"help": "Vision encoder width."})
    vision_heads: int = field(default=4, metadata={"help": "Vision attention heads."})
    vocab_size: int = field(
        default=768,
        metadata={"help": "BPE vocabulary; 768 makes every colour, shape and position word one token."},
    )
    max_steps: int = field(default=20_000, metadata={"help": "Optimizer steps at most."})
    max_minutes: float | None = field(
        default=30.0, metadata={"help": "Wall-clock budget for the training loop; None: steps only."}
    )
    batch_size: int = field(default=24, metadata={"help": "Examples per step."})
    micro_batches: int = field(
        default=2, metadata={"help": "Forward passes per step, over examples sorted by length (less padding)."}
    )
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak AdamW learning rate."})
    min_lr_ratio: float = field(default=0.05, metadata={"help": "Final learning rate as a share of the peak."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warmup steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on norms and biases)."})
    grad_clip: float = field(default=1.0, metadata={"help": "Clip the gradient norm at this value; 0 turns it off."})
    full_prompt_share: float = field(
        default=0.3,
        metadata={
            "help": "Share of examples trained with the whole prompt; the rest leave out its constant answer-format "
            "instruction but keep its positions, which halves their cost (evaluation always uses the whole prompt)."
        },
    )
    curriculum_steps: int = field(
        default=1500,
        metadata={"help": "Steps over which the most objects per scene grows from one to four."},
    )
    vision_loss_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the auxiliary loss that has each merged image token name the colour and shape in its "
            "cell (rise.demo_model.vision_targets); 0 trains on the captions alone."
        },
    )
    position_loss_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the auxiliary loss that has the decoder's hidden state at each image token, "
            "halfway up, give the token's cell centre and the box of the object covering it "
            "(rise.demo_model.vision_targets); 0 leaves boxes to the answers alone."
        },
    )
    label_choice_loss: bool = field(
        default=False,
        metadata={
            "help": "Train a classification answer's tokens on the logits the app's label constraint leaves "
            "(rise.label_constraint): the choice among the listed labels as the app decodes it, instead of the "
            "spelling of labels the model has never seen."
        },
    )
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX), metadata={"help": "Example kinds."})
    seed: int = field(default=0, metadata={"help": "Seeds the weights and the training stream."})
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads; None leaves torch's choice (one per core)."}
    )
    log_every: int = field(default=50, metadata={"help": "Report progress every this many steps."})
    eval_images: int = field(default=200, metadata={"help": "Held-out scenes per prompt type for the metrics."})
    eval_seed: int = field(default=10_000, metadata={"help": "Seed of the held-out scenes (never trained on)."})

    def __post_init__(self) -> None:
        check_mix(self.mix)
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("max_steps and batch_size must be at least 1")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive or None, got {self.max_minutes}")
        if not 0 <= self.full_prompt_share <= 1:
            raise ValueError(f"full_prompt_share must be within [0, 1], got {self.full_prompt_share}")
        if self.vision_loss_weight < 0 or self.position_loss_weight < 0:
            raise ValueError("vision_loss_weight and position_loss_weight must be >= 0")
        if self.learning_rate <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("learning_rate must be positive and min_lr_ratio within [0, 1]")
        self.tiny_config()  # the model sizes fail here, before any training, if they do not fit together

    def tiny_config(self) -> TinyModelConfig:
        return TinyModelConfig(
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            vision_depth=self.vision_depth,
            vision_embed_dim=self.vision_embed_dim,
            vision_heads=self.vision_heads,
            vocab_size=self.vocab_size,
            seed=self.seed,
        )


def learning_rate_at(config: DemoModelConfig, step: int, progress: float) -> float:
    """Linear warmup over `warmup_steps`, then cosine from the peak to `min_lr_ratio` of it as `progress` (0..1,
    the larger of the step and time fractions) goes to 1."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    floor = config.learning_rate * config.min_lr_ratio
    return floor + (config.learning_rate - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def max_objects_at(config: DemoModelConfig, step: int) -> int:
    """The curriculum: one object per scene at first, up to four by `curriculum_steps`."""
    if config.curriculum_steps <= 0:
        return 4
    return min(4, 1 + int(3 * step / config.curriculum_steps + 0.5))


def _optimizer(model: torch.nn.Module, config: DemoModelConfig, head: CellHead | None) -> torch.optim.AdamW:
    decay, no_decay = [], []
    named = [*model.named_parameters(), *(head.named_parameters(prefix="cell_head") if head else [])]
    for name, parameter in named:
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95))


def training_batch(config: DemoModelConfig, step: int) -> list:
    """The examples of one step, a pure function of the seed and the step (a resumed run sees the same data)."""
    rng = np.random.default_rng([config.seed, step])
    max_objects = max_objects_at(config, step)
    examples = []
    for i in range(config.batch_size):
        example = make_example(sample_kind(rng, config.mix), [config.seed, step, i], max_objects)
        example.elide = bool(rng.random() >= config.full_prompt_share)
        examples.append(example)
    return examples


def _text_length(example: PerceptionExample) -> int:
    """Characters of prompt and completion, a cheap stand-in for the token count when sorting by length."""
    prompt = sum(len(part.get("text") or "") for m in example.messages for part in m["content"])
    return prompt + len(example.completion) - (len(example.elidable or "") if example.elide else 0)


def _accumulate_gradients(
    model: Any,
    encoder: BatchEncoder,
    examples: list[PerceptionExample],
    micro_batches: int,
    head: CellHead | None = None,
    weights: tuple[float, float] = (0.0, 0.0),
) -> float:
    """Backpropagate the mean completion-token loss of `examples` (plus, with a `head`, the cell losses of their
    images weighted by `weights`: vision, position), in micro-batches of similar length (less padding); returns the
    language-model loss."""
    lengths = [_text_length(e) for e in examples]
    order = sorted(range(len(examples)), key=lengths.__getitem__)
    chunks = [list(chunk) for chunk in np.array_split(np.array(order), micro_batches) if len(chunk)]
    groups = [[examples[i] for i in chunk] for chunk in chunks]
    batches = [encoder.encode(group) for group in groups]
    total_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
    with_images = max(1, sum(e.image is not None for e in examples))
    total = 0.0
    for group, batch in zip(groups, batches, strict=True):
        labels = batch.pop("labels")
        choices = batch.pop("answer_choices", [])
        outputs = model.model(**batch, output_hidden_states=head is not None)
        hidden = outputs.last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        # The vocabulary projection only where there is a target: a tenth of the compute saved on prompt tokens.
        logits = model.lm_head(hidden[keep])
        if choices:
            logits = logits + _choice_mask(choices, keep, logits.shape[-1])
        # Summed here and divided by the whole batch's token count, so every token weighs the same whatever its
        # micro-batch.
        loss = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum") / total_tokens
        total += loss.item()
        if head is not None and outputs.image_outputs is not None:
            # The cell losses are means over this micro-batch's images, weighted by their share of the step's images.
            share = sum(e.image is not None for e in group) / with_images
            loss = loss + share * _cell_loss(model, head, outputs, group, batch, encoder.image_token_id, weights)
        loss.backward()
    return total


def _choice_mask(choices: list[tuple[int, int, list[int]]], keep: torch.Tensor, vocab: int) -> torch.Tensor:
    """An additive logit mask over the target tokens `keep` selects: -inf on every token the label constraint rules
    out at a listed answer's positions (`choices`: row, label position, allowed ids), 0 elsewhere. There the loss
    becomes the cross-entropy of the distribution the app decodes answers from."""
    index = keep.flatten().cumsum(0) - 1  # each kept target's row in logits (kept targets in row-major order)
    mask = torch.zeros(int(keep.sum()), vocab)
    width = keep.shape[1]
    for row, position, ids in choices:
        target = position - 1  # the token at label position p is predicted from the hidden state at p - 1
        if 0 <= target < width and keep[row, target]:
            k = int(index[row * width + target])
            mask[k] = float("-inf")
            mask[k, ids] = 0.0
    return mask


def _cell_loss(
    model: Any,
    head: CellHead,
    outputs: Any,
    group: list[PerceptionExample],
    batch: dict,
    image_token_id: int,
    weights: tuple[float, float],
) -> torch.Tensor:
    """The cell head's weighted losses over the images of one micro-batch (in the order the encoder placed them):
    on the merged vision features and on the decoder's hidden state halfway up at the image tokens."""
    merge = model.config.vision_config.spatial_merge_size
    scenes = [e.scene for e in group if e.image is not None]
    grids = batch["image_grid_thw"].tolist()
    targets = stack_targets(
        [cell_targets(scene, grid[1] // merge, grid[2] // merge) for scene, grid in zip(scenes, grids, strict=True)]
    )
    vision_weight, position_weight = weights
    loss = torch.zeros(())
    if vision_weight > 0:
        loss = loss + vision_weight * head.vision_loss(torch.cat(outputs.image_outputs.pooler_output), targets)
    if position_weight > 0:
        # Halfway up: the layers above can still attend to what this layer holds at the image tokens.
        middle = outputs.hidden_states[len(outputs.hidden_states) // 2]
        loss = loss + position_weight * head.position_loss(middle[batch["input_ids"] == image_token_id], targets)
    return loss


def train_loop(
    model: Any, processor: Any, config: DemoModelConfig, progress: Progress | None = None
) -> dict[str, Any]:
    """Train `model` in place; returns the run's statistics (steps, seconds, examples per second, last loss)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    encoder = BatchEncoder(processor, answer_choices=config.label_choice_loss)
    with_head = config.vision_loss_weight > 0 or config.position_loss_weight > 0
    head = CellHead(model.config.text_config.hidden_size) if with_head else None
    optimizer = _optimizer(model, config, head)
    model.train()
    model.config.use_cache = False
    budget = None if config.max_minutes is None else config.max_minutes * 60
    started = time.perf_counter()
    losses: list[float] = []
    step = 0
    while step < config.max_steps:
        elapsed = time.perf_counter() - started
        if budget is not None and elapsed >= budget:
            break
        fraction = max(step / config.max_steps, elapsed / budget if budget else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, step, fraction)
        optimizer.zero_grad(set_to_none=True)
        loss = _accumulate_gradients(
            model,
            encoder,
            training_batch(config, step),
            config.micro_batches,
            head,
            (config.vision_loss_weight, config.position_loss_weight),
        )
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss)
        step += 1
        if progress is not None and (step % config.log_every == 0 or step == config.max_steps):
            seconds = time.perf_counter() - started
            progress(
                {
                    "step": step,
                    "loss": float(np.mean(losses[-config.log_every :])),
                    "lr": optimizer.param_groups[0]["lr"],
                    "max_objects": max_objects_at(config, step),
                    "examples_per_second": step * config.batch_size / seconds,
                    "seconds": seconds,
                }
            )
    model.eval()
    model.config.use_cache = True
    seconds = time.perf_counter() - started
    return {
        "steps": step,
        "examples": step * config.batch_size,
        "seconds": round(seconds, 1),
        "examples_per_second": round(step * config.batch_size / seconds, 1) if seconds else 0.0,
        "final_loss": round(float(np.mean(losses[-config.log_every :])), 4) if losses else None,
    }


def starting_summary(folder: str | Path) -> dict[str, Any]:
    """The training summary of a demo model folder to continue from; ValueError when it is not one."""
    summary = Path(folder) / SUMMARY_FILE
    if not summary.is_file():
        raise ValueError(f"no demo model folder (with its {SUMMARY_FILE}) at {folder} to continue from.")
    return json.loads(summary.read_text())


def evaluate_model_folder(model: Any, processor: Any, config: DemoModelConfig) -> dict[str, Any]:
    """The card's held-out metrics: perception, then whether answers come from the prompt's label list, as the app
    decodes them (from the listed labels only) and as the model writes them unaided."""
    from rise.demo_model.label_list_metrics import evaluate_label_lists
    from rise.demo_model.metrics import evaluate_perception

    metrics = evaluate_perception(model, processor, n_images=config.eval_images, seed=config.eval_seed)
    metrics["label_lists"] = evaluate_label_lists(model, processor, n_items=config.eval_images)
    metrics["label_lists_unconstrained"] = evaluate_label_lists(
        model, processor, n_items=config.eval_images, constrain_labels=False
    )
    return metrics


def remeasure_demo_model(folder: str | Path) -> dict[str, Any]:
    """Measure a built demo model folder's held-out metrics again with the current metrics code, and rewrite its
    training summary and the card's Metrics section with them (the training record is kept as it is)."""
    from rise.demo_model.card import rewrite_metrics_section
    from rise.modeling import load_model_and_processor

    folder = Path(folder)
    result = starting_summary(folder)
    model, processor = load_model_and_processor(str(folder), device="cpu", dtype="float32")
    result["metrics"] = evaluate_model_folder(model, processor, DemoModelConfig(**result["config"]))
    (folder / SUMMARY_FILE).write_text(json.dumps(result, indent=1) + "\n")
    rewrite_metrics_section(folder, result)
    return result


def _write_record(folder: Path, result: dict[str, Any]) -> None:
    """The folder's training summary and its card, both from `result`."""
    from rise.demo_model.card import write_model_card

    (folder / SUMMARY_FILE).write_text(json.dumps(result, indent=1) + "\n")
    write_model_card(folder, result)


def train_demo_model(
    out_dir: str | Path,
    config: DemoModelConfig | None = None,
    *,
    progress: Progress | None = None,
    evaluate: bool = True,
    command: str | None = None,
    continue_from: str | Path | None = None,
) -> dict[str, Any]:
    """Build, train, evaluate and save the demo base model to `out_dir` with its model card.

    Args:
        out_dir (`str` or `Path`): the model folder (created; existing model files are overwritten).
        config (`DemoModelConfig`, *optional*): sizes and training budget.
        progress (`Callable[[dict], None]`, *optional*): called with training statistics every `log_every` steps.
        evaluate (`bool`): measure held-out perception metrics (written to the card and `metrics.json`).
        command (`str`, *optional*): the command that ran this, recorded in the card so the folder can be rebuilt.
        continue_from (`str` or `Path`, *optional*): a demo model folder to go on training instead of starting from
            random weights (its sizes are kept: they replace the model sizes in `config`). Its training record is
            kept in the new card, so the folder still says every command that made it.

    Returns:
        `dict`: `{"training": ..., "metrics": ..., "parameters": ..., "path": ...}`.
    """
    from rise.modeling import load_model_and_processor

    config = config or DemoModelConfig()
    out_dir = Path(out_dir)
    earlier: list[dict[str, Any]] = []
    if continue_from is None:
        build_tiny_model(out_dir, config.tiny_config())
        source = out_dir
    else:
        source = Path(continue_from)
        before = starting_summary(source)
        # What made the starting point, oldest first; its sizes are the model's, so the card describes it truly.
        earlier = [*before.get("earlier", []), {k: before.get(k) for k in ("command", "config", "training")}]
        config = dataclasses.replace(config, **{name: before["config"][name] for name in SIZE_FIELDS})
    model, processor = load_model_and_processor(str(source), device="cpu", dtype="float32")
    parameters = sum(p.numel() for p in model.parameters())
    training = train_loop(model, processor, config, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    metrics = None
    if evaluate:
        metrics = evaluate_model_folder(model, processor, config)
    result = {
        "path": str(out_dir),
        "parameters": parameters,
        "config": dataclasses.asdict(config),
        "training": training,
        "metrics": metrics,
        "command": command,
        "earlier": earlier,
    }
    _write_record(out_dir, result)
    return result
