"""Stage: the round trip through a learning management system (Canvas, Moodle).

`collect_uploads` takes the zip of all uploads that the LMS lets staff download
and, through nbgrader's zip_collect with the collector plugin below, puts each
notebook in submitted/<student>/<assignment>/. A roster CSV, exported from the
LMS, maps the LMS's own ids to the course's student ids. Uploads that cannot be
matched are listed, never silently dropped.

`write_lms_grades` writes the grades in the column layout the LMS imports.

File names the LMS gives uploads (what the patterns below read):
  Canvas  doejane_12345_6789012_mnist_sgd.ipynb, doejane_LATE_12345_6789012_mnist_sgd-1.ipynb
          (login-free name, Canvas user id, attachment id, the uploaded name; -1 for a re-upload)
  Moodle  Jane Doe_1234567_assignsubmission_file_mnist_sgd.ipynb, or the same folder
          name ending in "_assignsubmission_file_" holding mnist_sgd.ipynb
          (full name, participant id, plugin, the uploaded name)
"""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Dict, List, Unicode

from .course import CourseError, nbgrader_api

UPLOAD_NAMES = {
    "canvas": re.compile(r"^(?P<name>[^/_]+)_(?:LATE_)?(?P<lms_id>\d+)_(?P<attachment>\d+)_(?P<file>[^/]+)$"),
    "moodle": re.compile(r"^(?P<name>[^/]+?)_(?P<lms_id>\d+)_assignsubmission_file_/?(?P<file>[^/]+)$"),
}


def roster_rows(path: Path, lms: str) -> list[dict]:
    """The rows of the roster CSV the LMS exports, once it has the columns that identify students."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CourseError(f"the roster {path} could not be read: {exc}") from exc
    columns = set(rows[0]) if rows else set()
    if lms == "canvas" and "ID" not in columns:
        raise CourseError(f"the roster {path} has no 'ID' column: export it from the Canvas gradebook")
    if lms == "moodle" and ("Identifier" not in columns or ("ID number" not in columns and "Email address" not in columns)):
        raise CourseError(f"the roster {path} needs 'Identifier' and 'ID number' or 'Email address' columns: "
                          "export Moodle's grading worksheet")
    return rows


def lms_id(row: dict, lms: str) -> str:
    """The LMS's own id of a roster row: Canvas's user id, Moodle's participant number ('' for other rows)."""
    if lms == "canvas":
        return row["ID"].strip() if row["ID"].strip().isdigit() else ""  # not Canvas's "Points Possible" line
    return re.sub(r"\D", "", row["Identifier"])


def student_id(row: dict, lms: str) -> str:
    """The course's id of a roster row's student."""
    if lms == "canvas":
        login = next((c for c in ("SIS Login ID", "SIS User ID") if c in row), "ID")
        return (row[login] or row["ID"]).strip()
    return (row.get("ID number") or "").strip() or (row.get("Email address") or "").split("@")[0].strip()


def roster_map(rows: list[dict], lms: str) -> dict[str, str]:
    """LMS id -> the course's student id."""
    return {lms_id(r, lms): student_id(r, lms) for r in rows if lms_id(r, lms) and student_id(r, lms)}


def read_roster(path: Path, lms: str) -> dict[str, str]:
    """LMS id -> the course's student id, from the roster CSV the LMS exports."""
    return roster_map(roster_rows(path, lms), lms)


def notebook_name(uploaded: str, notebooks: list[str]) -> str:
    """The assignment's notebook an upload is, allowing for the suffixes that re-uploads and
    downloads add: mnist_sgd-1.ipynb (Canvas), mnist_sgd (1).ipynb (a browser)."""
    if uploaded in notebooks:
        return uploaded
    stem, dot, ext = uploaded.rpartition(".")
    plain = re.sub(r"(-\d+| \(\d+\))$", "", stem) + dot + ext
    return plain if plain in notebooks else uploaded


