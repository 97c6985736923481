"""rerank-sidecar: a reranking proxy for Elasticsearch and OpenSearch.

Importing this package loads no torch: model code lives under ``workers`` and runs in workers.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
