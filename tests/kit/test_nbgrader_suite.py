"""nbgrader's own tests, with the kit's pipeline injected (nbgrader_suite_plugin.py), pass.

`make test` runs a subset chosen to cover every piece the kit puts into nbgrader: grading
through the kit's sanitize and autograde lists in the sandbox, a notebook that is not the
assignment's failing loudly, nbgrader's Execute.timeout and NBGRADER_EXECUTION reaching the
sandboxed kernel, locked cells' checksums surviving CleanForStaff, the feedback exporter, and
OverwriteCells' unit tests behind RestoreCellMetadata. `make bench` runs all of them
(bench/nbgrader_suite.py), stock and injected. Tests that assert a behaviour the kit changes on
purpose are in CHANGED_ON_PURPOSE (nbgrader_suite.py), with the reason, and in the README.
"""
import json
from pathlib import Path

import pytest
from nbgrader_suite import CHANGED_ON_PURPOSE, run_suite
from traitlets.config.loader import PyFileConfigLoader

from conftest import REPO

AUTOGRADE = "apps/test_nbgrader_autograde.py::TestNbGraderAutograde::"
UNIT_TESTS = ["test_overwrite_points", "test_overwrite_locked_source_markdown", "test_nonexistent_grade_id"]
SUBSET = [
    f"{AUTOGRADE}test_grade",
    f"{AUTOGRADE}test_handle_failure",
    f"{AUTOGRADE}test_autograde_timeout",
    f"{AUTOGRADE}test_hidden_tests_single_notebook",
    "apps/test_nbgrader_generate_feedback.py::TestNbGraderFeedback::test_single_file",
    # OverwriteCells' unit tests behind RestoreCellMetadata: each makes a gradebook (about 6 s), so three here
    *(f"preprocessors/test_overwritecells.py::TestOverwriteCells::{name}" for name in UNIT_TESTS),
]


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    evidence = tmp_path_factory.mktemp("evidence")
    return {"run": run_suite(SUBSET, injected=True, evidence=evidence), "evidence": evidence}


def test_nbgraders_own_tests_pass_with_the_kits_pipeline(injected):
    run = injected["run"]
    assert sorted(run.outcomes) == sorted(SUBSET), run.output[-3000:]
    assert run.unexpected() == {}, run.output[-5000:]
    assert run.ids("passed") == sorted(SUBSET)


def test_each_test_course_gets_the_kits_pipeline_from_course_config(injected):
    """The injected configuration is course_config.py's, read when the suite runs: a change to the kit's
    pipeline is what nbgrader's tests then run."""
    course = PyFileConfigLoader("course_config.py", path=str(REPO)).load_config()
    graded = [name.split("::")[-1] for name in SUBSET if name.startswith("apps/")]
    for test in graded:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(injected["evidence"] / test)).load_config()
        for section, trait in (("Autograde", "autograde_preprocessors"), ("Autograde", "sanitize_preprocessors"),
                               ("GenerateFeedback", "exporter_class"), ("HTMLExporter", "filters"), ("Sandbox", "mode")):
            assert config[section][trait] == course[section][trait], f"{test}: {section}.{trait}"
        assert not list(Path(config.HiddenChecks.checks_root).iterdir()), "the hidden checks: an empty folder"


def test_the_kits_steps_ran_in_nbgraders_tests(injected):
    """What only the kit's steps leave behind: RestoreCellMetadata's record in every autograded notebook,
    and, in OverwriteCells' unit tests, RestoreCellMetadata run before it."""
    notebooks = list((injected["evidence"] / "test_grade" / "autograded").glob("*/ps1/*.ipynb"))
    assert len(notebooks) == 2
    for path in notebooks:
        assert json.loads(path.read_text())["metadata"]["coursekit"] == {"repairs": []}, path
    steps = [injected["evidence"] / name / "steps.txt" for name in UNIT_TESTS]
    for log in steps:
        ran = [line.split()[0] for line in log.read_text().splitlines()]
        assert ran[:2] == ["RestoreCellMetadata", "OverwriteCells"], log


def test_a_broken_piece_of_the_kit_fails_nbgraders_test(tmp_path):
    """The same injection, from a course_config.py whose ExecuteAndProbe runs no cell (no time for the
    notebook): nbgrader's test_grade then fails. The runs above are of the kit's own pipeline, and can fail."""
    (tmp_path / "course_config.py").write_text((REPO / "course_config.py").read_text() + "\nc.ExecuteAndProbe.notebook_timeout = 0\n")
    run = run_suite([f"{AUTOGRADE}test_grade"], injected=True, course=tmp_path)
    assert run.ids("failed") == [f"{AUTOGRADE}test_grade"], run.output[-3000:]
    assert "assert 0" in run.messages[f"{AUTOGRADE}test_grade"]  # foo's score: 0 where nbgrader expects 1


def test_changed_on_purpose_are_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for test, reason in CHANGED_ON_PURPOSE.items():
        assert test.split("::")[-1] in readme and reason.split(":")[0][:40] in readme, test
