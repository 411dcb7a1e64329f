"""What of the grader students must never see: the lines of solutions, hidden tests and grading code.

Two checks read these lines: the release check (release.py, bundles), which refuses a
student notebook that shows one, and the feedback guard (guard.py), which withholds
any line of grading output that quotes one.
"""
from __future__ import annotations

import io
import json
import tokenize
from pathlib import Path

from .course import grading_files

REGIONS = (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"), ("BEGIN MARK SCHEME", "END MARK SCHEME"))
MIN_LEAK_LENGTH = 12  # shorter lines ("return x") are too common to call a leak


def notebook_lines(notebook: Path) -> tuple[set[str], set[str]]:
    """(protected, given): the stripped lines inside solution, hidden-test and mark-scheme regions of a
    source notebook, and those outside them, which students are given anyway."""
    protected, given, inside = set(), set(), False
    for cell in json.loads(notebook.read_text())["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if any(begin in line for begin, _ in REGIONS):
                inside = True
            elif any(end in line for _, end in REGIONS):
                inside = False
            elif len(line.strip()) > MIN_LEAK_LENGTH:
                (protected if inside else given).add(line.strip())
    return protected, given


def protected_lines(notebook: Path) -> set[str]:
    """Lines inside solution, hidden-test and mark-scheme regions of a source notebook."""
    return notebook_lines(notebook)[0]


def leaked_lines(source: Path, released: Path) -> list[str]:
    text = "\n".join("".join(cell["source"]) for cell in json.loads(released.read_text())["cells"])
    markers = [marker for region in REGIONS for marker in region if marker in text]
    return sorted(markers + [line for line in protected_lines(source) if line in text])


def grading_code(checks_dir: Path) -> tuple[dict[str, Path], str]:
    """The code lines of an assignment's probes and hidden checks (line -> the file it is in), and the
    text of their string literals: the hints, which their authors wrote for students to read.

    A line counts as code when it holds more than strings, punctuation and comments: a docstring's lines
    and the continuation lines of a long hint do not, `return (a > 0).float().mean()` does.
    """
    code, strings = {}, []
    for path in grading_files(checks_dir, "*.py"):
        text = path.read_text()
        lines = text.splitlines()
        substantive: set[int] = set()
        try:
            for token in tokenize.generate_tokens(io.StringIO(text).readline):
                if token.type == tokenize.STRING or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                    strings.append(token.string)
                elif token.type in (tokenize.NAME, tokenize.NUMBER):
                    substantive.add(token.start[0])
        except (tokenize.TokenError, SyntaxError):
            substantive = set(range(1, len(lines) + 1))
        for number in sorted(substantive):
            line = lines[number - 1].strip()
            if len(line) > MIN_LEAK_LENGTH and not line.startswith("#"):
                code.setdefault(line, path)
    return code, "\n".join(strings)
