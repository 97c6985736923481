"""POST /rerank, /v1/rerank, /v2/rerank in the Jina, Cohere and vLLM shapes."""

from sidecar.api.rerank.protocol import RerankRequest, RerankResponse
from sidecar.api.rerank.routes import add_rerank_routes
from sidecar.api.rerank.serving import ApiError, RerankService

__all__ = ["ApiError", "RerankRequest", "RerankResponse", "RerankService", "add_rerank_routes"]
