"""Where nbgrader users work (issue 12), without a browser: nbgrader's exchange round trip with students
in homes of their own, the roster's names in the gradebook, reports that follow the gradebook, the class
report page, and `coursekit lab` started from another folder.

One course: nbgrader's release_assignment; ada and bob fetch_assignment and submit as nbgrader's students
do (each in a home of their own; nbgrader names a submission after the Unix user, and these tests run as
one user, so submit is told the student with --student); nbgrader's collect; then `coursekit grade` with a Moodle
worksheet. carl's upload, put in submitted/ by hand, is not a notebook.
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, COURSEKIT, SAMPLES, make_course, notebook_paths, read_csv, run_coursekit

from coursekit.samples import make_submission, write_submission

BIN = Path(sys.executable).parent
COURSE_ID = "mnist-sgd"  # course_config.py's CourseDirectory.course_id
WORKSHEET = """Identifier,Full name,Email address,Status,Grade,Maximum Grade,Last modified (grade)
Participant 501,Ada Lovelace,ada@uni.example,Submitted for grading,,23.00,-
Participant 502,Bob de Vries,bob@uni.example,Submitted for grading,,23.00,-
"""


def nbgrader(*args, cwd: Path, user: str | None = None, home: Path | None = None) -> str:
    env = {**os.environ, "PATH": str(BIN) + os.pathsep + os.environ["PATH"]}
    if user:  # the student's own home; on a hub each student is a user of their own, here --student names them
        env.update(USER=user, LOGNAME=user, HOME=str(home))
    result = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"nbgrader {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stderr


@pytest.fixture(scope="module")
def exchanged(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("exchange_course"))
    nbgrader("release_assignment", ASSIGNMENT, cwd=course)  # staff, in the course folder: no flag
    exchange = f"--Exchange.root={course / 'exchange'}"  # on JupyterHub, the students' nbgrader_config.py says it
    source, _ = notebook_paths(course, ASSIGNMENT)
    no_sigmoid = next(s for s in SAMPLES[ASSIGNMENT] if s.name == "no_sigmoid")
    for student, sample in (("ada", None), ("bob", no_sigmoid)):
        home = tmp_path_factory.mktemp(f"home_{student}")
        nbgrader("fetch_assignment", ASSIGNMENT, "--course", COURSE_ID, exchange, cwd=home, user=student, home=home)
        fetched = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        nbformat.write(make_submission(source, fetched, sample), fetched)  # the student's answers, in the fetched notebook
        nbgrader("submit", ASSIGNMENT, "--course", COURSE_ID, f"--student={student}", exchange, cwd=home, user=student, home=home)
    nbgrader("collect", ASSIGNMENT, cwd=course)
    collected = sorted(p.name for p in (course / "submitted").iterdir())
    write_submission(course, ASSIGNMENT, "carl", b"{ not a notebook")
    (course / "worksheet.csv").write_text(WORKSHEET)
    # exit 1: carl's upload is NOT GRADED
    result = run_coursekit(course, "grade", ASSIGNMENT, "--lms", "moodle", "--roster", "worksheet.csv", status=1)
    assert result.stdout.rstrip().endswith("1 submission(s) NOT GRADED: carl (why: their rows above; logs in reports/mnist_sgd/logs/)")
    return {"course": course, "collected": collected, "output": result.stdout}


def grades(course: Path) -> dict[str, dict]:
    return {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}


def test_the_exchange_round_trip_grades_each_student(exchanged):
    assert exchanged["collected"] == ["ada", "bob"]
    rows = grades(exchanged["course"])
    assert rows["ada"]["status"] == "graded (manual part pending)" and rows["ada"]["total"] == "21"
    assert rows["bob"]["test_mnist_loss"] < rows["ada"]["test_mnist_loss"]  # the kit's hidden checks ran
    assert rows["carl"]["status"] == "not graded" and "not a notebook" in rows["carl"]["message"]


def test_the_rosters_names_reach_the_gradebook(exchanged):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{exchanged['course'] / 'gradebook.db'}") as gradebook:
        people = {s.id: (s.first_name, s.last_name, s.email) for s in gradebook.students}
    assert people["ada"] == ("Ada", "Lovelace", "ada@uni.example")
    assert people["bob"] == ("Bob de", "Vries", "bob@uni.example")


def set_manual_score(course: Path, student: str, cell: str, score: float) -> None:
    """What formgrader's page does when staff type a score (tests/kit/test_formgrader.py types it for real)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
        grade.manual_score, grade.needs_manual_grade = score, False  # as formgrader's PUT /formgrader/api/grade does
        gradebook.db.commit()


