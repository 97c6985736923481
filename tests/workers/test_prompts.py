"""The scorers build exactly the official prompts and token ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.media_files import mp4, png
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
