"""Coordinator side: write submissions that workers have graded, many to a gradebook transaction.

A worker hands back nbgrader's autograded notebooks, feedback pages and the rows
its autograde wrote in a scratch gradebook (scratch_grade.py). `GradebookWriter`
puts a batch of them into the course: the files where nbgrader's autograde and
generate_feedback put them (with the other files those commands copy, from the
course's own folders), and the rows through nbgrader's models, as its Autograde
converter, SaveAutoGrades and AssignLatePenalties write them, in one commit.

The scratch gradebook knew nothing of this student's earlier manual grades,
comments or extension. So what depends on them is decided here, on the course's
gradebook: whether a grade needs manual grading, and the late penalty. When a
feedback page would show any of it (a manual grade or comment kept from an
earlier submission, a penalty other than the worker's), the worker's page is
not used and the caller renders the page itself (`WrittenSubmission.feedback_here`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .scratch_grade import ScratchGrading


@dataclass
class WrittenSubmission:
    student: str
    error: str  # why its rows could not be written (nothing of it was), or ''
    feedback_here: bool = False  # its feedback page must be rendered from the course's gradebook, now committed


def permissions(config, section: str, default: int, groupshared: bool) -> int:
    """The file mode nbgrader's converter gives its output (its `permissions` trait, written in octal digits)."""
    value = config[section].get("permissions", 664 if groupshared else default)
    return int(str(value), 8)


def copy_files(source: Path, dest: Path, ignore: list[str], exclude: set[str] = frozenset()) -> None:
    """The files of a folder but its notebooks and ignored names, as nbgrader's converters copy them."""
    from nbgrader.utils import find_all_files

    for filename in find_all_files(str(source), ignore + ["*.ipynb"]):
        relpath = os.path.relpath(filename, source)
        if relpath in exclude:
            continue
        target = dest / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        shutil.copy(filename, target)


def replace_folder(path: Path, files: dict[str, str], mode: int) -> None:
    """Write the pages of a submission into a folder that already holds its other files, with nbgrader's mode."""
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
    for dirname, _, filenames in os.walk(path):
        for filename in filenames:
            os.chmod(os.path.join(dirname, filename), mode)


