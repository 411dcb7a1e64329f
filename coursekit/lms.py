"""Stage: the round trip through a learning management system (Canvas, Moodle).

`collect_uploads` takes the zip of all uploads that the LMS lets staff download
and, through nbgrader's zip_collect with the collector plugin below, puts each
notebook in submitted/<student>/<assignment>/. A roster CSV, exported from the
LMS, maps the LMS's own ids to the course's student ids. Every upload lands with
its student, or is listed with its owner and the reason; among several uploads
of one notebook by one student, the newest is collected and the others named.

`write_lms_grades` writes the grades in the layout the LMS's import takes.

Upload names (what UPLOAD_NAMES reads), as the LMSs' own code writes them:
  Canvas (lib/content_zipper.rb): <name>_[LATE_]<user id>_<attachment id>_<uploaded name>,
          e.g. doejane_LATE_12345_6789012_mnist_sgd-1.ipynb. <name> is the sortable name, lower
          case, without non-word characters ('_' and accents stay; a group's name for group
          assignments, with a member's id); anon_<5 characters> instead of name and id under
          anonymous grading; <name>_<user id>_text.html (or _link.html) for an online entry.
  Moodle  4.1+ (mod/assign/classes/downloader.php): <prefix>_assignsubmission_file/<path in the
          student's upload, subfolders kept>; 3.x (mod/assign/locallib.php): the folder ends in
          "_"; without "download as folders": <prefix>_assignsubmission_file_<uploaded name>.
          <prefix> is <full name>_<participant id> ("Participant" under blind marking), or for
          team submissions <group name>_<group id> (4.1+) or <group>-<full name>_<participant id> (3.x).
          Online text comes as <prefix>_assignsubmission_onlinetext[_]/onlinetext.html.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Dict

from .course import CourseError, nbgrader_api

UPLOAD_NAMES = {
    "canvas": re.compile(r"^(?P<name>.+?)_(?:LATE_)?(?P<lms_id>\d+)_(?P<attachment>\d+)_(?P<file>.+)$"),
    "canvas_anonymous": re.compile(r"^(?:LATE_)?anon_(?P<anonymous_id>[A-Za-z0-9]+)_(?:(?P<attachment>\d+)_(?P<file>.+)|(?P<entry>text|link)\.html)$"),
    "canvas_entry": re.compile(r"^(?P<name>.+?)_(?:LATE_)?(?P<lms_id>\d+)_(?P<entry>text|link)\.html$"),
    "moodle": re.compile(r"^(?P<prefix>[^/]+?)_assignsubmission_(?P<plugin>[a-z]+)(?:_?/(?P<path>.+)|_(?P<flat>[^/]+))$"),
}
MOODLE_PREFIX = re.compile(r"^(?P<name>.*)_(?P<lms_id>\d+)$")
MOODLE_DEFAULT_TEAM = "Default group"  # get_string('defaultteam', 'mod_assign'): team uploads of students in no group

# Canvas's export: the columns before "Section" identify a student; assignments are "Title (id)"
CANVAS_TOTALS = re.compile(r"Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|Override")
CANVAS_ASSIGNMENT = re.compile(r"^(?P<title>.*) \((?P<id>\d+)\)$")
# Moodle's upload (assignfeedback_offline) finds these columns by their English names
MOODLE_REQUIRED = ("Identifier", "Grade", "Last modified (grade)")


@dataclass
class Roster:
    """A roster CSV as the LMS exported it: its separator, its header and its rows."""
    path: Path
    lms: str
    separator: str
    header: list[str]
    rows: list[dict]

    def student_columns(self) -> list[str]:
        """Canvas: the columns that identify a student, up to and including "Section", in the export's order."""
        return self.header[:self.header.index("Section") + 1]


