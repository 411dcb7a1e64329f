"""coursekit new: a new assignment's skeleton, one working step that `coursekit verify` passes.

The step (`to_unit`: pixels from 0-255 to 0-1) shows each file's part, so that an instructor copies the
pattern for every further step: the source notebook (prose, a given cell, the answer cell with its
solution, a test cell of visible asserts), its probe, a hidden check, and a sample mistake. The
authoring guide, docs/authoring.md, walks through adding a step.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .course import CourseError, hidden_checks_dir, load_config

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def nbgrader_cell(make, source: str, grade_id: str, *, solution=False, grade=False, locked=False, points=None):
    cell = make(source)
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                                 "solution": solution, "task": False}
    if points is not None:
        cell.metadata["nbgrader"]["points"] = points
    return cell


def source_notebook(assignment: str) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                                "language_info": {"name": "python"}})
    nb.cells = [
        new_markdown_cell(f"# {assignment}\n\n"
                          "Say here what this assignment builds and why, as the lesson does: prose first, then code, then "
                          "its output. Each step has a cell marked `# YOUR CODE HERE` for the answer, followed by checks "
                          "you can run yourself."),
        nbgrader_cell(new_code_cell, "import torch\nfrom torch import tensor", "setup", locked=True),
        new_markdown_cell("## Step 1: pixels from 0–255 to 0–1\n\n"
                          "A grayscale image stores each pixel as a whole number from 0 (black) to 255 (white). Models "
                          "learn better from small floats, so we divide by 255. Write `to_unit(x)`, which takes a tensor "
                          "of pixel values and returns them as floats from 0 to 1."),
        nbgrader_cell(new_code_cell, "def to_unit(x):\n    ### BEGIN SOLUTION\n    return x.float() / 255\n    ### END SOLUTION",
                      "to_unit", solution=True),
        nbgrader_cell(new_code_cell,
                      "# Checks you can run yourself\n"
                      "scaled = to_unit(tensor([0, 51, 255]))\n"
                      "assert scaled.is_floating_point(), \"to_unit should return floats: call .float()\"\n"
                      "assert torch.allclose(scaled, tensor([0.0, 0.2, 1.0])), \"to_unit should map 0 to 0.0 and 255 to 1.0\"\n"
                      "print('looks right')",
                      "test_to_unit", grade=True, locked=True, points=2),
    ]
    return nb


PROBES = '''"""What the grader asks of each submission of {assignment}, one probe per answer cell.

This file runs inside the student's kernel. probe_<step>(run_cell) runs the step's answer cell (with any
stand-ins for what it uses passed as keyword arguments) and returns a dict of functions; the grader calls
each and sends its value back to the hidden checks as data. No reference values and no assertions here:
those stay with the grader.
"""
import torch


def _defined(cell_names, wanted):
    """What the student's cell defined under `wanted`; a NameError, which the check reports, if nothing."""
    if wanted not in cell_names:
        raise NameError(f"{{wanted}} is not defined")
    return cell_names[wanted]


def probe_to_unit(run_cell):
    cell_names = run_cell()
    # every value a byte can hold, in an integer tensor, as images give them
    pixels = torch.arange(0, 256, dtype=torch.uint8).reshape(16, 16)
    return {{"scaled": lambda: _defined(cell_names, "to_unit")(pixels)}}
'''

CHECKS = '''"""Hidden checks of {assignment}: each is a plain pytest test of one step, worth part of its points.

`student` and `reference` give what the probes brought back from the student's kernel and from the
source solution's kernel. A failing check's message is the hint the student reads: say what is wrong
in the lesson's words, never the reference's values.
"""
import pytest
import torch


@pytest.mark.grade("to_unit", points=1)
def test_to_unit_returns_floats(student):
    """to_unit returns a float tensor"""
    scaled = student.tensor("to_unit", "scaled")
    assert scaled.is_floating_point(), "to_unit should return floats: integers cannot hold values between 0 and 1; call .float()"


@pytest.mark.grade("to_unit", points=1)
def test_to_unit_maps_0_255_onto_0_1(student, reference):
    """to_unit maps 0 to 0 and 255 to 1, in proportion"""
    scaled, expected = student.tensor("to_unit", "scaled"), reference.tensor("to_unit", "scaled")
    assert scaled.shape == expected.shape, "to_unit should keep the shape of what it is given"
    assert torch.allclose(scaled.double(), expected.double(), atol=1e-6), (
        "to_unit does not map 0-255 onto 0-1: divide by 255, the largest pixel value")
'''

SAMPLES = '''"""Sample submissions of {assignment}: the source solution typed into the release, with one typical mistake
or one equivalent rewrite each (coursekit.samples.Sample). `coursekit verify` grades them all, `coursekit demo`
the DEMO ones. They hold answers: they live here, beside the hidden checks, and grading never reads them.
"""
from coursekit.samples import Sample

SAMPLES = [
    # a mistake: its step, the edit to the solution's answer, and a word its hint must hold
    Sample("divides_by_256", "to_unit", (("/ 255", "/ 256"),), hint="255"),
    # an equivalent rewrite: must earn full marks
    Sample("multiplies_by_a_fraction", "to_unit", (("x.float() / 255", "x.float() * (1 / 255)"),), mistake=False),
]
DEMO = ["divides_by_256"]
WRITTEN_ANSWER = ""
'''

PYTEST_INI = """[pytest]
# The hidden checks are run by coursekit.checks, which gives them the student and reference fixtures.
python_files = test_*.py
"""


def write_skeleton(root: Path, assignment: str) -> list[Path]:
    """Write source/<assignment>/<assignment>.ipynb and its hidden checks folder; the paths written."""
    if not NAME.fullmatch(assignment):
        raise CourseError(f"{assignment!r} is not a usable assignment name: use letters, digits and _, starting with a letter")
    source = root / "source" / assignment
    checks = hidden_checks_dir(load_config(root), root, assignment)
    for folder in (source, checks):
        if folder.exists():
            raise CourseError(f"{folder} exists already: coursekit new writes a new assignment only")
    source.mkdir(parents=True)
    checks.mkdir(parents=True)
    notebook = source / f"{assignment}.ipynb"
    nbformat.write(source_notebook(assignment), notebook)
    files = {"probes.py": PROBES, f"test_{assignment}.py": CHECKS, "samples.py": SAMPLES, "pytest.ini": PYTEST_INI}
    written = [notebook]
    for name, text in files.items():
        (checks / name).write_text(text.format(assignment=assignment))
        written.append(checks / name)
    return written
