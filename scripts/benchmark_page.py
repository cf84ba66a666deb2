"""Write ``docs/benchmarks.md`` from the benchmark results under ``docs/``.

    python scripts/benchmark_page.py            # rewrite docs/benchmarks.md
    python scripts/benchmark_page.py --check    # exit 1 if docs/benchmarks.md is out of date

Reads ``docs/bench_default.json`` (``benchmarks/bench_default.py``: ``rows`` of
``{set, scan, channel, method, psnr, ssim}`` and ``runs``: the model's record, the
fine-tune, speed and memory runs), every ``docs/finetune_check_*.json``
(``benchmarks/finetune_check.py``) and copies ``docs/benchmarks_extra.md`` (figures with no
JSON: the GPU, batch throughput, other operations) verbatim: its text above
``EXTRA_MARKER`` under the introduction, the rest at the end. Every figure of the
generated part is computed from the JSON; nothing here is measured. ``make bench`` runs
this at its end (``benchmarks/run_all.py``).

A new test set needs nothing here: every ``set`` in the rows gets its table, those not in
``SET_ORDER`` at the end under their own name. A new shipped model: its rows are labelled
``default`` (the old ones relabelled, as ``bench_default.py`` does), so only ``COMPARE``
below may want the old label.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# ------------------------------------------------------------------ configuration
# the order of the test sets; sets not named here follow, sorted, under their own name
SET_ORDER = ("phantom", "photos", "samples", "electronics", "detectors")
SET_NAMES = {
    "phantom": "(a) phantom",
    "photos": "(b) photos",
    "samples": "(c) samples",
    "electronics": "(d) electronics",
    "detectors": "(e) detectors",
}
SET_INFO = {
    "phantom": "unseen phantom bags (scene seeds 900-902, 480x800) at doses 500/2000/8000",
    "photos": (
        "ten natural photographs from `skimage.data` (a source no training scene comes "
        "from) used as dual-energy transmission maps with 1% column streaks, scanned at "
        "dose 1000 in a 16-bit range and dose 8000 in a 12-bit range (the high energy at "
        "0.28x the low one's dose)"
    ),
    "samples": "the three shipped sample bags (`sample_data/`)",
    "electronics": (
        "photon-starved scenes from generators the dark training stage never used (unseen "
        "phantom bags 910-911 behind a laptop-like slab, the `skimage` camera and brick "
        "photographs as thick depth maps: 0.5-10% transmission), 320x480, by two "
        "detectors with offsets (A: 8 ADU/quantum, read noise 25 ADU, offset 200, doses "
        "500/2000; B: 3 ADU, 6 ADU, offset 60, 14-bit, doses 300/3000); "
        "`benchmarks/unseen_sets.py`"
    ),
    "detectors": (
        "ordinary scenes (bag 912, astronaut, coffee, rocket) by three detectors at the "
        "edges of the range (C: 0.7 ADU/quantum, read 2, offset 1000; D: 15 ADU, read 80, "
        "offset 100; E: 1.5 ADU, read 3, offset 50, 12-bit), 320x480"
    ),
}
# what every margin is taken against: rows of the same set, scan and channel, the better
# of BM3D + GAT with the noise fitted on the scan and with the set's true noise law
BASELINE = "bm3d+gat"
BASELINES = ("bm3d+gat", "bm3d+gat true noise")
# the method labels of the shipped default model in the rows -> how the page names them;
# {hours} is the model's training hours from runs[MODEL_RUN]
SHIPPED = {
    "default": "**default ({hours} h), 2 passes: shipped**",
    "default, 1 pass": "default ({hours} h), 1 pass (`--self-ensemble 1`)",
    "default + 10 min fine-tune": "default + 10 CPU-minutes of fine-tuning on the set",
}
SHIPPED_DEFAULT = "default"  # the row of the summary table and of the targets
FINETUNED = "default + 10 min fine-tune"  # compared with SHIPPED_DEFAULT, its start
# earlier models shown beside the shipped one in each set's table (label -> name)
COMPARE = {
    "8.36 h alone": "the 8.36 h network alone (no dark companion: `--model default.keras`)",
    "7.68 h (streaks to 0.3%)": "previous default (7.68 h, streaks to 0.3%)",
    "blind-spot (shipped before)": "blind-spot model (`blindspot_phantom.keras`)",
}
MODEL_RUN = "default_model"
FINETUNE_RUN = "finetune_default_{set}"
MIN_GAIN_DB = 0.1  # finetune's min_gain_db when these runs were made (docs)
# where, when and how each table was made: the speed run records its machine and date in
# the JSON; the rows do not (runs["machine"] is the last stage's machine, whichever it was)
MACHINE_MORE = "no GPU, 24 GiB, TensorFlow 2.21 / Keras 3.15 CPU"
QUALITY_MACHINE = "AMD EPYC (2026-11-30) and Intel Xeon (2026-12-03), 2 cores, Python 3.11.7"
MEASURED = {
    "quality": (
        "(a)-(c) 2026-11-30 18:45-19:2x, nothing else running, re-run 2026-12-03 with the "
        "dark companion (identical figures: no scan of theirs is photon-starved); (d), (e) "
        "2026-12-03 09:58-10:12, the machine busy (quality does not depend on it)",
        "python benchmarks/bench_default.py --stage models --sets phantom photos samples "
        "electronics detectors --finetune-minutes 10 --no-blindspot",
    ),
    "speed": (
        "10:12-10:15, nothing else running (the default model with its dark companion loaded)",
        "python benchmarks/bench_default.py --stage speed memory",
    ),
}
FINETUNE_CHECKS = {  # docs/finetune_check_<name>.json -> (what, when)
    "finetune_check_8.36h.json": (
        "the same 10 minutes on (b) from the shipped 8.36 h model, run again after the benchmark",
        "2026-11-30 19:34-19:44",
    ),
}
MEMORY_SHAPES = {
    "2x640x1000": "a 640x1000 dual-energy pair (model loaded, phantom made, denoised)",
    "4096x4096": "one 4096x4096 channel (tiles of 1024, overlap 64)",
    "2x4096x4096": "a 4096x4096 dual-energy pair (each energy guided by the other)",
}
# the targets (docs/benchmarks.md before it was generated)
TARGET_MEDIAN_DB = 0.5  # median margin on every test set (issue 24)
TARGET_SETS = SET_ORDER
TARGET_WORST_DB = -0.5  # no channel worse
TARGET_GAP_SHARE = 0.5  # of the gap to BM3D, what 10 CPU-minutes of fine-tuning recover
TARGET_SPEEDUP = 15.0
TARGET_MEMORY_GB = {"2x640x1000": 2.0, "4096x4096": 4.0, "2x4096x4096": 4.0}

# in docs/benchmarks_extra.md: the text above this line goes under the page's
# introduction, the text below it at the end of the page (the line itself is dropped)
EXTRA_MARKER = "<!-- benchmark_page.py puts the generated tables here -->"
GENERATED = (
    "<!-- Generated by scripts/benchmark_page.py from docs/bench_default.json, "
    "docs/finetune_check_*.json and docs/benchmarks_extra.md: edit those, not this file. -->"
)


# ------------------------------------------------------------------ figures
def set_order(rows: list[dict]) -> list[str]:
    """The sets present in ``rows``: those of ``SET_ORDER`` first, the others after, sorted."""
    present = {r["set"] for r in rows}
    return [s for s in SET_ORDER if s in present] + sorted(present - set(SET_ORDER))


def margins(
    rows: list[dict], set_name: str, method: str, against: str | None = None
) -> list[tuple]:
    """``(scan, channel, psnr(method) - psnr(against))`` for every channel both have;
    ``against`` None: the best of ``BASELINES`` in that channel (the strongest BM3D)."""
    names = BASELINES if against is None else (against,)
    base: dict = {}
    for r in rows:
        if r["set"] == set_name and r["method"] in names:
            key = (r["scan"], r["channel"])
            base[key] = max(base.get(key, float("-inf")), r["psnr"])
    return [
        (r["scan"], r["channel"], r["psnr"] - base[(r["scan"], r["channel"])])
        for r in rows
        if r["set"] == set_name and r["method"] == method and (r["scan"], r["channel"]) in base
    ]


def summary(diffs: list[tuple]) -> dict | None:
    """Median, worst and best of the differences, how many are below zero, and which."""
    if not diffs:
        return None
    values = [d for _, _, d in diffs]
    return {
        "median": statistics.median(values),
        "worst": min(values),
        "best": max(values),
        "n": len(values),
        "below": [(scan, ch, d) for scan, ch, d in diffs if d < 0],
    }


def _db(x: float) -> str:
    return f"{x:+.2f}"


def _hours(runs: dict) -> str:
    hours = runs.get(MODEL_RUN, {}).get("training", {}).get("hours")
    return "?" if hours is None else f"{hours:.2f}"


def _label(method: str, runs: dict) -> str:
    return SHIPPED.get(method, COMPARE.get(method, method)).format(hours=_hours(runs))


def _set_name(set_name: str) -> str:
    return SET_NAMES.get(set_name, set_name)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


# ------------------------------------------------------------------ sections
def header_section(results: dict) -> list[str]:
    runs = results.get("runs", {})
    training = runs.get(MODEL_RUN, {}).get("training", {})
    stages = training.get("stages", [])
    gpu = [s for s in stages if s.get("device")]
    cpu_h = sum(s["hours"] for s in stages if not s.get("device"))
    gpu_min = 60 * sum(s["hours"] for s in gpu)
    trained = f"{_hours(runs)} h of training"
    if stages:
        trained += f": {cpu_h:.2f} h on a 2-core CPU"
        if gpu:
            device = gpu[-1]["device"].split(" (")[0]
            trained += f" + {gpu_min:.1f} minutes on one {device}"
    lines = [
        "# Benchmarks",
        "",
        GENERATED,
        "",
        "The shipped default model (`src/napari_xray_denoise/data/models/default.keras`, "
        f"{trained}; its card: `src/napari_xray_denoise/data/models/README.md`) against "
        "BM3D + generalized Anscombe (`classical.bm3d_denoise`: the same column flat-field, "
        "clipped pixels denoised, the noise fitted on each scan and, where the set knows it, "
        "also the true noise law: the stronger of the two per channel) on test sets no "
        "training scene comes from. A **margin** is the PSNR difference to that BM3D + GAT "
        "in one channel (one energy of one scan), in dB: positive is better than BM3D. How the model got here: [`history.md`](history.md).",
        "",
        "`make bench` reruns every benchmark and rewrites this page (`python "
        "scripts/benchmark_page.py` alone rewrites it from the JSON).",
        "",
    ]
    rows = results.get("rows", [])
    sets = [
        [_set_name(s), SET_INFO.get(s, s), str(len(margins(rows, s, BASELINE, BASELINE)))]
        for s in set_order(rows)
    ]
    return lines + _table(["test set", "what", "channels"], sets) + [""]


def quality_section(results: dict) -> list[str]:
    rows, runs = results.get("rows", []), results.get("runs", {})
    when, command = MEASURED["quality"]
    lines = [
        "## Quality against BM3D + GAT",
        "",
        f"{QUALITY_MACHINE}, {MACHINE_MORE}; {when}; `{command}` (BM3D rows: "
        "`--stage bm3d`). Every row: `docs/bench_default.json`.",
        "",
    ]
    table, below = [], []
    for s in set_order(rows):
        stat = summary(margins(rows, s, SHIPPED_DEFAULT))
        if stat is None:
            continue
        table.append(
            [
                _set_name(s),
                str(stat["n"]),
                f"**{_db(stat['median'])}**",
                _db(stat["worst"]),
                _db(stat["best"]),
                str(len(stat["below"])),
            ]
        )
        below += [f"{_set_name(s)} {scan} {ch} {_db(d)}" for scan, ch, d in stat["below"]]
    header = ["test set", "channels", "median margin", "worst channel", "best", "under BM3D"]
    lines += [f"The shipped model ({_label(SHIPPED_DEFAULT, runs)}), dB:", ""]
    lines += _table(header, table)
    if below:
        lines += ["", "Channels under BM3D + GAT: " + "; ".join(below) + "."]
    for s in set_order(rows):
        body = []
        for method in [*SHIPPED, *COMPARE]:
            stat = summary(margins(rows, s, method))
            if stat is not None:
                body.append(
                    [
                        _label(method, runs),
                        _db(stat["median"]),
                        _db(stat["worst"]),
                        _db(stat["best"]),
                        f"{len(stat['below'])} of {stat['n']}",
                    ]
                )
        lines += ["", f"### {_set_name(s)}: {SET_INFO.get(s, s)}", ""]
        if body:
            lines += _table(["method", "median", "worst", "best", "under BM3D"], body)
        else:
            methods = sorted({r["method"] for r in rows if r["set"] == s})
            lines.append(
                "No rows of the shipped model yet (methods in the rows: "
                + ", ".join(f"`{m}`" for m in methods)
                + ")."
            )
    return lines + [""]


def finetune_section(results: dict, checks: dict[str, dict]) -> list[str]:
    rows, runs = results.get("rows", []), results.get("runs", {})
    body = []
    for s in set_order(rows):
        run = runs.get(FINETUNE_RUN.format(set=s))
        if run is None:
            continue
        change = summary(margins(rows, s, FINETUNED, against=SHIPPED_DEFAULT))
        kept = "the start" if run.get("kept_start") else f"blend t = {run.get('blend')}"
        est = run.get("gain_db_estimated")
        z = run.get("gain_z")
        body.append(
            [
                _set_name(s),
                f"{run.get('steps', '?')} in {run.get('seconds', 0):.0f} s",
                kept,
                "-" if est is None else f"{est:+.3f}",
                "-" if z is None else f"{z:.1f}",
                "-" if change is None else f"{_db(change['median'])} / {_db(change['worst'])}",
            ]
        )
    if not body and not checks:
        return []
    when, command = MEASURED["quality"]
    lines = [
        "## Fine-tuning on the set's own noisy scans",
        "",
        "Self-supervised (recorrupted-to-recorrupted and simulated pairs), 10 CPU-minutes "
        "in all, checked channel by channel: a blend `start + t * (tuned - start)` is kept "
        "only if no channel's SURE error estimate rose, its median SURE gain is at least "
        f"{MIN_GAIN_DB} dB and the held-back loss fell by more than 2 standard errors; else "
        f"the start comes back. {QUALITY_MACHINE}; {when.split(' (')[0]}; `{command}`.",
        "",
    ]
    header = [
        "test set",
        "steps",
        "kept",
        "SURE gain of the best qualifying blend (dB)",
        "held-back gain (standard errors)",
        "PSNR change, median / worst channel",
    ]
    lines += _table(header, body)
    for name, check in checks.items():
        what, when = FINETUNE_CHECKS.get(name, (name, "-"))
        lines += [
            "",
            f"Against the truth ({what}, {when}; "
            f"`python benchmarks/finetune_check.py 10 docs/{name}`, {check.get('steps', '?')} "
            "steps): the true per-channel PSNR change of every blend, 1 pass, and how well "
            "SURE over whole channels ranked the channels:",
            "",
        ]
        table = []
        for t, dpsnr in check.get("dpsnr", {}).items():
            sure = check.get("sure_db", {}).get(t, {}).get("all")
            table.append(
                [
                    t,
                    f"{statistics.median(dpsnr):+.3f}",
                    f"{min(dpsnr):+.3f}",
                    f"{sum(d < 0 for d in dpsnr)} of {len(dpsnr)}",
                    "-" if sure is None else f"{_correlation(sure, dpsnr):+.2f}",
                ]
            )
        lines += _table(
            ["blend t", "true change, median", "worst channel", "channels losing", "SURE vs truth"],
            table,
        )
    return lines + [""]


def _correlation(a: list, b: list) -> float:
    """Pearson correlation over the pairs where both are finite numbers."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and x == x and y == y]
    if len(pairs) < 2:
        return float("nan")
    xs, ys = zip(*pairs)
    return statistics.correlation(xs, ys)


