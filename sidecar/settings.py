"""The one typed settings model of rerank-sidecar.

Values come, highest priority first, from keyword arguments, ``RERANK_*`` environment variables
(nested with ``__``, e.g. ``RERANK_TESTBED__OPENSEARCH_VERSION=2.19.6``) and a YAML file named by
``RERANK_CONFIG`` or ``--config``. Settings are built once at start and passed down; nothing reads
them from a global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from sidecar.experiments.model import Experiment, check_references
from sidecar.search.options import Combine, OnError, Profile
from workers.contract import BUILTIN_MODELS, ModelSpec


def default_cache_dir() -> Path:
    """Where downloads, unpacked engines and built models live: outside the repository."""
    return Path.home() / ".cache" / "rerank-sidecar"


class TestbedSettings(BaseModel):
    """Real servers for development and tests, all on loopback."""

    __test__ = False  # not a pytest test class, despite the name
    model_config = ConfigDict(extra="forbid")

    opensearch_version: str = "2.19.6"
    """OpenSearch 2.x integ-test distribution from Maven Central. Example: ``2.19.6``."""
    opensearch3_version: str = "3.6.0"
    """OpenSearch 3.x, started only when a Java 21+ is found. Example: ``3.6.0``."""
    elasticsearch_version: str = "8.19.21"
    """Elasticsearch 8.x integ-test distribution from Maven Central. Example: ``8.19.21``."""
    elasticsearch9_version: str | None = "9.2.4"
    """Elasticsearch 9.x, started only when a Java 21+ is found. Maven Central serves its
    integ-test zips by exact version (9.0.0, 9.1.0, 9.2.0, 9.2.4; not 9.3.0+ on 2026-12-01)
    although its maven-metadata.xml lists none. Unset (or empty) leaves it out of the test bed.
    Example: ``9.2.4``."""
    heap: str = "512m"
    """JVM heap of each engine, both -Xms and -Xmx. Example: ``512m``."""
    start_timeout_s: float = 180.0
    """How long an engine may take to turn green before the start fails. Example: ``180``."""
    java_home: Path | None = None
    """A JDK or JRE to run the engines with; unset means JAVA_HOME, then /usr/lib/jvm, then PATH."""
    maven_repository: str = "https://repo1.maven.org/maven2"
    """Remote Maven repository the engine distributions and module jars are fetched from."""
    opensearch_modules: list[Literal["rank-eval", "lang-mustache"]] = ["rank-eval", "lang-mustache"]
    """Engine modules every OpenSearch of the test bed gets, so its own ``_rank_eval`` and
    mustache search templates (``_search/template``, ``_rank_eval`` ``templates``) serve as the
    oracle of the sidecar's. OpenSearch 2.x's integ-test zip lacks them: their jars
    (``org.opensearch.plugin:<module>-client:<engine version>`` and mustache.java) come from
    ``maven_repository`` and are installed under the unpacked home's ``modules/``; OpenSearch
    3.x's zip ships both (and keeps them whatever this says). A module left out is removed
    again if the test bed installed it. Elasticsearch gets none (no rank-eval module is
    published after 7.17). Example: ``["rank-eval"]``, or
    ``RERANK_TESTBED__OPENSEARCH_MODULES='[]'`` for the bare zip."""
    engine_user: str = "rerank-testbed"
    """Engines refuse to run as root; when the test bed runs as root they run as this account,
    created on first use. Example: ``rerank-testbed``."""
    engines_dir: Path | None = None
    """Where unpacked engines live. Unset means ``<cache_dir>/dist``, or
    ``/var/cache/rerank-sidecar/engines`` when running as root, because the engine account cannot
    enter /root. Example: ``/srv/rerank-testbed/engines``."""
    redis_server: str = "redis-server"
    """The redis-server binary (Debian package ``redis-server``)."""
    worker_concurrency: int = Field(default=2, ge=1)
    """Threads of the test-bed Celery worker. Example: ``2``."""


class CelerySettings(BaseModel):
    """Celery client and worker settings shared by the sidecar and the workers."""

    model_config = ConfigDict(extra="forbid")

    broker_url: str = "redis://127.0.0.1:6379/0"
    """Redis broker. Example: ``redis://127.0.0.1:6379/0``."""
    result_backend: str | None = None
    """Where results go; unset means the broker's Redis."""


