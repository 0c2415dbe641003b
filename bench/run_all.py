"""`make bench`: every benchmark, one after another, each in its own process,
merged into bench/results/latest.json (`{"machine", "results": [...],
"benchmarks": {name: {"seconds", "returncode"}}}`) and printed as one table.

    python bench/run_all.py [--quick] [--only NAME ...]

Each benchmark also runs alone (`python bench/NAME.py [--quick]`).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import machine, print_results  # noqa: E402

BENCHMARKS = (
    "compute",
    "retrieval_pipeline",
    "video_pipeline",
    "video_decode",
    "evaluation",
    "serving",
    "search",
    "ann",
    "rerank_search",
    "towers",
    "web",
    "memory",
    "index_memory",
    "data_memory",
    "scaling",
)
HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS)
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--output", default=None, help="default: RESULTS/latest.json")
    parser.add_argument("--extra", nargs="*", default=[], help="args for each script")
    args = parser.parse_args(argv)
    os.makedirs(args.results, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    results, runs = [], {}
    start = time.perf_counter()
    for name in args.only or BENCHMARKS:
        output = os.path.join(args.results, f"{name}.json")
        command = [sys.executable, os.path.join(HERE, f"{name}.py"), "--output", output]
        command += (["--quick"] if args.quick else []) + list(args.extra)
        print(f"== {name}", flush=True)
        began = time.perf_counter()
        code = subprocess.call(command, env=env, cwd=os.path.dirname(HERE))
        runs[name] = {"seconds": time.perf_counter() - began, "returncode": code}
        if code == 0 and os.path.isfile(output):
            with open(output, encoding="utf-8") as f:
                report = json.load(f)
            for r in report["results"]:
                results.append(dict(r, benchmark=name))
    latest = {
        "machine": machine(),
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "benchmarks": runs,
        "results": results,
    }
    path = args.output or os.path.join(args.results, "latest.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(latest, f, indent=2)
    print("\n== all results")
    print_results(results)
    missed = [r["name"] for r in results if r["met"] is False]
    failed = [n for n, r in runs.items() if r["returncode"]]
    print(f"\n{len(results)} figures, {sum(r['met'] is True for r in results)} "
          f"targets met, {len(missed)} missed: {', '.join(missed) or '-'}")  # fmt: skip
    if failed:
        print(f"FAILED benchmarks: {', '.join(failed)}")
    print(f"Wrote {path} ({latest['seconds']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
