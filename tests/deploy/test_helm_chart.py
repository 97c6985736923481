"""deploy/helm/rerank-sidecar, offline: `helm lint --strict` and `helm template` (helm built from
the Go module proxy) with the default values and with ci/two-models-values.yaml (two models,
KEDA on, the job runner on); every rendered object validated against the Kubernetes JSON schemas
(kubernetes-validate, strict: unknown fields refused) of the oldest and newest Kubernetes the
chart supports, and the ScaledObjects against KEDA's own CRD schema (vendored); what each part
is given (ConfigMap plus environment) loads with sidecar.settings; the probes hit endpoints
that exist in the real sidecar and worker."""

from __future__ import annotations

import copy
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from sidecar.app import create_app
from sidecar.settings import Settings, load_settings
from sidecar.testbed.app_thread import serve_in_thread
from sidecar.testbed.ports import free_port
from tests.deploy.helm import CHART, VALUES, by_name, helm, of_kind, render
from tests.deploy.tools import ROOT

KUBE_VERSIONS = ["1.27.0", "1.37.0"]  # Chart.yaml's kubeVersion floor, and the newest schemas
KEDA_CRD = ROOT / "tests" / "deploy" / "schemas" / "keda.sh_scaledobjects.yaml"
WORKLOADS = ("Deployment",)


@pytest.fixture(scope="module", params=list(VALUES))
def values_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def objects(values_name: str) -> list[dict[str, Any]]:
    return render(VALUES[values_name])


