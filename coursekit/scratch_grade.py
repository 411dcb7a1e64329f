"""Worker side: nbgrader's own autograde and feedback for one submission, in a scratch course.

A worker that has run a submission (parallel.run_submission) grades it here too,
so that the coordinator only has files and gradebook rows left to write. The
scratch course lives in the worker's temp space and holds just this assignment:
its source notebooks, the submission's files, the worker's run (which
ExecuteAndProbe replays) and a gradebook made from `CheckBundle.gradebook`, a
copy of the course gradebook's rows for this assignment (no students). nbgrader
then runs its full pipeline from the course's configuration, with the course's
paths pointed at the scratch copies, and writes the autograded notebooks, the
feedback pages and the scores as it would in the course; this module reads them
back as plain data (`ScratchGrading`).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .course import process_folder

SCRATCH_DB = "gradebook.db"


@dataclass
class NotebookRows:
    """What nbgrader's SaveAutoGrades and AssignLatePenalties wrote for one notebook, read back from the scratch gradebook."""

    grades: dict[str, dict]  # grade cell name -> {"auto_score": …, "needs_manual_grade": …}
    comments: dict[str, str | None]  # solution or task cell name -> auto_comment
    late_penalty: float | None


@dataclass
class ScratchGrading:
    """A submission graded by nbgrader in a worker: what the coordinator writes, or why it could not be graded."""

    autograded: dict[str, str] = field(default_factory=dict)  # notebook file name -> the autograded notebook (JSON)
    feedback: dict[str, str] = field(default_factory=dict)  # page file name -> the feedback page (HTML)
    rows: dict[str, NotebookRows] = field(default_factory=dict)  # notebook name (no suffix) -> its rows
    note: str = ""  # what RestoreCellMetadata repaired to grade it (report.repairs_made), or ''
    failed: dict | None = None  # nbgrader's result ({"log", "error"}) when its autograde or feedback failed


def assignment_gradebook(db_url: str, course_id: str, assignment: str) -> bytes:
    """A new gradebook (sqlite file, as bytes) holding the course's rows for this assignment and no student.

    Copied column by column through nbgrader's own models, so it works whatever database the course uses.
    """
    from nbgrader.api import Gradebook
    from sqlalchemy import Column, inspect

    def copy(row):
        """The same row for another database: every stored column (the ids too), none of the computed ones.
        Not through the model's constructor, which drops the id (Assignment's makes a new one)."""
        mapper = inspect(row).mapper
        twin = mapper.class_manager.new_instance()
        for attr in mapper.column_attrs:
            if all(isinstance(column, Column) and column.table in mapper.tables for column in attr.columns):
                setattr(twin, attr.key, getattr(row, attr.key))
        return twin

    with tempfile.TemporaryDirectory(prefix="coursekit-gradebook-") as folder:
        path = Path(folder) / SCRATCH_DB
        with Gradebook(db_url, course_id) as course, Gradebook(f"sqlite:///{path}", course_id) as scratch:
            found = course.find_assignment(assignment)
            scratch.db.add(copy(found))
            for notebook in found.notebooks:
                scratch.db.add(copy(notebook))
                for cell in [*notebook.grade_cells, *notebook.solution_cells, *notebook.task_cells, *notebook.source_cells]:
                    scratch.db.add(copy(cell))
            scratch.db.commit()
        return path.read_bytes()


class ScratchEngine:
    """One SQLAlchemy engine for every scratch gradebook a process grades in, in place of the one nbgrader makes
    for each of its ~11 `Gradebook` objects a submission: SQLAlchemy keeps the SQL it has compiled per engine, so
    with a new engine each time every query was compiled afresh (a seventh of the CPU of autograde and feedback).
    The engine connects to the scratch gradebook of the submission being graded, one at a time in a process
    (working_folder_lock), and keeps no connection between uses (NullPool). Other gradebooks (the course's own)
    get nbgrader's engine as before."""

    def __init__(self, make_engine):
        self.make_engine = make_engine  # sqlalchemy's create_engine, as nbgrader.api had it
        self.url, self.path, self.engine = None, None, None

    def __call__(self, url, *args, **kwargs):
        if self.url is None or str(url) != self.url:
            return self.make_engine(url, *args, **kwargs)
        if self.engine is None:
            import sqlite3

            from sqlalchemy.pool import NullPool

            self.engine = self.make_engine("sqlite://", creator=lambda: sqlite3.connect(self.path), poolclass=NullPool,
                                           future=True)
        return self.engine

    @contextlib.contextmanager
    def serving(self, path: Path):
        """nbgrader's gradebooks at path use the shared engine while this lasts; the caller holds working_folder_lock."""
        self.url, self.path = f"sqlite:///{path}", str(path)
        try:
            yield
        finally:
            self.url = self.path = None


_scratch_engine: ScratchEngine | None = None


def scratch_engine() -> ScratchEngine:
    """The process's ScratchEngine, put in nbgrader.api (where `Gradebook` calls create_engine) on first use."""
    global _scratch_engine
    if _scratch_engine is None:
        import nbgrader.api

        _scratch_engine = nbgrader.api.create_engine = ScratchEngine(nbgrader.api.create_engine)
    return _scratch_engine


_templates: dict[str, Path] = {}
_template_lock = threading.Lock()
_template_scratch = None


def template_gradebook(data: bytes) -> Path:
    """The assignment's gradebook written once per worker process; each submission grades in a copy of it."""
    import hashlib

    global _template_scratch
    key = hashlib.sha256(data).hexdigest()[:16]
    with _template_lock:
        if key not in _templates:
            if _template_scratch is None:
                _template_scratch = process_folder("coursekit-gradebooks-")
            path = _template_scratch / f"{key}.db"
            path.write_bytes(data)
            _templates[key] = path
        return _templates[key]


