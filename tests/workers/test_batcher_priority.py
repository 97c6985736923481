"""The batcher takes interactive pairs before bulk ones: a search's pairs arriving behind a
rescoring job's are scored in the next batch, alone, with the same scores as on their own. The
model is the real tiny text model (real forward passes); the test only holds its first batch
until everything is queued, so the order is decided by the batcher, not by timing."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.waiting import wait_for
from workers.batcher import Batcher
from workers.scoring import Scorer


class HeldModel:
    """The tiny model, its first forward pass held until ``release``; batch sizes recorded."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.release = threading.Event()
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def forward(self, prepared: list[Any]) -> Any:
        if not self.batches:
            self.batches.append(len(prepared))
            assert self.release.wait(30)
        else:
            self.batches.append(len(prepared))
        return self._model.forward(prepared)


def test_interactive_pairs_go_ahead_of_waiting_bulk_pairs(tiny_scorers: dict[str, Scorer]) -> None:
    scorer = tiny_scorers["tiny-text"]
    model = HeldModel(scorer.model)
    batcher = Batcher(model, max_batch=4)  # type: ignore[arg-type]
    finished: list[str] = []
    outcomes: dict[str, Any] = {}
    query = {"text": "red shoes"}
    mine = [{"text": "red running shoes"}, {"text": "a blue scarf"}]

    def run(name: str, docs: list[dict[str, str]], priority: Any) -> None:
        outcomes[name] = batcher.score(query, docs, None, time.time() + 60, priority=priority)
        finished.append(name)

    bulk_docs = [{"text": f"bulk document {i} about shoes"} for i in range(20)]
    threads = [threading.Thread(target=run, args=("held", bulk_docs[:4], "bulk"))]
    try:
        threads[0].start()
        wait_for(lambda: model.batches, 30, "the first batch to reach the model")
        threads.append(threading.Thread(target=run, args=("bulk", bulk_docs, "bulk")))
        threads[1].start()
        wait_for(lambda: batcher.queue_depth() == 20, 30, "the bulk job's pairs to queue")
        threads.append(threading.Thread(target=run, args=("search", mine, "interactive")))
        threads[2].start()
        wait_for(lambda: batcher.queue_depth() == 22, 30, "the search's pairs to queue")
        model.release.set()
        for thread in threads:
            thread.join(60)
    finally:
        model.release.set()
        batcher.close()
    assert finished == ["held", "search", "bulk"]
    assert model.batches[:2] == [4, 2]  # the search's batch: its two pairs alone
    assert sum(model.batches) == 26
    alone = scorer.score(query, mine)
    assert max(abs(a - b) for a, b in zip(outcomes["search"].scores, alone, strict=True)) <= 1e-5


class RecordingModel(HeldModel):
    """HeldModel that also records each batch's prefix keys."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.keys: list[list[Any]] = []

    def forward(self, prepared: list[Any]) -> Any:
        self.keys.append([p.prefix_key for p in prepared])
        return super().forward(prepared)


def test_pairs_of_one_prefix_from_different_requests_share_a_batch(
    tiny_scorers: dict[str, Scorer],
) -> None:
    scorer = tiny_scorers["tiny-text"]
    model = RecordingModel(scorer.model)
    batcher = Batcher(model, max_batch=8)  # type: ignore[arg-type]
    shoes, scarf = {"text": "red shoes"}, {"text": "a warm scarf"}
    short = [{"text": f"item {i}"} for i in range(3)]
    long = [{"text": f"a much longer description of item {i} " * 4} for i in range(3)]
    outcomes: dict[str, Any] = {}

    def run(name: str, query: dict[str, str], docs: list[dict[str, str]]) -> None:
        outcomes[name] = batcher.score(query, docs, None, time.time() + 60)

    held = threading.Thread(target=run, args=("held", scarf, [{"text": "x"}]))
    threads = [
        threading.Thread(target=run, args=args)
        for args in (("a", shoes, short), ("b", scarf, short), ("c", shoes, long))
    ]
    try:
        held.start()
        wait_for(lambda: model.batches, 30, "the first batch to reach the model")
        for depth, thread in zip((3, 6, 9), threads, strict=True):
            thread.start()
            wait_for(lambda d=depth: batcher.queue_depth() == d, 30, "the pairs to queue")  # type: ignore[misc]
        model.release.set()
        for thread in [held, *threads]:
            thread.join(60)
    finally:
        model.release.set()
        batcher.close()
    # By length alone, a's and b's short pairs would have gone first, together.
    assert model.batches[1:] == [6, 3]
    first = model.keys[1]
    assert len(set(first)) == 1 and first[0] is not None  # one prefix: a's and c's pairs
    assert model.keys[2][0] != first[0]
    for name, query, docs in (("a", shoes, short), ("b", scarf, short), ("c", shoes, long)):
        alone = scorer.score(query, docs)
        diff = max(abs(x - y) for x, y in zip(outcomes[name].scores, alone, strict=True))  # type: ignore[operator]
        assert diff <= 1e-5, name
