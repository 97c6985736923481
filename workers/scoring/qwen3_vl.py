"""Qwen3-VL-Reranker-2B/8B: the official scoring, batched.

Score = sigmoid(h · (w_yes − w_no)), h the backbone's final normed hidden state at the last
position, w the lm_head rows of "yes" and "no". Prompts, vision preprocessing and truncation are
the official code's; the differences are on purpose: pairs are batched, and a pair whose media
fail is reported as an error instead of being scored as a bare "NULL" prompt.

Shared prefix: every pair of a request starts with the same ids up to ``<Document>:`` (system
message, instruction, the query with its vision tokens). ``layout`` says how a batch uses that,
as for the text model (``workers.scoring.shared_prefix``): the prefix runs once with its query
images or videos, and each document runs against its cache with its own vision inputs. The
positions are M-RoPE's three streams, taken from the whole pair's rope index (a document's
positions continue after the highest position of the prefix, which its images move), so a
document sees the positions it has in the plain pair. Pairs group by their prefix ids and a
digest of the prefix's vision inputs: two queries with the same text and different images of the
same size have the same ids.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from qwen_vl_utils import process_vision_info
from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

from workers.media import MediaError, MediaResolver
from workers.scoring import video_reader
from workers.scoring.base import (
    QWEN_REGEX_AS_IS,
    PairError,
    Prepared,
    left_pad,
    plan_batches,
)
from workers.scoring.prompts import VL_DEFAULT_INSTRUCTION, VisionLimits, vl_messages
from workers.scoring.segment_attention import segments_over
from workers.scoring.shared_prefix import (
    MIN_GROUP,
    MIN_SHARED_PREFIX,
    packed_pass,
    padded_pass,
    plan_packs,
    run_prefix,
    score_by_prefix,
)

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
DOCUMENT_MARKER = "<Document>:"
"""The prompt's text before a document's content; the shared prefix ends after its ids."""
PACK_TOKENS = 4096
"""Real tokens per pass after a shared prefix (an image document alone is often 300-1300)."""
Layout = Literal["plain", "padded", "packed"]
_DIGEST = "__rerank_prefix_digest__"
"""Where a resolved query keeps the digest of its prefix's vision inputs, computed once."""


def index_after(ids: Sequence[int], marker: Sequence[int]) -> int:
    """The index just after the first occurrence of ``marker`` in ``ids``; 0 if none."""
    n = len(marker)
    for start in range(len(ids) - n + 1):
        if ids[start : start + n] == marker:
            return start + n
    return 0


