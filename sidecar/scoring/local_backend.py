"""Scoring in this process: the embedded default for one machine and for demos.

Importing this module loads no torch; building the dispatcher loads the models (and torch) via
``workers.runtime``. The sidecar imports it by name, only when the local backend is configured.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import TYPE_CHECKING

from sidecar.scoring.dispatch import DispatchError, DispatchTimeout
from workers.contract import DocumentError, ScoringJob, ScoringResult

if TYPE_CHECKING:
    from workers.batcher import Batcher


class LocalDispatcher:
    def __init__(self, batchers: dict[str, Batcher], threads: int = 8) -> None:
        self._batchers = batchers
        self._executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="local-score"
        )

    async def score(self, job: ScoringJob) -> ScoringResult:
        batcher = self._batchers.get(job.model)
        if batcher is None:
            raise DispatchError(f"model {job.model!r} is not loaded in this process")
        remaining = job.deadline - time.time()
        if remaining <= 0:
            raise DispatchTimeout("the deadline passed before the job started")
        started = time.perf_counter()
        call = asyncio.get_running_loop().run_in_executor(
            self._executor,
            batcher.score,
            job.query.model_dump(exclude_none=True),
            [d.model_dump(exclude_none=True, exclude={"id"}) for d in job.documents],
            job.instruction,
            job.deadline,
            job.max_doc_tokens,
        )
        try:
            async with asyncio.timeout(remaining):
                outcome = await call
        except TimeoutError:
            raise DispatchTimeout(
                f"the local {job.model} model did not finish within {remaining * 1000:.0f} ms"
            ) from None
        return ScoringResult(
            scores=outcome.scores,
            errors=[DocumentError(index=i, error=e) for i, e in outcome.errors],
            model=job.model,
            took_ms=(time.perf_counter() - started) * 1000,
            tokens=outcome.tokens,
        )

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
