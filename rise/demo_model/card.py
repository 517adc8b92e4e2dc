"""The demo base model's card: README.md in the model folder, saying what it was trained on, how, and how well."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rise.demo_model.label_lists import ATTRIBUTES

DEFAULT_COMMAND = "rise model build-demo assets/demo-model"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def metrics_table(metrics: dict[str, Any]) -> str:
    """The held-out perception metrics as a Markdown table, then the label-list table when measured."""
    caption, detection = metrics["caption"], metrics["detection"]
    grounding, classification = metrics["grounding"], metrics["classification"]
    rows = [
        ("caption: colour accuracy (per object)", caption["colour"]),
        ("caption: shape accuracy (per object)", caption["shape"]),
        ("caption: position accuracy (per object, 3×3 grid)", caption["position"]),
        ("caption: size accuracy (per object)", caption["size"]),
        ("caption: object count accuracy", caption["count"]),
        ("detection: matched mean IoU", detection["mean_iou"]),
        ("detection: objects found at IoU > 0.5 with the right label", detection["recall_at_50"]),
        ("grounding (named object): mean IoU", grounding["mean_iou"]),
        ("grounding (named object): IoU > 0.5 rate", grounding["iou_at_50"]),
        ("attribute classification accuracy", classification["accuracy"]),
        ("well-formed `<think>…</think><answer>…</answer>` (detection)", detection["format_ok"]),
    ]
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_pct(value)} |" for name, value in rows]
    if metrics.get("label_lists"):
        lines += ["", label_list_table(metrics["label_lists"], metrics.get("label_lists_unconstrained"))]
    return "\n".join(lines)


def _label_list_values(label_lists: dict[str, Any]) -> list[str]:
    attribute, defined, undefined = label_lists["attribute"], label_lists["defined"], label_lists["undefined"]
    mood, shape = label_lists["mood"], label_lists["shape"]
    in_list = (attribute["in_list"] + defined["in_list"] + undefined["in_list"]) / 3
    by_attribute = defined.get("by_attribute", {})
    per_attribute = " / ".join(_pct(by_attribute[a]["accuracy"]) if a in by_attribute else "–" for a in ATTRIBUTES)
    values: list[float | str] = [
        in_list, defined["accuracy"], per_attribute, attribute["accuracy"], undefined["in_list"],
        f"{_pct(mood['greedy']['in_list'])} / {_pct(mood['sampled']['in_list'])}",
        f"{_pct(mood['greedy']['top_share'])} / {_pct(mood['sampled']['top_share'])}",
        mood["greedy"]["accuracy"], shape["in_list"], shape["accuracy"],
    ]  # fmt: skip
    return [value if isinstance(value, str) else _pct(value) for value in values]


LABEL_LIST_METRICS = (
    "label lists never seen in training: answer is one of the listed labels",
    "label lists: accuracy when the prompt defines each label by an attribute",
    f"the same, labels defined by {' / '.join(ATTRIBUTES)}",
    "label lists: accuracy when the attribute word is listed among made-up labels",
    "label lists: answer is listed when nothing decides it (made-up labels)",
    "mood (a rule it was never taught): answer is listed, greedy / sampled",
    "mood: share of the most frequent answer, greedy / sampled",
    "mood: accuracy, greedy (chance 0.33)",
    "lone object's shape as circle / square / triangle / diamond: answer is listed",
    "lone object's shape: accuracy (chance 0.25)",
)


def label_list_table(label_lists: dict[str, Any], unconstrained: dict[str, Any] | None = None) -> str:
    """The held-out label-list metrics (`rise.demo_model.label_list_metrics`) as a Markdown table: as the app
    decodes answers (from the listed labels only), and as the model writes them unaided when that was measured."""
    columns = [_label_list_values(label_lists)]
    header = "| label-list metric | as the app decodes (from the list) |"
    if unconstrained:
        columns.append(_label_list_values(unconstrained))
        header += " the model alone |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {' | '.join([name, *values])} |" for name, *values in zip(LABEL_LIST_METRICS, *columns, strict=True)]
    return "\n".join(lines)


def _mix_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{kind} {weight:g}" for kind, weight in mix.items())


def rebuild_command(run: dict[str, Any]) -> str:
    """The command that makes a recorded run again. Runs recorded before the position loss existed trained without
    it, which the option's default no longer says."""
    command = run.get("command") or DEFAULT_COMMAND
    if "position_loss_weight" not in (run.get("config") or {}) and "--position-loss-weight" not in command:
        command += " --position-loss-weight 0"
    return command


