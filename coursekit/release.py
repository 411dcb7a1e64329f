"""Stage: turn source/<assignment> into the student version in release/<assignment>.

nbgrader's generate_assignment does the work (stubs, locked cells, checksums,
gradebook entries); this module adds a check that nothing of a solution or a
hidden test made it into what students get.
"""
from __future__ import annotations

import json
from pathlib import Path

from .course import CourseError, nbgrader_api, source_notebooks

REGIONS = (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"), ("BEGIN MARK SCHEME", "END MARK SCHEME"))
MIN_LEAK_LENGTH = 12  # shorter lines ("return x") are too common to call a leak


def release_assignment(root: Path, assignment: str) -> list[Path]:
    """Regenerate release/<assignment> and the gradebook's record of it; return the released notebooks."""
    api = nbgrader_api(root)
    result = api.generate_assignment(assignment, force=True)
    if not result["success"]:
        raise CourseError(f"nbgrader could not release {assignment}:\n{result.get('log', '')}{result.get('error', '')}")
    released = []
    for source in source_notebooks(root, assignment):
        target = root / "release" / assignment / source.name
        leaks = leaked_lines(source, target)
        if leaks:
            raise CourseError(f"{target} reveals {len(leaks)} line(s) of solutions or hidden tests, e.g. {leaks[0]!r}")
        label_notebook(target, assignment)
        released.append(target)
    return released


def label_notebook(path: Path, assignment: str) -> None:
    """Record the assignment and file name, so that `coursekit check` can tell a student who renamed it."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["coursekit"] = {"assignment": assignment, "notebook": path.name}
    nbformat.write(notebook, path)


def protected_lines(notebook: Path) -> set[str]:
    """Lines inside solution, hidden-test and mark-scheme regions of a source notebook."""
    lines, inside = set(), False
    for cell in json.loads(notebook.read_text())["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if any(begin in line for begin, _ in REGIONS):
                inside = True
            elif any(end in line for _, end in REGIONS):
                inside = False
            elif inside and len(line.strip()) > MIN_LEAK_LENGTH:
                lines.add(line.strip())
    return lines


def leaked_lines(source: Path, released: Path) -> list[str]:
    text = "\n".join("".join(cell["source"]) for cell in json.loads(released.read_text())["cells"])
    markers = [marker for region in REGIONS for marker in region if marker in text]
    return sorted(markers + [line for line in protected_lines(source) if line in text])