def read_table(path: Path) -> tuple[str, list[list[str]]]:
    """(separator, rows) of a CSV saved with ',' or ';' and with or without a byte order mark."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise CourseError(f"the roster {path} could not be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CourseError(f"the roster {path} is not UTF-8 text: export it from the LMS again, without opening it in a spreadsheet") from exc
    # as Canvas's importer guesses it (identify_delimiter): the separator that splits the first lines evenly, into more fields
    lines = text.splitlines()[:3]
    fields = {}
    for separator in (";", ","):
        try:
            sizes = {len(next(csv.reader([line], delimiter=separator), [])) for line in lines}
        except csv.Error:
            sizes = set()
        fields[separator] = sizes.pop() if len(sizes) == 1 else 0
    separator = ";" if fields[";"] > fields[","] else ","
    try:
        return separator, list(csv.reader(io.StringIO(text), delimiter=separator))
    except csv.Error as exc:
        raise CourseError(f"the roster {path} is not a CSV file: {exc}") from exc


def load_roster(path: Path, lms: str) -> Roster:
    """The roster CSV the LMS exports, once it has the columns that identify students."""
    separator, table = read_table(path)
    header = [h.strip() for h in table[0]] if table else []
    rows = [dict(zip(header, row)) for row in table[1:] if any(cell.strip() for cell in row)]
    if lms == "canvas":
        if "ID" not in header:
            raise CourseError(f"the roster {path} has no 'ID' column: export it from the Canvas gradebook")
        if "Section" not in header:
            raise CourseError(f"the roster {path} has no 'Section' column: export the whole gradebook from Canvas")
    elif "Identifier" not in header:
        if rows and all(re.fullmatch(r"\D+\s?\d+", next(iter(r.values()), "")) for r in rows[:5]):
            raise CourseError(f"the roster {path} is a Moodle grading worksheet not in English (its first column is {header[0]!r}): "
                              "Moodle's upload reads column names in the language they were downloaded in, and coursekit writes "
                              "English ones; switch your Moodle language to English and download the worksheet again")
        raise CourseError(f"the roster {path} needs 'Identifier' and 'ID number' or 'Email address' columns: "
                          "export Moodle's grading worksheet")
    elif "ID number" not in header and "Email address" not in header:
        raise CourseError(f"the roster {path} needs 'Identifier' and 'ID number' or 'Email address' columns: "
                          "export Moodle's grading worksheet")
    return Roster(path, lms, separator, header, rows)


def roster_rows(path: Path, lms: str) -> list[dict]:
    """The rows of the roster CSV the LMS exports, once it has the columns that identify students."""
    return load_roster(path, lms).rows


def lms_id(row: dict, lms: str) -> str:
    """The LMS's own id of a roster row: Canvas's user id, Moodle's participant number ('' for other rows)."""
    if lms == "canvas":
        value = (row.get("ID") or "").strip()
        return value if value.isdigit() else ""  # not Canvas's "Points Possible" or "Manual Posting" line
    return re.sub(r"\D", "", row.get("Identifier") or "")


def student_id(row: dict, lms: str) -> str:
    """The course's id of a roster row's student."""
    if lms == "canvas":
        return ((row.get("SIS Login ID") or "").strip() or (row.get("SIS User ID") or "").strip() or (row.get("ID") or "")).strip()
    return (row.get("ID number") or "").strip() or (row.get("Email address") or "").split("@")[0].strip()


def roster_map(rows: list[dict], lms: str) -> dict[str, str]:
    """LMS id -> the course's student id."""
    return {lms_id(r, lms): student_id(r, lms) for r in rows if lms_id(r, lms) and student_id(r, lms)}


def person(row: dict, lms: str) -> dict[str, str | None]:
    """The first and last name and e-mail a roster row gives (None where it gives none), for nbgrader's gradebook.

    Canvas exports "Last, First" (its sortable name) in "Student", or LastName and FirstName, and no e-mail;
    Moodle's worksheet has "Full name" (first names, then the last name) and "Email address".
    """
    if lms == "canvas":
        first, last = (row.get("FirstName") or "").strip(), (row.get("LastName") or "").strip()
        if not (first or last):
            last, _, first = (row.get("Student") or "").partition(",")
        email = None
    else:
        first, _, last = (row.get("Full name") or "").strip().rpartition(" ")
        if not first:  # one word: a last name
            first, last = "", last
        email = (row.get("Email address") or "").strip() or None
    return {"first_name": first.strip() or None, "last_name": last.strip() or None, "email": email}


