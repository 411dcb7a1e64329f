"""A pytest plugin that runs nbgrader's own tests with the kit's pipeline in place of nbgrader's.

Loaded with `-p nbgrader_suite_plugin` (tests/kit on PYTHONPATH) into a run of the installed
nbgrader's tests (nbgrader_suite.py starts such runs). It injects the kit in two places:

* the apps' tests (nbgrader autograde, generate_feedback): every test course gets an
  `nbgrader_config.py` from nbgrader's `temp_cwd` fixture; right after that fixture writes
  it, the kit's settings are appended, as `course_config.py` has them (the sanitize and
  autograde preprocessor lists, the sandbox, the feedback exporter and its filters, the
  kit's own steps' settings), less nbgrader's per-course settings (CourseDirectory,
  Exchange, Execute: the tests set their own). The hidden-check folders point at an empty
  folder, so the visible asserts decide, as for any ordinary nbgrader assignment; the
  source folder is the test course's. Settings a test appends later still win, as in nbgrader.
* the preprocessors' unit tests: where the kit's pipeline puts its own step before one of
  nbgrader's (RestoreCellMetadata before OverwriteCells), the test's module gets the kit's
  sequence under nbgrader's name, with SaveCells also writing the notebook it records as the
  source notebook that RestoreCellMetadata reads, as `generate_assignment` leaves it in source/.

COURSEKIT_SUITE_COURSE names another folder whose course_config.py to inject (default: this
repository's). With COURSEKIT_SUITE_EVIDENCE set to a folder, each apps' test leaves there the
`nbgrader_config.py` its commands read and the autograded notebooks it produced
(<test name>/...), so a test of ours can see that the kit's pipeline is what ran.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

REPO = Path(__file__).resolve().parents[2]
# nbgrader's own settings for one course: the tests set these themselves
NBGRADER_OWN = {"CourseDirectory", "Exchange", "Execute"}
MARK = "# coursekit: the kit's pipeline, injected by tests/kit/nbgrader_suite_plugin.py"
EVIDENCE = os.environ.get("COURSEKIT_SUITE_EVIDENCE")


# the course whose course_config.py is injected: this repository's, or another (a test breaks a piece of the kit in a copy)
COURSE = Path(os.environ.get("COURSEKIT_SUITE_COURSE", REPO))


def load_course_config():
    return PyFileConfigLoader("course_config.py", path=str(COURSE)).load_config()


def kit_settings(course_dir: str, empty_checks: str) -> dict[str, dict]:
    """course_config.py's settings for nbgrader's and the kit's classes, with the course's paths
    replaced: the hidden checks by an empty folder, source/ by the test course's."""
    config = load_course_config()
    paths = {str(COURSE / "tests" / "hidden"): empty_checks, str(COURSE / "source"): os.path.join(course_dir, "source")}
    settings = {}
    for section in sorted(config):
        if section in NBGRADER_OWN:
            continue
        settings[section] = {}
        for trait, value in config[section].items():
            if isinstance(value, str) and value.startswith(str(COURSE)):
                if value not in paths:
                    raise ValueError(f"course_config.py: {section}.{trait} = {value!r} is a path of the course that "
                                     "nbgrader_suite_plugin.py does not know how to point at a test course")
                value = paths[value]
            settings[section][trait] = value
    return settings


def config_text(settings: dict[str, dict]) -> str:
    lines = ["", MARK]
    for section, traits in settings.items():
        lines += [f"c.{section}.{trait} = {value!r}" for trait, value in traits.items()]
    return "\n".join(lines) + "\n"


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    result = yield
    if fixturedef.argname == "temp_cwd":  # nbgrader's: it has just written nbgrader_config.py into `result`
        empty = str(Path(tempfile.gettempdir()) / "coursekit-no-hidden-checks")
        os.makedirs(empty, exist_ok=True)
        course_dir = request.getfixturevalue("course_dir")
        with open(os.path.join(result, "nbgrader_config.py"), "a") as fh:
            fh.write(config_text(kit_settings(course_dir, empty)))
    return result


class SaveCellsAndSource:
    """nbgrader's SaveCells, which also leaves the notebook it records where RestoreCellMetadata reads the source."""

    def __init__(self, source_directory: str):
        from nbgrader.preprocessors import SaveCells

        self.save_cells, self.source_directory = SaveCells(), source_directory

    def preprocess(self, nb, resources):
        names = resources["nbgrader"]
        path = Path(self.source_directory) / names["assignment"] / f"{names['notebook']}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(copy.deepcopy(nb), str(path))
        return self.save_cells.preprocess(nb, resources)


def kit_overwrite_cells(source_directory: str, evidence: Path | None = None):
    """The kit's sanitize step as course_config.py orders it around OverwriteCells: RestoreCellMetadata,
    then OverwriteCells (whose traits a test sets, add_missing_cells say, as on nbgrader's)."""
    from nbgrader.preprocessors import OverwriteCells

    from coursekit.sanitize import RestoreCellMetadata

    class KitOverwriteCells(OverwriteCells):
        def preprocess(self, nb, resources):
            nb, resources = RestoreCellMetadata(source_directory=source_directory).preprocess(nb, resources)
            self.record("RestoreCellMetadata", nb)
            nb, resources = super().preprocess(nb, resources)
            self.record("OverwriteCells", nb)
            return nb, resources

        @staticmethod
        def record(step: str, nb) -> None:
            if evidence is not None:  # each step that ran, and the repairs RestoreCellMetadata recorded
                with open(evidence / "steps.txt", "a") as log:
                    log.write(f"{step} {nb.metadata.get('coursekit', {}).get('repairs')}\n")

    return KitOverwriteCells()


def kit_sanitize_order() -> list[str]:
    return [name.rsplit(".", 1)[-1] for name in load_course_config().Autograde.sanitize_preprocessors]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """The preprocessors' unit tests: the kit's sequence under nbgrader's name, where the kit adds a step before one."""
    module = getattr(item, "module", None)
    if module is None or not module.__name__.startswith("nbgrader.tests.preprocessors."):
        return (yield)
    order = kit_sanitize_order()
    if "OverwriteCells" in vars(module) and order.index("RestoreCellMetadata") < order.index("OverwriteCells"):
        source = tempfile.mkdtemp(prefix="coursekit-source-")
        evidence = None
        if EVIDENCE:
            evidence = Path(EVIDENCE) / item.name
            evidence.mkdir(parents=True, exist_ok=True)
        item.coursekit_restore = ({name: vars(module)[name] for name in ("SaveCells", "OverwriteCells")}, source)
        module.SaveCells = lambda: SaveCellsAndSource(source)
        module.OverwriteCells = lambda: kit_overwrite_cells(source, evidence)
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Before nbgrader's fixtures remove the test course: keep its configuration and autograded notebooks;
    after the test, nbgrader's own preprocessors back in their module."""
    if EVIDENCE and "temp_cwd" in item.fixturenames and "course_dir" in item.funcargs:
        kept = Path(EVIDENCE) / item.name
        kept.mkdir(parents=True, exist_ok=True)
        config = Path(item.funcargs["temp_cwd"]) / "nbgrader_config.py"
        if config.exists():
            shutil.copy(config, kept / "nbgrader_config.py")
        autograded = Path(item.funcargs["course_dir"]) / "autograded"
        if autograded.is_dir():
            shutil.copytree(autograded, kept / "autograded", dirs_exist_ok=True)
    try:
        return (yield)
    finally:
        if hasattr(item, "coursekit_restore"):
            original, source = item.coursekit_restore
            vars(item.module).update(original)
            shutil.rmtree(source, ignore_errors=True)
