"""coursekit verify and coursekit new: an assignment keeps its promises, and a new one starts out keeping them.

The graded classes of the session (every sample of each assignment) are judged by verify's own rules; each
kind of fault is shown on real grades relabelled, on a broken copy of the course's files, and on a broken
skeleton graded for real."""
import re
import shutil

import nbformat
import pytest
from conftest import ASSIGNMENT, GRADED, REPO, SAMPLES, TEST_LIMITS, make_course, run_coursekit

from coursekit.samples import Sample
from coursekit.verify import judge, read_notebook


def assert_each_named(patterns: list[str], faults: list[str]) -> None:
    for pattern in patterns:
        assert any(re.search(pattern, f) for f in faults), (pattern, faults)


def notebook(assignment):
    return read_notebook(REPO / "source" / assignment / f"{assignment}.ipynb")


@pytest.mark.parametrize("assignment", list(GRADED))
def test_the_graded_classes_have_no_fault(request, assignment):
    """The kit's assignments, judged on the session's run of their solution, release and every sample."""
    graded = request.getfixturevalue(GRADED[assignment])
    assert judge(graded["grades"], graded["checks"], SAMPLES[assignment], notebook(assignment)) == []


def test_judge_names_each_fault_of_a_graded_run(graded_course):
    """Real grades, each relabelled to make one fault: every one is named, in the words an instructor reads."""
    grades, checks = dict(graded_course["grades"]), graded_course["checks"]
    grades["full_marks"] = graded_course["grades"]["labels_reversed"]  # a solution short of full marks
    grades["untouched_release"] = graded_course["grades"]["threshold_half"]  # a release that earns points
    samples = [
        Sample("equivalent_in_name", "labels", mistake=False),  # graded as labels_reversed below
        Sample("catches_nothing", "accuracy", hint="threshold"),  # a full-marks row: the mistake loses nothing
        Sample("wrong_step", "flatten", hint="order"),  # loses in labels, declared in flatten
        Sample("hint_elsewhere", "labels", hint="banana"),
        Sample("kernel_dies", "linear1", hint="x"),  # NOT GRADED
    ]
    grades["equivalent_in_name"] = grades["wrong_step"] = grades["hint_elsewhere"] = graded_course["grades"]["labels_reversed"]
    grades["catches_nothing"] = graded_course["grades"]["full_marks"]
    relabelled = checks + [dict(c, student=name) for name in ("equivalent_in_name", "wrong_step", "hint_elsewhere")
                           for c in checks if c["student"] == "labels_reversed"]
    relabelled = [c for c in relabelled if c["student"] not in ("full_marks", "untouched_release")] + [
        dict(c, student="full_marks") for c in checks if c["student"] == "labels_reversed"] + [
        dict(c, student="untouched_release") for c in checks if c["student"] == "threshold_half"]
    faults = [str(f) for f in judge(grades, relabelled, samples, notebook(ASSIGNMENT))]
    expected = [
        r"^solution: the source solution earns [\d.]+ of 2 in test_labels \(hint: .+\)$",
        r"^release: the untouched release earns \d+ in test_flatten$",
        r"^release: the untouched release fails \w+ with '.+', not 'not attempted'$",
        r"^equivalent: equivalent_in_name is equivalent but earns [\d.]+ of 2 in test_labels$",
        r"^mistake: catches_nothing loses nothing in test_accuracy: no check catches it$",
        r"^mistake: wrong_step loses nothing in test_flatten",
        r"^mistake: wrong_step loses points outside its own step: [\d.]+ of 2 in test_labels$",
        r"^mistake: hint_elsewhere's hint lacks 'banana': '.+'$",
        r"^mistake: kernel_dies was NOT GRADED: .+",
    ]
    assert_each_named(expected, faults)


def break_files(course):
    """A copy of mnist_sgd with one fault of each kind its files alone can show."""
    checks = course / "tests" / "hidden" / ASSIGNMENT
    module = checks / "test_data_steps.py"
    module.write_text(module.read_text().replace('@pytest.mark.grade("flatten", points=1)', '@pytest.mark.grade("flattn", points=1)', 1))
    with open(checks / "probes.py", "a") as probes:
        probes.write("\n\ndef probe_linear2(run_cell):\n    return {}\n")
    with open(checks / "samples.py", "a") as samples:
        samples.write("\nSAMPLES.append(Sample('ghost_edit', 'accuracy', (('no such code', 'x'),), hint='x'))\n")
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(release, as_version=4)
    nb.cells[0].source += "\n\n    train_x = torch.cat([stacked_threes, stacked_sevens]).view(-1, 28*28)"
    nbformat.write(nb, release)


