"""The rerank API's logic: validate against the registry, score through the dispatcher, shape
the answer. Routes stay thin (vLLM's api_router / serving split)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from sidecar.api.rerank.protocol import (
    ApiVersion,
    BilledUnits,
    DocumentFailure,
    Meta,
    RerankRequest,
    RerankResponse,
    RerankResult,
    ResultDocument,
    Usage,
    has_content,
    to_content,
)
from sidecar.scoring.dispatch import Dispatcher, DispatchError, DispatchTimeout
from sidecar.settings import ApiSettings
from workers.contract import Document, ModelSpec, ScoringJob


class ApiError(Exception):
    """A request the API refuses; ``param`` names the offending field."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")


class RerankService:
    def __init__(
        self, dispatcher: Dispatcher, models: Mapping[str, ModelSpec], settings: ApiSettings
    ) -> None:
        self._dispatcher = dispatcher
        self._models = models
        self._settings = settings

    async def rerank(
        self, request: RerankRequest, api_version: str, request_id: str | None = None
    ) -> RerankResponse:
        model = request.model or self._settings.default_model
        if model not in self._models:
            raise ApiError(
                404,
                f"model {model!r} is not served; known: {', '.join(self._models)}",
                "model",
                "model_not_found",
            )
        count = len(request.documents)
        if count > self._settings.max_documents:
            raise ApiError(
                400,
                f"{count} documents is more than the {self._settings.max_documents} allowed",
                "documents",
            )
        if request.top_n is not None and request.top_n < 0:
            raise ApiError(400, "top_n must be 0 (all) or a positive number", "top_n")
        query = to_content(request.query)
        if not has_content(query):
            raise ApiError(400, "query has no text, image or video", "query")
        documents = []
        for index, item in enumerate(request.documents):
            content = to_content(item)
            if not has_content(content):
                raise ApiError(400, "document has no text, image or video", f"documents[{index}]")
            documents.append(Document(id=str(index), **content.model_dump()))
        job = ScoringJob(
            model=model,
            instruction=request.instruction,
            query=query,
            documents=documents,
            deadline=time.time() + self._settings.timeout_ms / 1000,
            priority="interactive",
            max_doc_tokens=request.max_tokens_per_doc,
        )
        try:
            result = await self._dispatcher.score(job)
        except DispatchTimeout as exc:
            raise ApiError(504, f"scoring timed out: {exc}", kind="timeout") from None
        except DispatchError as exc:
            raise ApiError(503, f"scoring is unavailable: {exc}", kind="unavailable") from None
        failures = [DocumentFailure(index=e.index, error=e.error) for e in result.errors]
        include = request.return_documents is not False
        ranked = sorted(
            (
                RerankResult(
                    index=i,
                    relevance_score=score,
                    document=ResultDocument(**documents[i].model_dump(exclude={"id"}))
                    if include
                    else None,
                )
                for i, score in enumerate(result.scores)
                if score is not None
            ),
            key=lambda r: r.relevance_score,
            reverse=True,
        )
        if request.top_n:
            ranked = ranked[: request.top_n]
        return RerankResponse(
            id=request_id or f"rerank-{uuid.uuid4().hex}",
            model=model,
            results=ranked,
            usage=Usage(total_tokens=result.tokens, prompt_tokens=result.tokens),
            meta=Meta(
                api_version=ApiVersion(version=api_version),
                billed_units=BilledUnits(search_units=1, input_tokens=result.tokens),
                warnings=[f"document {f.index}: {f.error}" for f in failures] or None,
            ),
            errors=failures,
        )
