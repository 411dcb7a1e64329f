"""Nothing of the grader reaches a student: no line of the probes, the hidden checks or the solution
in an autograded notebook's outputs or a feedback page, a kit-written hint for a step that never
returns, and a guard that withholds a hint if it ever quotes the grader."""
import ast
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from conftest import (ASSIGNMENT, COURSEKIT, SIMPLE_NET, TRAINING, assert_no_grader_line_shown, grader_lines_shown, make_course, notebook_paths,
                      page_text, read_csv, run_coursekit)

from coursekit.guard import WITHHELD_HINT
from coursekit.samples import make_submission, write_submission

STEPS = {
    ASSIGNMENT: ["flatten", "labels", "datasets", "init_params", "linear1", "accuracy", "mnist_loss", "dataloader"],
    TRAINING: ["calc_grad", "train_epoch", "batch_accuracy", "validate_epoch", "basic_optim", "train_model", "training_run"],
    SIMPLE_NET: ["relu", "init", "simple_net", "seq_net", "learner", "net_run"],
}


@pytest.mark.parametrize("fixture,assignment", [("graded_course", ASSIGNMENT), ("graded_training", TRAINING),
                                                ("graded_simple_net", SIMPLE_NET)])
def test_no_line_of_the_grader_reaches_a_student(request, fixture, assignment):
    """Every sample submission of every assignment; test_hostile.py walks the hostile ones."""
    assert_no_grader_line_shown(request.getfixturevalue(fixture)["course"], assignment)


# loops only once the notebook's last cell has run; it sleeps as it waits, so that three courses waiting out 21
# timeouts at once do not take both cores from the other tests (a step that spins is graded_course's "hangs")
HANG = "while globals().get('GRADING_HAS_BEGUN'):\n    __import__('time').sleep(0.05)"