def speed_section(results: dict) -> list[str]:
    runs = results.get("runs", {})
    speed, memory = runs.get("speed"), runs.get("memory")
    if not speed and not memory:
        return []
    when, command = MEASURED["speed"]
    date = (speed or {}).get("date", "")
    machine = (speed or {}).get("machine", QUALITY_MACHINE)
    lines = [
        "## Speed and memory on the CPU",
        "",
        f"{machine}, {MACHINE_MORE}; {date} {when}; `{command}`.",
        "",
    ]
    body = []
    if speed:
        shape = speed.get("shape", "?")
        passes = speed.get("self_ensemble", 2)

        def runs_of(key):
            return " / ".join(f"{t:.2f}" for t in speed.get(key, []))

        body += [
            [
                f"default model, one {shape} pair (flat-field, noise fit, network; "
                f"{passes} passes), best of {len(speed.get('default_all_s', []))}",
                f"**{speed['default_s']:.2f} s** ({runs_of('default_all_s')})",
            ],
        ]
        if "default_1pass_s" in speed:
            body.append(
                [
                    "the same in 1 pass",
                    f"{speed['default_1pass_s']:.2f} s ({runs_of('default_1pass_all_s')})",
                ]
            )
        body.append(["BM3D + GAT, the same pair, same run", f"{speed['bm3d_s']:.2f} s"])
        ratio = f"**{speed['ratio']:.0f}x** faster"
        if "ratio_1pass" in speed:
            ratio += f"; {speed['ratio_1pass']:.0f}x in 1 pass"
        body.append(["default model against BM3D + GAT", ratio])
    for shape, rec in (memory or {}).items():
        body.append(
            [
                f"peak memory, fresh process, {MEMORY_SHAPES.get(shape, shape)}",
                f"{rec['peak_mb'] / 1000:.2f} GB ({rec['seconds']:.1f} s)",
            ]
        )
    return lines + _table(["measure", "figure"], body) + [""]


