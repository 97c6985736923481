"""The buffered writer of the UBI indices: searches and events go to the cluster in bulk, off the
request path.

``write`` never waits: it puts the document in a bounded buffer, or, when the buffer is full,
drops it and counts it. One background task sends the buffer as ``_bulk`` requests (every
``flush_interval_ms`` or ``batch_size`` documents) through its own small connection pool with
its own timeout, so a slow cluster fills the buffer instead of holding searches. A failed bulk
request is dropped and counted too (a search must never fail or wait because logging did); a
warning says so at most once a minute. The indices are created on first use with the UBI
plugin's mappings (``ubi_schema``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from sidecar.evaluation.cluster import INDEX_SETTINGS
from sidecar.evaluation.models import Flavor
from sidecar.experiments.ubi_schema import events_mapping, queries_mapping
from sidecar.jsonio import dumps, loads
from sidecar.metrics import SidecarMetrics
from sidecar.proxy.upstream import Upstream, UpstreamOptions, UpstreamUnavailable
from sidecar.settings import UbiSettings

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0
RECENT_QUERY_IDS = 100_000  # this process's logged query ids, for events that come at once
QUERY_ID_KEY = "rerank:ubi:query:{}"


def query_id_key(query_id: str) -> str:
    return QUERY_ID_KEY.format(query_id)


class UbiWriter:
    def __init__(
        self,
        urls: list[str],
        settings: UbiSettings,
        metrics: SidecarMetrics,
        redis: aioredis.Redis | None = None,
        upstream_options: UpstreamOptions | None = None,
    ) -> None:
        base = upstream_options or UpstreamOptions()
        self._upstream = Upstream(
            urls,
            UpstreamOptions(
                connect_timeout_s=min(base.connect_timeout_s, settings.request_timeout_s),
                read_timeout_s=settings.request_timeout_s,
                connections_per_node=4,
                ca_file=base.ca_file,
                verify_tls=base.verify_tls,
                retries=0,
            ),
        )
        self.settings = settings
        self._metrics = metrics
        self._redis = redis
        self._queue: asyncio.Queue[tuple[str, str | None, dict[str, Any]]] = asyncio.Queue(
            maxsize=settings.buffer_size
        )
        self._task: asyncio.Task[None] | None = None
        self._ready_indices: set[str] = set()
        self._flavor: Flavor | None = None
        self._last_warning = -WARN_EVERY_S
        self._sending = 0
        self._recent: dict[str, None] = {}
        self._headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"ApiKey {settings.api_key.get_secret_value()}"
        elif settings.basic_auth is not None:
            token = base64.b64encode(settings.basic_auth.get_secret_value().encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def write(self, index: str, doc: dict[str, Any], doc_id: str | None = None) -> bool:
        """Queue one document; False (and counted) when the buffer is full."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait((index, doc_id, doc))
        except asyncio.QueueFull:
            self._dropped(index, "buffer_full", 1)
            return False
        query_id = doc.get("query_id")
        if index == self.settings.queries_index and isinstance(query_id, str):
            self._recent[query_id] = None
            if len(self._recent) > RECENT_QUERY_IDS:
                del self._recent[next(iter(self._recent))]
        return True

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while not self._queue.empty() or self._sending:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is buffered (at most ``timeout_s``), then stop."""
        if self._task is not None:
            await self.flush(timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._upstream.close()

    def _dropped(self, index: str, reason: str, count: int) -> None:
        self._metrics.ubi_documents.labels(index, f"dropped_{reason}").inc(count)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning(
                "UBI logging dropped %d document(s) of %s (%s); searches are not affected",
                count,
                index,
                reason,
            )

    async def _run(self) -> None:
        batch_size = self.settings.batch_size
        interval = self.settings.flush_interval_ms / 1000
        while True:
            first = await self._queue.get()
            self._sending += 1
            try:
                batch = [first]
                deadline = time.monotonic() + interval
                while len(batch) < batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                    except TimeoutError:
                        break
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a writer bug must not stop logging for good
                log.exception("the UBI writer failed on a batch; it is dropped")
            finally:
                self._sending -= 1

    async def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
        response = await self._upstream.request(method, path, self._headers, body)
        try:
            raw = await response.read()
            return response.status, (loads(raw) if raw else None)
        finally:
            response.release()

    async def _flavor_of_cluster(self) -> Flavor:
        if self._flavor is None:
            _, root = await self._request("GET", "/", None)
            version = (root or {}).get("version", {}) if isinstance(root, dict) else {}
            self._flavor = (
                "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
            )
        return self._flavor

    async def _ensure(self, index: str) -> None:
        if index in self._ready_indices:
            return
        flavor = await self._flavor_of_cluster()
        mapping = (
            queries_mapping(flavor)
            if index == self.settings.queries_index
            else events_mapping(flavor)
        )
        status, answer = await self._request(
            "PUT", f"/{index}", dumps({"settings": INDEX_SETTINGS, "mappings": mapping})
        )
        text = str(answer)
        if status >= 400 and "resource_already_exists" not in text:
            raise UpstreamUnavailable(f"creating {index} failed ({status}): {text[:300]}")
        self._ready_indices.add(index)

    async def _send(self, batch: Sequence[tuple[str, str | None, dict[str, Any]]]) -> None:
        by_index: dict[str, int] = {}
        for index, _, _ in batch:
            by_index[index] = by_index.get(index, 0) + 1
        try:
            for index in by_index:
                await self._ensure(index)
            await self._remember_query_ids(batch)
            lines = bytearray()
            for index, doc_id, doc in batch:
                action: dict[str, Any] = {"_index": index}
                if doc_id is not None:
                    action["_id"] = doc_id
                lines += dumps({"index": action}) + b"\n" + dumps(doc) + b"\n"
            status, answer = await self._request("POST", "/_bulk", bytes(lines))
        except UpstreamUnavailable as exc:
            for index, count in by_index.items():
                self._dropped(index, "timeout" if exc.timeout else "cluster_unavailable", count)
            return
        if status != 200 or not isinstance(answer, dict):
            for index, count in by_index.items():
                self._dropped(index, f"status_{status}", count)
            return
        for item in answer.get("items", []):
            result = item.get("index", {})
            index = result.get("_index", "unknown")
            if "error" in result:
                self._dropped(index, "rejected", 1)
            else:
                self._metrics.ubi_documents.labels(index, "written").inc()

    async def _remember_query_ids(
        self, batch: Sequence[tuple[str, str | None, dict[str, Any]]]
    ) -> None:
        """Query ids of logged searches, so events for unknown ones can be told apart."""
        if self._redis is None:
            return
        ids = [
            doc["query_id"]
            for index, _, doc in batch
            if index == self.settings.queries_index and isinstance(doc.get("query_id"), str)
        ]
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for query_id in ids:
                    pipe.set(query_id_key(query_id), 1, ex=self.settings.query_id_ttl_s)
                await pipe.execute()
        except Exception as exc:  # Redis down: orphans cannot be told apart for a while
            log.debug("remembering UBI query ids failed: %s", exc)

    async def known_query_ids(self, query_ids: Sequence[str]) -> set[str] | None:
        """Which of ``query_ids`` the sidecar logged (this process's recent ones, then Redis'
        record of every process's); None when neither can say."""
        local = {q for q in query_ids if q in self._recent}
        rest = [q for q in query_ids if q not in local]
        if not rest:
            return local
        if self._redis is None:
            return local or None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for query_id in rest:
                    pipe.exists(query_id_key(query_id))
                found = await pipe.execute()
        except Exception:
            return local or None
        return local | {q for q, hit in zip(rest, found, strict=True) if hit}