def hang_every_step(source: str) -> str:
    """An answer in which every function (methods too) starts with an endless loop, or, in a cell that
    defines nothing, the cell's own code does. The loops wait for the notebook's last cell, so the
    notebook itself runs through and only the probes meet them."""
    tree = ast.parse(source)
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        return HANG + "\n" + source
    lines = source.splitlines()
    for node in sorted(functions, key=lambda n: n.body[0].lineno, reverse=True):
        first = node.body[0]
        indent = " " * first.col_offset
        lines.insert(first.lineno - 1, "\n".join(indent + line for line in HANG.splitlines()))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def hanging_course(tmp_path_factory):
    """Every assignment, each with a submission whose every step loops forever when the grader probes it.

    One course per assignment, each with its own gradebook, graded at the same time: most of a run's time is
    spent waiting out the probes' timeouts."""
    courses, runs = {}, {}
    for assignment in STEPS:
        course = courses[assignment] = make_course(tmp_path_factory.mktemp(f"hanging_{assignment}"))
        with open(course / "course_config.py", "a") as config:
            # every step hangs: 5 s each (the reference gets longer); the notebook's own cells do not loop, so
            # they may take their time while the three runs share the machine
            config.write("\nc.ExecuteAndProbe.probe_timeout = 5\nc.ExecuteAndProbe.timeout = 120\n")
        nb = make_submission(*notebook_paths(course, assignment), None)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") in STEPS[assignment] and cell.cell_type == "code":
                cell.source = hang_every_step(cell.source)
        nb.cells.append(nbformat.v4.new_code_cell("GRADING_HAS_BEGUN = True"))
        write_submission(course, assignment, "hangs_everywhere", nb)
        runs[assignment] = subprocess.Popen([*COURSEKIT, "grade", assignment, "--workers", "1"], cwd=course,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {}
    for assignment, run in runs.items():
        out, err = run.communicate(timeout=1200)
        assert run.returncode == 0, f"coursekit grade {assignment} exited {run.returncode}:\n{out}\n{err}"
        outputs[assignment] = out
    return {"courses": courses, "outputs": outputs}


@pytest.mark.parametrize("assignment", list(STEPS))
def test_a_step_that_never_returns_gets_a_hint_in_words(hanging_course, assignment):
    course = hanging_course["courses"][assignment]
    checks = read_csv(course / "reports" / assignment / "checks.csv")
    for step in STEPS[assignment]:
        hints = {c["hint"] for c in checks if c["step"] == step}
        assert hints and all(c["passed"] == "False" for c in checks if c["step"] == step), step
        assert len(hints) == 1, (step, hints)
        hint = hints.pop()
        assert "within 5 s, so the grader stopped it: check it for a loop that never ends" in hint, (step, hint)
        assert re.match(r"^(`[\w.]+` did not return|your \w+ cell did not finish) within 5 s", hint), (step, hint)
        for word in ("IOPub", "CellTimeoutError", "preview", "exec(", "probe", "stand_in"):
            assert word not in hint, (step, hint)
    page = page_text(course / "feedback" / "hangs_everywhere" / assignment / f"{assignment}.html")
    assert "did not return within 5 s, so the grader stopped it" in page
    assert grader_lines_shown(course, assignment) == {}


def test_the_hint_names_the_function_that_loops(hanging_course):
    checks = read_csv(hanging_course["courses"][TRAINING] / "reports" / TRAINING / "checks.csv")
    hint = next(c["hint"] for c in checks if c["step"] == "validate_epoch")
    assert hint.startswith("`validate_epoch` did not return within 5 s"), hint
    checks = read_csv(hanging_course["courses"][ASSIGNMENT] / "reports" / ASSIGNMENT / "checks.csv")
    hint = next(c["hint"] for c in checks if c["step"] == "dataloader")
    assert hint.startswith("`DataLoader.__init__` did not return within 5 s"), hint


QUOTING_CHECK = '''
from pathlib import Path

import pytest


@pytest.mark.grade("accuracy", points=1)
def test_a_hint_that_quotes_the_probe(student):
    """a check whose hint, by a mistake of its author, quotes the probe"""
    probe = (Path(__file__).parent / "probes.py").read_text().splitlines()
    pytest.fail("compare with " + next(line for line in probe if line.startswith("def probe_accuracy")))
'''


def grade_with_quoting_check(folder: Path, guarded: bool) -> dict:
    course = make_course(folder)
    (course / "tests" / "hidden" / ASSIGNMENT / "test_zz_quotes.py").write_text(QUOTING_CHECK)
    if not guarded:  # the control: the same course without the guard in nbgrader's pipeline
        config = course / "course_config.py"
        config.write_text(config.read_text().replace('    "coursekit.guard.WithholdGraderText",', ""))
    write_submission(course, ASSIGNMENT, "ada", make_submission(*notebook_paths(course, ASSIGNMENT), None))
    output = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "1").stdout
    row = next(c for c in read_csv(course / "reports" / ASSIGNMENT / "checks.csv") if c["check"] == "test_a_hint_that_quotes_the_probe")
    return {"course": course, "output": output, "row": row,
            "page": page_text(course / "feedback" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.html"),
            "notebook": (course / "autograded" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()}


def test_the_guard_withholds_a_hint_that_quotes_the_grader(tmp_path):
    quoted = "def probe_accuracy(run_cell):"
    control = grade_with_quoting_check(tmp_path / "unguarded", guarded=False)
    assert quoted in control["page"] and quoted in control["row"]["hint"]  # so the check below can fail
    guarded = grade_with_quoting_check(tmp_path / "guarded", guarded=True)
    assert quoted not in guarded["page"] and quoted not in guarded["notebook"]
    assert guarded["row"]["hint"] == WITHHELD_HINT and WITHHELD_HINT in guarded["page"]
    assert guarded["row"]["withheld"] == f"tests/hidden/{ASSIGNMENT}/probes.py"
    assert (f"WARNING: ada: a line in test_accuracy (test_a_hint_that_quotes_the_probe) quoted tests/hidden/{ASSIGNMENT}/probes.py"
            in guarded["output"])
    nb = nbformat.reads(guarded["notebook"], as_version=4)
    assert nb.metadata["coursekit"]["withheld"] == [{"cell": "test_accuracy", "check": "test_a_hint_that_quotes_the_probe",
                                                     "file": f"tests/hidden/{ASSIGNMENT}/probes.py"}]
    # the student's other hints and scores are untouched: only the one line goes
    assert "Grader's checks for accuracy" in guarded["page"]
