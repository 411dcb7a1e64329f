"""The `coursekit` command: release, grade, demo, and the student-side check and bundle.

    coursekit release ASSIGNMENT    regenerate release/ASSIGNMENT from source/
    coursekit grade ASSIGNMENT      autograde submitted/*/ASSIGNMENT, write feedback and reports
              [--workers N]         ... N submissions at once (default: one per core)
              [--regrade]           ... also those graded before and unchanged since (kept otherwise)
              [--scheduler tcp://HOST:PORT]  ... on the workers of a Dask cluster
              [--lms canvas|moodle --roster CSV]  ... also grades-<lms>.csv for the LMS to import
              [--lms-column TITLE] [--include-pending]  ... Canvas's column; totals whose manual part is pending
    coursekit similarity ASSIGNMENT which students handed in the same work: reports/ASSIGNMENT/similarity.csv and .html
    coursekit demo [ASSIGNMENT...]  put sample submissions in submitted/ and grade them (default: all)
    coursekit check NOTEBOOK        for students: run the notebook's visible tests, say what to fix
    coursekit bundle ASSIGNMENT     zip release/ASSIGNMENT for an LMS
    coursekit collect ASSIGNMENT ZIP --lms canvas|moodle --roster CSV
                                    put an LMS's zip of uploads into submitted/
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .course import CourseError, find_course_root, put_venv_on_path


def cmd_release(args) -> int:
    from .release import release_assignment

    for path in release_assignment(args.root, args.assignment):
        print(f"released {path.relative_to(args.root)} (no solution or hidden-test line in it)")
    return 0


class Progress:
    """One line per submission: how many are done and failed, the rate so far, and the time left."""

    def __init__(self):
        self.started = time.monotonic()
        self.failed = 0

    def begin(self, workers: str) -> None:
        print(f"running submissions on {workers}", flush=True)

    def show(self, done: int, total: int, outcome) -> None:
        self.failed += not outcome.graded
        elapsed = time.monotonic() - self.started
        rate = done / elapsed * 60 if elapsed else 0.0
        left = elapsed / done * (total - done)
        state = ("kept: graded by an earlier run, unchanged since" if outcome.kept else
                 "graded" if outcome.graded and not outcome.message else
                 f"NOT GRADED: {outcome.message}" if not outcome.graded else outcome.message)
        if outcome.graded and outcome.note:
            state += f"; {outcome.note}"
        print(f"[{done}/{total} done, {self.failed} failed, {rate:.0f}/min, about {left:.0f} s left] {outcome.student}: {state}", flush=True)


def cmd_grade(args) -> int:
    from .course import hidden_checks_dir, load_config, source_notebooks
    from .grade import find_students, grade_assignment
    from .report import format_check_summary, format_table, format_notes, write_reports
    from .checks import has_hidden_checks
    from .sandbox import sandbox_plan

    students = args.student or find_students(args.root, args.assignment)
    if not students:
        print(f"no submissions in {args.root / 'submitted'}/*/{args.assignment}/", file=sys.stderr)
        return 1
    if args.workers is not None and args.workers < 1:
        raise CourseError(f"--workers must be at least 1, not {args.workers}")
    if args.lms and not args.roster:  # before grading, not after it
        raise CourseError("--lms needs --roster, the roster CSV exported from the LMS")
    export = None
    if args.lms:  # the roster and the assignment's column too
        from .lms import plan_lms_export

        export = plan_lms_export(args.roster, args.lms, args.assignment, args.lms_column)
    config = load_config(args.root)
    try:
        sandboxed, sandbox_line = sandbox_plan(config)
    except RuntimeError as exc:
        raise CourseError(str(exc)) from exc
    print(f"grading {len(students)} submission(s) of {args.assignment}", flush=True)
    print(sandbox_line if not args.scheduler else f"{sandbox_line} (on this machine; each Dask worker decides on its own)", flush=True)
    checks_dir = hidden_checks_dir(config, args.root, args.assignment)
    if not has_hidden_checks(checks_dir):
        print(f"{args.assignment} has no hidden checks ({checks_dir} holds no test_*.py): its visible tests decide, as in nbgrader", flush=True)
    progress = Progress()
    outcomes = grade_assignment(args.root, args.assignment, students, on_outcome=progress.show, workers=args.workers,
                                scheduler=args.scheduler, on_start=progress.begin, regrade=args.regrade, sandboxed=sandboxed)
    notebook = source_notebooks(args.root, args.assignment)[0].stem
    db_url = config.CourseDirectory.db_url or f"sqlite:///{args.root / 'gradebook.db'}"
    report = write_reports(args.root, args.assignment, notebook, db_url, outcomes)
    print()
    print(format_table(report))
    print(format_check_summary(report["folder"] / "checks.csv", len(outcomes)))
    if report["notes"]:
        print(format_notes(report))
    if args.lms:
        from .lms import write_lms_grades

        target = report["folder"] / f"grades-{args.lms}.csv"
        written = write_lms_grades(target, export, report["rows"], include_pending=args.include_pending)
        into = f", into {export.column!r}" if export.column else ""
        scaled = f", {written.scaled}" if written.scaled else ""
        print(f"\n{target.relative_to(args.root)}: {written.grades} grade(s) in {args.lms.capitalize()}'s import layout{into}{scaled}")
        if written.pending:
            print(f"left out {len(written.pending)} whose manual part is pending: {', '.join(written.pending)} "
                  "(grade it in nbgrader's formgrader, or add --include-pending)")
    graded = sum(o.graded for o in outcomes)
    print(f"\n{graded} of {len(outcomes)} graded in {time.monotonic() - progress.started:.1f} s; "
          f"reports in {report['folder'].relative_to(args.root)}/, feedback in feedback/")
    return 0


def cmd_similarity(args) -> int:
    from .similarity import format_summary, write_similarity

    if not any((args.root / "submitted").glob(f"*/{args.assignment}/")):
        print(f"no submissions in {args.root / 'submitted'}/*/{args.assignment}/", file=sys.stderr)
        return 1
    result = write_similarity(args.root, args.assignment)
    print(format_summary(result, f"reports/{args.assignment}"))
    return 0


def cmd_check(args) -> int:
    from .student import NotebookProblem, check_notebook, format_check

    try:
        statuses, found = check_notebook(args.notebook, timeout=args.timeout)
    except NotebookProblem as exc:
        print(f"coursekit: {exc}", file=sys.stderr)
        return 2
    print(format_check(args.notebook, statuses, found))
    return 0 if all(s.state in ("passed", "answered") for s in statuses) and not found else 1


def cmd_bundle(args) -> int:
    from .student import NotebookProblem, bundle_release

    output = args.output or args.root / "bundles" / f"{args.assignment}.zip"
    try:
        names = bundle_release(args.root, args.assignment, output)
    except NotebookProblem as exc:
        raise CourseError(str(exc)) from exc
    print(f"wrote {output} ({', '.join(names)}): what students get, for your LMS")
    return 0


def cmd_collect(args) -> int:
    from .course import source_notebooks
    from .lms import collect_uploads

    notebooks = [p.name for p in source_notebooks(args.root, args.assignment)]
    collected = collect_uploads(args.root, args.assignment, args.archive.resolve(), args.lms, args.roster, notebooks)
    print(f"collected {len(collected.students)} submission(s) of {args.assignment} into submitted/: {', '.join(collected.students)}")
    if collected.kept:
        print(f"{len(collected.kept)} student(s) uploaded a notebook more than once; the newest was collected:")
        for line in collected.kept:
            print(f"  {line}")
    if collected.listed:
        print(f"{len(collected.listed)} upload(s) not collected; they are in downloaded/{args.assignment}/extracted/:")
        for line in collected.listed:
            print(f"  {line}")
    return 0 if not collected.listed else 1


def cmd_demo(args) -> int:
    from .samples import DEMO_SAMPLES, write_samples

    assignments = args.assignments or [a for a in DEMO_SAMPLES if (args.root / "source" / a).is_dir()]
    unknown = [a for a in assignments if a not in DEMO_SAMPLES]
    if unknown:
        raise CourseError(f"no sample submissions for {', '.join(unknown)}; there are for {', '.join(DEMO_SAMPLES)}")
    for number, assignment in enumerate(assignments):
        print(f"{'' if number == 0 else chr(10)}== {assignment} ==", flush=True)
        names = write_samples(args.root, assignment, DEMO_SAMPLES[assignment])
        print(f"wrote {len(names)} sample submissions to submitted/: {', '.join(names)}")
        args.assignment, args.student = assignment, names
        code = cmd_grade(args)
        if code:
            return code
    return 0


def add_lms_options(parser, required: bool) -> None:
    parser.add_argument("--lms", choices=("canvas", "moodle"), required=required, help="the learning management system")
    parser.add_argument("--roster", type=Path, required=required,
                        help="the LMS's roster CSV (Canvas: gradebook export; Moodle: grading worksheet)")


def add_lms_export_options(parser) -> None:
    parser.add_argument("--lms-column", metavar="TITLE", default=None,
                        help="Canvas: the export's column for this assignment, as 'Title (id)', its title or its id "
                             "(default: the one column whose title has the words of the assignment's name)")
    parser.add_argument("--include-pending", action="store_true",
                        help="also write the totals of students whose manual part awaits grading (left out otherwise)")


def add_worker_options(parser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="submissions run at once in local worker processes (default: the number of cores)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                        help="run submissions on this Dask cluster instead; the gradebook is still written here only")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coursekit", description="Release, autograde and report on nbgrader assignments.")
    parser.add_argument("--course", type=Path, default=None, help="the course directory (default: the one holding course_config.py, from here up)")
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="regenerate release/ASSIGNMENT from source/")
    release.add_argument("assignment")
    release.set_defaults(run=cmd_release)
    grade = commands.add_parser("grade", help="autograde every submission, write feedback and reports")
    grade.add_argument("assignment")
    grade.add_argument("--student", action="append", help="grade only this student (repeatable)")
    grade.add_argument("--regrade", action="store_true",
                       help="grade again submissions that an earlier run graded and that have not changed since")
    add_worker_options(grade)
    add_lms_options(grade, required=False)
    add_lms_export_options(grade)
    grade.set_defaults(run=cmd_grade)
    similarity = commands.add_parser("similarity", help="which students handed in the same work (reads submitted/; grades nothing)")
    similarity.add_argument("assignment")
    similarity.set_defaults(run=cmd_similarity)
    check = commands.add_parser("check", help="for students: run your notebook with its visible tests and say what to fix")
    check.add_argument("notebook", type=Path)
    check.add_argument("--timeout", type=int, default=60, help="seconds a cell may run")
    check.set_defaults(run=cmd_check, needs_course=False)
    bundle = commands.add_parser("bundle", help="zip release/ASSIGNMENT for upload to an LMS")
    bundle.add_argument("assignment")
    bundle.add_argument("--output", type=Path, default=None, help="the zip to write (default: bundles/ASSIGNMENT.zip)")
    bundle.set_defaults(run=cmd_bundle)
    collect = commands.add_parser("collect", help="put the uploads in an LMS's zip of submissions into submitted/")
    collect.add_argument("assignment")
    collect.add_argument("archive", type=Path, help="the zip of all uploads, as Canvas or Moodle lets you download it")
    add_lms_options(collect, required=True)
    collect.set_defaults(run=cmd_collect)
    demo = commands.add_parser("demo", help="grade sample submissions of each assignment")
    demo.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="the assignments (default: every one with samples)")
    demo.set_defaults(regrade=True)  # the samples are written afresh each time
    add_worker_options(demo)
    add_lms_options(demo, required=False)
    add_lms_export_options(demo)
    demo.set_defaults(run=cmd_demo)
    args = parser.parse_args(argv)
    put_venv_on_path()
    # nbgrader's gradebook code trips SQLAlchemy warnings that say nothing to course staff
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    try:
        if getattr(args, "needs_course", True):  # `check` runs on a student's machine, with no course
            args.root = find_course_root(args.course)
        return args.run(args)
    except CourseError as exc:
        print(f"coursekit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # every submission reported as done is in the gradebook already; its kernels have been stopped
        print("coursekit: interrupted; what was reported as done is in the gradebook", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
