"""Shared-prefix scoring of Qwen3-VL: the prefix (with the query's vision tokens and M-RoPE
positions) computed once gives the scores of plain pairs, fp32 within 1e-5, for text, image,
video and mixed documents, image and video queries, a custom instruction, the truncation
boundary and documents that fail; in-process and through the real Celery worker. Also the pure
helpers on hand-made cases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sidecar.scoring.celery_client import celery_client
from tests.conftest import ScoringWorkerHandle
from tests.workers.layouts import TOLERANCE, assert_same, by_layout
from tests.workers.media_files import png
from workers.contract import SCORE_TASK, ScoringJob, ScoringResult, queue_name
from workers.media import MediaResolver
from workers.scoring import Prepared, Scorer, load_scorer
from workers.scoring.qwen3_vl import Qwen3VLReranker, index_after, split_vision
from workers.scoring.shared_prefix import MIN_GROUP


@pytest.fixture(scope="module")
def vl_scorer(tiny_model_dirs: dict[str, Path], media_dir: Path) -> Scorer:
    return load_scorer(tiny_model_dirs["qwen3-vl"], media_roots=[media_dir])  # its own


def model_of(scorer: Scorer) -> Qwen3VLReranker:
    model = scorer.model
    assert isinstance(model, Qwen3VLReranker)
    return model


def documents(media: Path) -> list[dict[str, Any]]:
    frames = [str(media / f"frame{i}.png") for i in range(4)]
    return [
        {"text": "red running shoes"},
        {"text": "a much longer text about blue winter scarves " * 3},
        {"image": str(media / "red.png")},
        {"image": str(media / "blue.png")},
        {"text": "red shoes", "image": str(media / "red.png")},
        {"video": str(media / "clip.mp4")},
        {"video": frames},
        {"text": "a clip", "video": str(media / "clip.mp4")},
        {"image": str(media / "corrupt.png")},  # fails alone
        {},  # the official NULL document
        {"text": "(starts with a bracket"},  # the marker merges with it: a plain pair
    ]


@pytest.fixture(scope="module")
def frames(media_dir: Path) -> None:
    for i in range(4):
        png(media_dir / f"frame{i}.png", (128, 96), (i * 40, 90, 200 - i * 30))


@pytest.mark.parametrize(
    "query",
    [
        {"text": "red shoes"},
        {"text": "like this", "image": "red.png"},
        {"image": "blue.png"},
        {"text": "this clip", "video": "clip.mp4"},
    ],
    ids=["text", "image+text", "image", "video"],
)
def test_the_layouts_give_plain_pairs_scores(
    vl_scorer: Scorer, media_dir: Path, frames: None, query: dict[str, Any]
) -> None:
    query = {k: str(media_dir / v) if k in ("image", "video") else v for k, v in query.items()}
    outcomes = by_layout(vl_scorer, query, documents(media_dir), None)
    assert_same(outcomes)
    assert [i for i, _ in outcomes["plain"].errors] == [8]


def test_a_custom_instruction_and_the_truncation_boundary(
    tiny_model_dirs: dict[str, Path], media_dir: Path
) -> None:
    base = Qwen3VLReranker(str(tiny_model_dirs["qwen3-vl"]))
    query = {"text": "red shoes"}
    head = base.prepare(query, {"text": ""}, "Find shoes").prefix_len
    model = Qwen3VLReranker(
        str(tiny_model_dirs["qwen3-vl"]),
        max_length=head + 12,
        media=MediaResolver(local_roots=(media_dir,)),
    )
    scorer = Scorer(model)
    docs = [{"text": "word " * n} for n in (1, 5, 6, 7, 30)]
    docs.append({"text": "word " * 30, "image": str(media_dir / "red.png")})
    try:
        outcomes = by_layout(scorer, query, docs, "Find shoes")
    finally:
        scorer.close()
    assert_same(outcomes)
    prepared = [model.prepare(query, model.resolve(d), "Find shoes") for d in docs]
    assert max(p.length for p in prepared[:5]) == head + 12 + 5  # cut: the kept tail is 5 ids
    assert all(p.prefix_key is not None for p in prepared[:5])
    # The image's placeholders are kept whole, so the cut reaches into the prefix: plain pair.
    assert prepared[5].prefix_key is None


def test_same_ids_different_query_images_do_not_share_a_prefix(
    vl_scorer: Scorer, media_dir: Path
) -> None:
    model = model_of(vl_scorer)
    red = model.resolve({"image": str(media_dir / "red.png"), "text": "q"})
    green = model.resolve({"image": Image.new("RGB", (320, 240), (20, 220, 20)), "text": "q"})
    doc = model.resolve({"text": "a red thing"})
    batch = [model.prepare(q, doc, None) for q in (red, green) * MIN_GROUP]
    assert batch[0].input_ids == batch[1].input_ids  # the same ids, other pixels
    assert batch[0].prefix_key != batch[1].prefix_key
    assert batch[0].prefix_key == batch[2].prefix_key
    plain = [model.forward([p])[0] for p in batch[:2]] * MIN_GROUP
    assert abs(plain[0] - plain[1]) > 1e-6  # the images matter
    shared = model.forward(batch)
    assert max(abs(a - b) for a, b in zip(plain, shared, strict=True)) <= TOLERANCE


def test_the_celery_workers_shared_prefix_scores_equal_plain_pairs(
    scoring_worker: ScoringWorkerHandle, vl_scorer: Scorer, media_dir: Path, frames: None
) -> None:
    docs = [d for d in documents(media_dir) if "corrupt" not in str(d.get("image"))]
    query = {"text": "like this", "image": str(media_dir / "red.png")}
    job = ScoringJob(
        model="tiny-vl",
        query=query,
        documents=[{"id": str(i), **d} for i, d in enumerate(docs)],
        deadline=time.time() + 120,
    )
    broker = scoring_worker.worker.broker_url
    client = celery_client("rerank-client", broker, broker)
    try:
        result = client.send_task(SCORE_TASK, args=[job.model_dump(mode="json")],
                                  queue=queue_name(job.model, job.priority))  # fmt: skip
        scored = ScoringResult.model_validate(result.get(timeout=120))
    finally:
        client.close()
    plain = by_layout(vl_scorer, query, docs, None)["plain"]
    assert not scored.errors and not plain.errors
    diff = max(abs(a - b) for a, b in zip(scored.scores, plain.scores, strict=True))  # type: ignore[operator]
    assert diff <= TOLERANCE


def test_index_after_finds_the_first_marker() -> None:
    assert index_after([1, 2, 3, 2, 3], [2, 3]) == 3
    assert index_after([1, 2, 4], [2, 3]) == 0
    assert index_after([], [2, 3]) == 0


def test_split_vision_cuts_between_images_and_refuses_a_straddle() -> None:
    # merge 2: an image of grid (1, 2, 4) is 8 patches and 2 tokens; (1, 2, 2): 4 and 1.
    image = 9
    vision = {
        "pixel_values": torch.arange(12)[:, None].float(),
        "image_grid_thw": torch.tensor([[1, 2, 4], [1, 2, 2]]),
    }
    ids = [0, image, image, 5, image, 7]
    split = split_vision(ids, 3, vision, image, 99, 2)
    assert split is not None
    head, tail = split
    assert head["pixel_values"].flatten().tolist() == list(range(8))
    assert head["image_grid_thw"].tolist() == [[1, 2, 4]]
    assert tail["pixel_values"].flatten().tolist() == [8, 9, 10, 11]
    assert split_vision(ids, 2, vision, image, 99, 2) is None  # inside the first image
    nothing, everything = split_vision(ids, 1, vision, image, 99, 2) or ({"x": 1}, {})
    assert nothing == {} and everything["image_grid_thw"].shape[0] == 2


def test_a_pair_without_the_marker_runs_plain(vl_scorer: Scorer) -> None:
    model = model_of(vl_scorer)
    prepared = Prepared([1, 2, 3] * 10)
    model._claim_prefix(prepared, {})
    assert prepared.prefix_key is None and prepared.prefix_len == 0
