"""Integrations with other systems (RAG frameworks, engine-side rerank hooks, other scorers).

Each integration is an optional extra; this package imports none of them by itself."""
