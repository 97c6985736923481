"""OpenSearch's own _rank_eval and mustache templates in the test bed: the sidecar's oracle.

OpenSearch 2.x gets the rank-eval and lang-mustache modules from Maven Central
(sidecar/testbed/modules.py); OpenSearch 3.x's integ-test zip ships them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.settings import Settings
from sidecar.testbed import ArtifactUnavailableError
from sidecar.testbed.modules import MARKER, install_modules, runtime_dependencies
from tests.conftest import EngineHandle

ENGINES = ["opensearch", "opensearch3"]
INDEX = "testbed-modules-products"
DOCS = {
    "1": "red running shoes",
    "2": "red wool scarf",
    "3": "red rain hat",
    "4": "blue rain jacket",
}
# "red" finds 1, 2, 3 and "rain" finds 3, 4. Document 3 is rated for neither.
RATINGS = {
    "red": [{"_id": "1", "rating": 1}, {"_id": "2", "rating": 0}, {"_id": "4", "rating": 1}],
    "rain": [{"_id": "4", "rating": 1}, {"_id": "1", "rating": 0}],
}


@pytest.fixture(scope="module", params=ENGINES)
def indexed(request: pytest.FixtureRequest) -> Iterator[EngineHandle]:
    engine: EngineHandle = request.getfixturevalue(request.param)
    client = engine.client
    client.indices.create(
        index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    )
    for doc_id, title in DOCS.items():
        client.index(index=INDEX, id=doc_id, body={"title": title})
    client.indices.refresh(index=INDEX)
    try:
        yield engine
    finally:
        client.indices.delete(index=INDEX)


def _ratings(request_id: str) -> list[dict[str, Any]]:
    return [{"_index": INDEX, **rating} for rating in RATINGS[request_id]]


def _precision(ignore_unlabeled: bool) -> dict[str, Any]:
    return {
        "precision": {"k": 10, "relevant_rating_threshold": 1, "ignore_unlabeled": ignore_unlabeled}
    }


def test_the_modules_are_loaded(indexed: EngineHandle) -> None:
    nodes = indexed.client.nodes.info(metric="plugins")
    (node,) = nodes["nodes"].values()
    modules = {module["name"]: module for module in node["modules"]}
    for name in ("rank-eval", "lang-mustache"):
        assert modules[name]["version"] == node["version"]
        assert modules[name]["opensearch_version"] == node["version"]


@pytest.mark.parametrize(
    ("ignore_unlabeled", "expected"),
    # red: 1 relevant of 3 hits (3 unrated counts as not relevant), or of 2 rated hits;
    # rain: 1 relevant of 2 hits, or of the 1 rated hit. The mean is over both requests.
    [(False, (1 / 3 + 1 / 2) / 2), (True, (1 / 2 + 1 / 1) / 2)],
)
def test_rank_eval_precision(
    indexed: EngineHandle, ignore_unlabeled: bool, expected: float
) -> None:
    body = {
        "requests": [
            {
                "id": query,
                "request": {"query": {"match": {"title": query}}},
                "ratings": _ratings(query),
            }
            for query in RATINGS
        ],
        "metric": _precision(ignore_unlabeled),
    }
    result = indexed.client.rank_eval(index=INDEX, body=body)
    assert result["failures"] == {}
    assert result["metric_score"] == pytest.approx(expected)
    red = result["details"]["red"]
    assert red["unrated_docs"] == [{"_index": INDEX, "_id": "3"}]
    assert red["metric_details"]["precision"] == {
        "relevant_docs_retrieved": 1,
        "docs_retrieved": 2 if ignore_unlabeled else 3,
    }
    assert {hit["hit"]["_id"]: hit["rating"] for hit in red["hits"]} == {
        "1": 1,
        "2": 0,
        "3": None,
    }


def test_search_template_with_inline_mustache_source(indexed: EngineHandle) -> None:
    body = {
        "source": '{"query": {"match": {"title": "{{q}}"}}, "size": {{n}}}',
        "params": {"q": "red", "n": 2},
    }
    result = indexed.client.search_template(index=INDEX, body=body)
    assert result["hits"]["total"]["value"] == 3
    assert len(result["hits"]["hits"]) == 2
    assert all("red" in hit["_source"]["title"] for hit in result["hits"]["hits"])


def test_rank_eval_with_templates(indexed: EngineHandle) -> None:
    body = {
        "templates": [
            {"id": "by_title", "template": {"source": {"query": {"match": {"title": "{{q}}"}}}}}
        ],
        "requests": [
            {
                "id": query,
                "template_id": "by_title",
                "params": {"q": query},
                "ratings": _ratings(query),
            }
            for query in RATINGS
        ],
        "metric": _precision(False),
    }
    result = indexed.client.rank_eval(index=INDEX, body=body)
    assert result["failures"] == {}
    assert result["metric_score"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert result["details"]["rain"]["metric_score"] == pytest.approx(1 / 2)


# Installing, without an engine.


def _fake_home(root: Path) -> Path:
    """An unpacked OpenSearch 2.x home, as far as installing modules looks at it."""
    home = root / "opensearch-2.19.6"
    (home / "bin").mkdir(parents=True)
    netty = home / "modules" / "transport-netty4"
    netty.mkdir(parents=True)
    (netty / "plugin-descriptor.properties").write_text(
        "# OpenSearch plugin descriptor file\nname=transport-netty4\njava.version=11\n"
    )
    return home


def _properties(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_install_lays_modules_out_as_the_distribution_does(
    settings: Settings, tmp_path: Path
) -> None:
    home = _fake_home(tmp_path)
    names = ["rank-eval", "lang-mustache"]
    cache, repository = settings.cache_dir, settings.testbed.maven_repository
    assert install_modules(home, "2.19.6", names, cache, repository) == names

    rank_eval, mustache = home / "modules" / "rank-eval", home / "modules" / "lang-mustache"
    assert sorted(p.name for p in rank_eval.iterdir()) == [
        "plugin-descriptor.properties",
        "rank-eval-client-2.19.6.jar",
    ]
    assert sorted(p.name for p in mustache.iterdir()) == [
        "compiler-0.9.14.jar",  # mustache.java, the version OpenSearch 2.19.6's pom names
        "lang-mustache-client-2.19.6.jar",
        "plugin-descriptor.properties",
        "plugin-security.policy",
    ]
    assert _properties(rank_eval / "plugin-descriptor.properties") == {
        "description": "The Rank Eval module adds APIs to evaluate ranking quality.",
        "version": "2.19.6",
        "name": "rank-eval",
        "classname": "org.opensearch.index.rankeval.RankEvalPlugin",  # 3.x: RankEvalModulePlugin
        "java.version": "11",  # what the distribution's own modules declare
        "opensearch.version": "2.19.6",
        "custom.foldername": "",
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    descriptor = _properties(mustache / "plugin-descriptor.properties")
    assert descriptor["classname"] == "org.opensearch.script.mustache.MustachePlugin"
    policy = (mustache / "plugin-security.policy").read_text()
    assert 'permission java.lang.RuntimePermission "accessDeclaredMembers";' in policy
    # Readable by the engine account when the test bed runs as root.
    for path in (rank_eval, mustache, *rank_eval.iterdir(), *mustache.iterdir()):
        assert os.stat(path).st_mode & 0o777 == (0o755 if path.is_dir() else 0o644)
    assert not [p for p in home.iterdir() if p.name.startswith(".")]  # no staging left

    stamps = {p: p.stat().st_mtime_ns for p in mustache.iterdir()}
    assert install_modules(home, "2.19.6", names, cache, repository) == []
    assert {p: p.stat().st_mtime_ns for p in mustache.iterdir()} == stamps

    # A module left out of the setting goes again; the distribution's own modules stay.
    assert install_modules(home, "2.19.6", ["rank-eval"], cache, repository) == []
    assert not mustache.exists() and rank_eval.is_dir()
    assert install_modules(home, "2.19.6", [], cache, repository) == []
    assert sorted(p.name for p in (home / "modules").iterdir()) == ["transport-netty4"]


def test_a_module_the_distribution_ships_is_left_alone(settings: Settings, tmp_path: Path) -> None:
    home = _fake_home(tmp_path)
    shipped = home / "modules" / "rank-eval" / "plugin-descriptor.properties"
    shipped.parent.mkdir()
    shipped.write_text("# OpenSearch plugin descriptor file\nname=rank-eval\n")
    cache, repository = settings.cache_dir, settings.testbed.maven_repository
    assert install_modules(home, "2.19.6", ["rank-eval"], cache, repository) == []
    assert install_modules(home, "2.19.6", [], cache, repository) == []
    assert shipped.read_text() == "# OpenSearch plugin descriptor file\nname=rank-eval\n"
    assert not shipped.read_text().startswith(MARKER)


def test_an_unserved_module_jar_says_how_to_leave_it_out(
    settings: Settings, tmp_path: Path
) -> None:
    home = _fake_home(tmp_path)
    repository = settings.testbed.maven_repository
    with pytest.raises(ArtifactUnavailableError) as info:
        install_modules(home, "2.0.99", ["rank-eval"], settings.cache_dir, repository)
    message = str(info.value)
    assert "org.opensearch.plugin:rank-eval-client:2.0.99:jar" in message
    assert "rank-eval-client/maven-metadata.xml" in message
    assert "RERANK_TESTBED__OPENSEARCH_MODULES='[]'" in message
    assert sorted(p.name for p in (home / "modules").iterdir()) == ["transport-netty4"]


def test_runtime_dependencies_are_the_poms_compile_and_runtime_jars(tmp_path: Path) -> None:
    pom = tmp_path / "module.pom"
    pom.write_text(
        """<project xmlns="http://maven.apache.org/POM/4.0.0"><dependencies>
        <dependency><groupId>com.github.spullara.mustache.java</groupId>
          <artifactId>compiler</artifactId><version>0.9.14</version><scope>compile</scope>
          <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>
          </exclusions></dependency>
        <dependency><groupId>g</groupId><artifactId>runtime-one</artifactId>
          <version>1.0</version><scope>runtime</scope></dependency>
        <dependency><groupId>g</groupId><artifactId>tests-only</artifactId>
          <version>1.0</version><scope>test</scope></dependency>
        <dependency><groupId>g</groupId><artifactId>maybe</artifactId>
          <version>1.0</version><optional>true</optional></dependency>
        </dependencies></project>"""
    )
    assert [d.coordinate for d in runtime_dependencies(pom)] == [
        "com.github.spullara.mustache.java:compiler:0.9.14:jar",
        "g:runtime-one:1.0:jar",
    ]
    pom.write_text(pom.read_text().replace("<version>0.9.14</version>", "<version>${v}</version>"))
    with pytest.raises(ArtifactUnavailableError, match="without a plain version"):
        runtime_dependencies(pom)
