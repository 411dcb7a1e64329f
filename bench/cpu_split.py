"""Where a submission's CPU goes: its kernel, or the rest of grading. Run by bench/grading.py, in a course it made.

    python bench/cpu_split.py COURSE KERNELS_CGROUP REST_CGROUP    # started inside KERNELS_CGROUP

The reference solution runs first, in this process: its first kernel starts the fork server, which stays in
KERNELS_CGROUP with every kernel it forks. This process then moves to REST_CGROUP and grades each submission in
turn, in one process, as a worker does (grade_submission's two halves: run_submission runs, probes and checks it,
grade_in_scratch grades it with nbgrader's autograde and feedback in a scratch course). Prints one line of JSON:
the submissions, and the CPU seconds of their kernels (start, the notebook's cells, the probes, stop), of driving
the kernels and the hidden checks, and of nbgrader's autograde and feedback.

The kernels' CPU is work that any grader running each notebook in a kernel of its own must do: with nbgrader's
own commands and the same course_config.py, the very same kernels run. A grader that keeps nbgrader's autograde
and feedback (its gradebook, its pages) does that work too. So K submissions take at least
K * (kernel + nbgrader) CPU / cores seconds on this machine, whatever drives them.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from grading import ASSIGNMENT, cgroup_seconds  # this folder is first on sys.path; grading puts the kit's there too


def main() -> int:
    root, kernels, rest = (Path(a) for a in sys.argv[1:4])
    from coursekit.course import hidden_checks_dir, load_config, nbgrader_api, source_notebooks
    from coursekit.grade import find_students, prepare_gradebook
    from coursekit.parallel import bundle_checks_root, make_bundle, read_submission, run_reference, run_submission, with_reference
    from coursekit.scratch_grade import assignment_gradebook, grade_in_scratch

    config = load_config(root)
    bundle = make_bundle(hidden_checks_dir(config, root, ASSIGNMENT), ASSIGNMENT, config, root / "source" / ASSIGNMENT)
    names = [p.name for p in source_notebooks(root, ASSIGNMENT)]
    reference = run_reference(read_submission(root / "source" / ASSIGNMENT, "reference", names), bundle)
    (rest / "cgroup.procs").write_text(str(os.getpid()))  # the fork server, started above, stays behind
    prepare_gradebook(root, ASSIGNMENT)
    api = nbgrader_api(root)
    shared = with_reference(bundle, reference, assignment_gradebook(api.coursedir.db_url, api.coursedir.course_id, ASSIGNMENT))
    students = find_students(root, ASSIGNMENT)
    kernels_before = cgroup_seconds(kernels)
    running = nbgrader = 0.0
    for student in students:
        job = read_submission(root / "submitted" / student / ASSIGNMENT, student, names)
        cpu = time.process_time()
        run = run_submission(job, shared)
        running += time.process_time() - cpu
        failed = [notebook.error for notebook in run.notebooks.values() if notebook.error]
        if failed:
            raise SystemExit(f"{student} could not be run: {failed}")
        cpu = time.process_time()
        grading = grade_in_scratch(job, run, shared, bundle_checks_root(shared))
        nbgrader += time.process_time() - cpu
        if grading.failed:
            raise SystemExit(f"{student} was not graded: {grading.failed}")
    print(json.dumps({"submissions": len(students), "kernels": cgroup_seconds(kernels) - kernels_before,
                      "running": running, "nbgrader": nbgrader}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