def _gap_recovered(rows: list[dict]) -> list[float]:
    """Per channel where the shipped model is under the strongest BM3D and a fine-tuned
    row exists: the share of the gap the fine-tuning closed (1 = level with BM3D)."""
    out = []
    for s in set_order(rows):
        start = {(a, c): d for a, c, d in margins(rows, s, SHIPPED_DEFAULT)}
        for scan, ch, d in margins(rows, s, FINETUNED):
            if start.get((scan, ch), 0.0) < 0:
                out.append((d - start[(scan, ch)]) / -start[(scan, ch)])
    return out


def targets_section(results: dict) -> list[str]:
    rows, runs = results.get("rows", []), results.get("runs", {})
    stats = {s: summary(margins(rows, s, SHIPPED_DEFAULT)) for s in set_order(rows)}
    stats = {s: v for s, v in stats.items() if v is not None}
    if not stats:
        return []

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    body = []
    named = [s for s in TARGET_SETS if s in stats]
    if named:
        body.append(
            [
                f"median margin >= {TARGET_MEDIAN_DB:+.1f} dB on "
                + " and ".join(_set_name(s) for s in named),
                ", ".join(f"{_set_name(s)} {_db(stats[s]['median'])}" for s in stats),
                met(all(stats[s]["median"] >= TARGET_MEDIAN_DB for s in named)),
            ]
        )
    body.append(
        [
            f"no channel worse than {TARGET_WORST_DB:+.1f} dB",
            ", ".join(f"{_set_name(s)} {_db(v['worst'])}" for s, v in stats.items()),
            met(all(v["worst"] >= TARGET_WORST_DB for v in stats.values())),
        ]
    )
    tuned = {s: summary(margins(rows, s, FINETUNED, against=SHIPPED_DEFAULT)) for s in stats}
    tuned = {s: v for s, v in tuned.items() if v is not None}
    gaps = _gap_recovered(rows)
    if gaps:
        body.append(
            [
                f"where the start loses to BM3D, fine-tuning recovers >= {TARGET_GAP_SHARE:.0%} "
                "of the gap in 10 CPU-minutes",
                f"median {statistics.median(gaps):.0%} over {len(gaps)} channels",
                met(statistics.median(gaps) >= TARGET_GAP_SHARE),
            ]
        )
    if tuned:
        body.append(
            [
                "... and never loses quality",
                "worst channel " + ", ".join(f"{_db(v['worst'])}" for v in tuned.values()),
                met(all(v["worst"] >= 0 for v in tuned.values())),
            ]
        )
    speed = runs.get("speed")
    if speed:
        body.append(
            [
                f"640x1000 pair >= {TARGET_SPEEDUP:.0f}x faster than BM3D + GAT, same run",
                f"{speed['ratio']:.0f}x",
                met(speed["ratio"] >= TARGET_SPEEDUP),
            ]
        )
    memory = {k: v for k, v in runs.get("memory", {}).items() if k in TARGET_MEMORY_GB}
    if memory:
        body.append(
            [
                "peak memory <= "
                + ", ".join(f"{TARGET_MEMORY_GB[k]:.0f} GB at {k}" for k in memory),
                ", ".join(f"{v['peak_mb'] / 1000:.2f} GB" for v in memory.values()),
                met(all(v["peak_mb"] / 1000 <= TARGET_MEMORY_GB[k] for k, v in memory.items())),
            ]
        )
    lines = ["## The issue's targets", ""]
    return lines + _table(["target", "measured", ""], body) + [""]


