"""Fixtures for the kit's own tests: a real course directory in a temporary folder,
graded once per session by the real `coursekit` command."""
import ast
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from coursekit.course import SAMPLES_FILE
from coursekit.grader_text import notebook_lines
from coursekit.samples import make_submission, require_samples, write_samples, write_submission

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "mnist_sgd"
TRAINING = "sgd_training"  # the second assignment, graded by the same machinery
SIMPLE_NET = "simple_net"  # the third
COURSEKIT = [sys.executable, "-m", "coursekit.cli"]
# Short limits, so that a hanging submission costs seconds, not minutes; long enough that the training
# run's probe (seconds of SGD on the MNIST sample) finishes on a busy 2-core machine
TEST_LIMITS = "\nc.ExecuteAndProbe.timeout = 15\nc.ExecuteAndProbe.probe_timeout = 15\n"
# each assignment's sample submissions (tests/hidden/<assignment>/samples.py), and the written answer they give
SAMPLES = {a: require_samples(REPO, a).samples for a in (ASSIGNMENT, TRAINING, SIMPLE_NET)}
WRITTEN_ANSWERS = {a: require_samples(REPO, a).written_answer for a in (ASSIGNMENT, TRAINING, SIMPLE_NET)}


@pytest.fixture(scope="session", autouse=True)
def reference_cache(tmp_path_factory):
    """Every coursekit run of the session keeps the reference solution's values (reference_store.py) in a folder of
    the session's own: shared by its courses, which have the same notebooks and checks, and never what another
    session left in ~/.cache."""
    os.environ["COURSEKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("reference_cache"))
    return Path(os.environ["COURSEKIT_CACHE_DIR"])


# the session fixtures that grow from the demo's course
DEMO_FIXTURES = ("demo_course", "graded_course", "graded_training", "graded_simple_net")


def demo_tests(path: Path) -> set[str]:
    """The tests of a file that use the demo's course: those whose decorators, signature or body name one of
    DEMO_FIXTURES (or one by GRADED[...]), or a function of the file that does (a module fixture built on it, a helper)."""
    text = path.read_text()
    lines = text.splitlines()
    functions = {node.name: "\n".join(lines[min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1:node.end_lineno])
                 for node in ast.parse(text).body if isinstance(node, ast.FunctionDef)}
    uses, grown = set(DEMO_FIXTURES), True
    while grown:  # GRADED[...]: an assignment's graded fixture, by name
        found = {name for name, source in functions.items()
                 if name not in uses and re.search(r"\bGRADED\[|\b(" + "|".join(map(re.escape, uses)) + r")\b", source)}
        uses |= found
        grown = bool(found)
    return {name for name in uses if name.startswith("test_")}


DEMO_TESTS = {path.name: demo_tests(path) for path in Path(__file__).parent.glob("test_*.py")}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which would pick its load scheduling
def pytest_xdist_make_scheduler(config, log):
    """make test runs in two processes (pyproject.toml). Each takes whole files, so that a file's module-scoped
    fixtures are built once; but every test that uses the demo's course goes to one process, which grades that
    course once for them all, while the other tests of its file may run elsewhere. (pytest-xdist's own --dist
    loadgroup does not group under pytest 9: it renames item._nodeid, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, test = nodeid.partition("::")
            if test.split("::")[-1].split("[")[0] in DEMO_TESTS.get(Path(path).name, ()):
                return "the demo's course"
            return path

    return CourseScheduling(config, log)


SCREENSHOTS = REPO / ".pytest-screenshots"  # what a browser test showed when it failed, and the pages staff look at


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails leaves a screenshot of its page (any fixture that is a dict with a "driver")."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in item.funcargs.values():
        driver = value.get("driver") if isinstance(value, dict) else None
        if driver is not None:
            SCREENSHOTS.mkdir(exist_ok=True)
            path = SCREENSHOTS / f"{item.name}.png"
            try:
                driver.save_screenshot(str(path))
                report.sections.append(("screenshot", f"{path} ({driver.current_url})"))
            except Exception as exc:  # the browser itself may be what failed
                report.sections.append(("screenshot", f"none: {type(exc).__name__}: {exc}"))


def make_course(folder: Path) -> Path:
    """A course directory like the repository's: source, release, hidden checks, config (both files)."""
    for name in ("source", "release"):
        shutil.copytree(REPO / name, folder / name)
    shutil.copytree(REPO / "tests" / "hidden", folder / "tests" / "hidden", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "course_config.py").write_text((REPO / "course_config.py").read_text() + TEST_LIMITS)
    shutil.copy(REPO / "nbgrader_config.py", folder / "nbgrader_config.py")
    return folder


def run_coursekit(course: Path, *args, check=True, status: int = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a coursekit command in the course, with `env` added to the environment; with check, its exit status must
    be `status` (coursekit grade: 1 when some submission is NOT GRADED, as a run with a deliberately broken one expects)."""
    result = subprocess.run([*COURSEKIT, *args], cwd=course, capture_output=True, text=True, timeout=3000,
                            env={**os.environ, **env} if env else None)
    if check and result.returncode != status:
        raise AssertionError(f"coursekit {' '.join(args)} exited {result.returncode}, not {status}:\n{result.stdout}\n{result.stderr}")
    return result


def cgroups_left_behind(started: float, ended: float) -> list[str]:
    """Kernel cgroups made between started and ended (time.time()), still there, with no process in it: what a run
    should have removed. A test process beside this one may have kernels running, with processes in their cgroups;
    one ending at this moment is given 2 s, in which its grader removes them."""
    def empty_ones():
        found = []
        for cgroup in Path("/sys/fs/cgroup/pids/coursekit").glob("k*"):
            try:
                made = cgroup.stat().st_mtime
                if started - 1 <= made <= ended + 1 and not (cgroup / "cgroup.procs").read_text().split():
                    found.append(cgroup.name)
            except OSError:  # removed meanwhile
                pass
        return found

    if empty_ones():
        time.sleep(2)
    return empty_ones()


def hidden_check_names(assignment: str = ASSIGNMENT) -> list[str]:
    """The names of the hidden checks and probes: none may appear in anything students see."""
    names = []
    for module in (REPO / "tests" / "hidden" / assignment).glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith(("test_", "probe_")):
                names.append(node.name)
    return names


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def demo_course(tmp_path_factory):
    """A course in which `coursekit demo` (what `make demo` runs) graded the DEMO samples of every assignment.

    The graded classes below grow from it: their runs keep what the demo graded (unchanged submissions are
    not graded twice) and grade the other samples, so each sample is graded once in the whole test session.
    What the demo wrote is read at once, before those runs add to the reports."""
    course = make_course(tmp_path_factory.mktemp("course"))
    result = run_coursekit(course, "demo")
    grades = {a: {row["student"]: row for row in read_csv(course / "reports" / a / "grades.csv")} for a in GRADED}
    return {"course": course, "output": result.stdout, "grades": grades}


@pytest.fixture(scope="session")
def graded_course(demo_course):
    """Every sample submission plus broken ones, graded by `coursekit grade` (the demo's samples kept)."""
    course = demo_course["course"]
    write_samples(course, ASSIGNMENT)
    source = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    full = make_submission(source, release, None)
    write_submission(course, ASSIGNMENT, "not_json", b"{ this is not a notebook")
    write_submission(course, ASSIGNMENT, "renamed", full, name="mnist_sgd (1).ipynb")
    dies = nbformat.from_dict(full)
    hangs = nbformat.from_dict(full)
    for nb, grade_id, code in ((dies, "linear1", "import os\nos._exit(1)"),
                               (hangs, "accuracy", "def accuracy(preds, targets):\n    while True:\n        pass")):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        cell.source = code
    write_submission(course, ASSIGNMENT, "kernel_dies", dies)
    edited = nbformat.from_dict(full)
    next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "make_params").source = "weights = bias = None"
    write_submission(course, ASSIGNMENT, "edits_locked_cell", edited)
    write_submission(course, ASSIGNMENT, "hangs", hangs)
    # not_json, renamed and kernel_dies are NOT GRADED: the run exits 1
    result = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "2", status=1)
    grades = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    checks = read_csv(course / "reports" / ASSIGNMENT / "checks.csv")
    return {"course": course, "output": result.stdout, "grades": grades, "checks": checks}


def notebook_paths(course: Path, assignment: str) -> tuple[Path, Path]:
    return (course / "source" / assignment / f"{assignment}.ipynb", course / "release" / assignment / f"{assignment}.ipynb")


def graded_samples(course: Path, assignment: str, again: str | None = None) -> dict:
    """Every sample submission of an assignment, graded in one run on 2 workers (those the demo graded are kept);
    `again`, a sample graded twice."""
    write_samples(course, assignment)
    if again:  # graded under two names: a seeded training run must give the very same outcome both times
        sample = next(s for s in SAMPLES[assignment] if s.name == again)
        write_submission(course, assignment, f"{again}_again", make_submission(*notebook_paths(course, assignment), sample))
    result = run_coursekit(course, "grade", assignment, "--workers", "2")
    grades = {row["student"]: row for row in read_csv(course / "reports" / assignment / "grades.csv")}
    checks = read_csv(course / "reports" / assignment / "checks.csv")
    return {"course": course, "output": result.stdout, "grades": grades, "checks": checks}


@pytest.fixture(scope="session")
def graded_training(demo_course):
    """Every sample submission of the second assignment, graded in one run; one of them twice."""
    return graded_samples(demo_course["course"], TRAINING, again="learning_rate_too_small")


@pytest.fixture(scope="session")
def graded_simple_net(demo_course):
    """Every sample submission of the third assignment, graded in one run."""
    return graded_samples(demo_course["course"], SIMPLE_NET)


GRADED = {ASSIGNMENT: "graded_course", TRAINING: "graded_training", SIMPLE_NET: "graded_simple_net"}
MISTAKES = [(a, s) for a in GRADED for s in SAMPLES[a] if s.mistake]
EQUIVALENTS = [(a, s) for a in GRADED for s in SAMPLES[a] if not s.mistake]


def grader_lines(assignment: str) -> set[str]:
    """Written here on its own terms, not with the guard's code: every code line of the probes and hidden
    checks long enough to mean something and free of quotes, and every solution line that the release does
    not show anyway; less what the checks' authors wrote into hints for students ("call p.grad.zero_()")."""
    lines, hints = set(), []
    for module in (REPO / "tests" / "hidden" / assignment).glob("*.py"):
        if module.name == SAMPLES_FILE:  # what sample students write, not the grader's
            continue
        text = module.read_text()
        hints += [node.value for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
        for line in text.splitlines():
            line = line.strip()
            if len(line) >= 20 and not line.startswith("#") and '"' not in line and "'" not in line:
                lines.add(line)
    solution, given = notebook_lines(REPO / "source" / assignment / f"{assignment}.ipynb")
    return {line for line in (lines | solution) - given if not any(line in hint for hint in hints)}


def page_text(path: Path) -> str:
    """A feedback page as the student reads it: no tags, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def grader_lines_shown(course: Path, assignment: str) -> dict[str, list[str]]:
    """student -> the grader's lines that their autograded notebook's outputs or their feedback page show,
    leaving out the lines the student wrote themselves."""
    secret = grader_lines(assignment)
    shown = {}
    for notebook in sorted((course / "autograded").glob(f"*/{assignment}/{assignment}.ipynb")):
        student = notebook.parts[-3]
        nb = json.loads(notebook.read_text())
        own = "\n".join("".join(c["source"]) for c in nb["cells"]
                        if not c["metadata"].get("nbgrader", {}).get("locked") and not c["metadata"].get("nbgrader", {}).get("grade_id", "").startswith("test_"))
        outputs = "\n".join(texts([c.get("outputs", []) for c in nb["cells"]]))
        feedback = course / "feedback" / student / assignment / f"{assignment}.html"
        text = outputs + "\n" + (page_text(feedback) if feedback.exists() else "")
        hits = sorted(line for line in secret if line in text and line not in own)
        if hits:
            shown[student] = hits
    return shown


BASE64_IMAGES = ("image/png", "image/jpeg", "image/gif")  # base64: no line of code can be read in them


def texts(value) -> list[str]:
    """Every string inside a notebook's outputs (stream text, tracebacks, each mime type but base64 images)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() if k not in BASE64_IMAGES for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def assert_no_grader_line_shown(course: Path, assignment: str, at_least: int = 10) -> None:
    """The walk over every graded submission of a course: no grader line shown, nothing the guard had to withhold."""
    graded = list((course / "autograded").glob(f"*/{assignment}/{assignment}.ipynb"))
    assert len(graded) >= at_least, "the walk should cover every graded submission"
    assert grader_lines_shown(course, assignment) == {}
    # clean by construction: the kit's own hints never needed the guard
    assert [c for c in read_csv(course / "reports" / assignment / "checks.csv") if c["withheld"]] == []

