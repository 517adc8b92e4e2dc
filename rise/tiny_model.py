"""Build a small Qwen2-VL-architecture model that works offline: random weights, its own tokenizer and processor.

No weights can be downloaded where the tests and the demo run, so the project makes its own models: the real
`Qwen2VLForConditionalGeneration` architecture at toy sizes, with a byte-level BPE tokenizer trained here on text
the project writes (prompts, labels, answers in the model's output format) and Qwen's special tokens and chat
template. The result is an ordinary model folder: `AutoModelForImageTextToText.from_pretrained(path)` and
`rise.modeling.load_model_and_processor(path)` load it like any Hub checkpoint.

    python -c "from rise.tiny_model import build_tiny_model; build_tiny_model('models/tiny')"
    rise model build-tiny models/tiny
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from rise.parsing import format_answer
from rise.processing import Qwen2VLImageProcessorOnly
from rise.prompts import annotation_messages, reasoning_messages
from rise.synthetic import (
    ALL_SHAPES,
    RULES,
    caption,
    detection_answer,
    generate_scene,
    generate_scene_for_rule,
    grounding_example,
)
from rise.tasks import TaskSpec, TaskType

# Qwen2-VL's special tokens, in Qwen's order. They take the first ids of the vocabulary.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL-Instruct's chat template: an image part becomes <|vision_start|><|image_pad|><|vision_end|>, which the
# processor expands to one <|image_pad|> per merged patch.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class TinyModelConfig:
    """Sizes of a tiny Qwen2-VL model and its tokenizer.

    > Text decoder

    hidden_size / num_layers / num_heads / num_kv_heads / intermediate_size: the decoder's dimensions.
    mrope_section: how the rotary dimensions split over (time, height, width); must sum to head_dim / 2. `None`
        derives it in Qwen's 1 : 1.5 : 1.5 proportion (head_dim 16 -> [2, 3, 3], 128 -> [16, 24, 24]).

    > Vision encoder

    vision_depth / vision_embed_dim / vision_heads: the ViT's dimensions.
    patch_size: pixels per patch side, in both the vision config and the image processor. With 8 and the 2x2 merge,
        a 64x64 image gives 16 image tokens (Qwen's default 14 would give it only 4).
    min_pixels / max_pixels: the image processor resizes every image into this pixel budget.

    > Tokenizer

    vocab_size: byte-level BPE vocabulary size, special tokens included (at least 256 + the special tokens).
    extra_text: more text to train the tokenizer on, e.g. a project's own prompts and captions.

    initializer_range: standard deviation of the random weights. Transformers' 0.02 makes an untrained model write
        the same token over and over; 0.2 makes it write varied text, which tests of parsing and batching need.
    seed: seeds the random weights; the same config and seed give the same model.
    """

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    mrope_section: tuple[int, int, int] | None = None
    max_position_embeddings: int = 4096
    vision_depth: int = 2
    vision_embed_dim: int = 64
    vision_heads: int = 4
    patch_size: int = 8
    min_pixels: int = 16 * 16
    max_pixels: int = 128 * 128
    vocab_size: int = 512
    extra_text: tuple[str, ...] = field(default_factory=tuple)
    initializer_range: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}")
        if self.vision_embed_dim % self.vision_heads:
            raise ValueError(
                f"vision_embed_dim {self.vision_embed_dim} must be divisible by vision_heads {self.vision_heads}"
            )
        half_head_dim = self.hidden_size // self.num_heads // 2
        if self.mrope_section is None:
            temporal = half_head_dim // 4
            height = (half_head_dim - temporal) // 2
            self.mrope_section = (temporal, height, half_head_dim - temporal - height)
        if len(self.mrope_section) != 3 or sum(self.mrope_section) != half_head_dim:
            raise ValueError(
                f"mrope_section {list(self.mrope_section)} must be three numbers summing to head_dim / 2 = "
                f"{half_head_dim}; set mrope_section=None to derive it."
            )
        if self.vocab_size < 256 + len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes + special tokens)")


# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer


def _message_text(messages: list[dict]) -> str:
    return "\n".join(part["text"] for message in messages for part in message["content"] if part.get("type") == "text")


def tokenizer_corpus(extra_text: tuple[str, ...] = (), *, seed: int = 0, n_scenes: int = 400) -> Iterator[str]:
    """Text the project writes to and expects from its models, so common words and tags become single tokens.

    For synthetic scenes (`rise.synthetic`), of every task type: the annotation and reasoning prompts
    (`rise.prompts`), the caption as reasoning and the answer in the model's output format (`rise.parsing`).
    Deterministic for a given `seed`, so the same config always trains the same tokenizer.
    """
    yield from extra_text
    yield "You are a helpful assistant.\nsystem\nuser\nassistant\n"
    yield " ".join(str(n) for n in range(1001))
    rules = list(RULES.values())
    for i in range(n_scenes):
        scene_seed = seed * 1_000_003 + i
        query = None
        if i % 3 == 0:
            rule = rules[(i // 3) % len(rules)]
            scene, answer = generate_scene_for_rule(rule, scene_seed)
            spec = TaskSpec(TaskType.classification, labels=rule.labels)
        elif i % 3 == 1:
            scene = generate_scene(scene_seed)
            spec, answer = TaskSpec(TaskType.detection, labels=ALL_SHAPES), detection_answer(scene)
        else:
            scene, spec = generate_scene(scene_seed), TaskSpec(TaskType.grounding)
            try:
                query, answer = grounding_example(scene, i)
            except ValueError:  # no query picks out exactly one object in this scene
                continue
        width, height = scene.image.size
        answer_text = format_answer(answer, spec, width, height)
        yield _message_text(annotation_messages(spec, query))
        yield _message_text(reasoning_messages(spec, answer_text, query))
        yield f"<think>{caption(scene)}</think><answer>{answer_text}</answer>"


def train_tokenizer(config: TinyModelConfig) -> Qwen2Tokenizer:
    """Train a byte-level BPE with Qwen2's pre-tokenizer on the project's text and wrap it as a `Qwen2Tokenizer`."""
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(config.extra_text, seed=config.seed), trainer=trainer)

    # The trained vocabulary and merges seed a `Qwen2Tokenizer`, which rebuilds the same BPE pipeline and saves in
    # the format Qwen checkpoints use.
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",  # the end of an assistant turn, as in Qwen2-VL-Instruct
        pad_token="<|endoftext|>",
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_end|>")],
        model_max_length=config.max_position_embeddings,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------------------------------------------------------------
# Model


def build_processor(config: TinyModelConfig) -> Qwen2VLImageProcessorOnly:
    tokenizer = train_tokenizer(config)
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=config.patch_size,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
    )
    return Qwen2VLImageProcessorOnly(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def model_config(config: TinyModelConfig, tokenizer: Qwen2Tokenizer) -> Qwen2VLConfig:
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    return Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "num_hidden_layers": config.num_layers,
            "num_attention_heads": config.num_heads,
            "num_key_value_heads": config.num_kv_heads,
            "max_position_embeddings": config.max_position_embeddings,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": list(config.mrope_section),
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "initializer_range": config.initializer_range,
        },
        vision_config={
            "depth": config.vision_depth,
            "embed_dim": config.vision_embed_dim,
            "hidden_size": config.hidden_size,  # the merger projects vision features to the decoder's width
            "num_heads": config.vision_heads,
            "mlp_ratio": 2,
            "patch_size": config.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "initializer_range": config.initializer_range,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        initializer_range=config.initializer_range,
        tie_word_embeddings=True,  # halves the parameters at these sizes, as small Qwen models do
    )


def build_tiny_model(out_dir: str | Path, config: TinyModelConfig | None = None) -> Path:
    """Create a tiny Qwen2-VL model with random weights, its tokenizer and processor, and save them to `out_dir`.

    Args:
        out_dir (`str` or `Path`): the model folder to write (created if missing; existing files are overwritten).
        config (`TinyModelConfig`, *optional*): sizes; defaults to the smallest useful model (<1 MB).

    Returns:
        `Path`: `out_dir`, loadable with `rise.modeling.load_model_and_processor(out_dir)`.
    """
    config = config or TinyModelConfig()
    out_dir = Path(out_dir)
    processor = build_processor(config)
    tokenizer = processor.tokenizer
    torch.manual_seed(config.seed)
    model = Qwen2VLForConditionalGeneration(model_config(config, tokenizer)).eval()
    end_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    model.generation_config = GenerationConfig(
        bos_token_id=end_ids[1], eos_token_id=end_ids, pad_token_id=end_ids[1], do_sample=False
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
