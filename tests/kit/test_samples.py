"""Sample submissions live in each assignment's hidden folder (tests/hidden/<assignment>/samples.py): the kit loads
them from the course, says clearly what is wrong with one, and grading never reads them."""
import pytest
from conftest import ASSIGNMENT, SAMPLES, make_course, run_coursekit

from coursekit.course import CourseError, load_config
from coursekit.grade import assignment_fingerprint
from coursekit.guard import protected_text
from coursekit.parallel import make_bundle
from coursekit.samples import load_samples, make_submission


@pytest.fixture
def course(tmp_path):
    return make_course(tmp_path)


def samples_path(course):
    return course / "tests" / "hidden" / ASSIGNMENT / "samples.py"


def test_samples_load_from_the_course(course):
    loaded = load_samples(course, ASSIGNMENT)
    assert loaded.path == samples_path(course)
    assert [s.name for s in loaded.samples] == [s.name for s in SAMPLES[ASSIGNMENT]]
    assert set(loaded.demo) <= {s.name for s in loaded.samples} and loaded.demo
    # a written answer is filled in from the course's samples
    written = [c.source for c in make_submission(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                                                 course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", None).cells
               if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution")]
    assert written == [loaded.written_answer]


@pytest.mark.parametrize("text, message", [
    ("SAMPLES = [", "samples.py could not be loaded: SyntaxError"),
    ("SAMPLES = ['not a sample']\n", "samples.py should define SAMPLES, a list of coursekit.samples.Sample"),
    ("from coursekit.samples import Sample\nSAMPLES = [Sample('a', 'flatten')]\nDEMO = ['b']\n",
     "samples.py: DEMO names samples that SAMPLES does not define: b"),
])
def test_broken_samples_file_gets_a_clear_error(course, text, message):
    samples_path(course).write_text(text)
    with pytest.raises(CourseError, match=message) as raised:
        load_samples(course, ASSIGNMENT)
    assert str(samples_path(course)) in str(raised.value)


def test_demo_without_samples_names_the_missing_file(course):
    samples_path(course).unlink()
    result = run_coursekit(course, "demo", ASSIGNMENT, check=False)
    assert result.returncode == 2
    assert f"{ASSIGNMENT} has no sample submissions: {samples_path(course)} does not exist" in result.stderr


def test_grading_never_reads_the_samples(course):
    """Not sent to the workers, not in the grade fingerprint (editing samples regrades no one), not the guard's."""
    config = load_config(course)
    checks = course / "tests" / "hidden" / ASSIGNMENT
    assert "samples.py" not in make_bundle(checks, ASSIGNMENT, config).files
    assert "probes.py" in make_bundle(checks, ASSIGNMENT, config).files
    before = assignment_fingerprint(course, ASSIGNMENT, checks)
    guarded = protected_text(checks, course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert [path for path in guarded.values() if path.name == "samples.py"] == []
    samples_path(course).write_text(samples_path(course).read_text() + "\n# edited\n")
    assert assignment_fingerprint(course, ASSIGNMENT, checks) == before
    (checks / "probes.py").write_text((checks / "probes.py").read_text() + "\n# edited\n")
    assert assignment_fingerprint(course, ASSIGNMENT, checks) != before  # the fingerprint does see grading files
