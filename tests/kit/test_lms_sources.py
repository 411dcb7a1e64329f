"""The LMS round trip on archives and CSVs built the way Canvas's and Moodle's own code builds them.

Each builder below follows the file it cites, step by step; the importer checks are ports of
the header and column checks that Canvas's and Moodle's imports run on an uploaded CSV.
Collect and the CSV readers run on files built here (seconds); one module-scoped fixture runs
a real `coursekit grade` on three submissions.
"""
import csv
import io
import re
import zipfile

import nbformat
import pytest
from conftest import ASSIGNMENT, SAMPLES, make_course, run_coursekit

from coursekit.samples import make_submission, write_submission

# ---------------------------------------------------------------- Canvas: upload names


def canvas_user_part(sortable_name: str) -> str:
    """instructure/canvas-lms lib/content_zipper.rb, sanitize_user_name: `_<digits>_` loses its
    underscores (Canvas reads ids back with /_\\d+_/), then lower case."""
    return re.sub(r"_(\d+)_", r"\1", sortable_name).lower()


def canvas_prefix(sortable_name: str | None, user_id: int | None, late: bool = False, anonymous_id: str | None = None) -> str:
    """instructure/canvas-lms lib/content_zipper.rb, get_filename and sanitize_file_name: [name, LATE, id]
    joined by '_' (no name and anon_<id> under anonymous grading), then every non-word character removed."""
    parts = [None if anonymous_id else canvas_user_part(sortable_name), "LATE" if late else None,
             f"anon_{anonymous_id}" if anonymous_id else str(user_id)]
    return re.sub(r"[^\w]", "", "_".join(p for p in parts if p))


def canvas_upload(prefix: str, attachment_id: int, display_name: str) -> str:
    """instructure/canvas-lms lib/content_zipper.rb, add_upload_submission and sanitize_attachment_filename."""
    return f"{prefix}_{attachment_id}_" + re.sub(r'[\x00/\\:*?"<>|]+', "_", display_name)


# ---------------------------------------------------------------- Moodle: download paths


def moodle_clean_filename(name: str) -> str:
    """clean_filename (PARAM_FILE) drops the characters a file name cannot hold; the names here hold none."""
    return re.sub(r'[\x00-\x1f/\\:*?"<>|]', "", name)


def moodle_prefix(fullname: str, unique_id: int) -> str:
    """moodle/moodle mod/assign/classes/downloader.php, get_student_prefix (and mod/assign/locallib.php,
    download_submissions, in 3.x): '_' in the name becomes ' ', then '_<participant id>'."""
    return moodle_clean_filename(fullname.replace("_", " ") + f"_{unique_id}")


def moodle_team_prefix(group_name: str, group_id: int) -> str:
    """moodle/moodle mod/assign/classes/downloader.php, get_student_prefix for team submissions (4.1+)."""
    return moodle_clean_filename(group_name.replace("_", " ") + f"_{group_id}")


def moodle_41_path(prefix: str, filename: str, filepath: str = "/", plugin: str = "file") -> str:
    """moodle/moodle mod/assign/classes/downloader.php, load_submissionplugin_filelist with downloadasfolders:
    '<prefix>_assignsubmission_<type>' (no trailing '_'), then the file's own path for the file plugin."""
    folder = moodle_clean_filename(f"{prefix}_assignsubmission_{plugin}")
    return folder + (filepath if plugin == "file" else "/") + filename


def moodle_3x_path(prefix: str, filename: str, filepath: str = "/", plugin: str = "file") -> str:
    """moodle/moodle mod/assign/locallib.php (3.x), download_submissions with downloadasfolders: the folder ends in '_'."""
    folder = moodle_clean_filename(f"{prefix}_assignsubmission_{plugin}_")
    return folder + (filepath if plugin == "file" else "/") + filename


def moodle_flat_path(prefix: str, filename: str, plugin: str = "file") -> str:
    """moodle/moodle mod/assign/classes/downloader.php without downloadasfolders (the layout before 3.1)."""
    return moodle_clean_filename(f"{prefix}_assignsubmission_{plugin}_{filename}")


