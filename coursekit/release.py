"""Stage: turn source/<assignment> into the student version in release/<assignment>.

nbgrader's generate_assignment does the work (stubs, locked cells, checksums,
gradebook entries); this module adds a check that nothing of a solution or a
hidden test made it into what students get.
"""
from __future__ import annotations

from pathlib import Path

from .course import CourseError, nbgrader_api, source_notebooks
from .grader_text import leaked_lines



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
