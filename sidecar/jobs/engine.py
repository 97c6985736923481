"""The engine as a job sees it: searches, the results index and bulk writes, sent with the
job's named credentials (``jobs.credentials``) and nothing else. The secret lives in this
object's headers only: never in a message, a log line or Redis."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from sidecar.jobs.errors import JobError
from sidecar.jobs.results import mapping_conflicts, results_mapping
from sidecar.jobs.spec import UbiQueries
from sidecar.jsonio import dumps, loads
from sidecar.proxy.upstream import Upstream, UpstreamOptions, UpstreamUnavailable
from sidecar.settings import JobCredential


class EngineFailed(RuntimeError):
    """The engine could not be used (unreachable, 5xx, or it refused the results index)."""


def auth_headers(credential: JobCredential | None) -> dict[str, str]:
    if credential is None:
        return {}
    if credential.api_key is not None:
        return {"Authorization": f"ApiKey {credential.api_key.get_secret_value()}"}
    if credential.basic_auth is None:
        raise ValueError("the credential has no secret")
    token = base64.b64encode(credential.basic_auth.get_secret_value().encode()).decode()
    return {"Authorization": f"Basic {token}"}


def engine_reason(body: Any) -> str:
    """An engine error's type and reason, e.g. ``index_not_found_exception: no such index``."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"[:500]
    return str(body)[:500]


class JobEngine:
    def __init__(
        self, urls: list[str], options: UpstreamOptions, credential: JobCredential | None
    ) -> None:
        self._upstream = Upstream(urls, options)
        self._headers = {"Content-Type": "application/json", **auth_headers(credential)}

    async def call(
        self, method: str, path: str, body: Any = None, ndjson: bytes | None = None
    ) -> tuple[int, Any]:
        """(status, parsed body). Raises UpstreamUnavailable when no node answered."""
        headers = dict(self._headers)
        data: bytes | None = None
        if ndjson is not None:
            headers["Content-Type"] = "application/x-ndjson"
            data = ndjson
        elif body is not None:
            data = dumps(body)
        response = await self._upstream.request(method, path, headers, data)
        try:
            raw = await response.read()
        finally:
            response.release()
        try:
            parsed = loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")[:500]
        return response.status, parsed

    async def search(self, index: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.call("POST", f"/{quote(index, safe=',*')}/_search", body)

    async def check_source(self, index: str) -> None:
        """Raises JobError (field ``index``) when ``index`` names no index the job may search."""
        try:
            status, body = await self.call(
                "GET",
                f"/{quote(index, safe=',*')}/_search?size=0&allow_no_indices=false",
            )
        except UpstreamUnavailable as exc:
            raise JobError("index", f"the cluster cannot be reached: {exc}") from None
        if status != 200:
            raise JobError("index", f"cannot search {index!r}: {engine_reason(body)}")

    async def check_target(self, index: str) -> bool:
        """Raises JobError (field ``output.index``) for a target whose mapping cannot hold the
        results; True when it exists already (False: it is to be made)."""
        try:
            status, body = await self.call("GET", f"/{quote(index)}/_mapping")
        except UpstreamUnavailable as exc:
            raise JobError("output.index", f"the cluster cannot be reached: {exc}") from None
        if status == 404:
            return False
        if status != 200 or not isinstance(body, dict):
            raise JobError(
                "output.index", f"cannot read the mapping of {index!r}: {engine_reason(body)}"
            )
        if len(body) != 1:
            raise JobError("output.index", f"{index!r} names {len(body)} indices, not one")
        (mapping,) = body.values()
        properties = (mapping.get("mappings") or {}).get("properties") or {}
        conflicts = mapping_conflicts(properties)
        if conflicts:
            raise JobError("output.index", f"{index!r} is incompatible: " + "; ".join(conflicts))
        return True

    async def create_target(self, index: str) -> None:
        status, body = await self.call(
            "PUT",
            f"/{quote(index)}",
            {"settings": {"index": {"number_of_replicas": 0}}, "mappings": results_mapping()},
        )
        already = isinstance(body, dict) and "already_exists" in engine_reason(body)
        if status != 200 and not already:
            raise JobError("output.index", f"cannot create {index!r}: {engine_reason(body)}")

    async def bulk_index(self, index: str, documents: list[tuple[str, dict[str, Any]]]) -> None:
        """Index (create or overwrite) each document under its id. Raises EngineFailed when the
        request or any document was refused."""
        lines = []
        for doc_id, document in documents:
            lines.append(dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(dumps(document))
        status, body = await self.call("POST", "/_bulk", ndjson=b"\n".join(lines) + b"\n")
        if status != 200 or not isinstance(body, dict):
            raise EngineFailed(f"the results index refused a bulk write: {engine_reason(body)}")
        if body.get("errors"):
            for item in body.get("items", []):
                error = (item.get("index") or {}).get("error")
                if error:
                    raise EngineFailed(
                        f"the results index refused a document: {engine_reason({'error': error})}"
                    )

    async def refresh(self, index: str) -> None:
        await self.call("POST", f"/{quote(index)}/_refresh")

    async def ubi_top(self, source: UbiQueries) -> list[tuple[str, int]]:
        """The most frequent ``user_query`` values in the time range, most frequent first."""
        body = {
            "size": 0,
            "query": {"range": {"timestamp": {"gte": source.since, "lte": source.until}}},
            "aggs": {"top": {"terms": {"field": source.field, "size": source.top}}},
        }
        try:
            status, answer = await self.search(source.index, body)
        except UpstreamUnavailable as exc:
            raise JobError("queries.ubi", f"the cluster cannot be reached: {exc}") from None
        if status != 200 or not isinstance(answer, dict):
            raise JobError("queries.ubi", f"cannot read {source.index!r}: {engine_reason(answer)}")
        buckets = ((answer.get("aggregations") or {}).get("top") or {}).get("buckets") or []
        return [(str(b["key"]), int(b["doc_count"])) for b in buckets if str(b["key"]).strip()]

    async def close(self) -> None:
        await self._upstream.close()