def scratch_config(config, root: Path, replay_dir: Path, checks_root: Path):
    """The course's configuration, with every path nbgrader and coursekit's steps read pointed into the scratch course."""
    import copy

    from traitlets.config import Config

    config = Config(copy.deepcopy(config))
    # what is withheld names the course's own checks folder (relative to the course, as the guard names it there),
    # not this copy's
    checks = Path(config.WithholdGraderText.get("checks_root", "tests/hidden"))
    course = Path(config.CourseDirectory.get("root", "."))
    config.WithholdGraderText.checks_label = str(checks.relative_to(course) if checks.is_relative_to(course) else checks)
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / SCRATCH_DB}"
    source = str(root / "source")
    config.ExecuteAndProbe.replay_directory = str(replay_dir)
    config.ExecuteAndProbe.checks_root = str(checks_root)
    config.HiddenChecks.checks_root = str(checks_root)
    config.HiddenChecks.source_directory = source
    config.WithholdGraderText.checks_root = str(checks_root)
    config.WithholdGraderText.source_directory = source
    config.RestoreCellMetadata.source_directory = source
    return config


def graded_cells(notebook) -> tuple[list[str], list[str]]:
    """The cells whose grade and whose comment nbgrader's SaveAutoGrades writes, by the same tests it uses."""
    from nbgrader import utils

    grades, comments = [], []
    for cell in notebook.cells:
        name = cell.metadata.get("nbgrader", {}).get("grade_id")
        if utils.is_grade(cell):
            grades.append(name)
        if utils.is_solution(cell) or utils.is_task(cell):
            comments.append(name)
    return grades, comments


def read_rows(db_url: str, assignment: str, student: str, autograded: dict) -> dict[str, NotebookRows]:
    from nbgrader.api import Gradebook

    rows = {}
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        for notebook in submission.notebooks:
            if notebook.name not in autograded:
                continue
            grade_names, comment_names = graded_cells(autograded[notebook.name])
            grades = {g.name: {"auto_score": g.auto_score, "needs_manual_grade": g.needs_manual_grade}
                      for g in notebook.grades if g.name in grade_names}
            comments = {c.name: c.auto_comment for c in notebook.comments if c.name in comment_names}
            rows[notebook.name] = NotebookRows(grades, comments, notebook.late_submission_penalty)
    return rows


def save_run(replay_dir: Path, run) -> None:
    """Where ExecuteAndProbe (replay_directory) finds what a worker ran, for nbgrader's autograde to take."""
    folder = replay_dir / run.student
    folder.mkdir(parents=True, exist_ok=True)
    for name, notebook_run in run.notebooks.items():
        (folder / f"{Path(name).stem}.json").write_text(json.dumps(asdict(notebook_run)))


def grade_in_scratch(job, run, bundle, checks_root: Path) -> ScratchGrading:
    """nbgrader's autograde and generate_feedback for one submission that this worker has run. Never raises."""
    import nbformat

    from .checks import working_folder_lock
    from .course import nbgrader_api
    from .parallel import write_files
    from .course import repairs_made

    with tempfile.TemporaryDirectory(prefix="coursekit-grade-") as scratch:
        root = Path(scratch)
        shutil.copyfile(template_gradebook(bundle.gradebook), root / SCRATCH_DB)
        sources = root / "source" / bundle.assignment
        sources.mkdir(parents=True)
        for name, text in bundle.sources.items():
            (sources / name).write_text(text)
        write_files(root / "submitted" / job.student / bundle.assignment, job.files)
        replay_dir = root / "runs"
        save_run(replay_dir, run)
        api = nbgrader_api(root, config=scratch_config(bundle.config, root, replay_dir, checks_root))
        # one submission at a time per process: nbgrader's apps log through one shared logger, set os.environ and
        # change the working folder while they run (the lock pytest's sessions take too, see checks.py)
        with working_folder_lock, scratch_engine().serving(root / SCRATCH_DB):
            # nbgrader's Gradebook.add_submission hangs new rows on stored ones before adding them, which SQLAlchemy 2
            # warns of on stderr at each new submission; the rows are written all the same (test_coordinator)
            warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session", module="nbgrader")
            result = api.autograde(bundle.assignment, job.student, force=True, create=True)
            feedback = api.generate_feedback(bundle.assignment, job.student, force=True) if result["success"] else None
            if not result["success"]:
                return ScratchGrading(failed={"log": result.get("log") or "", "error": result.get("error") or ""})
            if not feedback["success"]:
                return ScratchGrading(failed={"log": feedback.get("log") or "", "error": feedback.get("error") or ""})
            autograded_dir = root / "autograded" / job.student / bundle.assignment
            autograded = {p.name: p.read_text(encoding="utf-8") for p in sorted(autograded_dir.glob("*.ipynb"))}
            notebooks = {Path(name).stem: nbformat.reads(text, as_version=4) for name, text in autograded.items()}
            rows = read_rows(api.coursedir.db_url, bundle.assignment, job.student, notebooks)
        feedback_dir = root / "feedback" / job.student / bundle.assignment
        return ScratchGrading(autograded=autograded,
                              feedback={p.name: p.read_text(encoding="utf-8") for p in sorted(feedback_dir.glob("*.html"))},
                              rows=rows, note=repairs_made(root, bundle.assignment, job.student))
