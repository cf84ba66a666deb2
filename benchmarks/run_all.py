"""`make bench`: every benchmark in turn (about 2.5 hours on a 2-core CPU).

Results go to stdout and the JSON files under docs/; at the end docs/benchmarks.md is
rewritten from them (scripts/benchmark_page.py), with machine, date and command.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "src" / "napari_xray_denoise" / "data" / "models" / "blindspot_phantom.keras"

RUNS = [
    # the default model against BM3D + GAT on three unseen test sets, speed and memory
    ["bench_default.py", "--stage", "bm3d", "models", "speed", "memory", "--report"],
    ["bench_targets.py"],
    ["bench_fusion.py"],
    ["bench_blindspot_speed.py"],
    ["bench_model_speed.py"],
    ["bench_batch.py"],
    ["baselines.py"],
    [
        "bench_denoise.py",
        "--model",
        f"shipped={MODEL}",
        "--train",
        "cross",
        "supervised-single",
        "supervised-joint",
        "--train-minutes",
        "20",
    ],
    ["bench_denoise.py", "--no-bm3d", "--train", "amssd", "--targets", "--train-minutes", "4"],
]


def main() -> int:
    failed = []
    for run in RUNS:
        print(f"\n=== {' '.join(run)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]]).returncode:
            failed.append(run[0])
    # slow tests (long training runs) belong to the benchmark run, not to `make test`
    print("\n=== slow tests", flush=True)
    if subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "slow",
            "--ignore=tests/gui",
            str(HERE.parent / "tests"),
        ]
    ).returncode:
        failed.append("slow tests")
    # the benchmark page from the JSON results (also when a benchmark above failed: the
    # page shows what the JSON holds)
    print("\n=== scripts/benchmark_page.py", flush=True)
    if subprocess.run(
        [sys.executable, str(HERE.parent / "scripts" / "benchmark_page.py")]
    ).returncode:
        failed.append("benchmark_page.py")
    if failed:
        print(f"FAILED: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
