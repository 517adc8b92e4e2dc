"""Batched annotation: one prompt per image, left-padded batches through `generate`, parsed answers with confidence.

    model, processor = load_model_and_processor("models/tiny")
    results = annotate_images(model, processor, spec, [AnnotationInput(image)], GenerationSettings(batch_size=16))

Each result keeps the model's raw text, its chain of thought, the parsed answer in original-image pixels (or the
parse error) and a confidence score: the agreement among `num_samples` sampled answers (`rise.confidence`), or with
a single sample the mean probability the model gave the tokens it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList

from rise.confidence import pick_consensus
from rise.label_constraint import LabelAnswerConstraint, constrained_labels
from rise.parsing import parse_completion
from rise.prompts import annotation_messages
from rise.tasks import Answer, TaskSpec

Progress = Callable[[int, int], None]


@dataclass
class AnnotationInput:
    """One image to annotate; `query` is the referring expression of a grounding task."""

    image: Image.Image
    query: str | None = None


@dataclass
class GenerationSettings:
    """How `annotate_images` generates.

    > Batching

    batch_size: images per `generate` call. Larger batches are much faster until memory runs out.

    > Sampling

    max_new_tokens: the longest completion; a completion cut here usually fails to parse.
    min_new_tokens: suppress the end-of-sequence token until this many tokens; benchmarks set it to max_new_tokens
        so every run does the same work.
    temperature: 0 decodes greedily; above 0 samples.
    top_p: nucleus sampling threshold when sampling.
    repetition_penalty: 1.0 is off.
    num_samples: completions per image. Above 1 the kept answer is the one most samples agree with, and the
        confidence is their agreement; this needs temperature > 0.
    seed: seeds torch before generating, so a run can be repeated; None leaves the generator alone.

    > Answers

    constrain_labels: a single-label classification answer is decoded from the task's labels only
        (`rise.label_constraint`); the reasoning before it stays free. Off shows what the model writes unaided.
    """

    batch_size: int = 16
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_samples: int = 1
    seed: int | None = 0
    constrain_labels: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"min_new_tokens must be in [0, max_new_tokens={self.max_new_tokens}]")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {self.num_samples}")
        if self.num_samples > 1 and self.temperature == 0:
            raise ValueError(
                f"num_samples={self.num_samples} with greedy decoding gives {self.num_samples} identical answers. "
                "Set temperature > 0 (e.g. temperature=1.0) or num_samples=1."
            )

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


@dataclass
class Completion:
    """One generated text and the mean probability of its tokens under the model (before temperature/top-p)."""

    text: str
    mean_token_prob: float
    num_tokens: int


@dataclass
class PredictionResult:
    """What the model said about one image; `error` is set when no valid answer could be read from it."""

    raw_text: str
    cot: str | None
    answer: Answer | None
    error: str | None
    score: float | None
    format_ok: bool = False
    samples: list[str] = field(default_factory=list)


class _ChosenTokenLogProbs(LogitsProcessor):
    """Records the log-probability of each token `generate` picks, keeping one step of scores at a time.

    A logits processor sees step t's scores before the token is chosen, and the chosen token only at step t + 1 (as
    the last input id), so the log-softmax of step t waits one step for it; `finish` collects the final step. Custom
    processors run before the temperature and top-p warpers, so these are the model's own probabilities.
    """

    def __init__(self) -> None:
        self._pending: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._pending is not None:
            self.steps.append(self._pending.gather(1, input_ids[:, -1:]).squeeze(1))
        self._pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, generated: torch.Tensor) -> torch.Tensor:
        """(rows, generated length) log-probabilities of `generated`, the new tokens of the returned sequences."""
        if self._pending is not None and len(self.steps) < generated.shape[1]:
            self.steps.append(self._pending.gather(1, generated[:, len(self.steps)].unsqueeze(1)).squeeze(1))
        self._pending = None
        if not self.steps:
            return torch.zeros(generated.shape, dtype=torch.float32)
        return torch.stack(self.steps[: generated.shape[1]], dim=1).cpu()


def _end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = set(eos) if isinstance(eos, list | tuple) else {eos}
    return {i for i in ids if i is not None}


def generate_completions(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict]],
    images: Sequence[Image.Image | None],
    settings: GenerationSettings,
    answer_labels: Sequence[Sequence[str] | None] | None = None,
    *,
    answer_first: bool = False,
) -> list[list[Completion]]:
    """Generate `settings.num_samples` completions for each conversation in one left-padded `generate` call.

    Args:
        conversations: chat messages per example, each with at most one `{"type": "image"}` part.
        images: the image of each conversation, or None for a text-only one.
        answer_labels: per conversation, the labels its answer is restricted to (None: free), when
            `settings.constrain_labels` is on.
        answer_first: the prompts ask for the answer alone (no reasoning first), so a restricted answer is
            restricted from the first token.

    Returns:
        per conversation, its `num_samples` completions (special tokens removed).
    """
    tokenizer = processor.tokenizer
    texts = [processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    present = [image for image in images if image is not None]
    inputs = processor(text=texts, images=present or None, padding=True, return_tensors="pt")
    inputs = inputs.to(model.device)
    recorder = _ChosenTokenLogProbs()
    processors: list[Any] = []
    if settings.constrain_labels and answer_labels is not None and any(answer_labels):
        processors.append(LabelAnswerConstraint(
            tokenizer, answer_labels, end_ids=_end_token_ids(model, tokenizer),
            samples_per_prompt=settings.num_samples, answer_first=answer_first,
        ))  # fmt: skip
    # After the constraint, so a confidence is the probability among the answers the model could give.
    processors.append(recorder)
    sampling = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}
        if settings.do_sample
        else {"do_sample": False}
    )
    with torch.inference_mode():
        sequences = model.generate(
            **inputs,
            **sampling,
            max_new_tokens=settings.max_new_tokens,
            min_new_tokens=settings.min_new_tokens,
            repetition_penalty=settings.repetition_penalty,
            num_return_sequences=settings.num_samples,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,  # some checkpoints' configs switch the KV cache off (e.g. after gradient checkpointing)
            logits_processor=LogitsProcessorList(processors),
        )
    new_tokens = sequences[:, inputs["input_ids"].shape[1] :]
    log_probs = recorder.finish(new_tokens)
    generated = new_tokens.cpu()
    end_ids = torch.tensor(sorted(_end_token_ids(model, tokenizer)), dtype=generated.dtype)
    is_end = torch.isin(generated, end_ids)
    # A token counts up to and including the first end token; what follows is padding.
    before_end = (is_end.cumsum(dim=1) - is_end.long()) == 0
    texts_out = tokenizer.batch_decode(generated, skip_special_tokens=True)
    completions = []
    for row, text in enumerate(texts_out):
        mask = before_end[row]
        count = int(mask.sum())
        mean_prob = float(log_probs[row][mask].exp().mean()) if count else 0.0
        completions.append(Completion(text=text, mean_token_prob=mean_prob, num_tokens=count))
    k = settings.num_samples
    return [completions[i * k : (i + 1) * k] for i in range(len(conversations))]


def _result_from_samples(samples: list[Completion], spec: TaskSpec, image: Image.Image) -> PredictionResult:
    parsed = [parse_completion(s.text, spec, image.width, image.height) for s in samples]
    if len(samples) == 1:
        index, score = 0, samples[0].mean_token_prob
    else:
        index, score = pick_consensus([p.answer if p.error is None else None for p in parsed], spec)
    chosen = parsed[index]
    return PredictionResult(
        raw_text=samples[index].text,
        cot=chosen.cot,
        answer=chosen.answer,
        error=chosen.error,
        score=score,
        format_ok=chosen.format_ok,
        samples=[s.text for s in samples] if len(samples) > 1 else [],
    )


def _failed(reason: str) -> PredictionResult:
    return PredictionResult(raw_text="", cot=None, answer=None, error=reason, score=None)


def _annotate_batch(
    model: Any, processor: Any, spec: TaskSpec, batch: Sequence[AnnotationInput], settings: GenerationSettings
) -> list[PredictionResult]:
    conversations = [annotation_messages(spec, item.query) for item in batch]
    images = [item.image for item in batch]
    labels = constrained_labels(spec)
    try:
        samples = generate_completions(model, processor, conversations, images, settings, [labels] * len(batch))
    except (ValueError, OSError) as exc:
        # The processor rejects some images (an aspect ratio over 200, a truncated file PIL decodes lazily). Retry one
        # by one so a bad image costs only its own prediction.
        if len(batch) == 1:
            return [_failed(f"the model could not read this image: {exc}")]
        return [result for item in batch for result in _annotate_batch(model, processor, spec, [item], settings)]
    return [_result_from_samples(s, spec, image) for s, image in zip(samples, images, strict=True)]


def annotate_images(
    model: Any,
    processor: Any,
    spec: TaskSpec,
    inputs: Sequence[AnnotationInput],
    settings: GenerationSettings | None = None,
    progress: Progress | None = None,
) -> list[PredictionResult]:
    """Annotate `inputs` in batches of `settings.batch_size`; one `PredictionResult` per input, in order.

    Args:
        model / processor: from `rise.modeling.load_model_and_processor` (the processor pads on the left).
        spec (`TaskSpec`): what to ask for; the prompt comes from `rise.prompts.annotation_messages`.
        inputs (`Sequence[AnnotationInput]`): the images (and grounding queries).
        settings (`GenerationSettings`, *optional*): batching and sampling.
        progress (`Callable[[int, int], None]`, *optional*): called with (done, total) after each batch.

    Returns:
        `list[PredictionResult]`: never raises for a bad image or unparseable output; those come back with `error`.
    """
    settings = settings or GenerationSettings()
    if processor.tokenizer.padding_side != "left":
        raise ValueError("Batched generation needs left padding: set processor.tokenizer.padding_side = 'left'.")
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    results: list[PredictionResult] = []
    for start in range(0, len(inputs), settings.batch_size):
        results.extend(_annotate_batch(model, processor, spec, inputs[start : start + settings.batch_size], settings))
        if progress is not None:
            progress(len(results), len(inputs))
    return results