def record_names(db_url: str, roster: Roster) -> int:
    """Put each roster student's name and e-mail into nbgrader's gradebook, so formgrader shows them;
    return how many students it holds now. A student not in the gradebook yet is added."""
    from nbgrader.api import Gradebook

    people = {student_id(r, roster.lms): person(r, roster.lms) for r in roster.rows if lms_id(r, roster.lms)}
    people.pop("", None)
    with Gradebook(db_url) as gradebook:
        for student, names in people.items():
            gradebook.update_or_create_student(student, **names)
    return len(people)


def read_roster(path: Path, lms: str) -> dict[str, str]:
    """LMS id -> the course's student id, from the roster CSV the LMS exports."""
    return roster_map(roster_rows(path, lms), lms)


def notebook_name(uploaded: str, notebooks: list[str]) -> str:
    """The assignment's notebook an upload is, allowing for the suffixes that re-uploads and
    downloads add, also together: mnist_sgd-1.ipynb (Canvas), mnist_sgd (1).ipynb (a browser),
    mnist_sgd (1)-1.ipynb (both)."""
    if uploaded in notebooks:
        return uploaded
    stem, dot, ext = uploaded.rpartition(".")
    plain = re.sub(r"(?:-\d+| \(\d+\))+$", "", stem) + dot + ext
    return plain if plain in notebooks else uploaded


# ---------------------------------------------------------------- collecting


@dataclass
class Upload:
    """One file of the LMS's zip: whose it is and which notebook, or why it cannot be collected."""
    name: str  # its path in the zip
    student: str = ""  # the course's id of its owner, when the roster knows them
    owner: str = ""  # who it is, when no student of the roster is
    file_id: str = ""  # the assignment's notebook it is
    problem: str = ""  # why it is listed instead of collected
    newness: tuple = ()  # among uploads of one notebook by one student, the greatest is collected
    when: str = ""  # newness, for people

    def listing(self) -> str:
        return f"{self.name}: {self.student or self.owner or 'unknown owner'}: {self.problem}"


def identify_file(upload: Upload, uploaded: str, notebooks: list[str]) -> None:
    """Which notebook an owned upload is; or why it is not one of them."""
    file_id = notebook_name(uploaded, notebooks)
    if not uploaded.lower().endswith(".ipynb"):
        upload.problem = f"uploaded {uploaded!r}, not a notebook: ask for the .ipynb file"
    elif file_id not in notebooks:
        upload.problem = f"uploaded {uploaded!r}, not one of {', '.join(notebooks)}"
    else:
        upload.file_id = file_id


def identify_canvas(name: str, roster: dict[str, str], notebooks: list[str]) -> Upload:
    upload = Upload(name)
    base = name.rsplit("/", 1)[-1]  # Canvas's zip is flat
    anonymous = UPLOAD_NAMES["canvas_anonymous"].match(base)
    if anonymous:
        upload.owner = f"an anonymous student (anon_{anonymous['anonymous_id']})"
        upload.problem = ("anonymous grading hides whose upload this is; download the submissions again "
                          "once the assignment shows students' names")
        return upload
    match = UPLOAD_NAMES["canvas"].match(base)
    entry = None if match else UPLOAD_NAMES["canvas_entry"].match(base)
    if not (match or entry):
        upload.problem = "not named the way Canvas names uploads"
        return upload
    found = match or entry
    upload.student = roster.get(found["lms_id"], "")
    if not upload.student:
        upload.owner = f"Canvas user {found['lms_id']}"
        upload.problem = "not in the roster"
    elif entry:
        upload.problem = f"an online {'text entry' if entry['entry'] == 'text' else 'website URL'}, not an uploaded notebook"
    else:
        identify_file(upload, match["file"], notebooks)
        upload.newness, upload.when = (int(match["attachment"]),), f"attachment {match['attachment']}"
    return upload


