"""Tiny Qwen3 rerankers build offline, load like real checkpoints and run a forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    Qwen3ForCausalLM,
    Qwen3VLForConditionalGeneration,
)

from workers.random_models import ARCHITECTURES, architecture_config, build_tiny_model

YES, NO = 9693, 2152


def test_build_is_deterministic_for_a_seed(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    fresh = build_tiny_model("qwen3", tmp_path / "qwen3", seed=0)
    cached = load_file(tiny_model_dirs["qwen3"] / "model.safetensors")
    rebuilt = load_file(fresh / "model.safetensors")
    assert cached.keys() == rebuilt.keys()
    assert all(torch.equal(cached[name], rebuilt[name]) for name in cached)
    other = build_tiny_model("qwen3", tmp_path / "qwen3-seed1", seed=1)
    reseeded = load_file(other / "model.safetensors")
    assert not torch.equal(
        cached["model.embed_tokens.weight"], reseeded["model.embed_tokens.weight"]
    )


def test_tiny_models_keep_the_real_vocabulary(tiny_model_dirs: dict[str, Path]) -> None:
    vl = AutoConfig.from_pretrained(tiny_model_dirs["qwen3-vl"])
    text = AutoConfig.from_pretrained(tiny_model_dirs["qwen3"])
    assert vl.model_type == "qwen3_vl" and text.model_type == "qwen3"
    assert vl.text_config.vocab_size == text.vocab_size == 151936
    assert vl.vision_config.patch_size == 16
    assert vl.vision_config.spatial_merge_size == 2
    assert vl.vision_config.temporal_patch_size == 2


def test_qwen3_vl_processor_has_the_real_patch_geometry(tiny_model_dirs: dict[str, Path]) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dirs["qwen3-vl"])
    for sub in (processor.image_processor, processor.video_processor):
        assert (sub.patch_size, sub.merge_size, sub.temporal_patch_size) == (16, 2, 2)


def test_qwen3_vl_forward_pass_on_text_and_image(tiny_model_dirs: dict[str, Path]) -> None:
    path = tiny_model_dirs["qwen3-vl"]
    processor = AutoProcessor.from_pretrained(path)
    model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    image = Image.new("RGB", (256, 384), (200, 30, 30))
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Judge."}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "<Query>:"}, {"type": "image", "image": image}],
        },
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    # 256x384 pixels (above the processor's minimum, so not resized) in 16px patches: a 24x16
    # grid, merged 2x2 into 96 image tokens.
    assert inputs["image_grid_thw"].tolist() == [[1, 24, 16]]
    assert int((inputs["input_ids"] == 151655).sum()) == 96
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], 151936)
    last = logits[0, -1, [YES, NO]]
    assert torch.isfinite(last).all()
    # Random weights still depend on the image: a different picture moves the yes/no logits.
    other = processor(
        text=[text], images=[Image.new("RGB", (256, 384), (10, 200, 90))], return_tensors="pt"
    )
    with torch.no_grad():
        other_last = model(**other).logits[0, -1, [YES, NO]]
    assert not torch.allclose(last, other_last)


def test_qwen3_forward_pass_is_unchanged_by_left_padding(tiny_model_dirs: dict[str, Path]) -> None:
    path = tiny_model_dirs["qwen3"]
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    assert isinstance(model, Qwen3ForCausalLM)
    texts = ["red running shoes for trail", "scarf"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert batch["input_ids"][1, 0].item() == 151643  # padded on the left with <|endoftext|>
    with torch.no_grad():
        batched = model(**batch).logits[:, -1, :]
        for row, text in enumerate(texts):
            alone = model(**tokenizer([text], return_tensors="pt")).logits[0, -1, :]
            assert torch.allclose(batched[row], alone, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_real_architecture_configs_have_the_published_sizes(arch: str) -> None:
    config = architecture_config(arch)
    expected_billions = {
        "qwen3-vl-reranker-2b": 2.13,
        "qwen3-vl-reranker-8b": 8.77,
        "qwen3-reranker-0.6b": 0.60,
        "qwen3-reranker-4b": 4.02,
        "qwen3-reranker-8b": 8.19,
    }[arch]
    model_cls = (
        Qwen3VLForConditionalGeneration if config.model_type == "qwen3_vl" else Qwen3ForCausalLM
    )
    with torch.device("meta"):
        model = model_cls(config)
    # Tied embeddings are one tensor, counted once, as in the published parameter counts.
    billions = sum(p.numel() for p in model.parameters()) / 1e9
    assert billions == pytest.approx(expected_billions, rel=0.03)
