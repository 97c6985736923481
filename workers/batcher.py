"""Micro-batching across requests: many task threads submit pairs, one thread runs the model.

Each pair of a job is prepared (tokenized, media decoded) on a small thread pool, so preparing
the next pairs overlaps the forward pass of the current batch. Prepared pairs join one queue per
model; the model thread takes the oldest pending pairs (a window), sorts them by length and runs
the length-group that holds the oldest pair, within a padded-token budget (longest × count);
where the oldest pair has a shared prefix (``Prepared.prefix_key``), the batch is instead the
window's pairs with that prefix, from every request that has it, so the model runs it once.
While pairs of interactive jobs wait, the window holds only those: a bulk job's pairs (a
rescoring job's) never make a search's batch longer, they run when no search waits.
Pairs whose deadline has passed or whose caller gave up are dropped before they cost anything.
A batch that fails is retried pair by pair, so an error always belongs to one pair.

Each job's media work runs under a ``MediaJob`` (its deadline and media byte budget), active on
the thread that resolves the query and on each preparing thread, so fetching and video decoding
stop at the deadline instead of holding a preparation thread past it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from workers.contract import Priority
from workers.media import MediaError, MediaJob, MediaLimits
from workers.scoring.base import (
    PairError,
    Prepared,
    RerankerModel,
    ScoreOutcome,
    cut_document,
    plan_batches,
)
from workers.scoring.shared_prefix import MIN_GROUP
from workers.tracing import batch_spans, current_context


class DeadlineExpired(RuntimeError):
    """The pair's deadline passed before the model reached it."""


class BatchObserver(Protocol):
    """Receives batch statistics (the Prometheus metrics implement it)."""

    def batch_done(
        self, pairs: int, padded_tokens: int, real_tokens: int, seconds: float
    ) -> None: ...

    def pair_failed(self, reason: str) -> None: ...


class _NoObserver:
    def batch_done(self, pairs: int, padded_tokens: int, real_tokens: int, seconds: float) -> None:
        pass

    def pair_failed(self, reason: str) -> None:
        pass


@dataclass(eq=False)
class _Item:
    prepared: Prepared
    deadline: float
    future: concurrent.futures.Future[float] = field(default_factory=concurrent.futures.Future)
    trace_context: Any = None  # the job's (its task span's), for the batch's span
    bulk: bool = False