class WorkerSettings(BaseModel):
    """How scoring workers load models and batch pairs."""

    model_config = ConfigDict(extra="forbid")

    token_budget: int = Field(default=16384, gt=0)
    """Padded tokens per forward pass (longest pair × pairs in the batch). Example: ``16384``."""
    max_batch: int = Field(default=64, gt=0)
    """Most pairs in one forward pass. Example: ``64``."""
    concurrency: int = Field(default=4, gt=0)
    """Tasks one worker process runs at once; they share one model copy and one batcher."""
    media_roots: list[Path] = Field(default_factory=list)
    """Directories local media paths may point into. Example: ``[/srv/catalog/images]``."""
    media_allow_networks: list[str] = Field(default_factory=list)
    """Private networks media URLs may resolve to. Example: ``["10.20.0.0/16"]``."""
    media_timeout_s: float = Field(default=10.0, gt=0)
    media_cache_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    """Cap of the workers' disk cache of fetched media (``<cache_dir>/media``, shared by the
    worker processes of a machine); past it the least recently used files are removed down to
    90 %. Example: 2 GiB holds ~2000 product images of 1 MB or ten 200 MB videos, a day of a
    catalog's hot set; the cache only saves refetches, so a small one costs speed, never
    results."""
    media_max_video_duration_s: float = Field(default=10_800.0, gt=0)
    """Longest video accepted, from the container header and again from its timestamps; a
    longer one gets null and an error naming this limit, before any frame is decoded. Example:
    ``10800`` (3 h) takes a feature film; only up to 64 frames of it are ever decoded, so the
    limit bounds the packet scan (about 1 s per hour at 30 fps), not memory."""
    media_max_video_frames: int = Field(default=300_000, gt=0)
    """Most frames in a video stream, counted on its packets without decoding. Example:
    ``300000`` is 2 h 46 min at 30 fps; a GIF, which has no keyframes to seek to, is decoded
    frame by frame (only the sampled frames are kept), so this also bounds that work."""
    media_max_video_frame_pixels: int = Field(default=3840 * 2160, gt=0)
    """Largest video frame, width × height, from the header. Example: ``8294400`` (4K UHD);
    an 8K video is refused."""
    media_max_video_decoded_bytes: int = Field(default=2 * 1024**3, gt=0)
    """Bytes one video's sampled frames take as decoded RGB (frames × width × height × 3),
    for a file and for a frame list alike. Example: 2 GiB lets the largest file under the other
    limits through (64 frames of 4K: 1.59 GB) and refuses a frame list of 64 40-megapixel
    images (7.7 GB)."""
    media_max_job_bytes: int = Field(default=8 * 1024**3, gt=0)
    """Bytes one job's media may take once decoded: each image's and video's decoded pixels
    plus the float32 model input qwen-vl-utils makes of them, the query counted once per
    document. A document over what is left gets null and an error naming this limit; the
    others are scored. Example: 8 GiB holds 8 documents with a 1080p video sampled to 64
    frames (398 MB + 604 MB each) or 500 documents with a 1000x1000 image (15 MB each); with
    ``concurrency`` 4 a worker's media stay under 32 GiB."""
    max_deliveries: int = Field(default=2, ge=1)
    """How often one job may be delivered to a worker. A job delivered again after its worker
    died (killed mid-job, e.g. out of memory) counts once more; past this it is not run but
    answered with an error for every document and recorded in ``rerank:dead-letter``. Example:
    ``2``: one redelivery, so a worker killed by a deploy costs nothing, and a job that kills
    workers kills at most two."""
    task_soft_time_limit_s: float = Field(default=60.0, gt=0)
    task_time_limit_s: float = Field(default=90.0, gt=0)
    """No job runs longer: the threads pool ignores Celery's time limits, so the worker makes
    the job's deadline ``min(job.deadline, start + task_time_limit_s)`` and stops preparing,
    fetching and decoding at it. Example: ``90``."""
    visibility_timeout_s: float = Field(default=120.0, gt=0)
    """How long Redis keeps a delivered, unacknowledged job before giving it to another worker
    (a worker that died mid-job). Must exceed the hard time limit. Example: ``120``."""
    redelivery_check_s: float = Field(default=10.0, gt=0)
    """How often workers look for jobs of dead workers to run again. Example: ``10``."""
    metrics_port: int | None = None
    """Port of the worker's Prometheus /metrics and /health; unset: no HTTP server."""

    @model_validator(mode="after")
    def _limits_in_order(self) -> WorkerSettings:
        if not self.task_soft_time_limit_s < self.task_time_limit_s < self.visibility_timeout_s:
            raise ValueError(
                "worker time limits must satisfy task_soft_time_limit_s < task_time_limit_s < "
                "visibility_timeout_s, or a job still running would be handed to a second worker"
            )
        return self