def identify_moodle(name: str, roster: dict[str, str], notebooks: list[str], teams: dict[str, list[str]],
                    zipped_at: tuple) -> Upload:
    upload = Upload(name)
    match = UPLOAD_NAMES["moodle"].match(name)
    if not match:
        upload.problem = "not named the way Moodle names uploads"
        return upload
    prefix = MOODLE_PREFIX.match(match["prefix"])
    participant = prefix["lms_id"] if prefix else ""
    upload.student = roster.get(participant, "")
    if not upload.student:
        team = prefix["name"] if prefix else match["prefix"]
        if teams or match["prefix"] == MOODLE_DEFAULT_TEAM:
            members = teams.get(team, [])
            upload.owner = (f"team {team!r} (Moodle group {participant}; members: {', '.join(members) or 'none in the worksheet'})"
                            if participant else f"team {team!r} (students in no group)")
            upload.problem = ("a team upload, named after the group, not a student: coursekit grades each student's own "
                              "notebook; copy it into submitted/<member>/ for the members it counts for")
        elif participant:
            upload.owner, upload.problem = f"Moodle participant {participant}", "not in the roster"
        else:
            upload.problem = "not named the way Moodle names uploads"
        return upload
    if match["plugin"] == "onlinetext":
        upload.problem = "an online text entry, not an uploaded notebook"
        return upload
    identify_file(upload, (match["path"] or match["flat"]).rsplit("/", 1)[-1], notebooks)
    upload.newness, upload.when = (zipped_at, name), datetime(*zipped_at).isoformat(" ")
    return upload


class LMSUploadNames(FileNameCollectorPlugin):
    """nbgrader zip_collect plugin: hands nbgrader the uploads `collect_uploads` chose, one per student and notebook.

    Choosing happens before nbgrader's pass, because nbgrader stops the whole collect at the first
    student with two files of one notebook and no timestamps to compare ("Duplicate submission file").
    """

    chosen = Dict(help="extracted file path -> {'student_id': ..., 'file_id': ...}: the uploads to collect; "
                       "every other file is skipped").tag(config=True)

    def collect(self, submitted_file: str):
        return self.chosen.get(str(Path(submitted_file).resolve()))


@dataclass
class Collected:
    students: list[str] = field(default_factory=list)  # collected into submitted/
    listed: list[str] = field(default_factory=list)  # uploads not collected: "<upload>: <owner>: <why>"
    kept: list[str] = field(default_factory=list)  # "<student>: kept <newest upload> (...), not <the others>"


def moodle_teams(rows: list[dict]) -> dict[str, list[str]]:
    """Group name -> the students the grading worksheet lists in it (its "Group" column, with team submissions on)."""
    teams: dict[str, list[str]] = {}
    for row in rows:
        if (row.get("Group") or "").strip():
            teams.setdefault(row["Group"].strip(), []).append(student_id(row, "moodle"))
    return teams