def _metrics_text(result: dict[str, Any]) -> str:
    config, metrics = result["config"], result["metrics"]
    return (
        f"Measured on {metrics['images']} held-out scenes per prompt type (seed {config['eval_seed']}), greedy "
        "decoding through the app's annotation path (`rise.demo_model.metrics`); the label-list rows on "
        f"{(metrics.get('label_lists') or {}).get('items', 0)} questions each, with label names training never used "
        "(`rise.demo_model.label_list_metrics`):\n\n" + metrics_table(metrics)
        if metrics
        else "Not measured (built with evaluation switched off)."
    )


METRICS_HEADING, AFTER_METRICS_HEADING = "\n## Metrics\n", "\n## Rebuild\n"


def rewrite_metrics_section(out_dir: Path, result: dict[str, Any]) -> Path:
    """Replace only the Metrics section of `out_dir/README.md` with `result`'s metrics, keeping the rest of the card
    as it was written when the model was built (the training-data text describes that build, not today's code); a
    card without that section is written whole."""
    path = out_dir / "README.md"
    text = path.read_text() if path.is_file() else ""
    start, end = text.find(METRICS_HEADING), text.find(AFTER_METRICS_HEADING)
    if start < 0 or end < start:
        return write_model_card(out_dir, result)
    path.write_text(f"{text[:start]}{METRICS_HEADING}\n{_metrics_text(result)}\n{text[end:]}")
    return path