class ServerSettings(BaseModel):
    """Where the sidecar listens, and what it accepts from clients. The defaults are the
    engines' own limits or above them, so whatever an engine accepts the sidecar passes on (and
    whatever it refuses, it refuses itself, in its own words)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Interface to bind. Example: ``0.0.0.0`` in a container."""
    port: int = Field(default=9280, ge=0, le=65535)
    """Port to listen on. Example: ``9280``."""
    max_body_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    """Largest rerank API body (413 beyond it). The engines' ``http.max_content_length``
    (100 MiB); search bodies are never refused for their size (see ``max_inspect_bytes``).
    Example: 100 MiB."""
    max_inspect_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest search body (as sent and once decoded) the sidecar reads to decide whether to
    rerank it; a larger one streams to the cluster untouched and is not reranked
    (``X-Rerank-Status: skipped; reason=body_too_large`` when a rule matched). Example: 16 MiB."""
    max_line_bytes: int = Field(default=64 * 1024, ge=8190)
    """Longest request line the sidecar reads; the engines' default is 4 KiB
    (``http.max_initial_line_length``), so up to this they answer a long line themselves.
    Example: 64 KiB."""
    max_header_bytes: int = Field(default=64 * 1024, ge=8190)
    """Longest single header line; the engines accept 16 KiB of headers by default
    (``http.max_header_size``). Example: 64 KiB."""
    max_headers: int = Field(default=256, ge=32)
    """Most header lines in one request. Example: ``256``."""
    keepalive_timeout_s: float = Field(default=75.0, gt=0)
    """An idle keep-alive connection, or one whose request headers have not all arrived, is
    closed after this long (a client sending headers slowly cannot hold a connection).
    Example: ``75`` (nginx's keepalive_timeout)."""
    body_idle_timeout_s: float = Field(default=60.0, gt=0)
    """A request body that stalls, nothing arriving for this long, is answered 408 and its
    connection closed. Example: ``60`` (nginx's client_body_timeout)."""
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM/SIGINT, how long requests in flight may take to finish. Example: ``30``."""


class UpstreamSettings(BaseModel):
    """The cluster behind the sidecar."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list)
    """Nodes of one Elasticsearch or OpenSearch cluster, used round-robin. Empty: no proxy (the
    rerank API alone). Example: ``["https://es1:9200", "https://es2:9200"]``."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    """Longest wait for the next bytes of an answer (long searches, snapshots)."""
    connections_per_node: int = Field(default=128, gt=0)
    ca_file: str | None = None
    """CA bundle to verify the cluster's TLS certificate. Example: ``/etc/es/ca.crt``."""
    verify_tls: bool = True
    retries: int = Field(default=2, ge=0)
    """Other nodes to try when a connection fails, for idempotent requests only."""


class ApiSettings(BaseModel):
    """The standalone rerank API (``/rerank``, ``/v1/rerank``, ``/v2/rerank``)."""

    model_config = ConfigDict(extra="forbid")

    keys: list[SecretStr] = Field(default_factory=list)
    """Bearer tokens that may call the API. Empty: the API is open (a warning is logged at
    start). Example: ``RERANK_API__KEYS='["k1","k2"]'``."""
    default_model: str = "qwen3-vl-reranker-2b"
    """Registry name used when a request names no model."""
    max_documents: int = Field(default=1000, gt=0)
    """Most documents in one request. Example: ``1000``."""
    timeout_ms: int = Field(default=30_000, gt=0)
    """Deadline of one API request's scoring job. Example: ``30000``."""


class AdminSettings(BaseModel):
    """The admin API (``/_rerank/experiments``)."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[SecretStr] = Field(default_factory=list)
    """Bearer tokens of the admin API, compared in constant time and never logged. Empty: the
    admin API refuses every call. Example: ``RERANK_ADMIN__TOKENS='["t1"]'``."""
    experiments_refresh_s: float = Field(default=2.0, gt=0)
    """How often each sidecar process reloads the experiments made through the admin API (they
    live in Redis); searches never wait for Redis on their account. Example: ``2``."""


class UbiSettings(BaseModel):
    """Logging of searches and clicks in the UBI schema (``ubi_queries``, ``ubi_events``).

    Written off the request path, in bulk, to the cluster behind the sidecar: when it is slow
    or down the buffer fills and documents are dropped (counted in
    ``rerank_sidecar_ubi_documents_total{outcome="dropped_..."}`` and logged), never delaying
    a search."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list)
    """Nodes to write the UBI indices to. Empty: the cluster behind the sidecar
    (``upstream.urls``). Example: an analytics cluster, ``["https://logs1:9200"]``."""
    application: str = "rerank-sidecar"
    """UBI ``application`` of the searches the sidecar logs."""
    log_reranked: bool = False
    """Also log every reranked search outside experiments (``query_attributes`` name the
    model and the rerank status), for click models and judgments from all traffic."""
    queries_index: str = "ubi_queries"
    events_index: str = "ubi_events"
    buffer_size: int = Field(default=10_000, gt=0)
    """Documents waiting to be written, at most; more are dropped and counted."""
    batch_size: int = Field(default=500, gt=0)
    flush_interval_ms: int = Field(default=1000, gt=0)
    """Longest a document waits before its bulk request goes."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    api_key: SecretStr | None = None
    """Credentials of the UBI writes (an API key, or ``basic_auth`` ``user:password``): only
    the right to write the two UBI indices is needed. Unset: none sent."""
    basic_auth: SecretStr | None = None
    max_events: int = Field(default=1000, gt=0)
    """Most events in one ``POST /ubi_events``."""
    query_id_ttl_s: int = Field(default=7 * 86400, gt=0)
    """How long the query ids of logged searches are remembered (in Redis) so events for
    unknown ones are counted as orphans."""


class TracingSettings(BaseModel):
    """OpenTelemetry traces over OTLP/HTTP (the ``tracing`` extra), off by default. One search
    is one trace: the sidecar's request, its engine call (the engine gets ``traceparent``), the
    Redis dispatch and the worker's batch."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    otlp_endpoint: str = "http://localhost:4318/v1/traces"
    """An OpenTelemetry collector's OTLP/HTTP traces endpoint. Example:
    ``http://otel-collector:4318/v1/traces``."""
    service_name: str | None = None
    """Unset: ``rerank-sidecar`` for the sidecar, ``rerank-worker`` for scoring workers."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of traces started here that are kept (a caller's sampled ``traceparent`` wins)."""
    export_timeout_s: float = Field(default=10.0, gt=0)


class JobCredential(BaseModel):
    """Engine credentials a bulk job may search and write with, named in its spec. The job
    runner and the sidecar's jobs API read the secret; a job's state in Redis holds the name,
    never the secret. The scope (``indices``) usually lives in the shared settings file and the
    secret in the environment of those two parts only (e.g.
    ``RERANK_JOBS__CREDENTIALS__READER__API_KEY``): a part without the secret (a GPU worker)
    loads the settings and never uses the credential."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = None
    """An API key (sent as ``Authorization: ApiKey <key>``)."""
    basic_auth: SecretStr | None = None
    """``user:password`` (sent as HTTP basic auth)."""
    indices: list[str] = Field(min_length=1)
    """Index patterns this credential may be used for, as a job's source and as its target: a
    job naming it for anything else is refused (403), so a submitter cannot borrow it beyond
    what it was configured for. Example: ``["products*", "rerank-results-*"]``."""

    @model_validator(mode="after")
    def _one_kind(self) -> JobCredential:
        if self.api_key is not None and self.basic_auth is not None:
            raise ValueError("a job credential has one of api_key and basic_auth, not both")
        return self

    @property
    def has_secret(self) -> bool:
        return self.api_key is not None or self.basic_auth is not None


class JobsSettings(BaseModel):
    """Bulk rescoring jobs (``/_rerank/jobs``) and their runner (``rerank-sidecar jobs-worker``)."""

    model_config = ConfigDict(extra="forbid")

    credentials: dict[str, JobCredential] = Field(default_factory=dict)
    """Named engine credentials jobs may use (``credentials`` in a spec). A job naming none
    searches and writes without credentials (a cluster without security)."""
    query_roots: list[Path] = Field(default_factory=list)
    """Directories a spec's ``queries.path`` may name a JSONL file in (on the sidecar's
    machine). Empty: no file is read by path; upload it with the request instead."""
    max_queries: int = Field(default=1_000_000, gt=0)
    """Most queries in one job."""
    chunk_size: int = Field(default=50, gt=0)
    """Queries per chunk: the unit a runner takes, acknowledges and runs again after a crash."""
    default_concurrency: int = Field(default=4, gt=0)
    """Searches of one job in flight at once, when its spec sets none."""
    max_concurrency: int = Field(default=64, gt=0)
    """Largest ``limits.searches`` a spec may ask for: the cluster's protection."""
    max_pairs_in_flight: int = Field(default=4096, gt=0)
    """Largest ``limits.pairs`` (documents sent to the scoring workers at once) a spec may ask."""
    scoring_timeout_s: float = Field(default=120.0, gt=0)
    """How long one query's window may wait for the scoring workers' bulk queue."""
    attempts: int = Field(default=3, ge=1)
    """Tries per query (search and scoring) before it is recorded as failed."""
    write_timeout_s: float = Field(default=60.0, gt=0)
    """Longest bulk write of results; a cancel waits at most this long for writes in flight."""
    visibility_timeout_s: float = Field(default=900.0, gt=0)
    """A chunk taken by a runner that died is run again after this long (its own Redis keys:
    the scoring workers' shorter timeout does not apply to chunks)."""
    redelivery_check_s: float = Field(default=10.0, gt=0)
    keep_s: int = Field(default=30 * 86400, gt=0)
    """How long a finished job's state stays in Redis."""


