"""Stage: judge one submission with the assignment's hidden pytest checks.

A hidden check is a plain pytest test in tests/hidden/<assignment>/test_*.py:

    @pytest.mark.grade("<step>", points=<points>)   # the grade id of the answer cell; part of its points
    def test_<what_it_checks>(student, reference):
        "what the check looks for, in a line"
        ...
        assert_close(actual, expected, msg="the hint a student reads")

`student` and `reference` give the values the probes brought back from the
student's kernel and from the reference solution's kernel. Checks run here,
in the grader's process. A failing check's message is the hint; nothing else
of the failure (no values, no traceback) reaches the student.

`HiddenChecks` is the nbgrader preprocessor that runs them after execution and
turns each test cell's output into hints plus a partial-credit score.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from .course import has_hidden_checks
from .execute import execute_and_probe, probes_file

NOT_ATTEMPTED = "NotImplementedError"


class StepFailed(AssertionError):
    """A value a check needs could not be had; the message is the hint."""


class ProbeValues:
    """The values one kernel's probes returned, as a check asks for them."""

    def __init__(self, probes: dict, who: str):
        self.probes, self.who = probes, who

    def value(self, step: str, name: str):
        """What the probe brought back under `name`; a value that raised fails the check with the error as hint."""
        result, entry = self._entry(step, name)
        if "error" in entry:
            cause = result.get("cell_error") or entry["error"]
            raise StepFailed(f"{name}: {entry['error']}" + (f" (your cell raised {cause})" if result.get("cell_error") else ""))
        return entry["ok"]

    def error(self, step: str, name: str) -> str | None:
        """The error the student's code raised for `name`, or None: for checks that explain particular errors."""
        return self._entry(step, name)[1].get("error")

    def _entry(self, step: str, name: str) -> tuple[dict, dict]:
        result = self.probes.get(step)
        if result is None:
            raise StepFailed(f"this step was not checked: the grader has no values for {step!r}")
        if result.get("probe_error"):
            raise StepFailed(result["probe_error"])  # a hint the kit wrote (execute.run_probes)
        entry = result["values"].get(name)
        if entry is None:
            raise StepFailed(f"the grader has no value {name!r} for {step!r}")
        # the stub itself, or a stub that an earlier unfinished step kept from running to its end
        if "error" in entry and (NOT_ATTEMPTED in (result.get("cell_error") or entry["error"]) or entry["error"].startswith(NOT_ATTEMPTED)):
            raise StepFailed("not attempted yet: the answer cell still raises NotImplementedError")
        return result, entry

    def tensor(self, step: str, name: str) -> torch.Tensor:
        found = self.value(step, name)
        if type(found) is not torch.Tensor:
            raise StepFailed(f"{name} should be a tensor, but it is {describe_type(found)}")
        return found


def as_number(value) -> float | None:
    """For checks: a plain number or a one-element tensor as a float; None for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if type(value) is torch.Tensor and value.numel() == 1:
        return float(value.reshape(()))
    return None


def describe_type(value) -> str:
    if isinstance(value, dict) and "__object__" in value:
        return f"a {value['__object__']}"
    return f"a {type(value).__name__}"


@dataclass
class CheckResult:
    step: str
    check: str
    description: str
    points: float
    passed: bool
    hint: str
    withheld: str = ""  # the file a hint quoted, when the guard (guard.py) withheld it


class _CheckPlugin:
    """Gives hidden checks their fixtures and records each outcome."""

    def __init__(self, student: ProbeValues, reference: ProbeValues):
        self.student_values, self.reference_values = student, reference
        self.results: list[CheckResult] = []

    @pytest.fixture
    def student(self):
        return self.student_values

    @pytest.fixture
    def reference(self):
        return self.reference_values

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "grade(step, points): the grade id of the answer cell this check scores, and its points")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        marker = item.get_closest_marker("grade")
        if marker is None or not (report.when == "call" or report.failed):
            return report
        step = marker.kwargs.get("step", marker.args[0] if marker.args else "")
        hint = ""
        if report.failed:
            exc = call.excinfo.value if call.excinfo else None
            if isinstance(exc, (AssertionError, pytest.fail.Exception)):
                hint = str(exc).split("\nassert ")[0].strip()
            else:  # the check itself broke on an unexpected value: say so without showing it
                hint = f"this could not be checked on what your code returned ({type(exc).__name__ if exc else 'error'})"
        doc = (item.function.__doc__ or item.name).strip().splitlines()[0]
        self.results.append(CheckResult(step, item.name, doc, float(marker.kwargs.get("points", 1)), report.passed, hint))
        return report


# pytest's session (run_checks) and nbgrader's converters (autograde, generate_feedback in scratch_grade) each move
# the process into another working folder while they run, and at their end go back to the one they found. A worker
# runs its jobs in threads, so they take turns: overlapping, a pytest session that began while nbgrader was in a job's
# scratch course went back there after it was deleted (FileNotFoundError: 6 of 129 submissions in one bench run of
# verify --mutants, each then graded a second time by the coordinator). Reentrant: a check run inside autograde is fine.
working_folder_lock = threading.RLock()


def run_checks(checks_dir: Path, student: dict, reference: dict) -> list[CheckResult]:
    """Run every hidden check of one assignment against one submission's probe values.

    An assignment without hidden checks (no test_*.py) has no results: its visible tests decide, as in nbgrader.
    """
    if not has_hidden_checks(checks_dir):
        return []
    plugin = _CheckPlugin(ProbeValues(student, "student"), ProbeValues(reference, "reference"))
    # plugins a check never needs; unraisableexception alone costs two full gc.collect() per run
    skipped = [arg for name in ("cacheprovider", "terminal", "unraisableexception", "threadexception", "logging", "faulthandler", "pastebin", "junitxml", "doctest", "nose", "stepwise", "lsof")
               for arg in ("-p", f"no:{name}")]
    args = [str(checks_dir), *skipped, "--assert=plain",
            "-c", str(checks_dir / "pytest.ini"), "--rootdir", str(checks_dir), "-W", "ignore"]
    with working_folder_lock, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = pytest.main(args, plugins=[plugin])
    if code not in (0, 1):
        raise RuntimeError(f"the hidden checks in {checks_dir} could not run (pytest exit code {code})")
    # a check module imported once stays cached: drop it so edits show up in the next run
    for name in [m for m, mod in sys.modules.items() if getattr(mod, "__file__", None) and str(checks_dir) in str(mod.__file__)]:
        del sys.modules[name]
    return plugin.results


def step_scores(results: list[CheckResult]) -> dict[str, tuple[float, float]]:
    """step -> (points earned, points possible), as the checks' markers give them."""
    scores: dict[str, tuple[float, float]] = {}
    for r in results:
        earned, possible = scores.get(r.step, (0.0, 0.0))
        scores[r.step] = (earned + (r.points if r.passed else 0.0), possible + r.points)
    return scores


