"""A small multimodal catalog for reranked-search tests: text, local images, arrays and nested
objects, indexed into a real engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TITLES = [
    ("red running shoes", "light trail shoes in bright red", "red.png"),
    ("blue rain jacket", "a waterproof jacket, navy blue", "blue.png"),
    ("red wool scarf", "a warm scarf knitted from red wool", "red.png"),
    ("running socks", "cushioned socks for long red-eye runs", "blue.png"),
    ("red leather boots", "boots for rain and snow", "red.png"),
    ("shoes cleaning kit", "keeps running shoes clean", "blue.png"),
    ("red cap", "a cap for sunny runs, red", "red.png"),
    ("trail running shoes", "grippy red shoes for mud", "blue.png"),
    ("red shoes laces", "spare laces, red and white", "red.png"),
    ("running shorts red", "light shorts for running", "blue.png"),
    ("red gloves", "running gloves in red", "red.png"),
    ("red water bottle", "a bottle for running, red", "blue.png"),
]


def catalog(media_dir: Path) -> list[dict[str, Any]]:
    return [
        {
            "title": title,
            "description": description,
            "image": str(media_dir / image),
            "brand": "acme" if i % 2 else "zephyr",
            "tags": ["sale", f"tag{i}"],
            "variants": [{"color": "red", "size": 40 + i}, {"color": "black", "size": 41 + i}],
        }
        for i, (title, description, image) in enumerate(TITLES)
    ]


def load(client: Any, index: str, media_dir: Path) -> list[dict[str, Any]]:
    """(Re)create ``index`` with the catalog; one shard so scores are stable."""
    if client.indices.exists(index=index):
        client.indices.delete(index=index)
    client.indices.create(
        index=index,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"brand": {"type": "keyword"}}},
        },
    )
    docs = catalog(media_dir)
    lines = "".join(
        json.dumps({"index": {"_index": index, "_id": str(i)}}) + "\n" + json.dumps(doc) + "\n"
        for i, doc in enumerate(docs)
    )
    client.bulk(body=lines, refresh=True)
    return docs