class DispatchSettings(BaseModel):
    """How the sidecar gets scores."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["celery", "local"] = "celery"
    """celery: GPU workers through Redis; local: a model in the sidecar process (one machine)."""
    publisher: Literal["direct", "celery"] = "direct"
    """How a scoring job reaches the broker. direct: the Celery task message built by the
    sidecar and pushed with redis.asyncio on the event loop (a fraction of the CPU); celery:
    Celery's own ``send_task`` on a thread. The workers read both alike."""
    local_models: list[str] = Field(default_factory=list)
    """Registry names the local backend loads at start. Example: ``["qwen3-reranker-0.6b"]``."""
    cache_enabled: bool = True
    cache_ttl_s: int = Field(default=86_400, gt=0)
    """How long a cached score lives. Example: one day."""
    cache_max_entries: int = Field(default=1_000_000, gt=0)
    max_in_flight: int = Field(default=1024, gt=0)
    """Most scoring jobs one sidecar process waits on at once; a job beyond it is not sent and
    its search degrades at once (``reason=overloaded``), so a burst queues nowhere unbounded.
    Example: ``1024``."""
    redis_max_connections: int = Field(default=64, gt=0)
    """Connections of the pool the score cache and the dispatcher share; a command waits for a
    free one (up to ``redis_timeout_s``) instead of failing. Example: ``64``."""
    redis_timeout_s: float = Field(default=2.0, gt=0)
    """Connect, read and pool-wait timeout of each Redis command. Example: ``2``."""
    broker_backoff_ms: int = Field(default=500, ge=0)
    """After Redis refused a job, new jobs fail at once (``reason=broker_unavailable``) for this
    long instead of each waiting on a dead broker; the result listener's reconnect ends it
    sooner. Example: ``500``."""