def require_working_reference(probes: dict, notebook) -> dict:
    """The reference solution's probe values, or an error naming the steps where it fails its own probes."""
    broken = {step: r.get("grader_error") or r.get("probe_error") or r.get("cell_error")  # staff read the grader's own error
              for step, r in probes.items() if r.get("probe_error") or r.get("cell_error")}
    if broken:
        raise RuntimeError(f"the reference solution {notebook} fails its own probes: {broken}")
    return probes


_reference_cache: dict[str, dict] = {}


def reference_probes(source_notebook: Path, assignment: str, checks_root: Path, **traits) -> dict:
    """The reference solution's probe values: the source notebook run once per process and file version."""
    key = hashlib.sha256(source_notebook.read_bytes() + probes_file(checks_root, assignment).read_bytes()).hexdigest()
    if key not in _reference_cache:
        notebook = nbformat.read(source_notebook, as_version=4)
        _, probes = execute_and_probe(notebook, assignment, checks_root, source_notebook.parent, reference=True, **traits)
        _reference_cache[key] = require_working_reference(probes, source_notebook)
    return _reference_cache[key]


def feedback_text(step: str, results: list[CheckResult], earned: float, possible: float) -> str:
    lines = [f"Grader's checks for {step}: {earned:g} of {possible:g} points"]
    for r in results:
        lines.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.description}")
        if not r.passed and r.hint:
            lines.append(f"        hint: {r.hint}")
    return "\n".join(lines) + "\n"


class HiddenChecks(NbGraderPreprocessor):
    """Score each autograded test cell from the hidden checks of its step.

    Runs after ExecuteAndProbe and before SaveAutoGrades. Each test_<grade_id>
    cell gets its visible output (errors turned into plain text, so that they
    do not zero the cell on their own), the checks' hints, and as its result
    the points earned, which nbgrader reads as partial credit. The outcome of
    every check is kept in the cell's metadata under "coursekit".
    """

    checks_root = Unicode("tests/hidden", help="Folder holding <assignment>/test_*.py and probes.py.").tag(config=True)
    source_directory = Unicode("source", help="Folder holding <assignment>/<notebook>.ipynb, the reference solution.").tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        checks_dir = Path(self.checks_root) / assignment
        if not has_hidden_checks(checks_dir):  # an ordinary nbgrader assignment: the visible asserts decide
            return nb, resources
        worker_results = resources.get("coursekit", {}).get("checks")
        if worker_results is not None:  # a coursekit worker already ran the checks on this very notebook
            results = [CheckResult(**r) for r in worker_results]
        else:
            reference = reference_probes(Path(self.source_directory) / assignment / f"{notebook}.ipynb", assignment, Path(self.checks_root))
            results = run_checks(checks_dir, resources.get("coursekit", {}).get("probes", {}), reference)
        scores = step_scores(results)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            step = grade_id.removeprefix("test_")
            if cell.cell_type != "code" or not grade_id.startswith("test_") or step not in scores:
                continue
            earned, possible = scores[step]
            max_points = float(cell.metadata["nbgrader"].get("points", possible))
            points = round(max_points * earned / possible, 4) if possible else 0.0
            step_results = [r for r in results if r.step == step]
            cell.outputs = visible_outputs(cell.outputs) + [
                new_output("stream", name="stdout", text=feedback_text(step, step_results, points, max_points)),
                new_output("execute_result", data={"text/plain": f"{points:g}"}, execution_count=cell.get("execution_count")),
            ]
            cell.metadata["coursekit"] = {"points": points, "max_points": max_points, "checks": [asdict(r) for r in step_results]}
        return nb, resources


def visible_outputs(outputs: list) -> list:
    """What the visible asserts printed, as plain stdout: the hidden checks alone decide the score."""
    kept = []
    for output in outputs:
        if output.output_type == "stream":
            kept.append(new_output("stream", name="stdout", text=output.text))
        elif output.output_type == "error" and output.ename in TIME_LIMIT_ERRORS:
            # the kernel's KeyboardInterrupt and nbclient's CellTimeoutError: one stop, said once, in words
            note = "Your visible checks stopped here: the cell ran past its time limit, so the grader stopped it\n"
            if not any(o.get("text") == note for o in kept):
                kept.append(new_output("stream", name="stdout", text=note))
        elif output.output_type == "error":
            kept.append(new_output("stream", name="stdout", text=f"Your visible checks stopped here: {output.ename}: {output.evalue}\n"))
    return kept


TIME_LIMIT_ERRORS = ("KeyboardInterrupt", "CellTimeoutError")
