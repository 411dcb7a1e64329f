"""make bench: `coursekit verify ASSIGNMENT --mutants` on every assignment, timed.

Prints, per assignment, the mutants made, killed, recorded as equivalent and survived, the faults, and the
wall time of the whole verify (samples and mutants graded in one run), against the 10-minute target.
Exits 1 when an assignment has a fault (a survivor no record explains, an equivalent losing points, ...).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coursekit.verify import verify  # noqa: E402

ASSIGNMENTS = ("mnist_sgd", "sgd_training", "simple_net")
TARGET_SECONDS = 600


def main() -> int:
    chosen = sys.argv[1:] or list(ASSIGNMENTS)
    rows, worst = [], 0
    for assignment in chosen:
        started = time.monotonic()
        faults, seen = verify(ROOT, assignment, workers=os.cpu_count(), mutants=True)
        elapsed = time.monotonic() - started
        run = seen.get("mutants")
        for fault in faults:
            print(f"  {assignment} FAULT {fault}", flush=True)
        made, killed = (len(run.made), len(run.killed)) if run else (0, 0)
        equivalent, survived = (len(run.equivalent), len(run.survivors)) if run else (0, 0)
        rows.append((assignment, made, killed, equivalent, survived, len(faults), elapsed))
        print(f"{assignment}: {made} mutants made, {killed} killed, {equivalent} recorded as equivalent, {survived} survived, "
              f"{len(faults)} fault(s), {elapsed:.0f} s", flush=True)
        worst = max(worst, 1 if faults else 0)
    print(f"\n| assignment | mutants made | killed | recorded equivalent | survived | faults | time (s, target {TARGET_SECONDS}) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for assignment, made, killed, equivalent, survived, faults, elapsed in rows:
        print(f"| {assignment} | {made} | {killed} | {equivalent} | {survived} | {faults} | {elapsed:.0f}"
              f"{'' if elapsed < TARGET_SECONDS else ' (over target)'} |")
    return worst


if __name__ == "__main__":
    sys.exit(main())