class Batcher:
    """One per loaded model in a worker process. ``score`` is called from many threads."""

    def __init__(
        self,
        model: RerankerModel,
        *,
        token_budget: int = 16384,
        max_batch: int = 64,
        prepare_threads: int = 2,
        window: int = 256,
        observer: BatchObserver | None = None,
    ) -> None:
        self.model = model
        self.token_budget = token_budget
        self.max_batch = max_batch
        self.window = window
        self.observer: BatchObserver = observer or _NoObserver()
        self._pending: deque[_Item] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self._prepare_pool = concurrent.futures.ThreadPoolExecutor(
            prepare_threads, thread_name_prefix="prepare"
        )
        self._thread = threading.Thread(target=self._run, name="model", daemon=True)
        self._thread.start()

    def queue_depth(self) -> int:
        with self._wakeup:
            return len(self._pending)

    def score(
        self,
        query: Mapping[str, Any],
        documents: Sequence[Mapping[str, Any]],
        instruction: str | None,
        deadline: float,
        max_doc_tokens: int | None = None,
        priority: Priority = "interactive",
    ) -> ScoreOutcome:
        """Score one job; blocks the calling thread until every pair is scored or failed.
        Pairs of ``interactive`` jobs go into batches before any ``bulk`` pair waiting."""
        bulk = priority == "bulk"
        scores: list[float | None] = [None] * len(documents)
        errors: dict[int, str] = {}
        # Read at each job: the limits belong to the model's media resolver, not to the batcher.
        limits: MediaLimits | None = getattr(getattr(self.model, "media", None), "limits", None)
        job = MediaJob.for_limits(limits, deadline)
        try:
            # The query's media are prepared again with every document: count them that often.
            with job.active(copies=len(documents)):
                resolved_query = self.model.resolve(query)
        except (MediaError, PairError) as exc:
            reason = f"query: {exc}"
            return ScoreOutcome(scores, [(i, reason) for i in range(len(documents))])

        lengths: dict[int, int] = {}
        trace_context = current_context()  # this thread's: the prepare threads have none

        def prepare_and_submit(
            index: int, document: Mapping[str, Any]
        ) -> concurrent.futures.Future[float]:
            if time.time() >= deadline:
                raise DeadlineExpired("deadline passed before this document was prepared")
            with job.active():
                document = cut_document(self.model, document, max_doc_tokens)
                resolved = self.model.resolve(document)
                prepared = self.model.prepare(resolved_query, resolved, instruction)
            lengths[index] = prepared.length
            return self._submit(prepared, deadline, trace_context, bulk)

        submitted: list[concurrent.futures.Future[concurrent.futures.Future[float]]]
        prepare_many = getattr(self.model, "prepare_many", None)
        if prepare_many is not None:
            # Text-only models tokenize the whole job in one call (the Rust tokenizer encodes a
            # list in parallel); nothing to overlap with the model, so no pool hop per pair.
            cut = [
                self.model.resolve(cut_document(self.model, doc, max_doc_tokens))
                for doc in documents
            ]
            all_prepared = list(prepare_many(resolved_query, cut, instruction))
            ready = [p for p in all_prepared if not isinstance(p, PairError)]
            queued = iter(self._submit_many(ready, deadline, trace_context, bulk))
            submitted = []
            for index, prepared in enumerate(all_prepared):
                outer: concurrent.futures.Future[concurrent.futures.Future[float]]
                outer = concurrent.futures.Future()
                if isinstance(prepared, PairError):
                    outer.set_exception(prepared)
                else:
                    lengths[index] = prepared.length
                    outer.set_result(next(queued))
                submitted.append(outer)
        else:
            submitted = [
                self._prepare_pool.submit(prepare_and_submit, index, doc)
                for index, doc in enumerate(documents)
            ]
        for index, pending in enumerate(submitted):
            inner: concurrent.futures.Future[float] | None = None
            try:
                inner = pending.result(timeout=max(0.0, deadline - time.time()))
                scores[index] = inner.result(timeout=max(0.0, deadline - time.time()))
            except (MediaError, PairError, DeadlineExpired) as exc:
                errors[index] = str(exc)
            except concurrent.futures.TimeoutError:
                # Abandon the pair: the model thread skips cancelled items.
                for future in (pending, inner):
                    if future is not None:
                        future.cancel()
                errors[index] = "deadline passed before the model reached this document"
            except Exception as exc:  # a model failure of this pair alone
                errors[index] = f"scoring failed: {type(exc).__name__}: {exc}"
        for reason in errors.values():
            self.observer.pair_failed(_reason_kind(reason))
        tokens = sum(n for i, n in lengths.items() if scores[i] is not None)
        return ScoreOutcome(scores, sorted(errors.items()), tokens)

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
        self._thread.join(timeout=30)
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)

    def _submit(
        self, prepared: Prepared, deadline: float, trace_context: Any, bulk: bool = False
    ) -> concurrent.futures.Future[float]:
        return self._submit_many([prepared], deadline, trace_context, bulk)[0]

    def _submit_many(
        self, prepared: Sequence[Prepared], deadline: float, trace_context: Any, bulk: bool
    ) -> list[concurrent.futures.Future[float]]:
        """Queue pairs together: the model thread sees all of them or none, so a job whose
        pairs are ready at once is not split by the thread waking on its first pair (which
        would run that pair alone, without the shared prefix)."""
        items = [_Item(p, deadline, trace_context=trace_context, bulk=bulk) for p in prepared]
        with self._wakeup:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.extend(items)
            self._wakeup.notify()
        return [item.future for item in items]

    def _next_batch(self) -> list[_Item] | None:
        with self._wakeup:
            while not self._pending and not self._closed:
                self._wakeup.wait()
            if self._closed:
                return None
            now = time.time()
            live: deque[_Item] = deque()
            for item in self._pending:
                if item.future.cancelled():
                    continue
                if item.deadline <= now:
                    item.future.set_exception(
                        DeadlineExpired("deadline passed before the model reached this document")
                    )
                    continue
                live.append(item)
            self._pending = live
            if not live:
                return []
            # Interactive pairs alone while any wait: a bulk job's pairs would make the batch
            # (and so the search waiting on it) longer; bulk pairs fill batches only when no
            # interactive pair waits.
            urgent = [item for item in live if not item.bulk]
            candidates = urgent or live
            window = [candidates[i] for i in range(min(self.window, len(candidates)))]
            batch = self._same_prefix(window)
            if not batch:
                plan = plan_batches(
                    [i.prepared.length for i in window], self.token_budget, self.max_batch
                )
                # The group holding the oldest candidate goes first, so long pairs cannot
                # starve.
                chosen = next(group for group in plan if 0 in group)
                batch = [window[i] for i in chosen]
            for item in batch:
                self._pending.remove(item)
            return batch

    def _same_prefix(self, window: list[_Item]) -> list[_Item]:
        """The oldest pair and the window's other pairs with its prefix, whichever request they
        come from, so the model computes that prefix once for all of them; the cost counted is
        the prefix once plus each pair's own tokens. Empty where the oldest pair shares nothing
        (it then goes by length), and where the model runs whole pairs: the prefix is then paid
        by every pair, and the budget has to count it that way."""
        oldest = window[0].prepared
        if oldest.prefix_key is None or getattr(self.model, "layout", "plain") == "plain":
            return []
        batch: list[_Item] = []
        used = oldest.prefix_len
        for item in window:
            if item.prepared.prefix_key != oldest.prefix_key:
                continue
            cost = item.prepared.length - item.prepared.prefix_len
            if batch and (used + cost > self.token_budget or len(batch) >= self.max_batch):
                break
            batch.append(item)
            used += cost
        return batch if len(batch) >= getattr(self.model, "min_group", MIN_GROUP) else []

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._forward(batch)

    def _forward(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        started_ns = time.time_ns()
        try:
            values = self.model.forward([item.prepared for item in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for item in batch:  # find the pair that fails; the others still get scores
                self._forward([item])
            return
        lengths = [item.prepared.length for item in batch]
        self.observer.batch_done(
            len(batch), max(lengths) * len(batch), sum(lengths), time.perf_counter() - started
        )
        batch_spans(
            [item.trace_context for item in batch],
            started_ns,
            time.time_ns(),
            {
                "rerank.batch.pairs": len(batch),
                "rerank.batch.real_tokens": sum(lengths),
                "rerank.batch.padded_tokens": max(lengths) * len(batch),
            },
        )
        for item, value in zip(batch, values, strict=True):
            if not item.future.done():
                item.future.set_result(value)


def _reason_kind(reason: str) -> str:
    """A small, fixed set of labels for the errors-by-reason metric."""
    lowered = reason.lower()
    for needle, label in (
        ("deadline", "deadline"),
        ("could not be fetched", "fetch"),
        ("public addresses", "ssrf"),
        ("limit", "too_large"),
        ("decoded", "decode"),
        ("text only", "no_text"),
        ("scoring failed", "model"),
    ):
        if needle in lowered:
            return label
    return "other"
