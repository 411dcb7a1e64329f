"""What a student installs holds no answer: the wheel built from pyproject.toml, scanned against every
assignment's solution lines, sample submissions and hidden checks."""
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, SAMPLES, WRITTEN_ANSWERS

from coursekit.grader_text import MIN_LEAK_LENGTH, grading_code, notebook_lines
from coursekit.samples import answers, apply_edits

# what a course folder holds besides the package: not needed to build the wheel, and kept out of the copy
NOT_BUILT = (".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "submitted", "autograded", "feedback",
             "reports", "downloaded", "bundles", "exchange", "gradebook.db", ".pytest-screenshots")


IMPORT = re.compile(r"(from\s+[\w.]+\s+)?import\s+[\w., ]+")  # `import random` tells nothing of an answer


def assignments() -> list[str]:
    return sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir())


def secret_lines() -> dict[str, str]:
    """line -> where it comes from: the lines of each source solution (less those the release gives), of each
    hidden check and probe, and of each sample submission's answers and written answer; less bare imports and
    what the checks' authors wrote into hints for students ("call p.grad.zero_()")."""
    secret, hints = {}, ""
    for assignment in assignments():
        source = REPO / "source" / assignment / f"{assignment}.ipynb"
        solution, given = notebook_lines(source)
        secret.update({line: f"the solution of {assignment}" for line in solution - given})
        code, strings = grading_code(REPO / "tests" / "hidden" / assignment)
        hints += strings
        secret.update({line: f"{path.relative_to(REPO)}" for line, path in code.items() if line not in given})
        solutions = answers(source)
        for sample in SAMPLES[assignment]:
            for line in apply_edits(solutions[sample.step], sample).splitlines():
                if len(line.strip()) > MIN_LEAK_LENGTH and line.strip() not in given:
                    secret.setdefault(line.strip(), f"the sample submission {assignment}/{sample.name}")
        secret[WRITTEN_ANSWERS[assignment]] = f"the sample written answer of {assignment}"
    return {line: origin for line, origin in secret.items() if not IMPORT.fullmatch(line) and line not in hints}


def leaks(wheel: Path, secret: dict[str, str]) -> list[str]:
    """'file: line (where it comes from)' for each secret line found in a text file of the wheel."""
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            text = archive.read(name).decode("utf-8", errors="ignore")
            found += [f"{name}: {line!r} ({origin})" for line, origin in secret.items() if line in text]
    return sorted(found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of the project (so that the build leaves nothing in the worktree)."""
    work = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, work / "project", ignore=shutil.ignore_patterns(*NOT_BUILT))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "--wheel-dir", str(work / "dist"), str(work / "project")], capture_output=True, text=True)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (built,) = (work / "dist").glob("coursekit-*.whl")
    return built


def test_wheel_holds_no_answer(wheel):
    secret = secret_lines()
    assert len(secret) > 200  # the scan has something to look for: solutions, checks, samples of every assignment
    with zipfile.ZipFile(wheel) as archive:
        assert "coursekit/cli.py" in archive.namelist()  # the package itself is what is scanned
    assert leaks(wheel, secret) == []


def test_scan_finds_a_planted_line(tmp_path):
    """The scan can fail: a wheel that carries one line of a solution is caught."""
    secret = secret_lines()
    # a solution line that holds no other secret line (a sample's line can be part of a solution's)
    planted = next(line for line, origin in sorted(secret.items()) if origin.startswith("the solution of")
                   and not any(other in line for other in secret if other != line))
    wheel = tmp_path / "planted.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("coursekit/helpers.py", f"def helper():\n    {planted}\n")
    assert leaks(wheel, secret) == [f"coursekit/helpers.py: {planted!r} ({secret[planted]})"]
