"""The `coursekit` command: release, grade, demo, and the student-side check and bundle.

    coursekit release ASSIGNMENT    regenerate release/ASSIGNMENT from source/
    coursekit grade ASSIGNMENT      autograde submitted/*/ASSIGNMENT, write feedback and reports (as `report` does);
                                    exits 0 when all were graded, 1 when some were NOT GRADED, 2 when there were none
              [--workers N]         ... N submissions at once (default: one per core)
              [--regrade]           ... also those graded before and unchanged since (kept otherwise)
              [--scheduler tcp://HOST:PORT]  ... on the workers of a Dask cluster
              [--lms canvas|moodle --roster CSV]  ... also grades-<lms>.csv for the LMS to import
              [--lms-column TITLE] [--include-pending]  ... Canvas's column; totals whose manual part is pending
    coursekit similarity ASSIGNMENT which students handed in the same work: reports/ASSIGNMENT/similarity.csv and .html
    coursekit demo [ASSIGNMENT...]  put sample submissions in submitted/ and grade them (default: all)
    coursekit check NOTEBOOK        for students: run the notebook's visible tests, say what to fix
    coursekit bundle ASSIGNMENT     zip release/ASSIGNMENT, its data and a README for students, for an LMS
    coursekit collect ASSIGNMENT ZIP --lms canvas|moodle --roster CSV
                                    put an LMS's zip of uploads into submitted/, the roster's names into the gradebook
    coursekit report ASSIGNMENT     write reports/ASSIGNMENT (CSVs, the LMS's CSV, index.html) again from the gradebook
    coursekit lab [--port N]        for staff: JupyterLab with formgrader on the course, on loopback
    coursekit setup-jupyter student|staff
                                    which of nbgrader's extensions JupyterLab shows (students: no formgrader)
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from pathlib import Path

from .course import CourseError, find_course_root, leave_quickly, put_venv_on_path


def cmd_release(args) -> int:
    from .release import release_assignment

    for path in release_assignment(args.root, args.assignment):
        print(f"released {path.relative_to(args.root)} (no solution or hidden-test line in it)")
    return 0


class CtrlC:
    """Ctrl-C, remembered. nbgrader's API turns a KeyboardInterrupt raised inside it into a failed result (its
    capture_log has a bare `except:`), and so may a library's import: the run would go on grading. The handler
    raises KeyboardInterrupt as Python's own does, and check() raises it again at the run's next step."""

    pressed = False

    @classmethod
    def install(cls) -> None:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored (a background job)
            signal.signal(signal.SIGINT, cls.handle)

    @classmethod
    def handle(cls, signum, frame) -> None:
        cls.pressed = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.pressed:
            raise KeyboardInterrupt


class Progress:
    """One line per submission: how many are done and failed, the rate so far, and the time left."""

    def __init__(self):
        self.started = time.monotonic()
        self.failed = 0

    def begin(self, workers: str) -> None:
        CtrlC.check()
        print(f"running submissions on {workers}", flush=True)

    @staticmethod
    def reference(kept: bool) -> None:
        CtrlC.check()
        print("the reference solution's values: kept from an earlier run (its notebooks, checks and settings unchanged)"
              if kept else "running the reference solution", flush=True)

    def show(self, done: int, total: int, outcome) -> None:
        CtrlC.check()
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


# coursekit grade's exit statuses: every submission graded (0), some NOT GRADED (1), nothing to grade or a
# problem with the course or the command (2, as for every coursekit command)
SOME_NOT_GRADED, NO_SUBMISSIONS = 1, 2


def cmd_grade(args) -> int:
    from .course import has_hidden_checks, hidden_checks_dir, load_config
    from .grade import find_students, grade_assignment
    from .sandbox import sandbox_plan

    students = args.student or find_students(args.root, args.assignment)
    if not students:
        print(f"coursekit: nothing to grade: no submissions of {args.assignment} in "
              f"{args.root / 'submitted'}/*/{args.assignment}/ (coursekit collect, or nbgrader collect, puts them there)",
              file=sys.stderr)
        return NO_SUBMISSIONS
    if args.workers is not None and args.workers < 1:
        raise CourseError(f"--workers must be at least 1, not {args.workers}")
    if args.lms and not args.roster:  # before grading, not after it
        raise CourseError("--lms needs --roster, the roster CSV exported from the LMS")
    if args.lms:  # the roster and the assignment's column too, before grading
        from .lms import plan_lms_export

        plan_lms_export(args.roster, args.lms, args.assignment, args.lms_column)
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
    # meanwhile: the reports' modules (copydetect and the matplotlib it loads among them: about 1.5 s) load while
    # the workers grade, rather than after the last submission
    outcomes = grade_assignment(args.root, args.assignment, students, on_outcome=progress.show, workers=args.workers,
                                scheduler=args.scheduler, on_start=progress.begin, regrade=args.regrade, sandboxed=sandboxed,
                                on_reference=progress.reference, meanwhile=import_report_modules)
    CtrlC.check()
    report = write_all_reports(args, config, run_outcomes=outcomes)
    graded = sum(o.graded for o in outcomes)
    print(f"\n{graded} of {len(outcomes)} graded in {time.monotonic() - progress.started:.1f} s; "
          f"reports in {report['folder'].relative_to(args.root)}/, feedback in feedback/; "
          f"class report: {(report['folder'] / 'index.html').relative_to(args.root)}")
    failed = [o.student for o in outcomes if not o.graded]
    if failed:  # last, where a script or CI looks: the run's exit status says it too
        print(f"{len(failed)} submission(s) NOT GRADED: {', '.join(failed)} (why: their rows above; "
              f"logs in {(report['folder'] / 'logs').relative_to(args.root)}/)")
        return SOME_NOT_GRADED
    return 0


def config_db_url(root: Path, config=None) -> str:
    from .course import load_config

    config = config or load_config(root)
    return config.CourseDirectory.db_url or f"sqlite:///{root / 'gradebook.db'}"


def lms_settings(args) -> dict | None:
    """The LMS export this command was asked for, or the one the last run of this assignment was asked for
    (reports/<assignment>/lms.json), so that `coursekit report` writes the same file again."""
    import json

    remembered = args.root / "reports" / args.assignment / "lms.json"
    if args.lms and not args.roster:
        raise CourseError("--lms needs --roster, the roster CSV exported from the LMS")
    if args.lms:
        settings = {"lms": args.lms, "roster": str(args.roster.resolve()), "column": args.lms_column,
                    "include_pending": args.include_pending}
        remembered.parent.mkdir(parents=True, exist_ok=True)
        remembered.write_text(json.dumps(settings, indent=1))
        return settings
    try:
        settings = json.loads(remembered.read_text())
    except (OSError, ValueError):
        return None
    settings["include_pending"] = settings.get("include_pending") or args.include_pending
    return settings


def import_report_modules() -> None:
    from . import class_report, report, similarity  # noqa: F401

    CtrlC.check()


def write_all_reports(args, config, run_outcomes: list | None = None) -> dict:
    """grades.csv, checks.csv, the LMS's CSV and the class report, for every submission, from the gradebook;
    print the table (of this run's submissions, when there is a run) and what staff should know."""
    from .class_report import write_class_report
    from .course import source_notebooks
    from .similarity import format_summary, similarity_section, write_similarity
    from .report import (format_check_summary, format_notes, format_table, gather_outcomes, gradebook_students,
                         read_csv_rows, record_outcomes, write_reports)

    notebook = source_notebooks(args.root, args.assignment)[0].stem
    db_url = config_db_url(args.root, config)
    folder = args.root / "reports" / args.assignment
    if run_outcomes is not None:
        record_outcomes(folder, run_outcomes)
    settings = lms_settings(args)
    export = None
    if settings:
        from .lms import load_roster, plan_lms_export, record_names

        roster = Path(settings["roster"])
        export = plan_lms_export(roster, settings["lms"], args.assignment, settings["column"])
        record_names(db_url, load_roster(roster, settings["lms"]))
    outcomes = gather_outcomes(args.root, args.assignment, notebook, db_url)
    report = write_reports(args.root, args.assignment, notebook, db_url, outcomes)
    shown = {o.student for o in run_outcomes} if run_outcomes is not None else None
    print()
    print(format_table({**report, "rows": [r for r in report["rows"] if shown is None or r["student"] in shown]}))
    print(format_check_summary(folder / "checks.csv", len(outcomes)))
    if report["notes"]:
        print(format_notes(report))
    if export:
        from .lms import write_lms_grades

        target = folder / f"grades-{settings['lms']}.csv"
        written = write_lms_grades(target, export, report["rows"], include_pending=settings["include_pending"])
        into = f", into {export.column!r}" if export.column else ""
        scaled = f", {written.scaled}" if written.scaled else ""
        print(f"\n{target.relative_to(args.root)}: {written.grades} grade(s) in {settings['lms'].capitalize()}'s import layout{into}{scaled}")
        if written.pending:
            print(f"left out {len(written.pending)} whose manual part is pending: {', '.join(written.pending)} "
                  "(grade it in nbgrader's formgrader, or add --include-pending)")
    similarity = write_similarity(args.root, args.assignment)  # from submitted/: it needs no grade
    print("\n" + format_summary(similarity, f"reports/{args.assignment}"))
    _, names = gradebook_students(db_url, args.assignment)
    write_class_report(args.root, args.assignment, notebook, report, read_csv_rows(folder / "checks.csv"), names=names,
                       sections=[similarity_section(similarity)])
    return report


def cmd_report(args) -> int:
    from .course import load_config

    report = write_all_reports(args, load_config(args.root))
    print(f"\nreports in {report['folder'].relative_to(args.root)}/ (from the gradebook); "
          f"class report: {(report['folder'] / 'index.html').relative_to(args.root)}")
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
    images = [n for n in names if n.endswith(".png")]
    shown = [n for n in names if not n.endswith(".png")] + ([f"{len(images)} images in {images[0].rsplit('/', 3)[0]}/"] if images else [])
    print(f"wrote {output} ({output.stat().st_size // 1000} kB: {', '.join(shown)}): what students get, for your LMS")
    return 0


def cmd_collect(args) -> int:
    from .course import source_notebooks
    from .lms import collect_uploads, load_roster, record_names

    notebooks = [p.name for p in source_notebooks(args.root, args.assignment)]
    collected = collect_uploads(args.root, args.assignment, args.archive.resolve(), args.lms, args.roster, notebooks)
    named = record_names(config_db_url(args.root), load_roster(args.roster, args.lms))
    print(f"{named} student(s) of the roster are in the gradebook with their names, as formgrader shows them")
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


def cmd_lab(args) -> int:
    from .jupyter import start_lab

    server, url = start_lab(args.root, args.port)
    formgrader = url.replace("/lab?", "/formgrader?")
    print(f"JupyterLab for {args.root} (its nbgrader_config.py), on this machine only:\n  {url}\n"
          f"formgrader:\n  {formgrader}\nCtrl-C stops it.", flush=True)
    # stopped by a signal (a service manager, `timeout`), JupyterLab stops too, and shuts its kernels down
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C reached JupyterLab as well, which then stops
        server.terminate()
        server.wait(60)
        return 0


def cmd_setup_jupyter(args) -> int:
    from .jupyter import set_up_extensions

    for command in set_up_extensions(args.role, args.level):
        print(command)
    seen = ("formgrader, Create assignment, the Assignments panel and Validate" if args.role == "staff"
            else "the Assignments panel (fetch, submit) and Validate; not formgrader or Create assignment")
    print(f"nbgrader's extensions are set up for {args.role} ({args.level.replace('_', '-')} level): "
          f"JupyterLab started now shows {seen}")
    return 0


def cmd_demo(args) -> int:
    from .samples import load_samples, require_samples, write_samples

    # every assignment in source/ whose hidden checks folder has a samples.py with a DEMO list
    found = sorted(p.name for p in (args.root / "source").iterdir() if p.is_dir()) if (args.root / "source").is_dir() else []
    assignments = args.assignments or [a for a in found if (samples := load_samples(args.root, a)) and samples.demo]
    if not assignments:
        raise CourseError(f"no assignment in {args.root / 'source'} has sample submissions (tests/hidden/<assignment>/samples.py with DEMO)")
    worst = 0  # the worst exit status of its runs
    for number, assignment in enumerate(assignments):
        demo = require_samples(args.root, assignment).demo
        print(f"{'' if number == 0 else chr(10)}== {assignment} ==", flush=True)
        names = write_samples(args.root, assignment, demo)
        print(f"wrote {len(names)} sample submissions to submitted/: {', '.join(names)}")
        args.assignment, args.student = assignment, names
        worst = max(worst, cmd_grade(args))
    return worst


def cmd_verify(args) -> int:
    from .verify import verify

    started = time.monotonic()
    print(f"verify {args.assignment}: its files, then the source solution, the untouched release and every sample "
          "graded in a scratch course (the course's gradebook and reports are left as they are)", flush=True)
    faults, seen = verify(args.root, args.assignment, workers=args.workers, scheduler=args.scheduler, keep=args.keep,
                          mutants=args.mutants, steps=args.step, sandboxed=args.sandboxed)
    notebook, samples = seen["notebook"], seen["samples"]
    mistakes = sum(s.mistake for s in samples)
    print(f"{notebook.path.name}: {len(notebook.answers)} step(s), {len(notebook.test_points)} test cell(s) worth "
          f"{sum(notebook.test_points.values()):g} points" + (f", {len(notebook.manual)} graded by hand" if notebook.manual else ""))
    if seen["graded"]:
        print("hidden checks decide" if seen["hidden"] else
              "visible tests only: no hidden checks, the notebook's own asserts decide (as in nbgrader)")
        print(f"graded: the solution, the release, {mistakes} mistake(s) and {len(samples) - mistakes} equivalent(s)"
              if samples else "no samples.py: only the solution and the release were graded")
    run = seen.get("mutants")
    if run is not None:
        print(f"mutants: {len(run.made)} made, {len(run.killed)} killed, {len(run.equivalent)} recorded as equivalent "
              f"({seen['equivalents_file'].name}), {len(run.survivors)} survived ({run.seconds:.0f} s)")
    for fault in faults:
        print(f"  FAULT {fault}")
    if run is not None and run.survivors:
        from .mutants import toml_entry

        print(f"a survivor whose behaviour is the solution's (check it!) is recorded in {seen['equivalents_file']} as:")
        print(toml_entry(run.survivors[0][0]))
    elapsed = time.monotonic() - started
    if faults:
        print(f"{args.assignment}: {len(faults)} fault(s) ({elapsed:.0f} s)")
        return 1
    print(f"{args.assignment}: no fault ({elapsed:.0f} s)")
    return 0


def cmd_new(args) -> int:
    from .release import release_assignment
    from .skeleton import write_skeleton

    for path in write_skeleton(args.root, args.assignment):
        print(f"wrote {path.relative_to(args.root)}")
    for path in release_assignment(args.root, args.assignment):
        print(f"released {path.relative_to(args.root)}")
    print(f"next: coursekit verify {args.assignment}; then copy the step's pattern for each further step (docs/authoring.md)")
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
    report = commands.add_parser("report", help="write reports/ASSIGNMENT again from the gradebook (manual grades, formgrader's changes)")
    report.add_argument("assignment")
    add_lms_options(report, required=False)
    add_lms_export_options(report)
    report.set_defaults(run=cmd_report)
    lab = commands.add_parser("lab", help="for staff: JupyterLab with formgrader on this course, on this machine only")
    lab.add_argument("--port", type=int, default=None, help="the port (default: a free one)")
    lab.set_defaults(run=cmd_lab)
    setup = commands.add_parser("setup-jupyter", help="show nbgrader's extensions to staff or to students only as each needs")
    setup.add_argument("role", choices=("student", "staff"),
                       help="student: the Assignments panel and Validate, no formgrader or Create assignment; staff: all")
    setup.add_argument("--level", choices=("sys_prefix", "user", "system"), default="sys_prefix",
                       help="where to write it: this Python environment (default), ~/.jupyter, or /etc/jupyter")
    setup.set_defaults(run=cmd_setup_jupyter, needs_course=False)
    verify = commands.add_parser("verify", help="for instructors: grade the solution, the release and every sample, and name each fault")
    verify.add_argument("assignment")
    verify.add_argument("--keep", type=Path, default=None, metavar="FOLDER",
                        help="grade in this new folder and keep it (its notebooks, feedback and log), instead of a temporary one")
    verify.add_argument("--mutants", action="store_true",
                        help="also mutate each step's solution (mutmut's operators and the course's) and grade every mutant "
                             "in the same run: each one that earns full marks in its step, unless recorded in "
                             "tests/hidden/ASSIGNMENT/equivalent_mutants.toml, is a fault")
    verify.add_argument("--sandboxed", action="store_true",
                        help="with --mutants, keep the course's sandbox (by default that run uses the fork server's kernels: "
                             "every submission in it is the author's own code, and it grades about 2.6 times faster)")
    verify.add_argument("--step", action="append", default=None, metavar="STEP",
                        help="only this step's samples and mutants (repeat for more steps)")
    add_worker_options(verify)
    verify.set_defaults(run=cmd_verify)
    new = commands.add_parser("new", help="for instructors: a new assignment's skeleton (one step), released, that verify passes")
    new.add_argument("assignment")
    new.set_defaults(run=cmd_new)
    demo = commands.add_parser("demo", help="grade sample submissions of each assignment")
    demo.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="the assignments (default: every one with samples)")
    demo.set_defaults(regrade=True)  # the samples are written afresh each time
    add_worker_options(demo)
    add_lms_options(demo, required=False)
    add_lms_export_options(demo)
    demo.set_defaults(run=cmd_demo)
    args = parser.parse_args(argv)
    put_venv_on_path()
    CtrlC.install()
    # nbgrader's gradebook code trips SQLAlchemy warnings that say nothing to course staff
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    try:
        if getattr(args, "needs_course", True):  # `check` runs on a student's machine, with no course
            args.root = find_course_root(args.course)
        return args.run(args)
    except CourseError as exc:
        if CtrlC.pressed:  # what nbgrader made of Ctrl-C (a step that "failed")
            return interrupted()
        print(f"coursekit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted()
    finally:
        leave_quickly()


def interrupted() -> int:
    # every submission reported as done is in the gradebook already; its kernels have been stopped. A second
    # Ctrl-C no longer cuts the exit short (the status says 130, interrupted, whenever it comes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("coursekit: interrupted; what was reported as done is in the gradebook", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