class LMSUploadNames(FileNameCollectorPlugin):
    """nbgrader zip_collect plugin: reads Canvas's or Moodle's upload names and maps them through the roster."""

    lms = Unicode("canvas", help="canvas or moodle").tag(config=True)
    roster = Dict(help="LMS id -> student id").tag(config=True)
    notebooks = List(Unicode(), help="the assignment's notebook file names").tag(config=True)
    unmatched = List(Unicode(), help="uploads that could not be matched, with why (filled while collecting)")

    def collect(self, submitted_file: str):
        parts = Path(submitted_file).parts
        name = "/".join(parts[-2:]) if parts[-2].endswith("_assignsubmission_file_") else parts[-1]
        match = UPLOAD_NAMES[self.lms].match(name)
        if match is None:
            self.unmatched.append(f"{name}: not named the way {self.lms.capitalize()} names uploads")
            return None
        student = self.roster.get(match["lms_id"])
        if student is None:
            self.unmatched.append(f"{name}: {self.lms.capitalize()} id {match['lms_id']} is not in the roster")
            return None
        file_id = notebook_name(match["file"], self.notebooks)
        if file_id not in self.notebooks and file_id.endswith(".ipynb"):
            self.unmatched.append(f"{name}: {student} uploaded {match['file']!r}, not one of {', '.join(self.notebooks)}")
            return None
        return {"student_id": student, "file_id": file_id}


def collect_uploads(root: Path, assignment: str, archive: Path, lms: str, roster_path: Path, notebooks: list[str]) -> tuple[list[str], list[str]]:
    """Put each upload in the LMS's zip under submitted/<student>/<assignment>/; (students, unmatched uploads)."""
    from nbgrader.apps.zipcollectapp import ZipCollectApp

    if not archive.is_file():
        raise CourseError(f"{archive} does not exist")
    roster = read_roster(roster_path, lms)
    api = nbgrader_api(root)
    api.coursedir.assignment_id = assignment
    downloaded = root / "downloaded" / assignment
    shutil.rmtree(downloaded, ignore_errors=True)  # only this archive's uploads
    (downloaded / "archive").mkdir(parents=True)
    shutil.copy(archive, downloaded / "archive" / archive.name)
    app = ZipCollectApp(coursedir=api.coursedir, parent=api, force=True)
    app.log_level = "ERROR"  # what it would warn about, the unmatched list below says better
    app.collector_plugin = LMSUploadNames
    app.config.LMSUploadNames.lms = lms
    app.config.LMSUploadNames.roster = roster
    app.config.LMSUploadNames.notebooks = notebooks
    app.init_plugins()
    app.extract_archive_files()
    app.process_extracted_files()
    students = sorted({p.parent.parent.name for name in notebooks for p in (root / "submitted").glob(f"*/{assignment}/{name}")}
                      & set(roster.values()))
    return students, list(app.collector_plugin_inst.unmatched)


def write_lms_grades(path: Path, lms: str, assignment: str, rows: list[dict], roster_path: Path) -> int:
    """The grades in the LMS's import layout; returns how many rows have a grade."""
    roster = roster_rows(roster_path, lms)
    by_student = {row["student"]: row for row in rows}
    lms_to_student = roster_map(roster, lms)
    written = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if lms == "canvas":
            keep = [c for c in ("Student", "ID", "SIS User ID", "SIS Login ID", "Section") if c in roster[0]]
            writer.writerow([*keep, assignment])
        else:
            keep = [c for c in ("Identifier", "Full name", "Email address") if c in roster[0]]
            writer.writerow([*keep, "Grade", "Maximum Grade"])
        for r in roster:
            if lms == "canvas" and not lms_id(r, lms):
                continue  # Canvas's "Points Possible" line and the like
            row = by_student.get(lms_to_student.get(lms_id(r, lms), ""))
            grade = f"{row['total']:g}" if row and row["status"] != "not graded" else ""
            written += bool(grade)
            writer.writerow([r[c] for c in keep] + ([grade] if lms == "canvas" else [grade, f"{row['max_total']:g}" if row else ""]))
    return written