def split_vision(
    ids: Sequence[int],
    prefix_len: int,
    vision: Mapping[str, torch.Tensor],
    image_token: int,
    video_token: int,
    merge: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
    """The vision inputs of the first ``prefix_len`` ids and of the rest, or None where an
    image's or a video's tokens straddle the boundary. Images and videos are in prompt order,
    each ``t·h·w`` patches (rows of pixel values) and ``t·h·w / merge²`` tokens."""
    head, tail = ids[:prefix_len], ids[prefix_len:]
    out: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] = ({}, {})
    for pixels, grids, token in (
        ("pixel_values", "image_grid_thw", image_token),
        ("pixel_values_videos", "video_grid_thw", video_token),
    ):
        if grids not in vision:
            continue
        grid = vision[grids]
        tokens = (grid.prod(dim=1) // merge**2).tolist()
        in_head = sum(1 for t in head if t == token)
        count, seen = 0, 0
        while count < len(tokens) and seen + tokens[count] <= in_head:
            seen += tokens[count]
            count += 1
        if seen != in_head or sum(tokens[count:]) != sum(1 for t in tail if t == token):
            return None
        rows = int(grid[:count].prod(dim=1).sum())
        halves = ((slice(0, rows), slice(0, count)), (slice(rows, None), slice(count, None)))
        for part, (pixel_rows, grid_rows) in zip(out, halves, strict=True):
            if grid[grid_rows].shape[0]:
                part[pixels] = vision[pixels][pixel_rows]
                part[grids] = grid[grid_rows]
    return out


def vision_digest(vision: Mapping[str, torch.Tensor]) -> str:
    """A digest of vision inputs (pixels and grids), for telling prefixes apart."""
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(vision):
        tensor = vision[key].contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


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
        layout: Layout = "packed",
        pack_tokens: int = PACK_TOKENS,
    ) -> None:
        self.layout: Layout = layout
        self.pack_tokens = pack_tokens
        self.min_group = MIN_GROUP
        # The language model's packs attend document by document (segment_attention); the
        # vision tower keeps the implementation asked for.
        segmented = segments_over(attn_implementation) if layout == "packed" else None
        self.segmented = segmented is not None
        full = Qwen3VLForConditionalGeneration.from_pretrained(
            path,
            dtype=dtype,
            attn_implementation={
                "": attn_implementation,
                "text_config": segmented or attn_implementation,
                "vision_config": attn_implementation,
            },
            revision=revision,
        )
        config = full.config
        self.image_token: int = config.image_token_id
        self.video_token: int = config.video_token_id
        self.merge: int = config.vision_config.spatial_merge_size
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
        self.marker_ids: list[int] = tokenizer.encode(DOCUMENT_MARKER, add_special_tokens=False)

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
        prepared = Prepared(ids, vision)
        self._claim_prefix(prepared, query)
        return prepared

    def _claim_prefix(self, prepared: Prepared, query: Mapping[str, Any]) -> None:
        """Mark the shared prefix (up to the document marker) where it can be shared: long
        enough, something after it, and no image or video cut by it."""
        ids = prepared.input_ids
        length = index_after(ids, self.marker_ids)
        if not MIN_SHARED_PREFIX <= length < len(ids):
            return
        split = self._split(prepared, length)
        if split is None:
            return
        digest = None
        if split[0]:
            # The query's vision inputs are the same for every document: digest them once.
            memo = query.get(_DIGEST) if isinstance(query, dict) else None
            if memo is None or memo[0] != length:
                memo = (length, vision_digest(split[0]))
                if isinstance(query, dict):
                    query[_DIGEST] = memo
            digest = memo[1]
        prepared.prefix_len = length
        prepared.prefix_key = (tuple(ids[:length]), digest)

    def _split(
        self, prepared: Prepared, length: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
        return split_vision(
            prepared.input_ids,
            length,
            prepared.vision,
            self.image_token,
            self.video_token,
            self.merge,
        )

    def _on_device(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            key: value.to(self.device, dtype=self.dtype if value.is_floating_point() else None)
            for key, value in inputs.items()
        }

    def _rope(self, prepared: Prepared) -> torch.Tensor:
        """The pair's M-RoPE positions, (3, length), as the plain pair gets them."""
        vision = prepared.vision
        positions, _ = self.backbone.get_rope_index(
            torch.tensor([prepared.input_ids]),
            vision.get("image_grid_thw"),
            vision.get("video_grid_thw"),
        )
        rope: torch.Tensor = positions[:, 0]
        return rope

    def forward(self, batch: Sequence[Prepared]) -> list[float]:
        if self.layout == "plain":
            return self._forward_plain(batch)
        return score_by_prefix(batch, self._forward_plain, self._forward_shared, self.min_group)

    def _scores(self, hidden: torch.Tensor) -> list[float]:
        scores = torch.sigmoid(self.score_head(hidden)).squeeze(-1)
        return [float(value) for value in scores.float().cpu().tolist()]

    @torch.inference_mode()
    def _forward_plain(self, batch: Sequence[Prepared]) -> list[float]:
        inputs: dict[str, torch.Tensor] = left_pad(batch, self.pad_token_id)
        for key in VISION_KEYS:
            parts = [item.vision[key] for item in batch if key in item.vision]
            if parts:
                inputs[key] = torch.cat(parts)
        return self._scores(self.backbone(**self._on_device(inputs)).last_hidden_state[:, -1])

    @torch.inference_mode()
    def _forward_shared(self, pairs: Sequence[Prepared]) -> list[float]:
        """Scores of pairs with one prefix key: the prefix (and its vision) computed once."""
        length = pairs[0].prefix_len
        splits = [self._split(p, length) for p in pairs]
        positions = [self._rope(p) for p in pairs]
        prefix_vision = splits[0][0] if splits[0] is not None else {}
        cache = run_prefix(
            self.backbone,
            pairs[0].input_ids[:length],
            positions[0][:, :length],
            **self._on_device(prefix_vision),
        )
        suffixes = [p.input_ids[length:] for p in pairs]
        lengths = [len(s) for s in suffixes]
        if self.layout == "packed":
            groups = plan_packs(lengths, self.pack_tokens)
        else:
            groups = plan_batches(lengths, self.pack_tokens, len(suffixes))
        scores = [0.0] * len(pairs)
        for members in groups:
            chosen = [suffixes[i] for i in members]
            own = [positions[i][:, length:] for i in members]
            vision: dict[str, torch.Tensor] = {}
            for key in VISION_KEYS:
                parts = [split[1][key] for i in members if (split := splits[i]) and key in split[1]]
                if parts:
                    vision[key] = torch.cat(parts)
            extra = self._on_device(vision)
            if self.layout == "packed":
                hidden = packed_pass(
                    self.backbone, cache, length, chosen, own, self.segmented, **extra
                )
            else:
                hidden = padded_pass(
                    self.backbone, cache, length, chosen, own, self.pad_token_id, **extra
                )
            for position, value in zip(members, self._scores(hidden), strict=True):
                scores[position] = value
        return scores
