"""Hand-made relevance judgments of the sample catalog (product ids are positions in
``catalog.PRODUCTS``; ratings 0 to 3), for the demo's eval run."""

from __future__ import annotations

from sidecar.evaluation.judgments.model import Judgment, normalize_query

RATER = "demo"
RATINGS: dict[str, dict[int, int]] = {
    "red running shoes": {0: 3, 1: 2, 2: 2, 3: 1, 4: 1, 11: 0, 14: 0},
    "warm clothes for winter": {5: 3, 8: 3, 9: 3, 15: 2, 3: 1, 6: 1, 13: 0},
    "something to drink from on a run": {10: 3, 11: 3, 12: 0, 4: 0},
    "rain jacket": {6: 3, 7: 3, 5: 2},
    "running accessories": {4: 2, 10: 2, 11: 2, 12: 2, 15: 2, 13: 1, 0: 0},
    "keep my head warm": {9: 3, 8: 1, 12: 1},
    "waterproof footwear": {3: 3, 2: 1, 0: 0},
    "shoe care": {14: 3, 0: 0, 1: 0},
}


def demo_judgments(index: str) -> list[Judgment]:
    return [
        Judgment(
            query_id=normalize_query(query),
            query=query,
            index=index,
            doc_id=str(doc),
            rating=rating,
            rater=RATER,
            source="demo",
        )
        for query, ratings in RATINGS.items()
        for doc, rating in ratings.items()
    ]