class GradebookWriter:
    """Writes graded submissions into the course: their files, then their rows in one transaction per batch."""

    def __init__(self, api, assignment: str):
        from nbgrader.api import Gradebook
        from nbgrader.preprocessors import AssignLatePenalties

        self.coursedir, self.config, self.assignment = api.coursedir, api.config, assignment
        self.gradebook = Gradebook(self.coursedir.db_url, self.coursedir.course_id)
        # nbgrader's own step, for its configured plugin and its bounds on a penalty
        self.late = AssignLatePenalties(config=self.config)
        self.late.init_plugin()

    def close(self) -> None:
        self.gradebook.close()

    def folder(self, kind: str, student: str) -> Path:
        return Path(self.coursedir.format_path(kind, student, self.assignment))

    def write_files(self, student: str, grading: ScratchGrading) -> None:
        """autograded/ and feedback/ as `nbgrader autograde --force` and `generate_feedback --force` leave them."""
        from nbgrader.utils import rmtree

        ignore = list(self.coursedir.ignore)
        groupshared = self.coursedir.groupshared
        autograded = self.folder(self.coursedir.autograded_directory, student)
        if autograded.exists():
            rmtree(str(autograded))
        autograded.mkdir(parents=True)
        copy_files(self.folder(self.coursedir.submitted_directory, student), autograded, ignore)
        copy_files(Path(self.coursedir.format_path(self.coursedir.source_directory, ".", self.assignment)), autograded, ignore,
                   set(self.config.Autograde.get("exclude_overwriting", {}).get(self.assignment, [])))
        replace_folder(autograded, grading.autograded, permissions(self.config, "Autograde", 444, groupshared))
        feedback = self.folder(self.coursedir.feedback_directory, student)
        if feedback.exists():
            rmtree(str(feedback))
        feedback.mkdir(parents=True)
        copy_files(autograded, feedback, ignore)
        replace_folder(feedback, grading.feedback, permissions(self.config, "GenerateFeedback", 644, groupshared))

    def submission(self, student: str):
        """The student's submission of this assignment, made as nbgrader's autograde makes it when it is new."""
        from nbgrader.api import Comment, Grade, MissingEntry, Student, SubmittedAssignment, SubmittedNotebook
        from nbgrader.utils import parse_utc

        db = self.gradebook.db
        if db.get(Student, student) is None:
            db.add(Student(id=student))
        try:
            submission = self.gradebook.find_submission(self.assignment, student)
        except MissingEntry:  # as Gradebook.add_submission does, without its commit
            assignment = self.gradebook.find_assignment(self.assignment)
            with db.no_autoflush:  # the new rows are flushed whole, not half-made
                submission = SubmittedAssignment(assignment=assignment, student=db.get(Student, student))
                for notebook in assignment.notebooks:
                    submitted = SubmittedNotebook(notebook=notebook, assignment=submission)
                    for cell in notebook.grade_cells:
                        Grade(cell_id=cell.id, notebook=submitted)
                    for cell in notebook.solution_cells:
                        Comment(cell_id=cell.id, notebook=submitted)
                    for cell in notebook.task_cells:
                        Comment(cell_id=cell.id, notebook=submitted)
                        Grade(cell_id=cell.id, notebook=submitted)
                db.add(submission)
        timestamp = self.coursedir.get_existing_timestamp(str(self.folder(self.coursedir.submitted_directory, student)))
        if timestamp:
            submission.timestamp = parse_utc(timestamp)
        return submission

    def write_rows(self, student: str, grading: ScratchGrading) -> bool:
        """Put one submission's rows in the session; whether the worker's feedback page shows exactly them."""
        db = self.gradebook.db
        submission = self.submission(student)
        db.flush()
        worker_page_holds = True
        for notebook in submission.notebooks:
            rows = grading.rows.get(notebook.name)
            if rows is None:
                continue
            for grade in notebook.grades:
                if grade.name in rows.grades:
                    grade.auto_score = rows.grades[grade.name]["auto_score"]
                    # SaveAutoGrades' rule, on the course's rows: a manual grade given earlier is kept, for review
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
                worker_page_holds &= grade.manual_score is None and grade.extra_credit is None
            for comment in notebook.comments:
                if comment.name in rows.comments:
                    comment.auto_comment = rows.comments[comment.name]
                worker_page_holds &= not comment.manual_comment
            db.flush()
            db.expire(notebook, ["score"])  # a column computed by the database, from the grades just written
            notebook.late_submission_penalty = None  # AssignLatePenalties.preprocess, for this notebook
            if submission.total_seconds_late > 0:
                penalty = self.late.plugin_inst.late_submission_penalty(student, notebook.score, submission.total_seconds_late)
                if penalty is not None:
                    notebook.late_submission_penalty = self.late._check_late_penalty(notebook, penalty)
            worker_page_holds &= notebook.late_submission_penalty == rows.late_penalty
        return worker_page_holds

    def write(self, batch: list[tuple[str, ScratchGrading]]) -> list[WrittenSubmission]:
        """All the batch's rows in one commit, then each submission's files. One that fails is left out; the others go on."""
        db = self.gradebook.db
        failed: list[WrittenSubmission] = []
        todo = list(batch)
        while True:
            holds = {}
            try:
                for student, grading in todo:
                    holds[student] = self.write_rows(student, grading)
                db.commit()
                break
            except Exception as exc:  # the transaction is lost: write it again without this submission
                db.rollback()
                student = todo[len(holds)][0]
                failed.append(WrittenSubmission(student, f"its gradebook rows could not be written: {type(exc).__name__}: {exc}"))
                todo = [item for item in todo if item[0] != student]
        db.close()  # holds no lock while nbgrader's own autograde, or formgrader, writes between batches
        written = []
        for student, grading in todo:
            try:
                self.write_files(student, grading)
            except OSError as exc:
                written.append(WrittenSubmission(student, f"its files could not be written: {exc}"))
                continue
            written.append(WrittenSubmission(student, "", feedback_here=not holds[student]))
        return written + failed
