"""A small synchronous client of the cluster for the command line tools (judgments, eval).

The CLI talks to the sidecar's URL (everything it does not rerank passes through to the
cluster) or to the cluster itself, with the caller's credentials: an API key or basic auth,
sent as headers and never printed. Errors carry the engine's own reason.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from sidecar.evaluation.models import Flavor

SCROLL = "2m"
# The sidecar's own indices: one replica where the cluster has a node to hold it, none on a
# single node (which would otherwise stay yellow for good).
INDEX_SETTINGS = {"index": {"auto_expand_replicas": "0-1"}}


class ClusterError(RuntimeError):
    """The cluster refused or could not be reached; ``status`` is 0 for a transport error."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{reason} (HTTP {status})" if status else reason)
        self.status = status
        self.reason = reason


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:300] or response.reason_phrase
    if isinstance(error, dict):
        root = (error.get("root_cause") or [error])[0]
        return f"{root.get('type', 'error')}: {root.get('reason', '')}"
    return str(error)


@dataclass
class Cluster:
    """The cluster at ``url`` (the sidecar or a node), as the caller."""

    url: str
    api_key: str | None = None
    basic_auth: str | None = None  # "user:password"
    verify: bool | str = True
    timeout_s: float = 120.0
    headers: Mapping[str, str] = field(default_factory=dict)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    def _http(self) -> httpx.Client:
        if self._client is None:
            headers = {"Accept": "application/json", **self.headers}
            if self.api_key:
                headers["Authorization"] = f"ApiKey {self.api_key}"
            elif self.basic_auth:
                token = base64.b64encode(self.basic_auth.encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            self._client = httpx.Client(
                base_url=self.url.rstrip("/"),
                headers=headers,
                timeout=self.timeout_s,
                verify=self.verify,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Sequence[int] = (200, 201),
    ) -> httpx.Response:
        """One request; a status outside ``ok`` raises ``ClusterError`` with the engine's
        reason. Bodies are JSON, or NDJSON when ``body`` is a ``str``."""
        content: bytes | None = None
        sent_headers = dict(headers or {})
        if isinstance(body, str):
            content = body.encode()
            sent_headers.setdefault("Content-Type", "application/x-ndjson")
        elif body is not None:
            content = json.dumps(body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        try:
            response = self._http().request(
                method, path, content=content, params=params, headers=sent_headers
            )
        except httpx.HTTPError as exc:
            raise ClusterError(0, f"cannot reach {self.url}: {exc}") from None
        if response.status_code not in ok:
            raise ClusterError(response.status_code, _reason(response))
        return response

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.send(method, path, body, **kwargs).json()
        return result

    def flavor(self) -> Flavor:
        version = self.json("GET", "/").get("version", {})
        return "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"

    def ensure_index(
        self, index: str, mappings: dict[str, Any], required: Mapping[str, str]
    ) -> bool:
        """Create ``index`` with ``mappings`` unless it exists; an existing one must map each
        ``required`` field to its type (else ``ClusterError`` naming the field). True when the
        index was created."""
        if self.send("HEAD", f"/{index}", ok=(200, 404)).status_code == 404:
            body = {"settings": INDEX_SETTINGS, "mappings": mappings}
            response = self.send("PUT", f"/{index}", body, ok=(200, 201, 400))
            if response.status_code != 400:
                return True
            if "resource_already_exists" not in response.text:  # else another writer won a race
                raise ClusterError(400, _reason(response))
        mapped = self.json("GET", f"/{index}/_mapping")
        first: dict[str, Any] = next(iter(mapped.values()), {})
        properties = first.get("mappings", {}).get("properties", {})
        for name, type_ in required.items():
            node: Any = {"properties": properties}
            for part in name.split("."):
                node = (node.get("properties") or {}).get(part) or {}
            if node.get("type", "object") != type_:
                raise ClusterError(
                    400,
                    f"index {index!r} maps {name!r} as {node.get('type', 'nothing')!r}, "
                    f"not {type_!r}: it was not created by rerank-sidecar",
                )
        return False

    def bulk_index(
        self, index: str, docs: Sequence[tuple[str, dict[str, Any]]], refresh: bool = True
    ) -> None:
        """Index ``(id, document)`` pairs; any refused document raises with its reason."""
        for start in range(0, len(docs), 500):
            chunk = docs[start : start + 500]
            lines = "".join(
                json.dumps({"index": {"_index": index, "_id": doc_id}})
                + "\n"
                + json.dumps(doc, ensure_ascii=False)
                + "\n"
                for doc_id, doc in chunk
            )
            answer = self.json(
                "POST", "/_bulk", lines, params={"refresh": "true"} if refresh else None
            )
            if answer.get("errors"):
                failed = next(
                    item["index"] for item in answer["items"] if "error" in item.get("index", {})
                )
                error = failed["error"]
                raise ClusterError(
                    failed.get("status", 400),
                    f"document {failed.get('_id')!r}: {error.get('type')}: {error.get('reason')}",
                )

    def scan(
        self, index: str, query: dict[str, Any] | None = None, source: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every hit of ``query`` in ``index`` (scroll API, the same on both engines); nothing
        when the index does not exist."""
        body: dict[str, Any] = {"size": 1000, "query": query or {"match_all": {}}, "sort": ["_doc"]}
        if source is not None:
            body["_source"] = list(source)
        response = self.send(
            "POST", f"/{index}/_search", body, params={"scroll": SCROLL}, ok=(200, 404)
        )
        if response.status_code == 404:
            return
        page = response.json()
        scroll_id = page.get("_scroll_id")
        try:
            while page["hits"]["hits"]:
                yield from page["hits"]["hits"]
                page = self.json(
                    "POST", "/_search/scroll", {"scroll": SCROLL, "scroll_id": scroll_id}
                )
                scroll_id = page.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                self.send("DELETE", "/_search/scroll", {"scroll_id": scroll_id}, ok=(200, 404))
