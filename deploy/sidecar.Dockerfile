# The sidecar: no torch, small image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY sidecar sidecar
COPY workers workers
COPY plugins plugins
RUN pip install --no-cache-dir -c constraints.txt .
ENTRYPOINT ["rerank-sidecar"]
CMD ["--help"]
