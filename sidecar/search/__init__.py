"""Search-path logic of the proxy: pure functions from request bodies to what reranking needs."""

from sidecar.search.query_text import QueryTextPathError, query_text, text_from_dsl

__all__ = ["QueryTextPathError", "query_text", "text_from_dsl"]
