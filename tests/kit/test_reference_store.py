"""The reference solution runs once, until something its values depend on changes (coursekit/reference_store.py)."""
import uuid

from conftest import ASSIGNMENT, SAMPLES, make_course, notebook_paths, read_csv, run_coursekit
from test_grading import FULL, scores

from coursekit.samples import make_submission, write_submission

RAN, KEPT = "running the reference solution", "the reference solution's values: kept from an earlier run"
LABELS_REVERSED = next(s for s in SAMPLES[ASSIGNMENT] if s.name == "labels_reversed")


def test_the_reference_runs_again_only_when_what_it_depends_on_changes(tmp_path, reference_cache):
    course = make_course(tmp_path / "course")
    probes = course / "tests" / "hidden" / ASSIGNMENT / "probes.py"
    probes.write_text(probes.read_text() + f"\n# {uuid.uuid4()}: a version of the checks no other test grades with\n")
    source, release = notebook_paths(course, ASSIGNMENT)
    write_submission(course, ASSIGNMENT, "first", make_submission(source, release, None))
    first = run_coursekit(course, "grade", ASSIGNMENT).stdout
    assert RAN in first and KEPT not in first

    # a late submission: graded against the values the first run kept, as it would be against a fresh run's
    write_submission(course, ASSIGNMENT, "late", make_submission(source, release, LABELS_REVERSED))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    second = run_coursekit(course, "grade", ASSIGNMENT, env={"TMPDIR": str(temporary)}).stdout
    assert KEPT in second and RAN not in second
    # the run removed every temporary folder it made, its worker process's copy of the hidden checks among them
    assert sorted(p.name for p in temporary.iterdir()) == []
    assert "running submissions on 1 local worker (1 process)" in second  # one job: no second worker to start
    rows = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    assert scores(rows["first"]) == FULL
    late = scores(rows["late"])
    assert late["test_labels"] < FULL["test_labels"] and {k: v for k, v in late.items() if k != "test_labels"} == \
        {k: v for k, v in FULL.items() if k != "test_labels"}

    # a probe changed (here, only a comment): the solution runs again
    probes.write_text(probes.read_text() + "# changed\n")
    third = run_coursekit(course, "grade", ASSIGNMENT, "--student", "late").stdout
    assert RAN in third and KEPT not in third

    # the file kept is not whole (a disk that filled up, say): the solution runs again rather than grade against it
    kept = max((reference_cache / "reference").glob(f"{ASSIGNMENT}-*.pickle"), key=lambda p: p.stat().st_mtime)
    kept.write_bytes(kept.read_bytes()[:-100])
    write_submission(course, ASSIGNMENT, "latest", make_submission(source, release, None))
    fourth = run_coursekit(course, "grade", ASSIGNMENT, "--student", "latest").stdout
    assert RAN in fourth and KEPT not in fourth
    assert scores({row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}["latest"]) == FULL
