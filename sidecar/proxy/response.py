"""Responses that carry exactly the headers the engine sent (plus the sidecar's X-Rerank-*).

aiohttp adds ``Server``, ``Date``, a default ``Content-Type`` and ``Connection`` to the answers
it writes; the engines send none of them unless they have a reason, so a client (or a test)
comparing answers with and without the sidecar would see the sidecar. These classes drop what
aiohttp added and the caller did not set. They hook ``StreamResponse._prepare_headers``: aiohttp
has no public switch for this, so the aiohttp version is pinned in constraints.txt and
tests/sidecar/test_transparency.py fails if the hook stops working.
"""

from __future__ import annotations

from aiohttp import hdrs, web

# Connection too: aiohttp answers "Connection: close" to a client that asked to close; the
# engines close without saying so.
ADDED_BY_AIOHTTP = (hdrs.SERVER, hdrs.DATE, hdrs.CONTENT_TYPE, hdrs.CONNECTION)


class _ExactHeaders:
    """Drops the headers aiohttp adds by default unless the caller set them."""

    async def _prepare_headers(self) -> None:
        headers = self.headers  # type: ignore[attr-defined]
        given = {name for name in ADDED_BY_AIOHTTP if name in headers}
        await super()._prepare_headers()  # type: ignore[misc]
        for name in ADDED_BY_AIOHTTP:
            if name not in given:
                headers.popall(name, None)


class ExactHeadersStreamResponse(_ExactHeaders, web.StreamResponse):
    """A streamed answer (the passthrough) with only the headers it was given."""


class ExactHeadersResponse(_ExactHeaders, web.Response):
    """A whole answer (a reranked search) with only the headers it was given."""


__all__ = ["ExactHeadersResponse", "ExactHeadersStreamResponse"]
