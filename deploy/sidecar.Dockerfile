# The sidecar (and the job runner): no torch, small image. docker-compose.yml and the Helm chart
# run it as `rerank-sidecar serve --config /etc/rerank-sidecar/sidecar.yaml`, as user 10001 with
# a read-only root filesystem (only /tmp and the cache directory are written).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY sidecar sidecar
COPY workers workers
COPY plugins plugins
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent rerank \
 && mkdir -p /var/cache/rerank-sidecar && chown 10001:10001 /var/cache/rerank-sidecar
ENV RERANK_CACHE_DIR=/var/cache/rerank-sidecar \
    RERANK_SERVER__HOST=0.0.0.0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# server.port: the proxy, the rerank API and /_rerank/{health,ready,metrics}.
EXPOSE 9280
ENTRYPOINT ["rerank-sidecar"]
CMD ["serve", "--config", "/etc/rerank-sidecar/sidecar.yaml"]
