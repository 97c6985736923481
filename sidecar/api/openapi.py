"""The OpenAPI 3.1 document of the sidecar's own APIs, generated from the pydantic models that
validate the requests, so the document cannot drift from the code."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from sidecar import __version__
from sidecar.api.rerank.protocol import ErrorResponse, RerankRequest, RerankResponse
from sidecar.api.rerank.routes import PATHS

REF = "#/components/schemas/{model}"

_ERRORS = {
    "400": "Invalid request: the error names the field",
    "401": "Missing or invalid API key",
    "404": "Unknown model",
    "413": "Body too large",
    "503": "Scoring unavailable (workers or Redis down)",
    "504": "Scoring did not finish before the request's deadline",
}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        if model is RerankRequest:
            schema = model.model_json_schema(ref_template=REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}},
    }


def openapi_document() -> dict[str, Any]:
    operation = {
        "summary": "Rerank documents for a query (Jina, Cohere v1/v2 and vLLM shapes)",
        "security": [{"bearer": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model="RerankRequest")}}
            },
        },
        "responses": {
            "200": _response("Results sorted by relevance_score", "RerankResponse"),
            **{code: _response(text, "ErrorResponse") for code, text in _ERRORS.items()},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "rerank-sidecar", "version": __version__},
        "paths": {
            path: {"post": {**operation, "operationId": f"rerank_v{version}_{path.count('/')}"}}
            for path, version in PATHS.items()
        },
        "components": {
            "schemas": _schemas(RerankRequest, RerankResponse, ErrorResponse),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
