"""The scorers build exactly the official prompts and token ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.media_files import mp4, png, video
from workers.scoring import Scorer, load_scorer
from workers.scoring.prompts import SYSTEM_MESSAGE
from workers.scoring.qwen3_vl import truncate_keeping_special

VL_HEAD = (
    f"<|im_start|>system\n{SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n"
    "<Instruct>: Given a search query, retrieve relevant candidates that answer the query."
)
TAIL = "<|im_end|>\n<|im_start|>assistant\n"
# <|im_end|> \n <|im_start|> assistant \n
TAIL_IDS = [151645, 198, 151644, 77091, 198]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    png(root / "shoe.png", (256, 384), (200, 30, 30))
    mp4(root / "clip.mp4")
    mp4(root / "clip2.mp4", frames=20, size=(96, 64), fps=5)
    for i in range(6):
        png(root / f"frame{i}.png", (128, 96), (i * 40, 90, 200 - i * 30))
    video(root / "anim.gif", "gif", 45, (32, 32), 10, pix_fmt="rgb8")
    return root


@pytest.fixture(scope="module")
def vl(tiny_model_dirs: dict[str, Path], media_dir: Path) -> Scorer:
    return load_scorer(tiny_model_dirs["qwen3-vl"], media_roots=[media_dir])


@pytest.fixture(scope="module")
def text(tiny_model_dirs: dict[str, Path]) -> Scorer:
    return load_scorer(tiny_model_dirs["qwen3"])


def _prepare(scorer: Scorer, query: dict, document: dict, instruction: str | None = None):  # type: ignore[no-untyped-def,type-arg]
    model = scorer.model
    return model.prepare(model.resolve(query), model.resolve(document), instruction)


def test_vl_text_pair_prompt_and_ids(vl: Scorer) -> None:
    model = vl.model
    text = model.prompt_text({"text": "red shoes"}, {"text": "red running shoes"}, None)  # type: ignore[attr-defined]
    assert text == f"{VL_HEAD}<Query>:red shoes\n<Document>:red running shoes{TAIL}"
    ids = _prepare(vl, {"text": "red shoes"}, {"text": "red running shoes"}).input_ids
    assert ids == model.processor.tokenizer.encode(text)  # type: ignore[attr-defined]
    assert ids[:3] == [151644, 8948, 198]  # <|im_start|> system \n
    assert ids[-5:] == TAIL_IDS


def test_vl_image_pair_expands_one_placeholder_per_merged_patch(
    vl: Scorer, media_dir: Path
) -> None:
    document = {"image": str(media_dir / "shoe.png"), "text": "red"}
    text = vl.model.prompt_text({"text": "shoes"}, vl.model.resolve(document), None)  # type: ignore[attr-defined]
    assert text == (
        f"{VL_HEAD}<Query>:shoes\n<Document>:<|vision_start|><|image_pad|><|vision_end|>red{TAIL}"
    )
    prepared = _prepare(vl, {"text": "shoes"}, document)
    (grid,) = prepared.vision["image_grid_thw"].tolist()
    assert grid == [1, 24, 16]  # 384x256 px in 16 px patches, within the pixel limits: no resize
    ids = prepared.input_ids
    start = ids.index(151652)
    assert ids[start + 1 : start + 1 + 96] == [151655] * 96  # 24·16 patches / 2x2 merge
    assert ids[start + 97] == 151653
    assert ids[-5:] == TAIL_IDS


def test_vl_video_pair_has_timestamped_frame_groups(vl: Scorer, media_dir: Path) -> None:
    document = {"video": str(media_dir / "clip.mp4")}
    text = vl.model.prompt_text({"text": "clip"}, vl.model.resolve(document), None)  # type: ignore[attr-defined]
    assert text == (
        f"{VL_HEAD}<Query>:clip\n<Document>:<|vision_start|><|video_pad|><|vision_end|>{TAIL}"
    )
    prepared = _prepare(vl, {"text": "clip"}, document)
    t, h, w = prepared.vision["video_grid_thw"].tolist()[0]
    # 3 s at 4 fps sampled at 1 fps: 2 temporal patches of 2 frames each.
    assert t == 2
    assert prepared.input_ids.count(151656) == t * h * w // 4
    decoded = vl.model.processor.tokenizer.decode(prepared.input_ids)  # type: ignore[attr-defined]
    assert decoded.count("<|vision_start|>") == t
    assert "seconds>" in decoded


def test_vl_null_rule(vl: Scorer) -> None:
    model = vl.model
    nothing = model.prompt_text({"text": "q"}, {}, None)  # type: ignore[attr-defined]
    assert nothing.endswith(f"<Query>:q\n<Document>:NULL{TAIL}")
    empty = model.prompt_text({"text": "q"}, {"text": ""}, None)  # type: ignore[attr-defined]
    assert empty.endswith(f"<Query>:q\n<Document>:{TAIL}")
    query_null = model.prompt_text({}, {"text": "d"}, None)  # type: ignore[attr-defined]
    assert "<Query>:NULL\n<Document>:d" in query_null


@pytest.mark.parametrize("instruction", [None, ""])
def test_vl_default_instruction(vl: Scorer, instruction: str | None) -> None:
    text = vl.model.prompt_text({"text": "q"}, {"text": "d"}, instruction)  # type: ignore[attr-defined]
    assert text.startswith(VL_HEAD + "<Query>:")
    custom = vl.model.prompt_text({"text": "q"}, {"text": "d"}, "Find shoes.")  # type: ignore[attr-defined]
    assert "<Instruct>: Find shoes.<Query>:q" in custom


def test_text_pair_prompt_and_ids(text: Scorer) -> None:
    tokenizer = text.model.tokenizer  # type: ignore[attr-defined]
    ids = _prepare(text, {"text": "red shoes"}, {"text": "red running shoes"}).input_ids
    expected = (
        f"<|im_start|>system\n{SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n"
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
        "<Query>: red shoes\n<Document>: red running shoes"
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert tokenizer.decode(ids) == expected
    assert ids == tokenizer.encode(expected)
    # <|im_end|> \n <|im_start|> assistant \n <think> \n\n </think> \n\n
    assert ids[-9:] == [151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]
    assert ids[:4] == [151644, 8948, 198, 60256]  # <|im_start|> system \n Judge


def test_text_default_instruction_only_for_none(text: Scorer) -> None:
    tokenizer = text.model.tokenizer  # type: ignore[attr-defined]
    empty = tokenizer.decode(_prepare(text, {"text": "q"}, {"text": "d"}, "").input_ids)
    assert "<Instruct>: \n<Query>: q" in empty


def test_vl_truncation_keeps_specials_at_the_boundary(
    vl: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    query, document = {"text": "red shoes"}, {"text": "a long document " * 20}
    full = _prepare(vl, query, document).input_ids
    body = len(full) - 5
    monkeypatch.setattr(vl.model, "max_length", body)
    assert _prepare(vl, query, document).input_ids == full
    monkeypatch.setattr(vl.model, "max_length", body - 1)
    cut = _prepare(vl, query, document).input_ids
    assert len(cut) == len(full) - 1
    assert cut[-5:] == full[-5:]
    # The last ordinary token before the tail is the one dropped; every special id stays.
    assert cut[:-5] == full[: body - 1]


def test_truncation_rule_keeps_every_special_id() -> None:
    special = {100, 101}
    ids = [100, 1, 2, 101, 3, 4, 101, 5]
    assert truncate_keeping_special(ids, 8, special) == ids
    assert truncate_keeping_special(ids, 5, special) == [100, 1, 2, 101, 101]
    assert truncate_keeping_special(ids, 3, special) == [100, 101, 101]


def test_text_truncation_cuts_the_body_from_the_end(
    text: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = text.model
    query, document = {"text": "q"}, {"text": "word " * 50}
    full = _prepare(text, query, document).input_ids
    monkeypatch.setattr(model, "max_length", len(full))
    assert _prepare(text, query, document).input_ids == full
    monkeypatch.setattr(model, "max_length", len(full) - 3)
    cut = _prepare(text, query, document).input_ids
    suffix = len(model.suffix_ids)  # type: ignore[attr-defined]
    assert len(cut) == len(full) - 3
    assert cut[-suffix:] == full[-suffix:]
    assert cut[:-suffix] == full[: len(full) - suffix - 3]


VIDEO_PART = "<|vision_start|><|video_pad|><|vision_end|>"


def _grids(scorer: Scorer, document: dict) -> list[list[int]]:  # type: ignore[type-arg]
    prepared = _prepare(scorer, {"text": "clip"}, document)
    return prepared.vision["video_grid_thw"].tolist()  # type: ignore[no-any-return]


def _frames(root: Path, count: int = 6) -> list[str]:
    return [str(root / f"frame{i % 6}.png") for i in range(count)]


def test_vl_video_lists_follow_the_official_reading(vl: Scorer, media_dir: Path) -> None:
    """QwenLM/Qwen3-VL-Embedding format_mm_content: a str or a list starting with an image is
    one video; any other list is several videos, each a file or a frame list. (Checked once
    against the official code on these documents: equal scores, docs/decisions/0007.)"""
    clip, clip2 = str(media_dir / "clip.mp4"), str(media_dir / "clip2.mp4")
    frames = _frames(media_dir)
    [one_clip] = _grids(vl, {"video": clip})
    [one_clip2] = _grids(vl, {"video": clip2})
    [six_frames] = _grids(vl, {"video": frames})
    assert one_clip[0] == 2 and one_clip2[0] == 2 and six_frames[0] == 3
    assert _grids(vl, {"video": [clip, clip2]}) == [one_clip, one_clip2]
    assert _grids(vl, {"video": [clip, frames]}) == [one_clip, six_frames]
    assert _grids(vl, {"video": [frames, clip]}) == [six_frames, one_clip]
    text = vl.model.prompt_text({"text": "q"}, vl.model.resolve({"video": [frames, clip]}), None)  # type: ignore[attr-defined]
    assert text.endswith(f"<Document>:{VIDEO_PART}{VIDEO_PART}{TAIL}")


def test_vl_frame_lists_are_sampled_to_64_frames(vl: Scorer, media_dir: Path) -> None:
    [grid] = _grids(vl, {"video": _frames(media_dir, 100)})
    assert grid[0] == 32  # 64 frames, 2 per temporal patch


def test_vl_gif_is_a_video_file_alone_and_a_frame_in_a_list(vl: Scorer, media_dir: Path) -> None:
    gif = str(media_dir / "anim.gif")
    assert _grids(vl, {"video": gif})[0][0] == 2  # 4.5 s at 1 fps: 4 frames
    assert _grids(vl, {"video": [gif]})[0][0] == 1  # one frame (its first), padded to 2


def test_vl_empty_video_list_is_no_video(vl: Scorer) -> None:
    text = vl.model.prompt_text({"text": "q"}, vl.model.resolve({"video": []}), None)  # type: ignore[attr-defined]
    assert text.endswith(f"<Document>:NULL{TAIL}")


def test_vl_list_starting_with_an_image_is_one_frame_list(vl: Scorer, media_dir: Path) -> None:
    """The first element decides: an image path makes the list one frame sequence, so a video
    file later in it is read as an image and fails that document (the official code fails the
    same way, and then silently scores a bare NULL prompt)."""
    frames, clip = _frames(media_dir, 3), str(media_dir / "clip.mp4")
    docs = [{"video": [*frames, clip]}, {"video": [clip, *frames]}, {"text": "ok"}]
    outcome = vl.score_with_errors({"text": "clip"}, docs)
    reasons = dict(outcome.errors)
    assert "clip.mp4 could not be decoded" in reasons[0]
    # The other way round it is four videos, and a PNG is no video.
    assert "could not be decoded" in reasons[1]
    assert outcome.scores[2] is not None


def test_vl_video_list_documents_batched_equal_single(vl: Scorer, media_dir: Path) -> None:
    clip, clip2 = str(media_dir / "clip.mp4"), str(media_dir / "clip2.mp4")
    frames = _frames(media_dir)
    docs = [{"video": [clip, clip2]}, {"video": [frames, clip]}, {"video": frames[:4]}]
    batched = vl.score({"text": "clip"}, docs)
    single = [vl.score({"text": "clip"}, [doc])[0] for doc in docs]
    assert None not in batched
    assert max(abs(a - b) for a, b in zip(batched, single, strict=True)) <= 1e-5  # type: ignore[operator]
