"""scripts/benchmark_page.py: the margins it computes, new sets, and the page's length."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page():
    spec = importlib.util.spec_from_file_location(
        "benchmark_page", ROOT / "scripts" / "benchmark_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows_of(set_name, method, psnrs):
    return [
        {"set": set_name, "scan": f"scan {i // 2}", "channel": ("low", "high")[i % 2],
         "method": method, "psnr": p, "ssim": 0.9}
        for i, p in enumerate(psnrs)
    ]  # fmt: skip


def synthetic(tmp_path):
    bm3d = [40.0, 35.0, 45.0, 38.0]
    rows = (
        rows_of("zeta", "bm3d+gat", bm3d)
        + rows_of("zeta", "default", [41.0, 37.0, 44.0, 41.0])  # +1, +2, -1, +3
        + rows_of("zeta", "default + 10 min fine-tune", [41.5, 37.0, 44.2, 41.0])
        + rows_of("phantom", "bm3d+gat", bm3d[:2])
        + rows_of("phantom", "default", [40.5, 34.8])  # +0.5, -0.2
        + rows_of("alpha", "bm3d+gat", bm3d[:2])
        + rows_of("alpha", "default, 1 pass", [39.0, 35.25])  # -1, +0.25
        + rows_of("alpha", "noisy", [30.0, 25.0])
        + rows_of("omega", "bm3d+gat", bm3d[:2])
    )
    runs = {
        "machine": "Test CPU, 2 cores",
        "default_model": {"training": {"hours": 1.234, "stages": []}},
        "finetune_default_zeta": {
            "steps": 100, "seconds": 60.0, "kept_start": False, "blend": 0.5,
            "gain_z": 3.0, "gain_db_estimated": 0.2,
        },
        "speed": {
            "default_s": 1.0, "default_all_s": [1.1, 1.0], "bm3d_s": 20.0, "ratio": 20.0,
            "shape": "2x64x64", "machine": "Test CPU", "date": "2030-01-01",
        },
        "memory": {"2x640x1000": {"peak_mb": 1500.0, "before_mb": 1.0, "seconds": 2.0}},
    }  # fmt: skip
    (tmp_path / "bench_default.json").write_text(json.dumps({"rows": rows, "runs": runs}))
    check = {
        "steps": 50,
        "dpsnr": {"1.0": [0.1, -0.2, 0.3]},
        "sure_db": {"1.0": {"all": [0.1, -0.1, 0.2]}},
    }
    (tmp_path / "finetune_check_toy.json").write_text(json.dumps(check))
    return rows


def test_margins_median_and_worst_against_bm3d(page, tmp_path):
    rows = synthetic(tmp_path)
    zeta = page.summary(page.margins(rows, "zeta", "default"))
    assert zeta["median"] == pytest.approx(1.5) and zeta["worst"] == pytest.approx(-1.0)
    assert zeta["best"] == pytest.approx(3.0) and zeta["n"] == 4
    assert [(scan, ch) for scan, ch, _ in zeta["below"]] == [("scan 1", "low")]
    phantom = page.summary(page.margins(rows, "phantom", "default"))
    assert phantom["median"] == pytest.approx(0.15) and phantom["worst"] == pytest.approx(-0.2)
    tuned = page.summary(page.margins(rows, "zeta", page.FINETUNED, against="default"))
    assert tuned["median"] == pytest.approx(0.1) and tuned["worst"] == pytest.approx(0.0)
    assert page.summary(page.margins(rows, "alpha", "default")) is None
    # the configured sets first, the others after, sorted, under their own name
    assert page.set_order(rows) == ["phantom", "alpha", "omega", "zeta"]


def test_the_page_of_a_synthetic_run(page, tmp_path):
    synthetic(tmp_path)
    marker = page.EXTRA_MARKER
    (tmp_path / "benchmarks_extra.md").write_text(f"Said first.\n{marker}\n## GPU\n\n6.5 ms\n")
    out = tmp_path / "benchmarks.md"
    assert page.main(["--docs", str(tmp_path)]) == 0
    text = out.read_text()
    assert "| (a) phantom | 2 | **+0.15** | -0.20 | +0.50 | 1 |" in text
    assert "| zeta | 4 | **+1.50** | -1.00 | +3.00 | 1 |" in text
    assert "### zeta: zeta" in text and "### alpha: alpha" in text
    # a set with no rows of the shipped model yet still gets its heading
    assert (
        "### omega: omega\n\nNo rows of the shipped model yet (methods in the rows: `bm3d+gat`)."
        in text
    )
    assert text.index("### (a) phantom") < text.index("### alpha") < text.index("### zeta")
    assert (
        "| default (1.23 h), 1 pass (`--self-ensemble 1`) | -0.38 | -1.00 | +0.25 | 1 of 2 |"
        in text
    )
    assert "| zeta | 100 in 60 s | blend t = 0.5 | +0.200 | 3.0 | +0.10 / +0.00 |" in text
    assert "| 1.0 | +0.100 | -0.200 | 1 of 3 | +1.00 |" in text
    assert "1.50 GB (2.0 s)" in text and "**20x** faster" in text
    # the hand-written text: above the marker under the introduction, the rest at the end
    assert text.index("Said first.") < text.index("## Quality") and text.endswith("6.5 ms\n")
    assert marker not in text
    assert page.main(["--docs", str(tmp_path), "--check"]) == 0
    out.write_text(text + "edited by hand\n")
    assert page.main(["--docs", str(tmp_path), "--check"]) == 1


def test_the_real_page_is_short(page):
    text = page.render(*page.load(ROOT / "docs"))
    lines = text.splitlines()
    assert len(lines) < 250, len(lines)
    results = json.loads((ROOT / "docs" / "bench_default.json").read_text())
    for set_name in page.set_order(results["rows"]):
        assert f"### {page.SET_NAMES.get(set_name, set_name)}" in text
    assert "nan" not in text.lower().replace("napari", "")
    assert all(line == line.rstrip() for line in lines)  # no trailing spaces
