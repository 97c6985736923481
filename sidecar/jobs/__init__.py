"""Bulk rescoring jobs: a query set reranked against an index in the background (spec, Redis
state, chunked execution by a torch-free runner, the ``/_rerank/jobs`` API and the CLI)."""
