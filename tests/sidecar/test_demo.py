"""The main-job demo's pieces: the sample catalog and the sidecar config it writes. (The whole
`rerank-sidecar demo` run starts its own engine; it is run by hand and in the fresh-clone check,
see README.)"""

from __future__ import annotations

from pathlib import Path

import yaml
from PIL import Image

from sidecar.demo.catalog import PRODUCTS, build_catalog
from sidecar.demo.stack import INDEX, _sidecar_config
from sidecar.search.plan import decide
from sidecar.settings import Settings, load_settings
from workers.contract import ModelSpec


def test_catalog_has_text_and_real_images(tmp_path: Path) -> None:
    docs = build_catalog(tmp_path)
    assert len(docs) == len(PRODUCTS)
    for doc in docs:
        assert doc["title"] and doc["description"]
        with Image.open(doc["image"]) as image:
            assert image.format == "PNG" and image.size == (224, 224)


def test_the_written_config_is_valid_and_reranks_the_catalog(tmp_path: Path) -> None:
    spec = ModelSpec(path="/models/tiny", kind="qwen3-vl", device="cpu")
    config = _sidecar_config(Settings(), "http://127.0.0.1:9200", "redis://127.0.0.1:1/0", spec)
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    plan = decide(settings, INDEX, {"query": {"match": {"title": "red"}}}, {}, None).plan
    assert plan is not None
    assert plan.model == "demo"
    assert plan.fields.image == ["image"]
    text_spec = ModelSpec(path="/models/text", kind="qwen3")
    text_config = _sidecar_config(Settings(), "http://e", "redis://r", text_spec)
    assert "image" not in text_config["rerank"]["profiles"]["catalog"]["fields"]


def test_the_demo_job_is_a_valid_spec_the_demo_sidecar_would_take(tmp_path: Path) -> None:
    from sidecar.demo.stack import PROFILE, job_spec
    from sidecar.jobs.spec import JobSpec, search_body

    spec = JobSpec.model_validate(job_spec())
    config = _sidecar_config(Settings(), "http://e:9200", "redis://r", ModelSpec(path="/m"))
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    assert settings.admin.tokens  # the jobs API needs one: the CLI reads it from this file
    assert spec.queries is not None and spec.queries.inline
    body = search_body(spec, spec.queries.inline[0])
    plan = decide(settings, spec.index, body, {}, None).plan
    assert plan is not None and plan.profile == PROFILE
