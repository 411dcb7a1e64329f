"""Stage: grade every submission of an assignment with nbgrader's autograde.

For each submitted/<student>/<assignment>/ folder: check that the notebook is
there and is a notebook; have a worker (parallel.py) run it, probe it, check it
and grade it with nbgrader's own autograde and feedback, whose pipeline
(course_config.py) takes the worker's run and scores it, in a scratch course
(scratch_grade.py); then write its files and gradebook rows here, a batch of
submissions to a transaction (commit.py). A submission the worker could not
grade is graded here by nbgrader's autograde, from the worker's run if it has one. One submission that fails never stops the others; its
outcome says what went wrong in a line (the exception and its message), and
reports/<assignment>/logs/<student>.txt keeps its whole log.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .course import (CourseError, grading_files, hidden_checks_dir, load_config, nbgrader_api, repairs_made,
                     source_notebooks)
from .commit import GradebookWriter
from .parallel import (DaskWorkers, LocalWorkers, grade_submission, make_bundle, read_submission,
                       run_reference, with_reference)
from .reference_store import load_reference, reference_key, save_reference
from .scratch_grade import assignment_gradebook, save_run


@dataclass
class SubmissionOutcome:
    student: str
    graded: bool
    message: str  # why a submission could not be graded; empty when it was
    seconds: float
    kept: bool = False  # graded by an earlier run and unchanged since: not graded again
    note: str = ""  # what the grader repaired to grade it (cells found by position, test cells put back), or ''

    @property
    def complete(self) -> bool:
        """Graded and its feedback written."""
        return self.graded and not self.message


GRADED_RECORD = ".coursekit-graded.json"  # in autograded/<student>/<assignment>/, written once feedback is out


def fingerprint(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def assignment_fingerprint(root: Path, assignment: str, checks_dir: Path) -> str:
    """Changes when the reference solution or the hidden checks change: then every submission is graded again."""
    files = {f"source/{p.name}": p.read_bytes() for p in source_notebooks(root, assignment)}
    files.update({f"checks/{p.relative_to(checks_dir)}": p.read_bytes() for p in grading_files(checks_dir)})
    return fingerprint(files)


def graded_record(root: Path, student: str, assignment: str) -> Path:
    return root / "autograded" / student / assignment / GRADED_RECORD


def was_graded(root: Path, student: str, assignment: str, record: dict) -> bool:
    """Whether an earlier run graded exactly this submission against exactly these checks, feedback included."""
    try:
        return json.loads(graded_record(root, student, assignment).read_text()) == record
    except (OSError, ValueError):
        return False


def record_graded(root: Path, student: str, assignment: str, record: dict) -> None:
    path = graded_record(root, student, assignment)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record))
    os.replace(partial, path)  # all or nothing, even if the run is killed here


def find_students(root: Path, assignment: str) -> list[str]:
    submitted = root / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


def submission_problem(root: Path, folder: Path, notebook_names: list[str]) -> str:
    """Why the files in a submission folder (relative to the course root, as staff see it) cannot be graded, or ''."""
    for name in notebook_names:
        path = folder / name
        if not (root / path).exists():
            found = sorted(p.name for p in (root / folder).glob("*.ipynb"))
            return f"{path} is missing" + (f" (found {', '.join(found)}: was it renamed?)" if found else "")
        try:
            notebook = json.loads((root / path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"{path} is not a notebook: it is not valid JSON ({exc})"
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            return f"{path} is not a notebook: it has no list of cells"
        if not notebook["cells"]:
            return f"{path} has no cells: was it saved while empty? Submit the released notebook with your answers in it"
        metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
        language = (metadata.get("kernelspec") or {}).get("language") or (metadata.get("language_info") or {}).get("name") or "python"
        if str(language).lower() != "python":
            return f"{path} is a notebook for {language}, not Python: work in the released notebook, with a Python kernel"
    return ""


# nbgrader's summary of a failed run, which points at a traceback it shows nowhere else: never a cause
NBGRADER_SUMMARIES = ("Please see the", "There was an error processing assignment")
# exceptions whose message says it all, shown without their name
PLAIN_EXCEPTIONS = ("coursekit.sanitize.CellsNotFound", "CellsNotFound", "nbgrader.converters.base.NbGraderException")


def last_exception(text: str) -> str:
    """The exception line (name: message) that ends the last traceback in a log, or ''.

    nbgrader's log indents a traceback's lines under its [ERROR] line, so the exception line is
    the first one after the frames that is indented no deeper than the frames' "File" lines, less two.
    """
    cause, base = "", None
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if "Traceback (most recent call last):" in line:
            base = -1
        elif base == -1 and stripped.startswith("File "):
            base = indent - 2
        elif base is not None and base >= 0 and stripped and indent <= base:
            cause, base = stripped, None
    return cause


def autograde_failure(result: dict) -> str:
    """The reason a failed nbgrader autograde (or feedback) had, in one line: the exception and its message."""
    text = (result.get("log") or "") + "\n" + (result.get("error") or "")
    memory = re.search(r"the notebook used more than \d+ MiB of memory[^\n]*", text)
    if memory:  # the sandbox knows this cause (execute.ExecuteAndProbe.why_the_kernel_died)
        return f"the kernel died: {memory.group(0)}"
    if "DeadKernelError" in text or "Kernel died" in text:
        return "the kernel died while running the notebook (it crashed, ran out of memory or exited)"
    cause = last_exception(result.get("log") or "")  # the submission's own traceback, logged by nbgrader
    if not cause or cause.startswith(NBGRADER_SUMMARIES[0]):
        errors = [re.sub(r"^\[ERROR\]\s*", "", line) for line in text.splitlines() if line.startswith("[ERROR]")]
        errors = [line for line in errors if line.strip() and not line.startswith(NBGRADER_SUMMARIES)
                  and "Traceback (most recent call last)" not in line]
        cause = errors[-1] if errors else last_exception(result.get("error") or "")
    for name in PLAIN_EXCEPTIONS:
        cause = cause.removeprefix(f"{name}: ")
    if not cause or "above traceback" in cause:
        cause = "nbgrader's autograde failed without naming an exception"
    return cause[:400] + ("…" if len(cause) > 400 else "")


def failure_log(root: Path, assignment: str, student: str) -> Path:
    return root / "reports" / assignment / "logs" / f"{student}.txt"


def write_failure_log(root: Path, assignment: str, student: str, cause: str, text: str) -> str:
    """Keep the whole story of a failed submission for staff; return the file, relative to the course root."""
    path = failure_log(root, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{student}, {assignment}: not graded\ncause: {cause}\n\n{text.rstrip()}\n", encoding="utf-8")
    return str(path.relative_to(root))


def with_log(root: Path, assignment: str, student: str, cause: str, text: str) -> str:
    return f"{cause} (full log: {write_failure_log(root, assignment, student, cause, text)})"


def problem_log(root: Path, folder: Path) -> str:
    """What staff need to look into a submission refused before grading: its files and the start of each notebook."""
    lines = [f"The submission folder {folder} was refused before grading.", "", f"Files in {folder}:"]
    for path in sorted((root / folder).rglob("*")) if (root / folder).is_dir() else []:
        if path.is_file():
            lines.append(f"  {path.relative_to(root / folder)} ({path.stat().st_size} bytes)")
            if path.suffix == ".ipynb":
                lines.append("    starts with: " + repr(path.read_bytes()[:300]))
    return "\n".join(lines)


def prepare_gradebook(root: Path, assignment: str) -> None:
    """Record the assignment, its notebooks and their grade cells in the gradebook, from source/.

    nbgrader's generate_assignment does that; it writes its student version into
    a throwaway folder, so grading never touches the committed release/.
    """
    with tempfile.TemporaryDirectory(prefix="coursekit-release-") as scratch:
        result = nbgrader_api(root, release_directory=scratch).generate_assignment(assignment, force=True)
    if not result["success"]:
        raise CourseError(f"nbgrader could not read source/{assignment}: {autograde_failure(result)}")


def autograde_and_feedback(api, assignment: str, student: str, started: float) -> SubmissionOutcome:
    """nbgrader's autograde (which writes the gradebook) and feedback for one submission whose files are usable.

    A failure is told in a line (the exception and its message) that names the file holding nbgrader's
    whole log for it, reports/<assignment>/logs/<student>.txt.
    """
    root = Path(api.coursedir.root)
    failure_log(root, assignment, student).unlink(missing_ok=True)  # from an earlier run that failed
    result = api.autograde(assignment, student, force=True, create=True)
    if not result["success"]:
        text = (result.get("log") or "") + "\n" + (result.get("error") or "")
        cause = autograde_failure(result)
        folder = f"submitted/{student}/{assignment}"
        cause = f"{folder}/{cause}" if re.match(r"[^/:]+\.ipynb: ", cause) else f"{folder}: {cause}"  # name the file
        return SubmissionOutcome(student, False, with_log(root, assignment, student, cause, text), time.monotonic() - started)
    note = repairs_made(root, assignment, student)
    problem = feedback_problem(root, assignment, student, api.generate_feedback(assignment, student, force=True))
    return SubmissionOutcome(student, True, problem, time.monotonic() - started, note=note)


def feedback_problem(root: Path, assignment: str, student: str, feedback: dict) -> str:
    """What went wrong with nbgrader's generate_feedback for a graded submission, naming its log; or ''."""
    if feedback["success"]:
        return ""
    text = (feedback.get("log") or "") + "\n" + (feedback.get("error") or "")
    return "graded, but its feedback could not be written: " + with_log(root, assignment, student, autograde_failure(feedback), text)


