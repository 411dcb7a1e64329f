"""Run the installed nbgrader's own tests, stock or with the kit's pipeline injected, and read the outcome.

The tests: nbgrader's autograde and generate_feedback apps and every preprocessor test
(214 pass and 2 are skipped in stock nbgrader 0.9.6). Injected, nbgrader_suite_plugin.py
appends the kit's configuration to each test course's nbgrader_config.py and puts the
kit's steps into the preprocessors' unit tests. Used by tests/kit/test_nbgrader_suite.py
(a subset, in `make test`) and bench/nbgrader_suite.py (all of them, in `make bench`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import nbgrader

KIT_TESTS = Path(__file__).resolve().parent
NBGRADER_TESTS = Path(nbgrader.__file__).resolve().parent / "tests"
SUITE = ["apps/test_nbgrader_autograde.py", "apps/test_nbgrader_generate_feedback.py", "preprocessors"]

# nbgrader's tests that assert a behaviour the kit changes on purpose: test id -> why (the README lists them too)
CHANGED_ON_PURPOSE = {
    "preprocessors/test_overwritecells.py::TestOverwriteCells::test_add_missing_cells": (
        "a deleted locked cell (task cells are locked) is put back where it stood in source/, not at the end of the "
        "notebook, by RestoreCellMetadata before OverwriteCells, and a note at the top of the notebook says so (the "
        "feedback shows it); the graded cells nbgrader adds back are where nbgrader puts them"),
    "apps/test_nbgrader_autograde.py::TestNbGraderAutograde::test_side_effects": (
        "a file the notebook writes beside itself is not in autograded/ afterwards: in the sandbox every folder a "
        "kernel can write is a private tmpfs, so a submission never writes the grading machine's disk"),
}


@dataclass
class SuiteRun:
    injected: bool
    seconds: float
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed, failed, skipped
    messages: dict[str, str] = field(default_factory=dict)  # test id -> the failure's message
    durations: dict[str, float] = field(default_factory=dict)  # test id -> seconds (junit's time)
    output: str = ""

    def ids(self, outcome: str) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o == outcome)

    def counts(self) -> str:
        return (f"{len(self.ids('passed'))} passed, {len(self.ids('failed'))} failed, {len(self.ids('skipped'))} skipped "
                f"in {self.seconds:.0f} s")

    def unexpected(self) -> dict[str, str]:
        """Failures not listed in CHANGED_ON_PURPOSE, with their messages; and listed tests that now pass."""
        found = {t: self.messages.get(t, "") for t in self.ids("failed") if t not in CHANGED_ON_PURPOSE}
        if self.injected:
            found.update({t: "listed in CHANGED_ON_PURPOSE but it passed: take it off the list (and the README)"
                          for t in CHANGED_ON_PURPOSE if self.outcomes.get(t) == "passed"})
        return found


def test_id(case: ElementTree.Element) -> str:
    """apps.test_x.TestX + test_y (junit's names, relative to nbgrader/tests) -> apps/test_x.py::TestX::test_y"""
    parts = case.get("classname", "").split(".")
    modules = [p for p in parts if not p[:1].isupper()]
    return "::".join(["/".join(modules) + ".py", *parts[len(modules):], case.get("name", "")])


def run_suite(selection: list[str] | None = None, injected: bool = True, evidence: Path | None = None,
              course: Path | None = None, timeout: float = 3600) -> SuiteRun:
    """Run nbgrader's tests (the whole SUITE, or `selection`: ids relative to nbgrader/tests) in a subprocess;
    injected, with the course_config.py of `course` (default: this repository's)."""
    with tempfile.TemporaryDirectory(prefix="nbgrader-suite-") as folder:
        folder = Path(folder)
        (folder / "pytest.ini").write_text("[pytest]\n")  # none of the kit's pytest settings
        report = folder / "report.xml"
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        plugin = []
        if injected:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KIT_TESTS), env.get("PYTHONPATH")]))
            plugin = ["-p", "nbgrader_suite_plugin"]
        if course is not None:
            env["COURSEKIT_SUITE_COURSE"] = str(course)
        if evidence is not None:
            env["COURSEKIT_SUITE_EVIDENCE"] = str(evidence)
        targets = [str(NBGRADER_TESTS / t) for t in (selection or SUITE)]
        started = time.monotonic()
        # from site-packages, as nbgrader's InstantiateTests tests expect (they read nbgrader/docs/... from there)
        result = subprocess.run([sys.executable, "-m", "pytest", "-c", str(folder / "pytest.ini"), "--rootdir",
                                 str(NBGRADER_TESTS), "-p", "no:cacheprovider", *plugin, "-q", "-W", "ignore",
                                 f"--junitxml={report}", *targets],
                                cwd=NBGRADER_TESTS.parents[1], env=env, capture_output=True, text=True, timeout=timeout)
        run = SuiteRun(injected, time.monotonic() - started, output=result.stdout + result.stderr)
        if not report.exists():
            raise RuntimeError(f"nbgrader's tests did not run (exit {result.returncode}):\n{run.output[-3000:]}")
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            name = test_id(case)
            run.durations[name] = float(case.get("time") or 0)
            failure = case.find("failure") if case.find("failure") is not None else case.find("error")
            if failure is not None:
                run.outcomes[name] = "failed"
                run.messages[name] = (failure.get("message") or "")[:500]
            elif case.find("skipped") is not None:
                run.outcomes[name] = "skipped"
            else:
                run.outcomes[name] = "passed"
        return run
