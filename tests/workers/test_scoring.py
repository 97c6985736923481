"""Batched scoring equals scoring one pair at a time; bad documents fail alone."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.workers.media_files import mp4, png
from workers.media import MediaLimits
from workers.scoring import Scorer, load_scorer
from workers.scoring.base import plan_batches

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    png(root / "red.png", (320, 240), (220, 20, 20))
    png(root / "blue.png", (200, 300), (20, 20, 220))
    png(root / "huge.png", (3000, 3000), (9, 9, 9))
    for i in range(6):
        png(root / f"frame{i}.png", (128, 96), (i * 40, 90, 200 - i * 30))
    mp4(root / "clip.mp4")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    (root / "corrupt.mp4").write_bytes(b"not a video" * 100)
    return root


@pytest.fixture(scope="module")
def vl(tiny_model_dirs: dict[str, Path], media_dir: Path) -> Scorer:
    return load_scorer(
        tiny_model_dirs["qwen3-vl"],
        media_roots=[media_dir],
        media_limits=MediaLimits(max_image_pixels=4_000_000),
    )


@pytest.fixture(scope="module")
def text(tiny_model_dirs: dict[str, Path]) -> Scorer:
    return load_scorer(tiny_model_dirs["qwen3"])


def _one_at_a_time(
    scorer: Scorer, query: dict[str, Any], docs: list[dict[str, Any]]
) -> list[float | None]:
    return [scorer.score(query, [doc])[0] for doc in docs]


def _assert_batched_equals_single(
    scorer: Scorer, query: dict[str, Any], docs: list[dict[str, Any]]
) -> None:
    batches = plan_batches(
        [
            scorer.model.prepare(scorer.model.resolve(query), scorer.model.resolve(d), None).length
            for d in docs
        ],
        scorer.token_budget,
        scorer.max_batch,
    )
    assert max(len(batch) for batch in batches) > 1, "the test must really batch"
    batched = scorer.score(query, docs)
    single = _one_at_a_time(scorer, query, docs)
    assert None not in batched
    assert max(abs(a - b) for a, b in zip(batched, single, strict=True)) <= TOLERANCE  # type: ignore[operator]
    assert all(0.0 < s < 1.0 for s in batched)  # type: ignore[operator]
    assert len({round(s, 6) for s in batched}) > 1  # type: ignore[arg-type]


def test_text_documents_batched_equal_single(text: Scorer) -> None:
    docs = [
        {"text": t}
        for t in ["red running shoes", "blue rain jacket " * 40, "scarf", "红色跑步鞋", ""]
    ]
    _assert_batched_equals_single(text, {"text": "red shoes"}, docs)


def test_vl_text_documents_batched_equal_single(vl: Scorer) -> None:
    docs = [{"text": t} for t in ["red running shoes", "blue rain jacket " * 40, "scarf"]]
    _assert_batched_equals_single(vl, {"text": "red shoes"}, docs)


def test_vl_image_documents_batched_equal_single(vl: Scorer, media_dir: Path) -> None:
    encoded = base64.b64encode((media_dir / "blue.png").read_bytes()).decode()
    docs = [
        {"image": str(media_dir / "red.png")},
        {"image": f"data:image/png;base64,{encoded}"},
        {"image": Image.new("RGB", (180, 180), (0, 200, 0))},
        {"image": [str(media_dir / "red.png"), str(media_dir / "blue.png")]},
    ]
    _assert_batched_equals_single(vl, {"text": "red shoes"}, docs)


def test_vl_video_documents_batched_equal_single(vl: Scorer, media_dir: Path) -> None:
    frames = [str(media_dir / f"frame{i}.png") for i in range(6)]
    docs = [{"video": str(media_dir / "clip.mp4")}, {"video": frames}, {"text": "a clip"}]
    _assert_batched_equals_single(vl, {"text": "a short clip"}, docs)


def test_vl_mixed_documents_and_image_query_batched_equal_single(
    vl: Scorer, media_dir: Path
) -> None:
    docs = [
        {"text": "red shoes", "image": str(media_dir / "red.png")},
        {"text": "blue", "video": str(media_dir / "clip.mp4")},
        {},
        {"text": "plain text only"},
        {"image": str(media_dir / "blue.png")},
    ]
    query = {"image": str(media_dir / "red.png"), "text": "like this"}
    _assert_batched_equals_single(vl, query, docs)


def test_scores_depend_on_the_document_image(vl: Scorer, media_dir: Path) -> None:
    red, blue = vl.score(
        {"text": "q"},
        [{"image": str(media_dir / "red.png")}, {"image": str(media_dir / "blue.png")}],
    )
    assert red != blue


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"image": "corrupt.png"}, "could not be decoded"),
        ({"image": "huge.png"}, "over the 4000000 limit"),
        ({"image": "missing.png"}, "does not exist"),
        ({"image": "/etc/hostname"}, "outside the allowed media directories"),
        ({"video": "corrupt.mp4"}, "video could not be decoded"),
        ({"image": "ftp://example.com/a.png"}, "only http(s) URLs"),
        ({"image": "data:image/png;base64,@@@"}, "not valid base64"),
    ],
)
def test_bad_document_gets_null_and_a_reason_while_others_are_scored(
    vl: Scorer, media_dir: Path, document: dict[str, str], reason: str
) -> None:
    bad = {
        key: (str(media_dir / value) if "/" not in value and ":" not in value else value)
        for key, value in document.items()
    }
    docs = [{"text": "red running shoes"}, bad, {"image": str(media_dir / "red.png")}]
    outcome = vl.score_with_errors({"text": "red shoes"}, docs)
    assert outcome.scores[1] is None
    assert outcome.scores[0] is not None and outcome.scores[2] is not None
    assert outcome.scores[0] == pytest.approx(
        vl.score({"text": "red shoes"}, [docs[0]])[0], abs=TOLERANCE
    )
    [(index, message)] = outcome.errors
    assert index == 1
    assert reason in message


def test_text_model_reports_documents_without_text(text: Scorer) -> None:
    outcome = text.score_with_errors({"text": "q"}, [{"image": "a.png"}, {"text": "d"}])
    assert outcome.scores[0] is None and outcome.scores[1] is not None
    assert "scores text only" in outcome.errors[0][1]


def test_a_bad_query_fails_every_document_with_its_reason(vl: Scorer) -> None:
    outcome = vl.score_with_errors({"image": "/etc/passwd"}, [{"text": "a"}, {"text": "b"}])
    assert outcome.scores == [None, None]
    assert [i for i, _ in outcome.errors] == [0, 1]
    assert all(m.startswith("query: ") for _, m in outcome.errors)


def test_plan_batches_respects_the_token_budget() -> None:
    lengths = [50, 10, 400, 30, 20, 60]
    batches = plan_batches(lengths, token_budget=120, max_batch=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert longest * len(batch) <= 120 or len(batch) == 1
        assert len(batch) <= 3
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(flat)  # shortest first keeps padding small
    assert [2] in batches  # longer than the budget: alone


def test_max_doc_tokens_scores_the_cut_text(text: Scorer, vl: Scorer) -> None:
    long_doc = {"text": "blue rain jacket with a hood " * 30}
    for scorer in (text, vl):
        cut = scorer.model.truncate_text(long_doc["text"], 7)
        [by_option] = scorer.score({"text": "jacket"}, [long_doc], max_doc_tokens=7)
        [by_hand] = scorer.score({"text": "jacket"}, [{"text": cut}])
        assert by_option == pytest.approx(by_hand, abs=TOLERANCE)
        assert scorer.model.truncate_text("short", 7) == "short"
