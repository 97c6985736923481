"""``rerank-sidecar eval`` end to end, as the demo runs it: the demo catalog in the real
OpenSearch, its judgments stored through the sidecar, the reranked profile (tiny Qwen3-VL model
on the real Celery worker) against the engine's order; the report opened in headless Chromium.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from sidecar.app import create_app
from sidecar.cli import app
from sidecar.demo.catalog import build_catalog
from sidecar.demo.judgments import RATINGS, demo_judgments
from sidecar.demo.stack import (
    INDEX,
    SEARCH_FIELDS,
    _sidecar_config,
    eval_arguments,
    store_judgments,
)
from sidecar.evaluation.judgments.store import JUDGMENTS_INDEX
from sidecar.evaluation.metric_names import parse_metric_name
from sidecar.evaluation.runner import BASELINE, eval_queries, rank_eval_body
from sidecar.evaluation.runs_store import RUNS_INDEX
from sidecar.settings import Settings
from sidecar.testbed.app_thread import serve_in_thread
from tests.browser import chromium_path, look_at
from tests.conftest import EngineHandle, ScoringWorkerHandle

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(
    opensearch: EngineHandle,
    scoring_worker: ScoringWorkerHandle,
    tiny_registry: dict[str, Any],
    media_dir: Path,
    settings: Settings,
) -> Iterator[str]:
    client = opensearch.client
    for index in (INDEX, JUDGMENTS_INDEX, RUNS_INDEX):
        client.indices.delete(index=index, ignore_unavailable=True)
    client.indices.create(index=INDEX, body={"settings": {"number_of_replicas": 0}})
    docs = build_catalog(media_dir / "demo-catalog")  # under the worker's media root
    lines = "".join(
        json.dumps({"index": {"_index": INDEX, "_id": str(i)}}) + "\n" + json.dumps(doc) + "\n"
        for i, doc in enumerate(docs)
    )
    assert not client.bulk(body=lines, refresh=True)["errors"]
    config = _sidecar_config(
        settings, opensearch.url, scoring_worker.worker.broker_url, tiny_registry["tiny-vl"],
        model="tiny-vl",
    )  # fmt: skip
    with serve_in_thread(create_app(Settings.model_validate(config))) as url:
        assert store_judgments(url) == len(demo_judgments(INDEX))
        yield url


@pytest.fixture(scope="module")
def run(demo: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("eval")
    result = runner.invoke(app, eval_arguments(demo, out), terminal_width=160)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_eval_prints_a_table_per_metric_and_writes_the_report(run: tuple[Path, str]) -> None:
    out, output = run
    for label in ("ndcg@5", "precision@3", "mrr@10"):
        assert f"{label}  ·  {len(RATINGS)} queries, reference baseline" in output
    assert "won" in output and "catalog" in output
    report = json.loads((out / "report.json").read_text())
    assert [v["name"] for v in report["variants"]] == ["baseline", "catalog"]
    summaries = {(s["variant"], s["metric"]): s for s in report["summaries"]}
    assert len(summaries) == 6
    catalog = summaries[("catalog", "ndcg@5")]
    assert (
        catalog["computed_by"] == "sidecar"
        and summaries[("baseline", "ndcg@5")]["computed_by"] == "engine"
    )
    c = catalog["comparison"]
    assert c["wins"] + c["losses"] + c["ties"] == c["queries"] == len(RATINGS)
    assert c["ci_low"] <= c["delta"] <= c["ci_high"]
    assert 0.0 <= c["p_value"] <= 1.0


def test_the_baseline_scores_are_the_engines_own(
    run: tuple[Path, str], opensearch: EngineHandle
) -> None:
    out, _ = run
    report = json.loads((out / "report.json").read_text())
    queries = eval_queries(demo_judgments(INDEX))
    metric = parse_metric_name("ndcg@5").body()
    body = rank_eval_body(queries, metric, BASELINE, fields=SEARCH_FIELDS)
    direct = httpx.post(f"{opensearch.url}/{INDEX}/_rank_eval", json=body, timeout=60).json()
    for query in report["queries"]:
        assert (
            query["scores"]["baseline ndcg@5"]
            == direct["details"][query["query_id"]]["metric_score"]
        )


def test_the_run_is_recorded_for_dashboards(
    run: tuple[Path, str], opensearch: EngineHandle
) -> None:
    out, _ = run
    run_id = json.loads((out / "report.json").read_text())["run_id"]
    client = opensearch.client
    client.indices.refresh(index=RUNS_INDEX)
    summaries = client.search(
        index=RUNS_INDEX,
        body={
            "query": {
                "bool": {"filter": [{"term": {"run_id": run_id}}, {"term": {"kind": "summary"}}]}
            }
        },
    )
    assert summaries["hits"]["total"]["value"] == 6
    per_query = client.count(
        index=RUNS_INDEX,
        body={
            "query": {
                "bool": {"filter": [{"term": {"run_id": run_id}}, {"term": {"kind": "query"}}]}
            }
        },
    )
    assert per_query["count"] == 6 * len(RATINGS)


@pytest.mark.skipif(
    chromium_path() is None, reason="no chromium (scripts/bootstrap.sh installs it)"
)
def test_the_report_renders_in_a_real_browser(run: tuple[Path, str]) -> None:
    out, _ = run
    look = look_at(out / "report.html")
    assert look.errors == []
    assert look.checks["title"] == f"Relevance eval · {INDEX}"
    assert look.checks["plots"] == 2  # both plots decoded at full size
    assert look.checks["images"] == look.checks["imagesLoaded"] > 2  # plots and thumbnails
    shot = Image.open(io.BytesIO(look.screenshot)).convert("RGB")
    assert shot.width > 1200 and shot.height > 900
    colors = shot.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 200  # text, plots, thumbnails: not a blank page
    # The challenger's bars (#2f6fde) and the reference's (#8a94a6) are on the screen.
    pixels = {rgb for _, rgb in colors}
    assert (0x2F, 0x6F, 0xDE) in pixels and (0x8A, 0x94, 0xA6) in pixels


def test_bad_eval_input_is_refused_with_the_reason(demo: str, tmp_path: Path) -> None:
    base = ["eval", "--url", demo, "--index", INDEX, "--out", str(tmp_path / "r")]
    both = ["--baseline", "--profile", "catalog"]
    cases = [
        ([*base, "--judgments", "index", "--baseline"], 2, "at least two variants"),
        ([*base, "--judgments", "index", *both, "--metric", "map"], 2, "unknown metric"),
        ([*base, "--judgments", str(tmp_path / "nope.csv"), *both], 2, "neither a file"),
        ([*base, "--judgments", "index", "--baseline", "--profile", "nope"], 1, "nope"),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, args, terminal_width=200)
        assert result.exit_code == code, result.output
        assert message in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()  # nothing half-written
