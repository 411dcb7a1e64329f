"""nbgrader's own tests (autograde, generate_feedback, every preprocessor), stock and with the kit's pipeline injected.

    python bench/nbgrader_suite.py            # both runs, one after the other (about 15 minutes on 2 cores)
    python bench/nbgrader_suite.py --injected # the injected run only

Prints passed, failed and skipped, and the wall time, of each run; then every test that failed
injected and is not in CHANGED_ON_PURPOSE (tests/kit/nbgrader_suite.py), and exits 1 if there is one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kit"))

from nbgrader_suite import CHANGED_ON_PURPOSE, run_suite  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--injected", action="store_true", help="only the run with the kit's pipeline")
    args = parser.parse_args()
    runs = {}
    for injected in ((True,) if args.injected else (False, True)):
        label = "with the kit's pipeline" if injected else "stock nbgrader"
        print(f"running nbgrader's tests, {label} ...", flush=True)
        runs[label] = run_suite(injected=injected)
        print(f"  {runs[label].counts()}", flush=True)
    print(f"\n{'run':<26} {'passed':>7} {'failed':>7} {'skipped':>8} {'wall time':>10}")
    for label, run in runs.items():
        print(f"{label:<26} {len(run.ids('passed')):>7} {len(run.ids('failed')):>7} {len(run.ids('skipped')):>8} "
              f"{run.seconds:>8.0f} s")
    injected = runs["with the kit's pipeline"]
    slowest = sorted(injected.durations, key=injected.durations.get, reverse=True)[:8]
    print("\nslowest, injected: " + ", ".join(f"{t.split('::')[-1]} {injected.durations[t]:.0f} s" for t in slowest))
    for test in injected.ids("failed"):
        why = CHANGED_ON_PURPOSE.get(test)
        print(f"\n{'changed on purpose' if why else 'FAILED'}: {test}\n  {why or injected.messages.get(test, '')}")
    unexpected = injected.unexpected()
    if unexpected:
        print(f"\n{len(unexpected)} unexpected: {', '.join(unexpected)}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