def test_a_manual_grade_reaches_the_reports_without_regrading(exchanged):
    course = exchanged["course"]
    autograded = course / "autograded" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    before = autograded.stat().st_mtime_ns
    assert "ada" not in [row["Full name"].split()[0].lower() for row in read_csv(course / "reports" / ASSIGNMENT / "grades-moodle.csv")]
    set_manual_score(course, "ada", "loss_vs_metric", 1.5)
    result = run_coursekit(course, "report", ASSIGNMENT)
    row = grades(course)["ada"]
    assert (row["status"], row["loss_vs_metric"], row["total"]) == ("graded", "1.5", "22.5")
    assert grades(course)["carl"]["status"] == "not graded"  # what the last run could not grade stays so
    # the LMS's file, as the grading run asked for it, now holds ada's final total
    moodle = {row["Email address"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades-moodle.csv")}
    assert moodle["ada@uni.example"]["Grade"] == "22.50" and "bob@uni.example" not in moodle
    assert autograded.stat().st_mtime_ns == before, "report regraded the submission"
    assert "class report: reports/mnist_sgd/index.html" in result.stdout.splitlines()[-1]


class PageParts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links, self.addresses = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images[attrs.get("id")] = attrs["src"]
        if tag == "a":
            self.links.append(attrs["href"])
        self.addresses += [v for k, v in attrs.items() if k in ("src", "href") and v and not v.startswith("data:")]


def test_the_class_report_is_one_page_that_needs_nothing_else(exchanged):
    course = exchanged["course"]
    page = course / "reports" / ASSIGNMENT / "index.html"
    # the run's last lines: the class report, then who was NOT GRADED (carl)
    assert "class report: reports/mnist_sgd/index.html" in exchanged["output"].splitlines()[-2]
    text = page.read_text()
    parts = PageParts()
    parts.feed(text)
    assert set(parts.images) == {"totals-plot", "steps-plot", "similarity-plot"}
    for src in parts.images.values():
        assert base64.b64decode(src.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    assert "script" not in parts.tags and all(not re.match(r"\w+:", a) for a in parts.addresses), parts.addresses
    # every link is a feedback page that exists, relative to the page
    assert sorted(parts.links) == ["../../feedback/ada/mnist_sgd/mnist_sgd.html", "../../feedback/bob/mnist_sgd/mnist_sgd.html"]
    assert all((page.parent / link).resolve().is_file() for link in parts.links)
    # bob's mistake, with its hint and how many made it; his written answer awaits manual grading
    failed = text[text.index("Hidden checks failed most often"):text.index("Awaiting manual grading")]
    assert re.search(r'<td class="num">1</td><td>mnist_loss</td>.*sigmoid is missing', failed), failed
    assert "bob: loss_vs_metric" in text[text.index("Awaiting manual grading"):text.index("<h2>Students")]
    assert "Ada Lovelace" in text and "not a notebook" in text


def test_lab_serves_the_course_from_any_folder(exchanged, tmp_path):
    course = exchanged["course"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lab = subprocess.Popen([*COURSEKIT, "--course", str(course), "lab"], cwd=elsewhere, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [lab.stdout.readline() for _ in range(4)]
        url = lines[3].strip()
        assert lines[2].startswith("formgrader") and url.startswith("http://127.0.0.1:"), lines
        base, token = url.split("/formgrader?token=")
        assignments = json.load(urllib.request.urlopen(f"{base}/formgrader/api/assignments?token={token}", timeout=30))
        assert {a["name"]: a["num_submissions"] for a in assignments}[ASSIGNMENT] == 3  # ada, bob and carl's folders
        students = json.load(urllib.request.urlopen(f"{base}/formgrader/api/students?token={token}", timeout=30))
        assert {(s["id"], s["first_name"], s["last_name"]) for s in students} >= {("ada", "Ada", "Lovelace")}
        assert list(elsewhere.iterdir()) == []  # no empty gradebook.db where it was typed
    finally:
        lab.send_signal(signal.SIGTERM)
        code = lab.wait(60)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM, 143)
    with pytest.raises(OSError):  # JupyterLab stopped with it
        urllib.request.urlopen(f"{base}/api/status", timeout=5)
