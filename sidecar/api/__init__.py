"""The sidecar's own HTTP APIs (beside the engine proxy): the rerank API."""
