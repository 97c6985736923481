"""A small synchronous client of the sidecar's rerank API, shared by the framework plugins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


class RerankApiError(RuntimeError):
    """The rerank API refused the request or could not score it; the message is its reason."""


@dataclass
class RerankClient:
    base_url: str
    """The sidecar, e.g. ``http://127.0.0.1:9280``."""
    api_key: str | None = None
    model: str | None = None
    """A registry name; unset: the sidecar's default model."""
    instruction: str | None = None
    timeout_s: float = 60.0

    def rerank(
        self, query: str, texts: Sequence[str], top_n: int | None = None
    ) -> list[tuple[int, float]]:
        """(index into ``texts``, relevance score) pairs, best first; failed documents left out."""
        body: dict[str, Any] = {"query": query, "documents": list(texts), "return_documents": False}
        if self.model:
            body["model"] = self.model
        if top_n:
            body["top_n"] = top_n
        if self.instruction:
            body["instruction"] = self.instruction
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.post(
            f"{self.base_url.rstrip('/')}/v1/rerank",
            json=body,
            headers=headers,
            timeout=self.timeout_s,
        )
        if response.status_code != 200:
            try:
                reason = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                reason = response.text[:200]
            raise RerankApiError(f"rerank API answered {response.status_code}: {reason}")
        return [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
