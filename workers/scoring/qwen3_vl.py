"""Qwen3-VL-Reranker-2B/8B: the official scoring, batched.

Score = sigmoid(h · (w_yes − w_no)), h the backbone's final normed hidden state at the last
position, w the lm_head rows of "yes" and "no". Prompts, vision preprocessing and truncation are
the official code's; the differences are on purpose: pairs are batched (left padding), and a pair
whose media fail is reported as an error instead of being scored as a bare "NULL" prompt.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from qwen_vl_utils import process_vision_info
from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

from workers.media import MediaError, MediaResolver
from workers.scoring import video_reader
from workers.scoring.base import QWEN_REGEX_AS_IS, PairError, Prepared, left_pad
from workers.scoring.prompts import VL_DEFAULT_INSTRUCTION, VisionLimits, vl_messages

# qwen-vl-utils 0.0.14 (pinned for parity with the official code) would read video files through
# torchvision's reader, which decodes every frame; ours decodes only the sampled ones and returns
# the same frames (workers/scoring/video_reader.py). The stock reader, kept for the parity tests,
# warns on every call that it is deprecated.
video_reader.install()
warnings.filterwarnings(
    "ignore",
    message="The video decoding and encoding capabilities of torchvision are deprecated",
    category=UserWarning,
)

MAX_LENGTH = 10240
# The generation prompt's tail (<|im_end|>\n<|im_start|>assistant\n) is 5 ids and never truncated.
PROTECTED_TAIL = 5
VISION_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")


def truncate_keeping_special(ids: list[int], max_length: int, special_ids: set[int]) -> list[int]:
    """The official rule: if too long, keep every special id (vision placeholders included) and
    the first (max_length − #special) other ids, in order."""
    if len(ids) <= max_length:
        return ids
    budget = max_length - sum(1 for token in ids if token in special_ids)
    kept: list[int] = []
    for token in ids:
        if token in special_ids:
            kept.append(token)
        elif budget > 0:
            kept.append(token)
            budget -= 1
    return kept


class Qwen3VLReranker:
    kind = "qwen3-vl"

    def __init__(
        self,
        path: str,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        attn_implementation: str = "sdpa",
        max_length: int = MAX_LENGTH,
        limits: VisionLimits | None = None,
        media: MediaResolver | None = None,
        default_instruction: str = VL_DEFAULT_INSTRUCTION,
        revision: str | None = None,
    ) -> None:
        full = Qwen3VLForConditionalGeneration.from_pretrained(
            path, dtype=dtype, attn_implementation=attn_implementation, revision=revision
        )
        self.processor = AutoProcessor.from_pretrained(
            path, revision=revision, fix_mistral_regex=QWEN_REGEX_AS_IS
        )
        tokenizer = self.processor.tokenizer
        yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
        weight = full.lm_head.weight.detach()
        self.score_head = torch.nn.Linear(weight.shape[1], 1, bias=False, dtype=weight.dtype)
        with torch.no_grad():
            self.score_head.weight[0] = weight[yes] - weight[no]
        # Only the backbone runs; the full lm_head (vocab × hidden) is never applied.
        self.backbone = full.model.to(device).eval()
        self.score_head = self.score_head.to(device).eval()
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.limits = limits or VisionLimits()
        self.media = media or MediaResolver(vision=self.limits)
        video_reader.configure(self.media.limits)
        self.default_instruction = default_instruction
        self.pad_token_id: int = tokenizer.pad_token_id
        self.special_ids = set(tokenizer.all_special_ids)

    def resolve(self, side: Mapping[str, Any]) -> dict[str, Any]:
        return self.media.side(dict(side))

    def truncate_text(self, text: str, max_tokens: int) -> str:
        tokenizer = self.processor.tokenizer
        ids = tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= max_tokens else str(tokenizer.decode(ids[:max_tokens]))

    def messages(
        self, query: Mapping[str, Any], document: Mapping[str, Any], instruction: str | None
    ) -> list[dict[str, Any]]:
        return vl_messages(query, document, instruction, self.limits, self.default_instruction)

    def prompt_text(
        self, query: Mapping[str, Any], document: Mapping[str, Any], instruction: str | None
    ) -> str:
        """The chat-template text of a pair, before vision placeholders are expanded."""
        text: str = self.processor.apply_chat_template(
            self.messages(query, document, instruction), tokenize=False, add_generation_prompt=True
        )
        return text

    def prepare(
        self, query: Mapping[str, Any], document: Mapping[str, Any], instruction: str | None
    ) -> Prepared:
        messages = self.messages(query, document, instruction)
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        try:
            images, videos, video_kwargs = process_vision_info(
                messages, image_patch_size=16, return_video_kwargs=True, return_video_metadata=True
            )
            metadata = None
            if videos is not None:
                videos, metadata = (list(part) for part in zip(*videos, strict=True))
            inputs = self.processor(
                text=text,
                images=images,
                videos=videos,
                video_metadata=metadata,
                truncation=False,
                padding=False,
                do_resize=False,
                return_tensors="pt",
                **video_kwargs,
            )
        except MediaError:
            raise
        except Exception as exc:  # decoders raise anything; the pair fails, not the request
            kinds = " and ".join(k for k in ("image", "video") if document.get(k) or query.get(k))
            reason = f"{type(exc).__name__}: {exc}"
            raise PairError(f"{kinds or 'media'} could not be decoded ({reason})") from exc
        ids: list[int] = inputs["input_ids"][0].tolist()
        ids = (
            truncate_keeping_special(ids[:-PROTECTED_TAIL], self.max_length, self.special_ids)
            + ids[-PROTECTED_TAIL:]
        )
        vision = {key: inputs[key] for key in VISION_KEYS if key in inputs}
        return Prepared(ids, vision)

    @torch.inference_mode()
    def forward(self, batch: Sequence[Prepared]) -> list[float]:
        inputs: dict[str, torch.Tensor] = left_pad(batch, self.pad_token_id)
        for key in VISION_KEYS:
            parts = [item.vision[key] for item in batch if key in item.vision]
            if parts:
                inputs[key] = torch.cat(parts)
        inputs = {
            key: value.to(self.device, dtype=self.dtype if value.is_floating_point() else None)
            for key, value in inputs.items()
        }
        hidden = self.backbone(**inputs).last_hidden_state[:, -1]
        scores = torch.sigmoid(self.score_head(hidden)).squeeze(-1)
        return [float(value) for value in scores.float().cpu().tolist()]
