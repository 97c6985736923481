# A scoring worker: torch, transformers and qwen-vl-utils. Mount model weights at /models.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY sidecar sidecar
COPY workers workers
COPY plugins plugins
RUN pip install --no-cache-dir -c constraints.txt ".[worker]"
ENV RERANK_CELERY__BROKER_URL=redis://redis:6379/0
ENTRYPOINT ["rerank-sidecar", "worker"]
