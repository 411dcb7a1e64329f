"""The LMS round trip on real files: a zip of uploads named the way Canvas names them, one the
way Moodle does, their roster CSVs; collected through nbgrader's zip_collect, graded, exported."""
import zipfile

import nbformat
import pytest
from conftest import ASSIGNMENT, SAMPLES, make_course, read_csv, run_coursekit

from coursekit.samples import make_submission

CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,Homework 3: MNIST SGD (48213)
    Points Possible,,,,,23
"Doe, Jane",101,s101,jdoe,A,
"Roe, Eric",102,s102,eroe,A,
"Smith, Ann",103,s103,asmith,A,
"Absent, Al",104,s104,aabsent,A,
"""
MOODLE_ROSTER = """Identifier,Full name,Email address,Status,Grade,Maximum Grade,Last modified (grade),Feedback comments
Participant 1234567,Jane Doe,jdoe@uni.example,Submitted for grading,,23.00,-,
Participant 1234568,Eric Roe,eroe@uni.example,Submitted for grading,,23.00,-,
Participant 1234569,Ann Smith,asmith@uni.example,Submitted for grading,,23.00,-,
"""


def notebooks(course):
    source = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    mistake = next(s for s in SAMPLES["mnist_sgd"] if s.name == "labels_reversed")
    return nbformat.writes(make_submission(source, release, None)), nbformat.writes(make_submission(source, release, mistake))


def grades_by(path, column):
    return {row[column]: row for row in read_csv(path)}


def test_canvas_round_trip(tmp_path):
    course = make_course(tmp_path / "course")
    full, mistake = notebooks(course)
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("doejane_101_5001_mnist_sgd.ipynb", full)
        z.writestr("roeeric_LATE_102_5002_mnist_sgd-1.ipynb", mistake)  # late, and a re-upload
        z.writestr("smithann_103_5003_homework.ipynb", full)  # the wrong notebook
        z.writestr("ghostgus_999_5004_mnist_sgd.ipynb", full)  # not on the roster
        z.writestr("notes.txt", "my notes")
    (tmp_path / "roster.csv").write_text(CANVAS_ROSTER)
    result = run_coursekit(course, "collect", ASSIGNMENT, str(archive), "--lms", "canvas", "--roster", str(tmp_path / "roster.csv"), check=False)
    assert result.returncode == 1  # some uploads were not matched
    assert "collected 2 submission(s) of mnist_sgd into submitted/: eroe, jdoe" in result.stdout
    for line in ("smithann_103_5003_homework.ipynb: asmith: uploaded 'homework.ipynb', not one of mnist_sgd.ipynb",
                 "ghostgus_999_5004_mnist_sgd.ipynb: Canvas user 999: not in the roster",
                 "notes.txt: unknown owner: not named the way Canvas names uploads"):
        assert line in result.stdout
    assert sorted(p.parent.parent.name for p in (course / "submitted").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")) == ["eroe", "jdoe"]
    assert len(list((course / "downloaded" / ASSIGNMENT / "extracted").rglob("notes.txt"))) == 1  # kept, not dropped

    graded = run_coursekit(course, "grade", ASSIGNMENT, "--lms", "canvas", "--roster", str(tmp_path / "roster.csv"), "--include-pending")
    assert "Hidden checks failed most often (of 2 submissions):" in graded.stdout
    assert "train_y is reversed" in graded.stdout
    canvas = grades_by(course / "reports" / ASSIGNMENT / "grades-canvas.csv", "SIS Login ID")
    assert list(read_csv(course / "reports" / ASSIGNMENT / "grades-canvas.csv")[0]) == \
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Homework 3: MNIST SGD (48213)"]
    assert canvas["jdoe"]["Homework 3: MNIST SGD (48213)"] == "21" and canvas["eroe"]["Homework 3: MNIST SGD (48213)"] == "20"
    assert canvas["jdoe"]["ID"] == "101" and "aabsent" not in canvas  # no grade: a blank would clear one in Canvas


def test_moodle_round_trip(tmp_path):
    course = make_course(tmp_path / "course")
    full, mistake = notebooks(course)
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Jane Doe_1234567_assignsubmission_file_/mnist_sgd.ipynb", full)  # "download in folders"
        z.writestr("Eric Roe_1234568_assignsubmission_file_mnist_sgd.ipynb", mistake)  # flat
    (tmp_path / "worksheet.csv").write_text(MOODLE_ROSTER)
    result = run_coursekit(course, "collect", ASSIGNMENT, str(archive), "--lms", "moodle", "--roster", str(tmp_path / "worksheet.csv"))
    assert "collected 2 submission(s) of mnist_sgd into submitted/: eroe, jdoe" in result.stdout
    run_coursekit(course, "grade", ASSIGNMENT, "--lms", "moodle", "--roster", str(tmp_path / "worksheet.csv"), "--include-pending")
    moodle = grades_by(course / "reports" / ASSIGNMENT / "grades-moodle.csv", "Identifier")
    assert moodle["Participant 1234567"]["Grade"] == "21.00" and moodle["Participant 1234568"]["Grade"] == "20.00"
    assert moodle["Participant 1234567"]["Maximum Grade"] == "23.00" and moodle["Participant 1234567"]["Last modified (grade)"] == "-"
    assert "Participant 1234569" not in moodle  # Ann submitted nothing


@pytest.mark.parametrize("lms, text, problem", [
    ("canvas", "Name,Email\nJane,j@x\n", "has no 'ID' column"),
    ("moodle", "Name,Email\nJane,j@x\n", "needs 'Identifier'"),
])
def test_roster_without_its_columns_is_a_clear_error(tmp_path, lms, text, problem):
    course = make_course(tmp_path / "course")
    (tmp_path / "roster.csv").write_text(text)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as z:
        z.writestr("readme.txt", "")
    result = run_coursekit(course, "collect", ASSIGNMENT, str(tmp_path / "empty.zip"), "--lms", lms, "--roster", str(tmp_path / "roster.csv"), check=False)
    assert result.returncode == 2
    assert f"the roster {tmp_path / 'roster.csv'} {problem}" in result.stderr
