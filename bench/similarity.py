"""Benchmark: `coursekit similarity` on a class of 500, on this machine.

    make bench                          # after the grading benchmark
    python bench/similarity.py --size 500

The class is the kit's test class at this size (tests/kit/test_similarity.py): each student a different mix
of the solution's, the equivalent samples' and the typical mistakes' cells, with three lines of their own,
plus the three planted copies. Each class is timed twice: as generated, where many students share a cell
verbatim (fingerprinted once), and with every cell made distinct by a comment of its own, the worst case
(comments are dropped before comparing, so the outcome is the same). The time is the whole command, as staff
run it (Python's start and imports included), and the comparison alone, as the command reports it.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "kit")]

from test_similarity import planted_class  # noqa: E402


def make_every_cell_distinct(course: Path, assignment: str) -> None:
    for path in (course / "submitted").glob(f"*/{assignment}/{assignment}.ipynb"):
        notebook = json.loads(path.read_text())
        for number, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
                cell["source"] = f"# {path.parts[-3]}, cell {number}\n" + "".join(cell["source"])
        path.write_text(json.dumps(notebook))


def bench(assignment: str, size: int, distinct: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        course, planted = planted_class(Path(folder), assignment, seed=500, size=size)
        if distinct:
            make_every_cell_distinct(course, assignment)
        students = sum(1 for _ in (course / "submitted").iterdir())
        started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run([sys.executable, "-m", "coursekit.cli", "similarity", assignment], cwd=course,
                                capture_output=True, text=True)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and its lexing processes
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if result.returncode != 0:
            sys.exit(f"coursekit similarity {assignment} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        comparing = float(re.search(r"pairs\) in ([0-9.]+) s", result.stdout).group(1))
        with open(course / "reports" / assignment / "similarity.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        top = {frozenset((r["student_a"], r["student_b"])) for r in rows[:3]}
        pairs = students * (students - 1) // 2
        print(f"{assignment}, {'every cell distinct' if distinct else 'as generated'}: {students} submissions ({pairs:,} pairs): "
              f"{wall:.1f} s for the command ({cpu:.1f} CPU s, load average {os.getloadavg()[0]:.1f}), {comparing:.1f} s "
              f"comparing ({pairs / comparing:,.0f} pairs/s); {len(rows)} pair(s) flagged, the 3 planted copies "
              f"{'first' if top == {frozenset(p) for p in planted} else 'NOT first'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="students in the class, planted copies included")
    parser.add_argument("--assignment", action="append", help="default: both assignments")
    args = parser.parse_args()
    for assignment in args.assignment or ["mnist_sgd", "sgd_training"]:
        for distinct in (False, True):
            bench(assignment, args.size - 2, distinct)  # the partial copy replaces its copier; two more copies are added


if __name__ == "__main__":
    main()
