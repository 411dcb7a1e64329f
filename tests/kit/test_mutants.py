"""coursekit verify --mutants: mutation testing of the hidden checks (issue 19).

The operators are shown on the course's own solutions (no grading: fast); then verify --mutants grades a small
slice for real, linear1's mutants, against a probe made narrow as issue 19 found it (one input, every
prediction positive): the relu-, abs- and clamp-wrapped linear1 survive and are named, with why. The full run
on every assignment, each in under 10 minutes, is `make bench` (bench/mutants.py)."""
import re

from conftest import ASSIGNMENT, REPO, make_course, run_coursekit

from coursekit.mutants import make_mutants, solution_cells, toml_entry

SOURCE = REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def changes(step: str) -> dict[str, str]:
    return {m.change: m.operator for m in make_mutants(SOURCE, [step])}


def test_the_operators_model_this_courses_mistakes():
    """mutmut's operators and the course's, each on the step where issue 19 met its mistake."""
    linear1 = changes("linear1")
    assert linear1["`return xb@weights + bias` -> `return torch.relu(xb@weights + bias)`"] == "course:wrap_in_relu"
    assert linear1["`return xb@weights + bias` -> `return (xb@weights + bias).clamp(min=0)`"] == "course:wrap_in_clamp"
    assert linear1["`return xb@weights + bias` -> `return xb@weights - bias`"] == "mutmut:operator_swap_op"
    accuracy = changes("accuracy")
    line = "return ((preds > 0.0) == (targets == 1)).float().mean().item()"
    assert accuracy[f"`{line}` -> `{line.replace('>', '>=')}`"] == "mutmut:operator_swap_op"
    assert accuracy[f"`{line}` -> `{line.replace('0.0', '-1.0')}`"] == "course:move_threshold"
    loss = changes("mnist_loss")
    assert loss["`predictions = predictions.sigmoid()` -> `predictions = predictions`"] == "course:drop_call"
    assert any(change.endswith(".sum()`") and operator == "course:swap_reduction" for change, operator in loss.items())


def test_mutants_change_the_solution_only():
    """The lines a cell gives (its def line, a display line after the solution) are the release's: never mutated."""
    for step, (code, lines) in solution_cells(SOURCE).items():
        given = [line for i, line in enumerate(code.splitlines(), start=1) if i not in lines]
        for mutant in make_mutants(SOURCE, [step]):
            kept = mutant.code.splitlines()
            assert all(line in kept for line in given), (step, mutant.change)
            assert mutant.code != code


def test_verify_mutants_names_the_survivors_of_a_narrow_probe(tmp_path):
    """linear1's probe narrowed to inputs whose predictions are all positive (as issue 19 found it):
    graded for real, the relu- and clamp-wrapped linear1 survive, each named with its step, its mutation and why
    (the probe values equal the reference's). The abs-wrapped one, recorded as equivalent, is not reported; a
    record that matches no mutant is a fault."""
    course = make_course(tmp_path / "course")
    checks = course / "tests" / "hidden" / ASSIGNMENT
    probes = checks / "probes.py"
    # every input of one sign again: the signed batch replaced by xb (pixels 0-1), the new weights made positive
    narrowed = probes.read_text().replace('_name(ns, "linear1")(inputs["signed_xb"])', '_name(ns, "linear1")(inputs["xb"])').replace(
        '"next_weights": torch.randn(28 * 28, 1, generator=g),', '"next_weights": torch.randn(28 * 28, 1, generator=g).abs(),')
    assert narrowed != probes.read_text()
    probes.write_text(narrowed)
    abs_mutant = next(m for m in make_mutants(SOURCE, ["linear1"]) if m.operator == "course:wrap_in_abs")
    (checks / "equivalent_mutants.toml").write_text(
        toml_entry(abs_mutant, "recorded here to show a record is honoured") +
        '\n[[mutant]]\nstep = "linear1"\nchange = "`return xb@weights + bias` -> `return 2 * xb@weights + bias`"\nreason = "stale"\n')
    result = run_coursekit(course, "verify", ASSIGNMENT, "--mutants", "--step", "linear1", "--workers", "2", status=1)
    summary = next(line for line in result.stdout.splitlines() if line.startswith("mutants:"))
    assert re.match(r"^mutants: 4 made, 1 killed, 1 recorded as equivalent \(equivalent_mutants.toml\), 2 survived", summary), summary
    faults = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("FAULT mutant")]
    why = "every probe value of linear1 equals the reference's: no input of probe_linear1 tells it apart"
    for wrapped in ("torch.relu(xb@weights + bias)", "(xb@weights + bias).clamp(min=0)"):
        assert any(f.startswith(f"FAULT mutant: linear1: `return xb@weights + bias` -> `return {wrapped}`") and why in f
                   for f in faults), (wrapped, faults)
    assert not any("abs()" in f for f in faults), faults
    assert any("records linear1 `return xb@weights + bias` -> `return 2 * xb@weights + bias`, which no mutant" in f for f in faults)
    assert "[[mutant]]" in result.stdout  # a survivor's record, ready to paste once the author judged it equivalent