def commit_batch(api, writer: GradebookWriter, replay_dir: Path, assignment: str, batch: list, started: dict) -> list[SubmissionOutcome]:
    """Write the submissions of a batch of finished jobs: those their workers graded in one gradebook commit,
    then those it could not grade (the worker failed, or nbgrader's autograde did there) with nbgrader here."""
    root = Path(api.coursedir.root)
    graded, here, runs = [], [], {}
    for student, future in batch:
        try:
            result = future.result()
        except Exception as exc:  # the worker itself failed: nbgrader runs this one here instead
            print(f"{student}: the worker failed ({type(exc).__name__}: {exc}); grading it here", flush=True)
            here.append(student)
            continue
        runs[student] = result.run
        if result.grading is None or result.grading.failed:
            here.append(student)  # nbgrader's autograde here says why, in the course's own terms and log
        else:
            graded.append((student, result.grading))
    notes = {student: grading.note for student, grading in graded}
    outcomes = []
    for written in writer.write(graded):
        student = written.student
        if written.error:
            print(f"{student}: {written.error}; grading it here", flush=True)
            here.append(student)
            continue
        failure_log(root, assignment, student).unlink(missing_ok=True)  # from an earlier run that failed
        problem = ""
        if written.feedback_here:  # the page shows manual grades or a penalty the worker's scratch gradebook lacked
            problem = feedback_problem(root, assignment, student, api.generate_feedback(assignment, student, force=True))
        outcomes.append(SubmissionOutcome(student, True, problem, time.monotonic() - started[student], note=notes[student]))
    for student in here:
        if student in runs:
            save_run(replay_dir, runs[student])  # nbgrader here takes the worker's run rather than running it again
        outcomes.append(autograde_and_feedback(api, assignment, student, started[student]))
        if outcomes[-1].graded and student in runs:  # the worker's nbgrader failed where this one did not: a fault to look into
            print(f"{student}: grading in the worker failed, graded here instead", flush=True)
    return outcomes