def render(results: dict, checks: dict[str, dict] | None = None, extra: str = "") -> str:
    """The page: the introduction, the hand-written text above ``EXTRA_MARKER`` in
    ``extra``, the generated tables, then the hand-written text below the marker (all of
    ``extra`` when it has none), both copied unchanged."""
    before, _, after = extra.partition(EXTRA_MARKER) if EXTRA_MARKER in extra else ("", "", extra)
    lines = header_section(results)
    if before.strip():
        lines += [before.strip(), ""]
    lines += quality_section(results)
    lines += finetune_section(results, checks or {})
    lines += speed_section(results)
    lines += targets_section(results)
    text = "\n".join(lines).rstrip() + "\n"
    if after.strip():
        text += "\n" + after.strip() + "\n"
    return text


def load(docs: Path) -> tuple[dict, dict[str, dict], str]:
    results = json.loads((docs / "bench_default.json").read_text())
    checks = {p.name: json.loads(p.read_text()) for p in sorted(docs.glob("finetune_check_*.json"))}
    extra_path = docs / "benchmarks_extra.md"
    extra = extra_path.read_text() if extra_path.exists() else ""
    return results, checks, extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS, help="folder of the JSON results")
    parser.add_argument("--out", type=Path, default=None, help="default: DOCS/benchmarks.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    args = parser.parse_args(argv)
    out = args.out or args.docs / "benchmarks.md"
    page = render(*load(args.docs))
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != page:
            print(f"{out} is out of date: run python scripts/benchmark_page.py", file=sys.stderr)
            return 1
        return 0
    out.write_text(page)
    print(f"wrote {out} ({len(page.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
