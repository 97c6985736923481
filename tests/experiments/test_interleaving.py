"""Team-draft interleaving pinned on hand-made rankings.

The coin flips of a case are chosen, not guessed: ``seed_with("AB")`` finds a seed whose first
coin sends team A first and whose second sends team B first, so each expected list below is
worked out by hand from the algorithm (a coin is flipped only when both teams have as many picks
and both still have a key to place)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import pytest

from sidecar.experiments.interleaving import Placed, credit, interleaving_seed, team_draft

TEAMS = ("A", "B")


def seed_with(coins: str) -> int:
    """A seed whose successive coin flips send ``coins`` ("A": team A picks first) first."""
    for seed in range(100_000):
        rng = random.Random(seed)
        if all((rng.random() < 0.5) == (c == "A") for c in coins):
            return seed
    raise AssertionError(f"no seed flips {coins}")


def draft(first: list[str], second: list[str], coins: str, **kwargs: int) -> list[tuple[str, str]]:
    placed = team_draft(first, second, teams=TEAMS, seed=seed_with(coins), **kwargs)
    return [(p.key, p.team) for p in placed]


def test_identical_rankings_alternate_teams_and_place_each_key_once() -> None:
    # Round 1, A first: A takes 1, B's best unplaced is 2. Round 2, B first: B takes 3, A 4.
    assert draft(["1", "2", "3", "4"], ["1", "2", "3", "4"], "AB") == [
        ("1", "A"), ("2", "B"), ("3", "B"), ("4", "A"),
    ]  # fmt: skip


def test_disjoint_rankings_interleave_round_by_round() -> None:
    assert draft(["a1", "a2", "a3"], ["b1", "b2", "b3"], "BAA") == [
        ("b1", "B"), ("a1", "A"), ("a2", "A"), ("b2", "B"), ("a3", "A"), ("b3", "B"),
    ]  # fmt: skip


def test_a_team_takes_its_best_key_the_other_team_has_not_placed() -> None:
    # Round 1 (A first): A 1, B skips nothing and takes 2. Round 2 (A first): A's next is 3,
    # B's 1 and 2 are placed, so B takes 5. Then B has nothing left: A places 4 alone.
    assert draft(["1", "2", "3", "4"], ["2", "1", "5", "3"], "AA") == [
        ("1", "A"), ("2", "B"), ("3", "A"), ("5", "B"), ("4", "A"),
    ]  # fmt: skip


def test_the_team_behind_picks_next_whatever_the_coin() -> None:
    # Over many seeds, every even-length prefix of two disjoint lists holds as many of each.
    first, second = [f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]
    for seed in range(200):
        placed = team_draft(first, second, teams=TEAMS, seed=seed)
        for end in range(2, len(placed) + 1, 2):
            counts = Counter(p.team for p in placed[:end])
            assert counts["A"] == counts["B"] == end // 2


@pytest.mark.parametrize("coin", ["A", "B"])
def test_when_one_ranking_runs_out_the_other_team_continues_alone(coin: str) -> None:
    placed = draft(["1", "2", "3", "4", "5"], ["9"], coin)
    head = [("1", "A"), ("9", "B")] if coin == "A" else [("9", "B"), ("1", "A")]
    assert placed == [*head, ("2", "A"), ("3", "A"), ("4", "A"), ("5", "A")]


def test_a_shorter_ranking_inside_the_longer_one() -> None:
    # B holds only 2: A 1, B 2, then A alone 3. With B first: B 2, A 1, A 3.
    assert draft(["1", "2", "3"], ["2"], "A") == [("1", "A"), ("2", "B"), ("3", "A")]
    assert draft(["1", "2", "3"], ["2"], "B") == [("2", "B"), ("1", "A"), ("3", "A")]


def test_empty_rankings() -> None:
    assert draft([], [], "A") == []
    assert draft([], ["1", "2"], "A") == [("1", "B"), ("2", "B")]


def test_keys_repeated_within_a_ranking_are_placed_once() -> None:
    placed = draft(["1", "1", "2"], ["2", "2", "3"], "A")
    assert placed == [("1", "A"), ("2", "B"), ("3", "B")]  # A's only other key, 2, is placed


def test_index_and_id_together_are_the_key() -> None:
    first = [("products", "1"), ("archive", "1")]
    second = [("archive", "1"), ("products", "2")]
    placed = team_draft(first, second, teams=TEAMS, seed=seed_with("A"))
    assert placed == [
        Placed(("products", "1"), "A"), Placed(("archive", "1"), "B"),
        Placed(("products", "2"), "B"),
    ]  # fmt: skip


def test_pages_are_slices_of_one_interleaving_and_a_limit_is_a_prefix() -> None:
    rng = random.Random(7)
    first = [str(i) for i in range(40)]
    second = first[:]
    rng.shuffle(second)
    seed = interleaving_seed("red shoes", "user-1", "salt")
    whole = team_draft(first, second, teams=TEAMS, seed=seed)
    assert sorted(p.key for p in whole) == sorted(first)
    pages = [team_draft(first, second, teams=TEAMS, seed=seed)[start : start + 10]
             for start in range(0, 40, 10)]  # fmt: skip
    assert [p for page in pages for p in page] == whole
    for limit in range(41):
        assert team_draft(first, second, teams=TEAMS, seed=seed, limit=limit) == whole[:limit]


def test_the_seed_is_stable_and_depends_on_query_key_and_salt() -> None:
    seed = interleaving_seed("red shoes", "user-1", "salt")
    assert seed == interleaving_seed("red shoes", "user-1", "salt")
    others = {
        interleaving_seed("red shoe", "user-1", "salt"),
        interleaving_seed("red shoes", "user-2", "salt"),
        interleaving_seed("red shoes", "user-1", "pepper"),
        interleaving_seed("red shoes", None, "salt"),
        interleaving_seed("red shoes", "", "salt"),
    }
    assert seed not in others and len(others) == 5
    # Another interpreter, with another hash() salt, computes the same seed.
    code = (
        "from sidecar.experiments.interleaving import interleaving_seed;"
        "print(interleaving_seed('red shoes', 'user-1', 'salt'))"
    )
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
        )  # fmt: skip
        assert int(out.stdout) == seed


def test_each_team_leads_about_half_the_time() -> None:
    first = [str(i) for i in range(10)]
    second = first[::-1]
    runs = 4000
    leads = Counter(
        team_draft(first, second, teams=TEAMS, seed=interleaving_seed(f"q{i}", "u", "s"))[0].team
        for i in range(runs)
    )
    # Binomial(4000, 0.5): sd 31.6; 5 sd either side.
    assert abs(leads["A"] - runs / 2) < 5 * (runs * 0.25) ** 0.5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="two names"):
        team_draft(["1"], ["2"], teams=("A", "A"), seed=1)
    with pytest.raises(ValueError, match="limit"):
        team_draft(["1"], ["2"], teams=TEAMS, seed=1, limit=-1)


@pytest.mark.parametrize(
    ("teams", "clicks", "winner"),
    [
        (["A", "B", "A"], [1], "B"),
        (["A", "B", "A"], [0, 2], "A"),
        (["A", "B", "A", "B"], [0, 1], None),  # one each: a tie
        (["A", "B"], [], None),  # no click: a tie
        (["A", "B", "B"], [1, 1, 1, 0], None),  # the same hit three times counts once
        (["A", "B", "B"], [1, 2, 0], "B"),
        (["B", "B"], [0], "B"),  # only one team shown
    ],
)
def test_credit_goes_to_the_team_with_more_clicked_hits(
    teams: list[str], clicks: list[int], winner: str | None
) -> None:
    assert credit(teams, clicks) == winner


def test_credit_refuses_positions_that_were_not_shown() -> None:
    with pytest.raises(ValueError, match=r"\[3\]"):
        credit(["A", "B"], [0, 3])