def write_model_card(out_dir: Path, result: dict[str, Any]) -> Path:
    """Write `out_dir/README.md` from a `train_demo_model` result."""
    config, training = result["config"], result["training"]
    metrics_text = _metrics_text(result)
    decoder = (
        f"hidden {config['hidden_size']}, {config['num_layers']} layers, intermediate {config['intermediate_size']}, "
        f"{config['num_heads']} heads / {config['num_kv_heads']} KV heads, tied embeddings"
    )
    mix = _mix_text(config["mix"])
    earlier = result.get("earlier") or []
    # A model trained on from another one is rebuilt by running the commands in order.
    rebuild = "\n".join(rebuild_command(run) for run in [*earlier, result])
    # Most recent first, as the sentences go back in time.
    earlier_runs = "".join(
        f" Before that, `{rebuild_command(run)}`: {run['training']['steps']} steps "
        f"({run['training']['examples']:,} examples) in {run['training']['seconds'] / 60:.1f} minutes, peak learning "
        f"rate {run['config']['learning_rate']:g}, mix {_mix_text(run['config']['mix'])}."
        for run in reversed(earlier)
        if run.get("training") and run.get("config")
    )
    choice_loss = (
        " (a classification answer's tokens on the logits the app's label constraint leaves, "
        "`rise.label_constraint`: the choice among the listed labels as the app decodes it)"
        if config.get("label_choice_loss")
        else ""
    )
    text = f"""# RISE Annotate demo base model

A {result["parameters"] / 1e6:.1f} M-parameter Qwen2-VL-architecture model (`Qwen2VLForConditionalGeneration`),
trained from scratch on synthetic 64×64 scenes of coloured shapes (`rise.synthetic`) for **perception only**. It is
the demo projects' default model: it describes what it sees in `<think>…</think>` and answers in
`<answer>…</answer>`, in the prompts the app uses (`rise.prompts`).

## Intended use

The offline demo (`make demo`), tests and the learning benchmarks (`bench/learning.py`). It knows no project's
labelling rule: not the demo's "mood" classes (sunny / stormy / balanced) and not the context-driven query "the
object that differs from the others". Those are what RISE training has
to teach it. It is not a general-purpose model and has never seen a photograph.

## Architecture

| part | size |
|---|---|
| text decoder | {decoder} |
| vision encoder | depth {config["vision_depth"]}, width {config["vision_embed_dim"]}, patch 8 (a 64×64 image is 16 \
tokens after the 2×2 merge) |
| tokenizer | byte-level BPE, vocabulary {config["vocab_size"]}, trained offline on the project's own prompts and \
answers (`rise.tiny_model`) |

## Training data

Fresh synthetic scenes every step (1–4 objects; the four default shapes; six colours; small or large), never
repeated, asked in the app's own prompts (`rise.demo_model.examples`). Example mix: {mix}.

- description: a short request to describe the objects, answered with the caption alone (these short examples are
  what gets a model trained from scratch reading the image at all);
- detection: caption, then every object's shape label and box (Qwen2-VL 0–1000 frame);
- grounding: caption, then the box of the one object a query names by attributes ("the red circle"), size
  ("the largest object") or position ("the leftmost object");
- named-grounding (where the mix has it): as grounding, with the reasoning ending on the object the query names, in
  the caption's words ("The red circle at the top is the leftmost object."), so the box is the box of the object
  the reasoning named last; half of its scenes are alike objects with one differing (colour or shape), and
  named-reasoning asks the same in the RISE-CoT reasoning prompt;
- alike-scenes (where the mix has it): description or detection of three or four objects alike but one;
- classification: caption, then a label from the prompt's list. A share of the lists are attribute words (a lone
  object's colour, shape, size or grid position, or the number of objects); the rest are fresh made-up lists from pools
  too large to memorise (`rise.demo_model.label_lists`): the attribute word among made-up names, made-up names the
  prompt defines by an attribute ("the object is red: zorpa."; the reasoning then ends by quoting the line that
  holds). Lists nothing decides are measured below but never trained: an earlier build that fitted answers drawn
  at random learned a new rule far worse (the reading: it had learnt that a label need not depend on the image);
- defined (where the mix has it): classification over made-up names the prompt defines, as above, asked on its own;
  defined-shape the same about a lone object's shape only (lines such as "the object is a square: kelmi.");
- RISE-CoT reasoning prompts (image + answer → the caption) and reconstruction prompts (scrubbed caption + image →
  answer), so the model can take part in RISE's closed loop;
- recall (where the mix has it): text only, repeat a list of made-up names or give the value a key has in a
  `key: value.` table (`rise.demo_model.recall`), the copy and the lookup a prompt's label definitions need.

The caption lists the object count, then each object's size, colour, shape and coarse position on a 3×3 grid in
reading order.

## Training

Supervised learning of the completion tokens{choice_loss} plus two auxiliary losses on linear heads over the image
tokens (`rise.demo_model.vision_targets`; the heads are not part of the saved model). With weight
{config["vision_loss_weight"]:g}, one names the colour and shape of the object in each merged image token's cell
(trained on captions alone, the from-scratch vision tower kept where objects were but lost their colour). With
weight {config.get("position_loss_weight", 0):g}, the other reads the decoder's hidden state halfway up at each image
token and gives the cell's centre and the box of the object covering it (with rotary positions only, the model
otherwise writes boxes of the right size in the wrong place). fp32 on CPU: AdamW (β 0.9/0.95, weight decay
{config["weight_decay"]}), peak learning rate {config["learning_rate"]:g}, {config["warmup_steps"]} warmup steps,
cosine to {config["min_lr_ratio"]:g}× over the budget, gradient clipping {config["grad_clip"]:g}, batch
{config["batch_size"]}; a curriculum grows the objects per scene from one to four over the first
{config["curriculum_steps"]} steps. Run: {training["steps"]} steps ({training["examples"]:,} examples) in
{training["seconds"] / 60:.1f} minutes, {training["examples_per_second"]:.0f} examples/s, final loss
{training["final_loss"]}.{earlier_runs}

## Metrics

{metrics_text}

## Rebuild

```
{rebuild}
```

Seed {config["seed"]}; the data stream is a pure function of the seed and step, but the number of steps that fit in
the time budget depends on the machine, so a rebuild on another machine gives a similar, not identical, model. The
earlier commands ran on the example code of their day (`rise.demo_model.examples` and `rise.demo_model.label_lists`
have gained example kinds and question kinds since), so today's code does not replay their data streams exactly.
"""
    path = out_dir / "README.md"
    path.write_text(text)
    return path
