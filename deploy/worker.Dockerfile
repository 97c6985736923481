# A scoring worker: torch, transformers and qwen-vl-utils. docker-compose.yml and the Helm chart
# run it as `rerank-sidecar worker --config /etc/rerank-sidecar/sidecar.yaml --models NAME`, as
# user 10001 with a read-only root filesystem. Weights: a hub id downloads into HF_HOME under
# the cache directory (a volume), or mount a local checkpoint and name its path in `models:`.
# EXTRAS=models adds what builds the tiny random-weight models offline (the cpu profile).
FROM python:3.11-slim
ARG EXTRAS=worker
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY sidecar sidecar
COPY workers workers
COPY plugins plugins
RUN pip install --no-cache-dir -c constraints.txt ".[${EXTRAS}]" \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent rerank \
 && mkdir -p /var/cache/rerank-sidecar && chown 10001:10001 /var/cache/rerank-sidecar
# The broker comes from the settings file or RERANK_CELERY__BROKER_URL at run time: a default
# here would silently override the file (environment variables win over it).
ENV RERANK_CACHE_DIR=/var/cache/rerank-sidecar \
    HF_HOME=/var/cache/rerank-sidecar/hf \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# worker.metrics_port: Prometheus /metrics and /health.
EXPOSE 9108
ENTRYPOINT ["rerank-sidecar", "worker"]
CMD ["--config", "/etc/rerank-sidecar/sidecar.yaml"]