# ---------------------------------------------------------------- rosters


def canvas_export(students, assignments, first_last=False, col_sep=",", bom=False, include_sis_id=True) -> bytes:
    """instructure/canvas-lms lib/gradebook_exporter.rb (csv_data) written through lib/csv_with_i18n.rb:
    the header (Student, or LastName and FirstName; ID; SIS User ID with include_sis_id; SIS Login ID;
    Section; each assignment's title_with_id; the totals), the '    Points Possible' row, one row per
    student; ';' and a byte order mark where the user's settings ask for them."""
    header = (["LastName", "FirstName"] if first_last else ["Student"]) + ["ID"] + (["SIS User ID"] if include_sis_id else [])
    header += ["SIS Login ID", "Section"] + [f"{title} ({aid})" for title, aid, _ in assignments]
    totals = ["Current Points", "Final Points", "Current Score", "Unposted Current Score", "Final Score", "Unposted Final Score"]
    header += totals
    blanks = len(header) - len(assignments) - len(totals) - 1
    rows = [header, ["    Points Possible"] + [""] * blanks + [points for _, _, points in assignments] + ["(read only)"] * len(totals)]
    for last, first, uid, sis, login in students:
        name = [last, first] if first_last else [f"{last}, {first}"]
        rows.append(name + [str(uid)] + ([sis] if include_sis_id else []) + [login, "Section A"] + [""] * len(assignments) + [""] * len(totals))
    out = io.StringIO()
    csv.writer(out, delimiter=col_sep, lineterminator="\n").writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


WORKSHEET_COLUMNS = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
                     "Last modified (submission)", "Online text", "Last modified (grade)", "Feedback comments"]


def moodle_worksheet(students, maximum="100.00", team=False, columns=WORKSHEET_COLUMNS) -> str:
    """moodle/moodle mod/assign/gradingtable.php, the columns of the downloaded grading worksheet: recordid
    ('Participant <id>'), fullname, the identity fields, status, the team's group when team submissions are on,
    grade and grademax, gradecanbechanged, timesubmitted, the submission plugins' editor fields, timemarked,
    the feedback plugins' editor fields."""
    header = list(columns)
    if team:
        header.insert(header.index("Status") + 1, "Group")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for uid, name, email, group in students:
        values = {"Identifier": f"Participant {uid}", "Full name": name, "Email address": email, "Status": "Submitted for grading",
                  "Group": group, "Grade": "", "Maximum Grade": maximum, "Grade can be changed": "Yes",
                  "Last modified (submission)": "Monday, 30 November 2026, 9:15 PM", "Online text": "",
                  "Last modified (grade)": f"Tuesday, 1 December 2026, 8:{uid % 60:02d} AM", "Feedback comments": ""}
        writer.writerow([values.get(c, "") for c in header])
    return out.getvalue()


# ---------------------------------------------------------------- ported importer checks


def canvas_import_problems(text: str, assignment_titles: dict[int, str]) -> list[str]:
    """A port of instructure/canvas-lms app/models/gradebook_importer.rb: the delimiter (identify_delimiter),
    the header (header?, row_has_student_headers?, update_column_count: the last student column must be
    'Section'), and parse_assignments: a column is an existing assignment only by 'Title (id)' or by its
    exact title; any other column creates a new assignment."""
    lines = text.splitlines()
    counts = {}
    for sep in (";", ","):
        sizes = {len(next(csv.reader([line], delimiter=sep))) for line in lines[:3]}
        counts[sep] = sizes.pop() if len(sizes) == 1 else 0
    sep = ";" if counts[";"] > counts[","] else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    row = rows[0]  # a BOM stays in the first cell, as in Ruby's CSV.foreach without bom|utf-8
    if not ((len(row) > 3 and "Student" in row[0] and "ID" in row[1]) or
            (len(row) > 4 and "LastName" in row[0] and "FirstName" in row[1] and "ID" in row[2])):
        return ["Invalid header row"]
    names = 4 if row[0] == "LastName" and row[1] == "FirstName" else 3
    columns = names
    if re.search(r"SIS\s+Login\s+ID", row[names - 1]):
        columns += 1
    elif re.search(r"SIS\s+User\s+ID", row[names - 1]) and re.search(r"SIS\s+Login\s+ID", row[names] if len(row) > names else ""):
        extra = 1 if len(row) > names + 1 and re.search(r"Integration\s+ID", row[names + 1]) else 0
        columns += 2 + extra
        if len(row) > names + 1 + extra and re.search(r"Root\s+Account", row[names + 1 + extra]):
            columns += 1
    if "Section" not in row[columns - 1]:
        return ["Invalid header row"]
    problems = []
    for header in row[columns:]:
        if re.search("Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|Override", header):
            continue
        match = re.match(r"^(.*) \((\d+)\)$", header)
        if not (match and int(match[2]) in assignment_titles) and header not in assignment_titles.values():
            problems.append(f"column {header!r} creates a new assignment")
    return problems


