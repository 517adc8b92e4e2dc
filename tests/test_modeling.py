"""Model loading, the tiny model builder and the image-only Qwen processors, with real tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from rise.modeling import ModelLoadError, load_model_and_processor, load_processor, pick_dtype
from rise.processing import Qwen2_5_VLImageProcessorOnly, Qwen2VLImageProcessorOnly
from rise.synthetic import generate_scene
from rise.tiny_model import SPECIAL_TOKENS, TinyModelConfig, build_tiny_model, train_tokenizer

IMAGE_MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which shape?"}]}]


class TestTinyModelBuilder:
    def test_folder_holds_an_ordinary_small_model(self, tiny_model_dir: Path):
        names = {p.name for p in tiny_model_dir.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
        size = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
        assert size < 3_000_000  # small enough to build in every test session

    def test_reloads_with_plain_auto_classes(self, tiny_model_dir: Path):
        model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
        processor = AutoProcessor.from_pretrained(tiny_model_dir)
        assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
        # Registered with AutoProcessor, so the full processor comes back, not the bare tokenizer.
        assert isinstance(processor, Qwen2VLImageProcessorOnly)
        assert processor.image_processor.patch_size == model.config.vision_config.patch_size == 8

    def test_64px_image_gives_16_image_tokens(self, tiny_model_dir: Path):
        processor = AutoProcessor.from_pretrained(tiny_model_dir)
        text = processor.apply_chat_template(IMAGE_MESSAGES, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[text], images=[generate_scene(0).image], return_tensors="pt")
        image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        assert int((inputs["input_ids"] == image_token_id).sum()) == 16
        assert inputs["image_grid_thw"].tolist() == [[1, 8, 8]]
        assert "mm_token_type_ids" in inputs  # transformers 5 Qwen2-VL needs it next to the images

    def test_chat_template_wraps_the_image_in_vision_tokens(self, tiny_model_dir: Path):
        processor = AutoProcessor.from_pretrained(tiny_model_dir)
        text = processor.apply_chat_template(IMAGE_MESSAGES, tokenize=False, add_generation_prompt=True)
        assert "<|vision_start|><|image_pad|><|vision_end|>Which shape?" in text
        assert text.endswith("<|im_start|>assistant\n")

    def test_special_tokens_are_single_tokens_with_config_ids(self, tiny_model_dir: Path):
        processor = AutoProcessor.from_pretrained(tiny_model_dir)
        config = json.loads((tiny_model_dir / "config.json").read_text())
        tokenizer = processor.tokenizer
        for token in SPECIAL_TOKENS:
            assert tokenizer.encode(token, add_special_tokens=False) == [tokenizer.convert_tokens_to_ids(token)]
        assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
        assert config["vision_start_token_id"] == tokenizer.convert_tokens_to_ids("<|vision_start|>")
        assert tokenizer.eos_token == "<|im_end|>"

    def test_tokenizer_round_trips_any_text(self):
        tokenizer = train_tokenizer(TinyModelConfig())
        text = '<think>A red circle, 日本 ✓</think><answer>[{"label": "circle", "box": [12, 340, 560, 999]}]</answer>'
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
        assert len(tokenizer) == 512

    def test_same_config_builds_identical_weights(self, tmp_path: Path):
        config = TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=3)
        first = build_tiny_model(tmp_path / "a", config)
        second = build_tiny_model(tmp_path / "b", config)
        assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
        assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()

    def test_mrope_section_is_derived_from_head_dim(self):
        assert TinyModelConfig().mrope_section == (2, 3, 3)  # head_dim 16
        # head_dim 32, the shape of bench/annotate.py's model
        assert TinyModelConfig(hidden_size=128, num_heads=4).mrope_section == (4, 6, 6)

    def test_mrope_section_not_summing_to_half_head_dim_is_refused(self):
        with pytest.raises(ValueError, match="head_dim / 2 = 8"):
            TinyModelConfig(mrope_section=(4, 4, 4))


class TestLoadModelAndProcessor:
    def test_cpu_defaults_to_float32_and_left_padding(self, tiny_model_dir: Path):
        model, processor = load_model_and_processor(str(tiny_model_dir), device="cpu")
        assert model.dtype == torch.float32
        assert model.device.type == "cpu"
        assert not model.training
        assert processor.tokenizer.padding_side == "left"

    def test_dtype_can_be_named(self, tiny_model_dir: Path):
        model, _ = load_model_and_processor(str(tiny_model_dir), device="cpu", dtype="bfloat16")
        assert model.dtype == torch.bfloat16

    def test_unknown_dtype_name_is_refused(self):
        with pytest.raises(ValueError, match="bfloat16"):
            pick_dtype("cpu", "float8")

    def test_hub_id_offline_names_the_fixes(self):
        with pytest.raises(ModelLoadError) as error:
            load_model_and_processor("rise-annotate-tests/no-such-model")
        message = str(error.value)
        assert "download it first" in message
        assert "local path" in message
        assert "HF_HUB_OFFLINE" in message

    def test_missing_folder_says_it_does_not_exist(self, tmp_path: Path):
        with pytest.raises(ModelLoadError, match="does not exist"):
            load_model_and_processor(str(tmp_path / "nothing-here"))

    def test_folder_without_a_model_is_a_clear_error(self, tmp_path: Path):
        with pytest.raises(ModelLoadError, match="saved model"):
            load_model_and_processor(str(tmp_path))

    def test_stock_processor_name_loads_the_image_only_processor(self, tiny_model_dir: Path, tmp_path: Path):
        # Hub checkpoints name the stock Qwen2VLProcessor, which cannot be built without torchvision here.
        folder = tmp_path / "stock"
        shutil.copytree(tiny_model_dir, folder)
        for name in ("processor_config.json", "tokenizer_config.json"):
            config = json.loads((folder / name).read_text())
            config["processor_class"] = "Qwen2VLProcessor"
            (folder / name).write_text(json.dumps(config))
        processor = load_processor(str(folder))
        assert isinstance(processor, Qwen2VLImageProcessorOnly)
        assert processor.image_processor is not None

    def test_text_only_model_is_refused_instead_of_returning_a_bare_tokenizer(self, tmp_path: Path):
        # AutoProcessor falls back to the tokenizer when a folder has no image processor; that must not pass for a
        # processor, or the first image would fail far from the cause.
        from transformers import Qwen2Config

        tokenizer = train_tokenizer(TinyModelConfig())
        Qwen2Config(
            vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2
        ).save_pretrained(tmp_path)
        tokenizer.save_pretrained(tmp_path)
        assert not hasattr(AutoProcessor.from_pretrained(tmp_path), "image_processor")
        with pytest.raises(ModelLoadError, match="no image processor"):
            load_processor(str(tmp_path))

    def test_qwen2_5_image_only_processor_builds_from_parts(self, tiny_model_dir: Path):
        stock = AutoProcessor.from_pretrained(tiny_model_dir)
        processor = Qwen2_5_VLImageProcessorOnly(stock.image_processor, stock.tokenizer, stock.chat_template)
        text = processor.apply_chat_template(IMAGE_MESSAGES, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[text], images=[Image.new("RGB", (64, 64))], return_tensors="pt")
        assert inputs["image_grid_thw"].tolist() == [[1, 8, 8]]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); make it change the outputs
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    path = tmp_path_factory.mktemp("adapters") / "lora"
    peft_model.save_pretrained(path)
    return path


class TestAdapter:
    def test_adapter_is_applied_on_top_of_the_base_model(self, tiny_model_dir: Path, adapter_dir: Path):
        base, processor = load_model_and_processor(str(tiny_model_dir), device="cpu")
        adapted, _ = load_model_and_processor(str(tiny_model_dir), adapter=str(adapter_dir), device="cpu")
        assert type(adapted).__name__ == "PeftModel"
        inputs = processor(text=["<|im_start|>user\nhello<|im_end|>"], return_tensors="pt")
        with torch.no_grad():
            assert not torch.allclose(base(**inputs).logits, adapted(**inputs).logits)

    def test_folder_that_is_not_an_adapter_is_refused(self, tiny_model_dir: Path, tmp_path: Path):
        with pytest.raises(ModelLoadError, match="not a PEFT adapter"):
            load_model_and_processor(str(tiny_model_dir), adapter=str(tmp_path))