def test_verify_names_each_fault_its_files_show(tmp_path):
    """Unknown steps in a check and a probe, points that no longer add up, a sample that does not apply, a
    leaking release: each named, with its file; the run stops before grading (a broken sample cannot be written)."""
    course = make_course(tmp_path / "course")
    break_files(course)
    result = run_coursekit(course, "verify", ASSIGNMENT, status=1)
    faults = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("FAULT")]
    expected = [
        r"^FAULT step: mnist_sgd/test_data_steps.py:\d+ \w+ grades step 'flattn', which mnist_sgd.ipynb does not have \(its steps: flatten, ",
        r"^FAULT step: probes.py's probe_linear2 names step 'linear2', which mnist_sgd.ipynb does not have",
        r"^FAULT points: the checks of 'flatten' add up to 1 points, but its test cell test_flatten is worth 2",
        r"^FAULT sample: sample ghost_edit: 'no such code' is not in the accuracy answer of the source notebook",
        r"^FAULT leak: .*release/mnist_sgd/mnist_sgd.ipynb shows a line of the solution or hidden tests: 'train_x = torch.cat",
    ]
    assert_each_named(expected, faults)
    assert len(faults) == len(expected), faults
    assert result.stdout.strip().splitlines()[-1].startswith(f"{ASSIGNMENT}: {len(expected)} fault(s)")
    assert not (course / "gradebook.db").exists() and not (course / "reports").exists()  # the course is left as it was


@pytest.fixture(scope="module")
def new_course(tmp_path_factory):
    """An empty course (its configuration only) in which `coursekit new demo_step` wrote an assignment."""
    course = tmp_path_factory.mktemp("new") / "course"
    course.mkdir()
    (course / "course_config.py").write_text((REPO / "course_config.py").read_text() + TEST_LIMITS)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    result = run_coursekit(course, "new", "demo_step")
    return {"course": course, "output": result.stdout}


def test_a_new_assignment_passes_verify_from_the_start(new_course):
    course = new_course["course"]
    assert (course / "release" / "demo_step" / "demo_step.ipynb").is_file()
    assert sorted(p.name for p in (course / "tests" / "hidden" / "demo_step").iterdir()) == [
        "probes.py", "pytest.ini", "samples.py", "test_demo_step.py"]
    result = run_coursekit(course, "verify", "demo_step", "--workers", "2")
    assert "graded: the solution, the release, 1 mistake(s) and 1 equivalent(s)" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("demo_step: no fault")
    assert not (course / "submitted").exists() and not (course / "reports").exists()  # graded in a scratch course
    again = run_coursekit(course, "new", "demo_step", status=2)
    assert "exists already" in again.stderr


def test_verify_catches_a_mistake_its_checks_miss(new_course, tmp_path):
    """The skeleton's sample mistake made harmless (255.0 for 255): graded for real, it loses nothing, and
    verify says so; with the hidden checks gone too, the visible asserts decide and verify says that."""
    course = tmp_path / "course"
    shutil.copytree(new_course["course"], course)
    samples = course / "tests" / "hidden" / "demo_step" / "samples.py"
    samples.write_text(samples.read_text().replace('(("/ 255", "/ 256"),)', '(("/ 255", "/ 255.0"),)'))
    (course / "tests" / "hidden" / "demo_step" / "test_demo_step.py").unlink()
    result = run_coursekit(course, "verify", "demo_step", "--workers", "2", "--keep", str(tmp_path / "scratch"), status=1)
    assert "visible tests only: no hidden checks, the notebook's own asserts decide (as in nbgrader)" in result.stdout
    faults = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("FAULT")]
    assert faults == ["FAULT mistake: divides_by_256 loses nothing in test_to_unit: no check catches it"]
    assert (tmp_path / "scratch" / "feedback" / "divides_by_256" / "demo_step" / "demo_step.html").is_file()  # --keep kept it