def collect_uploads(root: Path, assignment: str, archive: Path, lms: str, roster_path: Path, notebooks: list[str]) -> Collected:
    """Put each upload in the LMS's zip under submitted/<student>/<assignment>/ (the newest, of several of one notebook);
    list every other file with its owner and why it was not collected."""
    from nbgrader.apps.zipcollectapp import ZipCollectApp

    if not archive.is_file():
        raise CourseError(f"{archive} does not exist")
    if not zipfile.is_zipfile(archive):
        raise CourseError(f"{archive} is not a zip archive: download the submissions again from the LMS")
    try:
        with zipfile.ZipFile(archive) as z:
            zipped_at = {info.filename: info.date_time for info in z.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise CourseError(f"{archive} is a damaged zip archive ({exc}): download the submissions again from the LMS") from exc
    roster = load_roster(roster_path, lms)
    ids = roster_map(roster.rows, lms)
    api = nbgrader_api(root)
    api.coursedir.assignment_id = assignment
    downloaded = root / "downloaded" / assignment
    shutil.rmtree(downloaded, ignore_errors=True)  # only this archive's uploads
    (downloaded / "archive").mkdir(parents=True)
    copy = downloaded / "archive" / f"{archive.stem}.zip"  # nbgrader extracts only what ends in .zip
    shutil.copy(archive, copy)
    app = ZipCollectApp(coursedir=api.coursedir, parent=api, force=True)
    app.log_level = "ERROR"  # what it would warn about, the listing says better
    app.collector_plugin = LMSUploadNames
    app.init_plugins()
    try:
        app.extract_archive_files()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CourseError(f"{archive} could not be extracted ({exc}): download the submissions again from the LMS") from exc
    extracted = downloaded / "extracted" / archive.stem
    teams = moodle_teams(roster.rows) if lms == "moodle" else {}
    result = Collected()
    uploads = []
    for name in sorted(zipped_at):  # what the zip holds; a zip a student uploaded is one upload, not what it holds
        if not (extracted / name).is_file():  # nbgrader's unzip refuses names that would land outside extracted/
            result.listed.append(Upload(name, problem="not extracted: its path leads outside the archive's folder").listing())
            continue
        uploads.append(identify_canvas(name, ids, notebooks) if lms == "canvas"
                       else identify_moodle(name, ids, notebooks, teams, zipped_at[name]))
    chosen, by_notebook = {}, {}
    for upload in uploads:
        if upload.problem:
            result.listed.append(upload.listing())
        else:
            by_notebook.setdefault((upload.student, upload.file_id), []).append(upload)
    for (student, file_id), candidates in sorted(by_notebook.items()):
        newest = max(candidates, key=lambda u: u.newness)
        chosen[str((extracted / newest.name).resolve())] = {"student_id": student, "file_id": file_id}
        if len(candidates) > 1:
            others = ", ".join(u.name for u in candidates if u is not newest)
            result.kept.append(f"{student}: kept {newest.name} ({newest.when}, the newest), not {others}")
    app.collector_plugin_inst.chosen = chosen
    app.process_extracted_files()
    result.students = sorted({s for s, f in by_notebook if (root / "submitted" / s / assignment / f).exists()})
    return result


# ---------------------------------------------------------------- the import file


@dataclass
class LMSExport:
    """Where the grades go: the roster, and for Canvas the assignment's column and its points."""
    roster: Roster
    column: str = ""  # Canvas: "Title (id)" as in the export
    points: float | None = None  # the LMS's maximum for the assignment, when the roster says it
    decimal: str = "."


def canvas_points(roster: Roster, column: str) -> tuple[float | None, str]:
    """The export's "Points Possible" for a column, and the decimal mark it is written with."""
    for row in roster.rows:
        if "Points Possible" in (next(iter(row.values()), "") or ""):
            value = (row.get(column) or "").strip()
            try:
                return float(value.replace(",", ".")), "," if "," in value else "."
            except ValueError:
                return None, "."
    return None, "."


def plan_lms_export(roster_path: Path, lms: str, assignment: str, column: str | None = None) -> LMSExport:
    """Check the roster before grading: which column the grades go into, on which maximum."""
    roster = load_roster(roster_path, lms)
    if lms == "moodle":
        if column:
            raise CourseError("--lms-column names a column of Canvas's export; Moodle's worksheet has one 'Grade' column")
        if "Maximum Grade" not in roster.header:
            raise CourseError(f"the roster {roster_path} has no 'Maximum Grade' column: the assignment is graded on a scale, "
                              "which coursekit's points cannot be mapped to; grade it in points in Moodle")
        maxima = {r["Maximum Grade"].strip() for r in roster.rows if lms_id(r, lms) and r.get("Maximum Grade", "").strip()}
        try:
            points = max(float(m.replace(",", ".")) for m in maxima) if maxima else None
        except ValueError:
            raise CourseError(f"the roster {roster_path} has a 'Maximum Grade' that is not a number: {', '.join(sorted(maxima))}") from None
        return LMSExport(roster, points=points)
    assignments = [c for c in roster.header[len(roster.student_columns()):] if CANVAS_ASSIGNMENT.match(c) and not CANVAS_TOTALS.search(c)]
    if column:
        found = [c for c in assignments if c == column or CANVAS_ASSIGNMENT.match(c)["id"] == column
                 or CANVAS_ASSIGNMENT.match(c)["title"] == column]
        if not found:
            raise CourseError(f"the roster {roster_path} has no assignment column {column!r}; it has: {', '.join(assignments) or 'none'}")
    else:
        words = set(re.findall(r"[a-z0-9]+", assignment.lower()))
        found = [c for c in assignments if words <= set(re.findall(r"[a-z0-9]+", CANVAS_ASSIGNMENT.match(c)["title"].lower()))]
        if not found:
            raise CourseError(f"the roster {roster_path} has no assignment column whose title has the words of {assignment!r} "
                              f"(it has: {', '.join(assignments) or 'none'}); name it with --lms-column, or create the "
                              "assignment in Canvas and export the gradebook again")
    if len(found) > 1:
        raise CourseError(f"the roster {roster_path} has {len(found)} columns that could be {assignment}: "
                          f"{'; '.join(found)}; name one with --lms-column")
    points, decimal = canvas_points(roster, found[0])
    return LMSExport(roster, column=found[0], points=points, decimal=decimal)


@dataclass
class Written:
    grades: int = 0  # rows with a grade in the import file
    pending: list[str] = field(default_factory=list)  # left out: their manual part awaits grading
    scaled: str = ""  # how grades were scaled to the LMS's maximum, or ''


def write_lms_grades(path: Path, export: LMSExport, rows: list[dict], include_pending: bool = False) -> Written:
    """The grades in the LMS's import layout. Only students with a grade are in it: a blank cell would clear
    a grade already in the LMS (Canvas) or be skipped anyway (Moodle). Students whose manual part is pending
    are left out, unless `include_pending`, since their total is not final."""
    roster, lms = export.roster, export.roster.lms
    by_student = {row["student"]: row for row in rows}
    written = Written()
    kit_max = max((row["max_total"] for row in rows), default=0)
    if export.points and kit_max and export.points != kit_max:
        written.scaled = f"scaled from {kit_max:g} to the LMS's {export.points:g} points"

    def grade(row: dict) -> str:
        value = row["total"] * export.points / row["max_total"] if export.points and row["max_total"] else row["total"]
        text = f"{round(value, 2):.2f}" if lms == "moodle" else f"{round(value, 2):g}"
        return text.replace(".", export.decimal)

    with open(path, "w", newline="", encoding="utf-8") as f:
        # no byte order mark: Canvas's importer would keep it in the first header cell and then misread "LastName"
        writer = csv.writer(f, delimiter=roster.separator)
        if lms == "canvas":
            keep = roster.student_columns()
            writer.writerow([*keep, export.column])
            points_row = next((r for r in roster.rows if "Points Possible" in (r.get(roster.header[0]) or "")), None)
            if points_row:  # as exported, so that the import changes no assignment's points
                writer.writerow([points_row.get(c, "") for c in keep] + [points_row.get(export.column, "")])
        else:
            keep = [c for c in ("Identifier", "Full name", "Email address", "ID number") if c in roster.header]
            writer.writerow([*keep, "Grade", "Maximum Grade", "Last modified (grade)"])
        ids = roster_map(roster.rows, lms)
        for r in roster.rows:
            row = by_student.get(ids.get(lms_id(r, lms), ""))
            if not row or row["status"] == "not graded":
                continue
            if row["status"] != "graded" and not include_pending:
                written.pending.append(row["student"])
                continue
            written.grades += 1
            if lms == "canvas":
                writer.writerow([r.get(c, "") for c in keep] + [grade(row)])
            else:
                maximum = f"{export.points:.2f}" if export.points else f"{row['max_total']:.2f}"
                writer.writerow([r.get(c, "") for c in keep] + [grade(row), maximum, r.get("Last modified (grade)", "")])
    return written
