"""A _search and an _msearch through elasticsearch-py, whichever major is importable: the venv's
8.x in process, or 9.x from its own directory (``PYTHONPATH=.venv/clients/es9``, installed by
scripts/bootstrap.sh) as a subprocess, for tests/sidecar/test_official_clients.py.

    python elasticsearch_search.py '{"url": ..., "index": ..., "search": {...}, "msearch": [...]}'

prints {"client": "elasticsearch-py <version>", "search": ANSWER, "msearch": ANSWER}, where ANSWER
is {"status", "headers", "body"} from the client's response and its meta, or {"error": ...} when
the client refused the response or the request failed. Only the standard library and the client
are imported, so the script runs under either major.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import elasticsearch
    from elasticsearch import Elasticsearch

    client = Elasticsearch(spec["url"], request_timeout=180, max_retries=0)
    out: dict[str, Any] = {"client": f"elasticsearch-py {elasticsearch.__versionstr__}"}
    calls: dict[str, Callable[[], Any]] = {
        "search": lambda: client.search(index=spec["index"], **spec["search"]),
        "msearch": lambda: client.msearch(searches=spec["msearch"]),
    }
    try:
        for name, call in calls.items():
            try:
                response = call()
            except Exception as exc:
                meta = getattr(exc, "meta", None)
                out[name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "status": getattr(meta, "status", None),
                    "headers": dict(meta.headers) if meta is not None else None,
                }
            else:
                out[name] = {
                    "status": response.meta.status,
                    "headers": dict(response.meta.headers),
                    "body": response.body,
                }
    finally:
        client.close()
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(run(json.loads(sys.argv[1]))))