def moodle_import_problems(text: str, maximum: float) -> list[str]:
    """A port of moodle/moodle mod/assign/feedback/offline/importgradeslib.php (init: the columns
    'Identifier', 'Grade' and 'Last modified (grade)' or the import is invalid) and
    mod/assign/feedback/offline/locallib.php (process_import_grades: a grade above the assignment's
    maximum is skipped)."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    missing = [c for c in ("Identifier", "Grade", "Last modified (grade)") if c not in header]
    if missing:
        return [f"invalidgradeimport: no {', '.join(missing)} column"]
    problems = []
    for row in rows[1:]:
        grade = row[header.index("Grade")]
        if grade and float(grade) > maximum:
            problems.append(f"{row[header.index('Identifier')]}: {grade} is above the maximum {maximum:g}")
        if "Maximum Grade" in header and row[header.index("Maximum Grade")] and float(row[header.index("Maximum Grade")]) != maximum:
            problems.append(f"{row[header.index('Identifier')]}: Maximum Grade {row[header.index('Maximum Grade')]} is not Moodle's {maximum:g}")
    return problems


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("notebooks"))
    source = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    mistake = next(s for s in SAMPLES["mnist_sgd"] if s.name == "labels_reversed")
    return {"full": nbformat.writes(make_submission(source, release, None)),
            "mistake": nbformat.writes(make_submission(source, release, mistake))}


def write_zip(path, entries):
    """entries: (name, text) or (name, text, date_time) as the zip stores it."""
    with zipfile.ZipFile(path, "w") as z:
        for name, text, *when in entries:
            info = zipfile.ZipInfo(name, date_time=when[0] if when else (2026, 11, 30, 12, 0, 0))
            z.writestr(info, text)
    return path


def collect(tmp_path, archive, lms, roster_bytes):
    course = make_course(tmp_path / "course")
    roster = tmp_path / "roster.csv"
    roster.write_bytes(roster_bytes if isinstance(roster_bytes, bytes) else roster_bytes.encode())
    result = run_coursekit(course, "collect", ASSIGNMENT, str(archive), "--lms", lms, "--roster", str(roster), check=False)
    submitted = {p.parent.parent.name: p.read_text() for p in (course / "submitted").glob(f"*/{ASSIGNMENT}/*")}
    return result, submitted, course


CANVAS_STUDENTS = [  # last, first, Canvas id, SIS User ID, SIS Login ID
    ("Doe", "Jane", 101, "s101", "jdoe"),
    ("Roe", "Eric", 102, "s102", "eroe"),
    ("O'Brien-Smith", "Zoë", 103, "s103", "zobrien"),
    ("Doe_Smith", "Ann", 104, "s104", "ann@uni.example"),  # '_' in the name; an e-mail login
    ("Dup", "Dan", 106, "s106", "ddup"),
    ("Rocket", "Rita", 107, "s107", "rrocket"),
    ("Text", "Tina", 108, "s108", "ttext"),
    ("Html", "Hal", 109, "s109", "hhtml"),
    ("Student", "Test", 110, "", "testuser"),
]
CANVAS_ASSIGNMENTS = [("Homework 2: Tensors", 48190, "10"), ("Homework 3: MNIST SGD", 48213, "100")]


def test_canvas_download_as_content_zipper_names_it(tmp_path, notebooks):
    """instructure/canvas-lms lib/content_zipper.rb: normal, LATE, re-upload suffixes, accents and
    apostrophes, '_' in a name, a duplicate (newest attachment wins), a group upload (named after the
    group, with the representative's id), anonymous grading, an online text entry and an HTML upload."""
    full, mistake = notebooks["full"], notebooks["mistake"]
    entries = [
        (canvas_upload(canvas_prefix("Doe, Jane", 101), 5001, "mnist_sgd.ipynb"), full),
        (canvas_upload(canvas_prefix("Roe, Eric", 102, late=True), 5002, "mnist_sgd-1.ipynb"), mistake),
        (canvas_upload(canvas_prefix("O'Brien-Smith, Zoë", 103), 5003, "mnist_sgd (1)-1.ipynb"), full),
        (canvas_upload(canvas_prefix("Doe_Smith, Ann", 104), 5004, "mnist_sgd.ipynb"), full),
        (canvas_upload(canvas_prefix("Dup, Dan", 106), 93001, "mnist_sgd.ipynb"), "older"),
        (canvas_upload(canvas_prefix("Dup, Dan", 106), 93002, "mnist_sgd (1).ipynb"), full),
        (canvas_upload(canvas_prefix("Team Rocket", 107), 5007, "mnist_sgd.ipynb"), full),  # sortable_name = the group's
        (canvas_upload(canvas_prefix(None, None, anonymous_id="Xy7Qp"), 5008, "mnist_sgd.ipynb"), full),
        (canvas_prefix("Text, Tina", 108) + "_text.html", "<p>my answer</p>"),
        (canvas_upload(canvas_prefix("Html, Hal", 109), 5009, "mnist_sgd.html"), "<html></html>"),
        (canvas_upload(canvas_prefix("Student, Test", 110), 5010, "mnist_sgd.ipynb"), full),
    ]
    assert entries[2][0] == "obriensmithzoë_103_5003_mnist_sgd (1)-1.ipynb" and entries[3][0].startswith("doe_smithann_104_")
    archive = write_zip(tmp_path / "submissions.zip", entries)
    roster = canvas_export(CANVAS_STUDENTS, CANVAS_ASSIGNMENTS)
    result, submitted, _ = collect(tmp_path, archive, "canvas", roster)
    assert sorted(submitted) == ["ann@uni.example", "ddup", "eroe", "jdoe", "rrocket", "testuser", "zobrien"], result.stdout + result.stderr
    assert submitted["ddup"] == full  # attachment 93002, the newest
    assert "ddup: kept dupdan_106_93002_mnist_sgd (1).ipynb (attachment 93002, the newest), not dupdan_106_93001_mnist_sgd.ipynb" in result.stdout
    for line in ("anon_Xy7Qp_5008_mnist_sgd.ipynb: an anonymous student (anon_Xy7Qp):",
                 "texttina_108_text.html: ttext: an online text entry, not an uploaded notebook",
                 "htmlhal_109_5009_mnist_sgd.html: hhtml: uploaded 'mnist_sgd.html', not a notebook"):
        assert line in result.stdout, result.stdout
    assert result.returncode == 1


def test_canvas_duplicate_alone_is_collected(tmp_path, notebooks):
    """instructure/canvas-lms lib/content_zipper.rb: one submission with two attachments that are the same
    notebook; nbgrader's zip_collect aborts the whole collect on it, the kit keeps the newest."""
    archive = write_zip(tmp_path / "submissions.zip", [
        ("doejane_20431_93001_mnist_sgd.ipynb", "older"), ("doejane_20431_93002_mnist_sgd (1).ipynb", notebooks["full"]),
        ("roeeric_20432_93003_mnist_sgd.ipynb", notebooks["mistake"])])
    roster = canvas_export([("Doe", "Jane", 20431, "s1", "jdoe"), ("Roe", "Eric", 20432, "s2", "eroe")], CANVAS_ASSIGNMENTS)
    result, submitted, _ = collect(tmp_path, archive, "canvas", roster)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(submitted) == ["eroe", "jdoe"] and submitted["jdoe"] == notebooks["full"]


MOODLE_STUDENTS = [(1234567, "Jane Doe", "jdoe@uni.example", "Team A"), (1234568, "Eric Roe", "eroe@uni.example", "Team A"),
                   (1234569, "Ann Smith", "asmith@uni.example", ""), (1234570, "Zoë O'Brien", "zobrien@uni.example", "")]


def test_moodle_41_download(tmp_path, notebooks):
    """moodle/moodle mod/assign/classes/downloader.php (4.1+, download as folders): folders without a trailing
    '_', a subfolder kept, the newest time in the zip wins, blind marking ('Participant'), a team upload
    ('<group>_<group id>'), an online text entry, and a PDF."""
    full, mistake = notebooks["full"], notebooks["mistake"]
    archive = write_zip(tmp_path / "moodle.zip", [
        (moodle_41_path(moodle_prefix("Jane Doe", 1234567), "mnist_sgd.ipynb"), "older", (2026, 11, 29, 10, 0, 0)),
        (moodle_41_path(moodle_prefix("Jane Doe", 1234567), "mnist_sgd.ipynb", "/final/"), full, (2026, 11, 30, 10, 0, 0)),
        (moodle_41_path(moodle_prefix("Participant", 1234568), "mnist_sgd.ipynb"), mistake),
        (moodle_41_path(moodle_prefix("Ann Smith", 1234569), "onlinetext.html", plugin="onlinetext"), "<p>answer</p>"),
        (moodle_41_path(moodle_prefix("Zoë O'Brien", 1234570), "mnist_sgd.pdf"), "%PDF"),
        (moodle_41_path(moodle_team_prefix("Team B", 42), "mnist_sgd.ipynb"), full),
    ])
    result, submitted, _ = collect(tmp_path, archive, "moodle", moodle_worksheet(MOODLE_STUDENTS, team=True))
    assert sorted(submitted) == ["eroe", "jdoe"], result.stdout + result.stderr
    assert submitted["jdoe"] == full
    assert "jdoe: kept Jane Doe_1234567_assignsubmission_file/final/mnist_sgd.ipynb (2026-11-30 10:00:00, the newest)" in result.stdout
    for line in ("Ann Smith_1234569_assignsubmission_onlinetext/onlinetext.html: asmith: an online text entry, not an uploaded notebook",
                 "Zoë O'Brien_1234570_assignsubmission_file/mnist_sgd.pdf: zobrien: uploaded 'mnist_sgd.pdf', not a notebook",
                 "Team B_42_assignsubmission_file/mnist_sgd.ipynb: team 'Team B' (Moodle group 42"):
        assert line in result.stdout, result.stdout
    assert result.returncode == 1


def test_moodle_3x_and_flat_download(tmp_path, notebooks):
    """moodle/moodle mod/assign/locallib.php (3.x download_submissions): folders ending in '_', a team upload
    named '<group>-<full name>_<participant id>', and the flat layout (no folders)."""
    full = notebooks["full"]
    archive = write_zip(tmp_path / "moodle.zip", [
        (moodle_3x_path(moodle_prefix("Jane Doe", 1234567), "mnist_sgd.ipynb"), full),
        (moodle_3x_path(moodle_prefix("Team A-Eric Roe", 1234568), "mnist_sgd.ipynb"), full),
        (moodle_flat_path(moodle_prefix("Ann Smith", 1234569), "mnist_sgd (1).ipynb"), full),
        (moodle_3x_path(moodle_prefix("Zoë O'Brien", 1234570), "onlinetext.html", plugin="onlinetext"), "<p></p>"),
    ])
    result, submitted, _ = collect(tmp_path, archive, "moodle", moodle_worksheet(MOODLE_STUDENTS))
    assert sorted(submitted) == ["asmith", "eroe", "jdoe"], result.stdout + result.stderr
    assert "Zoë O'Brien_1234570_assignsubmission_onlinetext_/onlinetext.html: zobrien: an online text entry" in result.stdout
    assert result.returncode == 1


def test_an_archive_that_is_not_a_zip_is_one_line(tmp_path):
    """What staff get when they pass the wrong file: one line naming it, no traceback."""
    (tmp_path / "grades.zip").write_text("Student,ID\n")
    result, submitted, _ = collect(tmp_path, tmp_path / "grades.zip", "canvas", canvas_export(CANVAS_STUDENTS, CANVAS_ASSIGNMENTS))
    assert result.returncode == 2 and submitted == {}
    assert result.stderr.strip() == f"coursekit: {tmp_path / 'grades.zip'} is not a zip archive: download the submissions again from the LMS"


@pytest.mark.parametrize("variant", [dict(col_sep=";", bom=True), dict(first_last=True), dict(first_last=True, col_sep=";", bom=True),
                                     dict(include_sis_id=False)])
def test_canvas_export_variants_are_read(tmp_path, variant):
    """instructure/canvas-lms lib/gradebook_exporter.rb (LastName/FirstName, include_sis_id) and lib/csv_with_i18n.rb
    (';' for some locales, the byte order mark)."""
    from coursekit.lms import read_roster

    (tmp_path / "export.csv").write_bytes(canvas_export(CANVAS_STUDENTS, CANVAS_ASSIGNMENTS, **variant))
    roster = read_roster(tmp_path / "export.csv", "canvas")
    assert roster["101"] == "jdoe" and roster["104"] == "ann@uni.example" and "" not in roster


def test_a_moodle_worksheet_in_another_language_is_refused(tmp_path):
    """moodle/moodle mod/assign/gradingtable.php: the worksheet's headers are get_string()s, in the language of
    whoever downloads it; importgradeslib.php matches them in the same language, so the kit can write only English."""
    from coursekit.course import CourseError
    from coursekit.lms import read_roster

    german = ["Kennung", "Vollständiger Name", "E-Mail-Adresse", "Status", "Bewertung", "Bestwertung", "Bewertung kann geändert werden",
              "Zuletzt geändert (Abgabe)", "Texteingabe online", "Zuletzt geändert (Bewertung)", "Feedback als Kommentar"]
    text = moodle_worksheet(MOODLE_STUDENTS, columns=WORKSHEET_COLUMNS).replace("Participant ", "Teilnehmer/in ")
    text = ",".join(german) + "\n" + text.split("\n", 1)[1]
    (tmp_path / "Bewertungstabelle.csv").write_text(text)
    with pytest.raises(CourseError, match="not in English"):
        read_roster(tmp_path / "Bewertungstabelle.csv", "moodle")


def test_an_ambiguous_canvas_column_is_refused_with_its_candidates(tmp_path):
    """instructure/canvas-lms lib/gradebook_exporter.rb names assignment columns title_with_id; two titles with the
    assignment's words are two candidates, and app/models/gradebook_importer.rb would put grades into whichever
    the file names, so the kit names none until --lms-column does."""
    from coursekit.course import CourseError
    from coursekit.lms import plan_lms_export

    assignments = CANVAS_ASSIGNMENTS + [("MNIST SGD (late retake)", 48250, "100")]
    (tmp_path / "export.csv").write_bytes(canvas_export(CANVAS_STUDENTS, assignments))
    with pytest.raises(CourseError, match=r"2 columns that could be mnist_sgd: Homework 3: MNIST SGD \(48213\); MNIST SGD \(late retake\) \(48250\)"):
        plan_lms_export(tmp_path / "export.csv", "canvas", ASSIGNMENT)
    assert plan_lms_export(tmp_path / "export.csv", "canvas", ASSIGNMENT, "48250").column == "MNIST SGD (late retake) (48250)"
    with pytest.raises(CourseError, match="no assignment column 'Homework 9'"):
        plan_lms_export(tmp_path / "export.csv", "canvas", ASSIGNMENT, "Homework 9")


# ---------------------------------------------------------------- the import files `grade --lms` writes


@pytest.fixture(scope="module")
def graded(tmp_path_factory, notebooks):
    """One real grading run of three submissions; then, as staff would, jdoe's written answer is graded in
    nbgrader's formgrader (the others stay pending), and `grade --lms` writes each LMS's import file."""
    from nbgrader.api import Gradebook

    folder = tmp_path_factory.mktemp("lms_graded")
    course = make_course(folder / "course")
    for student, text in (("jdoe", notebooks["full"]), ("eroe", notebooks["mistake"]), ("zobrien", notebooks["full"])):
        write_submission(course, ASSIGNMENT, student, text)
    run_coursekit(course, "grade", ASSIGNMENT, "--workers", "2")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade("loss_vs_metric", ASSIGNMENT, ASSIGNMENT, "jdoe")
        grade.manual_score, grade.needs_manual_grade = 2, False  # what the formgrader records
        gradebook.db.commit()
    exports = {"canvas": canvas_export(CANVAS_STUDENTS, CANVAS_ASSIGNMENTS),
               "canvas-lastname": canvas_export(CANVAS_STUDENTS, CANVAS_ASSIGNMENTS, first_last=True),
               "canvas-lastname-semicolon": canvas_export(CANVAS_STUDENTS, CANVAS_ASSIGNMENTS, first_last=True, col_sep=";", bom=True),
               "moodle": moodle_worksheet(MOODLE_STUDENTS).encode()}
    out = {}
    for name, roster in exports.items():
        (folder / f"{name}.csv").write_bytes(roster)
        lms = name.split("-")[0]
        result = run_coursekit(course, "grade", ASSIGNMENT, "--lms", lms, "--roster", str(folder / f"{name}.csv"), check=False)
        written = course / "reports" / ASSIGNMENT / f"grades-{lms}.csv"
        out[name] = {"result": result, "text": written.read_text(encoding="utf-8") if written.exists() else ""}
        if written.exists():
            written.unlink()
    return out


@pytest.mark.parametrize("export", ["canvas", "canvas-lastname", "canvas-lastname-semicolon"])
def test_canvas_import_takes_the_grades_into_the_real_assignment(graded, export):
    """The port of instructure/canvas-lms app/models/gradebook_importer.rb on the file `grade --lms canvas` writes,
    for both layouts of lib/gradebook_exporter.rb: the header is valid and the one assignment column is
    'Homework 3: MNIST SGD (48213)'; grades are scaled to its Points Possible (100); pending ones are left out."""
    out = graded[export]
    assert out["result"].returncode == 0, out["result"].stdout + out["result"].stderr
    text = out["text"]
    assert canvas_import_problems(text, {aid: title for title, aid, _ in CANVAS_ASSIGNMENTS}) == []
    sep = ";" if export.endswith("semicolon") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    assert rows[0][-1] == "Homework 3: MNIST SGD (48213)"
    graded_rows = [r for r in rows[1:] if "Points Possible" not in r[0]]
    assert len(graded_rows) == 1 and "101" in graded_rows[0]  # only jdoe: eroe's and zobrien's written answers await grading
    assert float(graded_rows[0][-1].replace(",", ".")) == pytest.approx(23 / 23 * 100)
    assert "left out 2 whose manual part is pending: eroe, zobrien" in out["result"].stdout


def test_moodle_import_takes_every_required_column_and_the_maximum(graded):
    """The port of moodle/moodle mod/assign/feedback/offline/importgradeslib.php and locallib.php on the file
    `grade --lms moodle` writes: Identifier, Grade and Last modified (grade) (copied from the worksheet of
    mod/assign/gradingtable.php), and grades on the worksheet's Maximum Grade."""
    out = graded["moodle"]
    assert out["result"].returncode == 0, out["result"].stdout + out["result"].stderr
    assert moodle_import_problems(out["text"], 100.0) == []
    rows = {r["Identifier"]: r for r in csv.DictReader(io.StringIO(out["text"]))}
    assert list(rows) == ["Participant 1234567"]
    assert float(rows["Participant 1234567"]["Grade"]) == pytest.approx(100.0)
    assert rows["Participant 1234567"]["Last modified (grade)"] == "Tuesday, 1 December 2026, 8:07 AM"