@pytest.fixture(scope="module")
def two_models() -> list[dict[str, Any]]:
    return render(VALUES["two-models"])


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with strict field validation: an object
    with declared properties takes no other (where the CRD does not say otherwise)."""
    if isinstance(schema, dict):
        out = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def keda_validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def validate(obj: dict[str, Any], kube_version: str, keda: jsonschema.Draft7Validator) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        assert obj["kind"] == "ScaledObject"
        keda.validate(obj)
    else:
        kubernetes_validate.validate(obj, kube_version, strict=True)


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_strict(values: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    if VALUES[values] is not None:
        args += ["--values", str(VALUES[values])]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_rendered_object_is_valid(
    values_name: str, kube_version: str, keda_validator: jsonschema.Draft7Validator
) -> None:
    rendered = render(VALUES[values_name], kube_version)
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret"} <= kinds
    assert "PodDisruptionBudget" in kinds
    for obj in rendered:
        validate(obj, kube_version, keda_validator)
    if values_name == "two-models":
        assert len(of_kind(rendered, "ScaledObject")) == 2


def test_the_validators_refuse_what_a_cluster_would(
    two_models: list[dict[str, Any]], keda_validator: jsonschema.Draft7Validator
) -> None:
    deployment = copy.deepcopy(of_kind(two_models, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {}}
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(of_kind(two_models, "ScaledObject")[0])
    scaled["spec"]["minReplicas"] = 1  # KEDA's key is minReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        keda_validator.validate(scaled)
    del scaled["spec"]["minReplicas"]
    del scaled["spec"]["scaleTargetRef"]
    with pytest.raises(jsonschema.ValidationError):
        keda_validator.validate(scaled)


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for deployment in of_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment, container


def environment(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, secretKeyRefs and envFrom resolved from the rendered
    Secrets (as the kubelet would)."""
    secrets = {name: s.get("stringData", {}) for name, s in by_name(objects, "Secret").items()}
    env = {}
    for source in container.get("envFrom", []):
        env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def part_settings(
    objects: list[dict[str, Any]],
    container: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The settings the part in ``container`` starts with: its --config file (the ConfigMap)
    and its environment."""
    (configmap,) = of_kind(objects, "ConfigMap")
    config = tmp_path / f"{container['name']}.yaml"
    config.write_text(configmap["data"]["sidecar.yaml"])
    argv = container["command"] + container.get("args", [])
    assert argv[argv.index("--config") + 1] == "/etc/rerank-sidecar/sidecar.yaml"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/rerank-sidecar/sidecar.yaml"]["subPath"] == "sidecar.yaml"
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("RERANK_")]:
            patch.delenv(name)
        for name, value in environment(objects, container).items():
            patch.setenv(name, value)
        return load_settings(config)


def test_every_part_loads_its_settings(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = set()
    for deployment, container in containers(objects):
        settings = part_settings(objects, container, tmp_path, monkeypatch)
        pod = deployment["spec"]["template"]["spec"]
        argv = container["command"] + container.get("args", [])
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        parts.add(container["name"])
        assert settings.celery.broker_url.startswith("redis://")
        if container["name"] == "sidecar":
            assert argv[:2] == ["rerank-sidecar", "serve"]
            assert ports["http"] == settings.server.port and settings.server.host == "0.0.0.0"
            # The pod is given time to finish what it serves after the preStop pause.
            pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
            grace = pod["terminationGracePeriodSeconds"]
            assert grace >= settings.server.shutdown_timeout_s + pre_stop
        elif container["name"] == "worker":
            assert argv[:2] == ["rerank-sidecar", "worker"]
            model = argv[argv.index("--models") + 1]
            assert model in settings.models
            assert ports["metrics"] == settings.worker.metrics_port
            # Celery's warm shutdown finishes the running jobs: each ends by its hard limit.
            assert pod["terminationGracePeriodSeconds"] > settings.worker.task_time_limit_s
            assert "RERANK_API__KEYS" not in environment(objects, container)
            assert not container.get("envFrom")  # GPU workers hold no engine credentials
        else:
            assert container["name"] == "job-runner"
            assert argv[:2] == ["rerank-sidecar", "jobs-worker"]
    assert {"sidecar", "worker"} <= parts


def test_job_credentials_reach_the_job_runner_and_the_sidecar_only(
    two_models: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}
    for _, container in containers(two_models):
        settings = part_settings(two_models, container, tmp_path, monkeypatch)
        credentials = settings.jobs.credentials
        key = credentials["reader"].api_key if "reader" in credentials else None
        seen[container["name"]] = key.get_secret_value() if key is not None else None
        if container["name"] == "sidecar":
            assert [t.get_secret_value() for t in settings.admin.tokens] == ["admin-one"]
            assert credentials["reader"].indices == ["products*", "rescored-*"]
    assert seen.pop("sidecar") == seen.pop("job-runner") == "c2VjcmV0"
    assert set(seen.values()) == {None}  # the GPU workers: no credential, no key


def test_secrets_stay_out_of_the_configmap(two_models: list[dict[str, Any]]) -> None:
    (configmap,) = of_kind(two_models, "ConfigMap")
    text = configmap["data"]["sidecar.yaml"]
    for secret in ("s3cret", "key-one", "c2VjcmV0"):
        assert secret not in text
    assert "broker_url" not in text and "keys" not in yaml.safe_load(text).get("api", {})


def test_probes_hit_the_real_endpoints(
    two_models: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.metrics import WorkerMetrics, serve

    for _, container in containers(two_models):
        probes = [
            container[p]
            for p in ("startupProbe", "readinessProbe", "livenessProbe")
            if p in container
        ]
        if container["name"] == "job-runner":
            assert not probes  # it has no HTTP endpoint yet
            continue
        paths = {probe["httpGet"]["path"] for probe in probes}
        port_names = {probe["httpGet"]["port"] for probe in probes}
        assert len(port_names) == 1 and port_names <= {p["name"] for p in container["ports"]}
        settings = part_settings(two_models, container, tmp_path, monkeypatch)
        if container["name"] == "sidecar":
            assert paths == {"/_rerank/ready", "/_rerank/health"}
            # The real sidecar of these settings, its cluster and Redis unreachable: health
            # answers 200, readiness 503 (not in rotation), neither is a 404.
            dead = f"http://127.0.0.1:{free_port()}"
            local = settings.model_copy(
                update={
                    "upstream": settings.upstream.model_copy(update={"urls": [dead]}),
                    "celery": settings.celery.model_copy(
                        update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"}
                    ),
                }
            )
            with serve_in_thread(create_app(local)) as url:
                assert httpx.get(url + "/_rerank/health", timeout=10).status_code == 200
                ready = httpx.get(url + "/_rerank/ready", timeout=10)
                assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        else:
            assert paths == {"/health"}
            port = free_port()
            server = serve(WorkerMetrics(), port, lambda: {"status": "ok"}, host="127.0.0.1")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
                    assert answer.status == 200
            except urllib.error.URLError as exc:  # pragma: no cover - the assertion's message
                pytest.fail(f"the worker's /health did not answer: {exc}")
            finally:
                server.shutdown()
                server.server_close()
            assert settings.worker.metrics_port == container["ports"][0]["containerPort"]


def test_one_gpu_worker_and_scaled_object_per_model(two_models: list[dict[str, Any]]) -> None:
    values = yaml.safe_load(VALUES["two-models"].read_text())  # type: ignore[union-attr]
    deployments = by_name(two_models, "Deployment")
    scaled = {
        s["metadata"]["labels"]["rerank-sidecar/model"]: s
        for s in of_kind(two_models, "ScaledObject")
    }
    workers = {
        d["spec"]["template"]["metadata"]["labels"]["rerank-sidecar/model"]: d
        for d in deployments.values()
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    }
    assert set(workers) == set(scaled) == set(values["models"])
    for model, deployment in workers.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == values["models"][model]["nodeSelector"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        assert "replicas" not in deployment["spec"]  # KEDA owns the count
        spec = scaled[model]["spec"]
        assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        queue = spec["triggers"][0]["metadata"]["query"]
        assert f'rerank_queue_depth{{model="{model}"' in queue
        assert "max by (model, priority)" in queue  # every sidecar replica exports the same
    assert scaled["catalog-text"]["spec"]["minReplicaCount"] == 0  # scale to zero, opted in
    assert [t["name"] for t in scaled["catalog-text"]["spec"]["triggers"]] == [
        "queue-depth",
        "demand",
    ]
    assert scaled["qwen3-vl-reranker-2b"]["spec"]["minReplicaCount"] == 2
    assert len(scaled["qwen3-vl-reranker-2b"]["spec"]["triggers"]) == 1


def test_selectors_and_targets_point_at_rendered_pods(objects: list[dict[str, Any]]) -> None:
    deployments = by_name(objects, "Deployment")
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]

    def selected(selector: dict[str, str]) -> int:
        return sum(selector.items() <= labels.items() for labels in pod_labels)

    for deployment in deployments.values():
        assert selected(deployment["spec"]["selector"]["matchLabels"]) == 1
    for service in of_kind(objects, "Service"):
        assert selected(service["spec"]["selector"]) == 1
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        assert selected(pdb["spec"]["selector"]["matchLabels"]) == 1
    for scaler in of_kind(objects, "HorizontalPodAutoscaler") + of_kind(objects, "ScaledObject"):
        assert scaler["spec"]["scaleTargetRef"]["name"] in deployments


def test_pods_run_as_non_root_on_read_only_filesystems(objects: list[dict[str, Any]]) -> None:
    for deployment, container in containers(objects):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert "/tmp" in writable
