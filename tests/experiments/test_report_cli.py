"""``experiments report`` end to end: synthetic logs in a real engine's UBI indices, the
command run on them, its JSON checked against the analysis of the logs as they were written, and
its HTML opened in headless Chromium."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from sidecar.evaluation.report_plots import PALETTE
from sidecar.experiments.analysis import analyze, report_json
from sidecar.experiments.cli import experiments_app, parse_moment, parse_weights, weights_for
from sidecar.settings import Settings
from tests.browser import chromium_path, look_at
from tests.conftest import EngineHandle
from tests.experiments.engine_logs import load, synthetic_logs
from tests.experiments.synthetic import START

runner = CliRunner()
LOGS = synthetic_logs()
needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="no chromium (scripts/bootstrap.sh installs it)"
)


@pytest.fixture(scope="module", params=["opensearch", "elasticsearch"])
def engine(request: pytest.FixtureRequest) -> EngineHandle:
    handle: EngineHandle = request.getfixturevalue(request.param)
    load(handle, LOGS)
    return handle


def report(engine: EngineHandle, out: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        experiments_app, ["report", *args, "--url", engine.url, "--out", str(out)],
        terminal_width=200,
    )  # fmt: skip
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def shoes(engine: EngineHandle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("shoes")
    code, output = report(engine, out, "shoes", "--weights", "A=1,B=1")
    assert code == 0, output
    return out, output


@pytest.fixture(scope="module")
def boots(engine: EngineHandle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("boots")
    code, output = report(engine, out, "boots", "--control", "A")
    assert code == 0, output
    return out, output


def test_the_ab_report_is_the_analysis_of_the_logged_searches(shoes: tuple[Path, str]) -> None:
    out, output = shoes
    written = json.loads((out / "report.json").read_text())
    searches, clicks = LOGS.of("shoes")
    mine = report_json(analyze("shoes", searches, clicks, weights={"A": 1, "B": 1}))
    assert written == {**mine, "unreadable_searches": 1}
    assert written["revision"] == "r1" and [r["revision"] for r in written["revisions"]] == [
        "r0", "r1",
    ]  # fmt: skip
    assert "shoes · revision r1" in output and "A/B against A" in output
    assert "B beats A" in output
    assert "other revisions (not mixed in; --revision picks one): r0" in output
    assert (out / "report.html").stat().st_size > 10_000


def test_the_interleaving_report_names_the_winner(boots: tuple[Path, str]) -> None:
    out, output = boots
    written = json.loads((out / "report.json").read_text())
    searches, clicks = LOGS.of("boots")
    assert written == {**report_json(analyze("boots", searches, clicks, control="A")),
                       "unreadable_searches": 0}  # fmt: skip
    assert written["interleaving"]["winner"] == "B"
    assert "Interleaving B vs A" in output and "B wins the interleaving against A" in output


def test_an_older_revision_and_a_time_range_can_be_asked_for(
    engine: EngineHandle, tmp_path: Path
) -> None:
    code, output = report(engine, tmp_path, "shoes", "--revision", "r0")
    assert code == 0, output
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["revision"] == "r0"
    assert sum(v["searches"] for v in written["variants"]) == 24  # 12 users, 2 searches each
    until = START.isoformat()  # r0 ran the day before START
    code, output = report(engine, tmp_path, "shoes", "--until", until)
    assert code == 0, output
    assert [
        r["revision"] for r in json.loads((tmp_path / "report.json").read_text())["revisions"]
    ] == ["r0"]


def test_a_wrong_split_raises_the_alarm(engine: EngineHandle, tmp_path: Path) -> None:
    code, output = report(engine, tmp_path, "shoes", "--weights", "A=1,B=9")
    assert code == 0, output
    assert "SAMPLE RATIO MISMATCH" in output
    page = (tmp_path / "report.html").read_text()
    assert "class='alarm'" in page and "Sample ratio mismatch" in page


def test_bad_input_is_refused_with_the_reason(engine: EngineHandle, tmp_path: Path) -> None:
    out = tmp_path / "r"
    cases = [
        (["sandals"], "no searches of experiment 'sandals'"),
        (["shoes", "--revision", "r9"], "no revision 'r9'"),
        (["shoes", "--weights", "A=1,B"], "--weights: 'B' is not name=weight"),
        (["shoes", "--since", "last tuesday"], "--since/--until"),
        (["shoes", "--control", "C"], "control 'C'"),
    ]
    for args, message in cases:
        code, output = report(engine, out, *args)
        assert code == 2, output
        assert message in " ".join(output.split())
    assert not out.exists()  # nothing half-written


def test_times_and_weights_parse() -> None:
    assert parse_moment("7d", START) == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert parse_moment("90m", START) == datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    assert parse_moment("2026-12-01", START) == START.replace(hour=0)
    assert parse_moment("2026-12-01T09:00+01:00", START) == START.replace(hour=8)
    assert parse_weights("off=1, small=1,large=2.5") == {"off": 1.0, "small": 1.0, "large": 2.5}
    bad = {
        "a=0,b=0": "sum to more than 0", "a=1,a=2": "given twice", "a=-1,b=1": "0 or more",
        "a=nan": "0 or more", "=1": "name=weight",
    }  # fmt: skip
    for text, reason in bad.items():
        with pytest.raises(ValueError, match=reason):
            parse_weights(text)


def test_the_default_weights_are_the_configured_split() -> None:
    variants = [{"name": "A", "off": True, "weight": 1}, {"name": "B", "off": True, "weight": 3}]
    settings = Settings.model_validate(
        {
            "experiments": [
                {"name": "shoes", "indices": ["products*"], "variants": variants},
                {
                    "name": "boots",
                    "indices": ["b*"],
                    "variants": variants,
                    "interleave": ["A", "B"],
                },
            ]
        }
    )
    assert weights_for(settings, "shoes") == {"A": 1.0, "B": 3.0}
    assert weights_for(settings, "boots") is None  # an interleaving has no split
    assert weights_for(settings, "sandals") is None


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _looks_right(page: Path, title: str, plots: int, drawn: list[str]) -> None:
    look = look_at(page)
    assert look.errors == []
    assert look.checks["title"] == title
    assert look.checks["plots"] == look.checks["images"] == look.checks["imagesLoaded"] == plots
    shot = Image.open(io.BytesIO(look.screenshot)).convert("RGB")
    pixels = {rgb for _, rgb in shot.getcolors(maxcolors=1 << 20) or []}
    assert len(pixels) > 200  # text and plots, not a blank page
    assert all(_rgb(color) in pixels for color in drawn)


@needs_chromium
def test_the_ab_report_renders_in_a_real_browser(shoes: tuple[Path, str]) -> None:
    # Daily CTR and the per-variant bars, in A's (the control's) and B's colors.
    _looks_right(shoes[0] / "report.html", "Experiment · shoes", 2, [PALETTE[0], PALETTE[1]])


@needs_chromium
def test_the_interleaving_report_renders_in_a_real_browser(boots: tuple[Path, str]) -> None:
    # Also the daily win rate, in B's color; the interleaved searches' CTR in the third.
    _looks_right(boots[0] / "report.html", "Experiment · boots", 3, [PALETTE[1], PALETTE[2]])