def open_workers(workers: int | None, scheduler: str | None, sandboxed: bool, jobs: int | None = None):
    """The Dask cluster at `scheduler`, else local workers: `workers` (default: one per core), but no more than `jobs`."""
    if scheduler:
        try:
            return DaskWorkers(scheduler)
        except ConnectionError as exc:
            raise CourseError(str(exc)) from exc
    count = max(1, workers or os.cpu_count() or 1)
    return LocalWorkers(min(count, jobs or count), fork_server=not sandboxed)


def grade_assignment(root: Path, assignment: str, students: list[str] | None = None,
                     on_outcome: Callable[[int, int, SubmissionOutcome], None] | None = None,
                     workers: int | None = None, scheduler: str | None = None,
                     on_start: Callable[[str], None] | None = None, regrade: bool = False,
                     sandboxed: bool = False, on_reference: Callable[[bool], None] | None = None,
                     meanwhile: Callable[[], None] | None = None) -> list[SubmissionOutcome]:
    """Grade each student's submission: workers run, check and grade it, this process alone writes the course.

    Submissions are committed to the gradebook in batches, in the order their workers finish them:
    each batch is all that have finished by the time the previous one is written.
    A submission graded by an earlier run, and unchanged since, as are the reference and the
    checks, is kept as it is (its manual grades too), unless `regrade`: so a run that was
    interrupted, started again, finishes the class without grading anyone twice. The reference solution's
    values are taken from an earlier run when nothing they depend on has changed (reference_store.py), unless
    `regrade`; on_reference(True) says so, on_reference(False) that the solution runs. meanwhile() is called once
    every submission is handed to the workers, before the first is done: the caller's own work that need not wait.
    """
    notebook_names = [p.name for p in source_notebooks(root, assignment)]
    students = students if students is not None else find_students(root, assignment)
    config = load_config(root)
    checks_dir = hidden_checks_dir(config, root, assignment)
    bundle = make_bundle(checks_dir, assignment, config, root / "source" / assignment)
    outcomes: list[SubmissionOutcome] = []
    ready, started, records = {}, {}, {}
    checks_version = assignment_fingerprint(root, assignment, checks_dir)
    for student in students:
        started[student] = time.monotonic()
        folder = Path("submitted") / student / assignment
        problem = submission_problem(root, folder, notebook_names)
        if problem:
            outcomes.append(SubmissionOutcome(student, False, with_log(root, assignment, student, problem,
                                                                      problem_log(root, folder)), 0.0))
            if on_outcome:
                on_outcome(len(outcomes), len(students), outcomes[-1])
            continue
        job = read_submission(root / "submitted" / student / assignment, student, notebook_names)
        records[student] = {"submission": fingerprint(job.files), "assignment": checks_version}
        if not regrade and was_graded(root, student, assignment, records[student]):
            outcomes.append(SubmissionOutcome(student, True, "", 0.0, kept=True, note=repairs_made(root, assignment, student)))
            if on_outcome:
                on_outcome(len(outcomes), len(students), outcomes[-1])
            continue
        ready[student] = job
    if not ready:
        # nothing new to grade (a run again for `--lms`, or after an interrupted run that had finished): no worker,
        # no kernel and no reference run; the reports are written from the gradebook as it is
        return outcomes
    key = reference_key(bundle, checks_version)
    reference_pickle = None if regrade else load_reference(key)
    # no more worker processes than jobs: a run for one late submission starts one, not one per core
    pool = open_workers(workers, scheduler, sandboxed, jobs=len(ready) + (reference_pickle is None))
    try:
        if on_start:
            on_start(pool.describe())
        if on_reference:
            on_reference(reference_pickle is not None)
        if reference_pickle is None:
            reference = pool.submit(run_reference, read_submission(root / "source" / assignment, "reference", notebook_names), bundle)
        prepare_gradebook(root, assignment)  # while a worker runs the reference solution
        if reference_pickle is None:
            try:
                reference_pickle = reference.result()
            except Exception as exc:
                raise CourseError(f"the reference solution in source/{assignment} could not be run: {exc}") from exc
            save_reference(key, reference_pickle)
        with tempfile.TemporaryDirectory(prefix="coursekit-runs-") as replay_dir:
            api = nbgrader_api(root, overrides={"ExecuteAndProbe": {"replay_directory": replay_dir}})
            # workers grade in a scratch gradebook holding the assignment's rows; they then need no course
            gradebook = assignment_gradebook(api.coursedir.db_url, api.coursedir.course_id, assignment)
            shared = pool.share(with_reference(bundle, reference_pickle, gradebook))
            futures = {pool.submit(grade_submission, job, shared): student for student, job in ready.items()}
            writer = GradebookWriter(api, assignment)
            try:
                if meanwhile:
                    meanwhile()
                for batch in pool.batches(futures):
                    for outcome in commit_batch(api, writer, Path(replay_dir), assignment,
                                                [(futures[f], f) for f in batch], started):
                        outcomes.append(outcome)
                        if outcome.complete:
                            record_graded(root, outcome.student, assignment, records[outcome.student])
                        if on_outcome:
                            on_outcome(len(outcomes), len(students), outcome)
            finally:
                writer.close()
    finally:
        pool.close()
    return outcomes