class RerankRule(BaseModel):
    """Searches on matching indices are reranked with a profile, without any change to the
    request. Patterns are matched (shell-style ``*``) against each index, alias or pattern named
    in the search's path or _msearch header, as written there."""

    model_config = ConfigDict(extra="forbid")

    index: list[str] = Field(min_length=1)
    """Index, alias or data-stream name patterns. Example: ``["products*", "catalog"]``."""
    profile: str
    """Name of a profile in ``rerank.profiles``."""

    @field_validator("index", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class RerankSettings(BaseModel):
    """How the proxy reranks searches: profiles, the rules that apply them, and defaults."""

    model_config = ConfigDict(extra="forbid")

    profiles: dict[str, Profile] = Field(default_factory=dict)
    """Named rerank settings. Example (YAML)::

        profiles:
          products:
            model: qwen3-vl-reranker-2b
            window: 50
            fields: {text: [title, description], image: [image_url]}
    """
    rules: list[RerankRule] = Field(default_factory=list)
    """Which indices are reranked by default; the first matching rule wins."""
    default_model: str | None = None
    """Model when neither profile nor request names one. Unset: ``api.default_model``."""
    window: int = Field(default=50, ge=1)
    """Default window: the engine's top hits that are reranked."""
    max_window: int = Field(default=1000, ge=1)
    """Largest window a profile or request may ask for."""
    timeout_ms: int = Field(default=2000, ge=1)
    """Default deadline of the scoring, from the moment the engine answered."""
    max_timeout_ms: int = Field(default=30_000, ge=1)
    """Longest scoring deadline a profile or ``ext.rerank.timeout_ms`` may ask for: a search
    never waits longer on the workers. Example: ``30000``."""
    on_error: OnError = "original"
    combine: Combine = Field(default_factory=Combine)
    hit_fields: bool = True
    """Add ``_rerank_score``, ``_rerank_original_score`` and ``_rerank_original_rank`` under each
    reranked hit's ``fields``."""


class Settings(BaseSettings):
    """All of rerank-sidecar's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="RERANK_",
        env_nested_delimiter="__",
        extra="forbid",
        yaml_file=None,
    )

    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Downloads, unpacked engines, built tiny models. Example: ``~/.cache/rerank-sidecar``."""
    testbed: TestbedSettings = Field(default_factory=TestbedSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    models: dict[str, ModelSpec] = Field(default_factory=lambda: dict(BUILTIN_MODELS))
    """The model registry: name → hub id or local path and how to load it. Built-in names:
    qwen3-vl-reranker-2b/8b, qwen3-reranker-0.6b/4b/8b. Example (YAML)::

        models:
          catalog-vl: {path: /models/Qwen3-VL-Reranker-2B, dtype: bfloat16}
    """
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    experiments: list[Experiment] = Field(default_factory=list)
    """A/B tests and interleavings of rerank variants. Example (YAML)::

        experiments:
          - name: shoes-2b-vs-8b
            indices: [products*]
            variants:
              - {name: control, off: true}
              - {name: small, profile: products}
              - {name: large, profile: products-8b}
            key: [header:X-User-Id, ubi.client_id]
    """
    ubi: UbiSettings = Field(default_factory=UbiSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)

    @model_validator(mode="after")
    def _experiments_refer_to_known_names(self) -> Settings:
        names = [e.name for e in self.experiments]
        for i, experiment in enumerate(self.experiments):
            if names.count(experiment.name) > 1:
                raise ValueError(f"experiments: the name {experiment.name!r} is used twice")
            try:
                check_references(experiment, list(self.rerank.profiles), list(self.models))
            except ValueError as exc:
                raise ValueError(f"experiments.{i}.{exc}") from None
        return self

    @model_validator(mode="after")
    def _rerank_refers_to_known_names(self) -> Settings:
        rerank = self.rerank
        for i, rule in enumerate(rerank.rules):
            if rule.profile not in rerank.profiles:
                raise ValueError(
                    f"rerank.rules.{i}.profile: no profile named {rule.profile!r} "
                    f"(profiles: {sorted(rerank.profiles) or 'none'})"
                )
        if rerank.window > rerank.max_window:
            raise ValueError("rerank.window is larger than rerank.max_window")
        if rerank.timeout_ms > rerank.max_timeout_ms:
            raise ValueError("rerank.timeout_ms is larger than rerank.max_timeout_ms")
        for name, profile in rerank.profiles.items():
            if profile.model is not None and profile.model not in self.models:
                raise ValueError(
                    f"rerank.profiles.{name}.model: {profile.model!r} is not in the model registry"
                )
            if profile.window is not None and profile.window > rerank.max_window:
                raise ValueError(
                    f"rerank.profiles.{name}.window: {profile.window} is larger than "
                    f"rerank.max_window ({rerank.max_window})"
                )
            if profile.timeout_ms is not None and profile.timeout_ms > rerank.max_timeout_ms:
                raise ValueError(
                    f"rerank.profiles.{name}.timeout_ms: {profile.timeout_ms} is larger than "
                    f"rerank.max_timeout_ms ({rerank.max_timeout_ms})"
                )
        model = rerank.default_model
        if model is not None and model not in self.models:
            raise ValueError(f"rerank.default_model: {model!r} is not in the model registry")
        return self

    @field_validator("models")
    @classmethod
    def _with_builtins(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        return {**BUILTIN_MODELS, **value}

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment, an optional YAML file and explicit overrides."""
    if config_file is None:
        return Settings(**overrides)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    return _FromFile(**overrides)
