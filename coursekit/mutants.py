"""coursekit verify --mutants: the hidden checks have no blind spot, shown by mutation testing.

Each step's reference solution (the lines between BEGIN and END SOLUTION in source/) is changed in one
place at a time. The changes are mutmut's operators (`mutmut.mutation.mutators.mutation_operators`:
numbers +1, > to >=, + to -, True to False, an argument removed, `a = b` to `a = None`, ...), applied by
mutmut's own visitor, and the course's own, which model this course's typical mistakes: a return wrapped
in relu, abs or clamp(min=0); a call dropped (`.sigmoid()`, `.mean()`, `.unsqueeze(1)`); a statement
that is a lone call dropped (a backward pass, an optimizer's step); mean and sum swapped; a threshold moved down by one.

Each mutant is a submission: the release with every answer filled in from the source and one answer
mutated. They are graded with the real pipeline in the same scratch course, in the same run, as verify's
samples. A mutant that earns full marks in its own step's test cell survives. A survivor the author judged
equivalent is recorded in tests/hidden/<assignment>/equivalent_mutants.toml, with its reason, and is not
reported again; a recorded one that loses points is a fault (either the record or a check is wrong).
For every other survivor verify runs its notebook's probes once more and compares them with the
reference's, to say why it survived: the probes never saw a difference (their inputs are too narrow), or
they did and no check compared it.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import nbformat

from .samples import Sample, solution_code

EQUIVALENTS_FILE = "equivalent_mutants.toml"

# calls whose result is the tensor they are called on, changed: dropping one is a typical slip
DROPPABLE_CALLS = {"sigmoid", "mean", "sum", "float", "long", "item", "unsqueeze", "squeeze", "view", "reshape", "flatten",
                   "requires_grad_", "detach", "exp", "log", "round", "zero_", "clamp", "relu", "abs", "t", "stack"}
SWAPPED_NAMES = {"mean": "sum", "sum": "mean", "max": "min", "min": "max"}


@dataclass(frozen=True)
class Mutant:
    step: str
    operator: str  # "mutmut:operator_swap_op", "course:wrap_in_relu", ...
    change: str  # the mutation in one line: `old` -> `new`
    code: str  # the whole answer cell, mutated

    def as_sample(self, name: str) -> Sample:
        return Sample(name, self.step, ((None, self.code),), mistake=True, hint="")


@dataclass(frozen=True)
class Equivalent:
    step: str
    change: str
    reason: str


def solution_cells(source_notebook: Path) -> dict[str, tuple[str, set[int]]]:
    """grade id -> (the answer as solution_code gives it, the numbers of its lines that lie between the markers)."""
    found = {}
    for cell in nbformat.read(source_notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        inside, number, lines = False, 0, set()
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
                continue
            if "END SOLUTION" in line:
                inside = False
                continue
            number += 1
            if inside:
                lines.add(number)
        found[meta["grade_id"]] = (solution_code(cell.source), lines)
    return found


def one_line(old: str, new: str) -> str:
    """The mutation in one line: the first line that changed, before and after (a removed line reads as `pass`)."""
    before, after = old.splitlines(), new.splitlines()
    for i, line in enumerate(before):
        if i >= len(after) or after[i] != line:
            changed = after[i].strip() if i < len(after) and len(after) == len(before) else "(line removed)"
            return f"`{line.strip()}` -> `{changed}`"
    return "`(no change)`"


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _course_mutations(node: cst.CSTNode):
    """(operator, mutated node) for the course's own operators on one node."""
    if isinstance(node, cst.Return) and node.value is not None:
        value = _code(node.value)
        for name, text in (("wrap_in_relu", f"torch.relu({value})"), ("wrap_in_abs", f"({value}).abs()"),
                           ("wrap_in_clamp", f"({value}).clamp(min=0)")):
            yield name, node.with_changes(value=cst.parse_expression(text))
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        if node.func.attr.value in DROPPABLE_CALLS:
            yield "drop_call", node.func.value
        if node.func.attr.value in SWAPPED_NAMES:
            yield "swap_reduction", node.with_changes(func=node.func.with_changes(attr=cst.Name(SWAPPED_NAMES[node.func.attr.value])))
    if isinstance(node, cst.SimpleStatementLine) and len(node.body) == 1 and isinstance(node.body[0], cst.Expr) \
            and isinstance(node.body[0].value, cst.Call):
        if not _is_plot_call(node.body[0].value, decoration_only=True):  # dropping plt.xlabel(...) changes nothing graded
            yield "drop_statement", node.with_changes(body=[cst.Pass()])
    if isinstance(node, cst.ComparisonTarget) and isinstance(node.comparator, (cst.Integer, cst.Float)):
        moved = node.comparator.evaluated_value - 1
        yield "move_threshold", node.with_changes(comparator=cst.parse_expression(repr(float(moved)) if isinstance(node.comparator, cst.Float) else str(moved)))


def _is_plot_call(node: cst.CSTNode, decoration_only: bool = False) -> bool:
    """A matplotlib call (plt.xlabel(...), plt.plot(...)); decoration_only: one that draws no data (all but plt.plot)."""
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name)
            and node.func.value.value == "plt" and not (decoration_only and node.func.attr.value == "plot"))


class _NotGraded(cst.CSTVisitor):
    """Every node inside a plt call's arguments, or a docstring. The kit judges a plot by the values it draws (its
    lines' y data), so its labels, axis titles and x positions are the student's to choose, and a docstring is text:
    mutating them makes equivalents by contract, each a grading run spent for nothing."""

    def __init__(self):
        super().__init__()
        self.inside: set[int] = set()

    def visit_Expr(self, node: cst.Expr) -> bool:
        if isinstance(node.value, cst.BaseString):  # a docstring: text, not code (mutmut skips only triple-quoted ones)
            self.inside |= {id(n) for n in _descendants(node.value)}
        return True

    def visit_Call(self, node: cst.Call) -> bool:
        if _is_plot_call(node):
            for arg in node.args:
                self.inside |= {id(n) for n in _descendants(arg)}
        return True


def _descendants(node: cst.CSTNode):
    yield node
    for child in node.children:
        yield from _descendants(child)


class _CourseVisitor(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (cst.metadata.PositionProvider,)

    def __init__(self, lines: set[int]):
        super().__init__()
        self.lines, self.found = lines, []

    def on_visit(self, node: cst.CSTNode) -> bool:
        position = self.get_metadata(cst.metadata.PositionProvider, node, None)
        if position is not None and position.start.line in self.lines:
            self.found += [(f"course:{name}", node, new) for name, new in _course_mutations(node)]
        return True


def step_mutants(step: str, code: str, lines: set[int]) -> list[Mutant]:
    """Every mutant of one answer: mutmut's operators, then the course's, on its solution lines only; each distinct."""
    from mutmut.mutation.file_mutation import MutationVisitor, deep_replace
    from mutmut.mutation.mutators import mutation_operators
    from mutmut.mutation.pragma_handling import IgnoredCode

    # mutmut's own visitor, told to leave the given lines alone as a `# pragma: no mutate` would
    given = {i for i in range(1, len(code.splitlines()) + 1) if i not in lines}
    wrapper = cst.metadata.MetadataWrapper(cst.parse_module(code))
    visitor = MutationVisitor(mutation_operators, IgnoredCode(given, set(), set()))
    wrapper.visit(visitor)
    plots = _NotGraded()
    wrapper.module.visit(plots)
    changes = []
    for mutation in visitor.mutations:
        if id(mutation.original_node) in plots.inside or _is_plot_call(mutation.original_node):
            continue
        operator = next((f"mutmut:{op.__name__}" for t, op in mutation_operators if isinstance(mutation.original_node, t)
                         and any(_code(new) == _code(mutation.mutated_node) for new in _safe(op, mutation.original_node))), "mutmut")
        changes.append((operator, deep_replace(wrapper.module, mutation.original_node, mutation.mutated_node)))
    course = _CourseVisitor(lines)
    wrapper.visit(course)
    changes += [(operator, deep_replace(wrapper.module, old, new)) for operator, old, new in course.found if id(old) not in plots.inside]
    mutants, seen = [], {_normal(code)}
    for operator, changed in changes:
        text = changed.code
        normal = _normal(text)
        if normal is None or normal in seen:  # does not compile, or the same program as the solution or an earlier mutant
            continue
        seen.add(normal)
        mutants.append(Mutant(step, operator, one_line(code, text), text))
    return mutants


def _safe(operator, node):
    try:
        return list(operator(node))
    except Exception:
        return []


def _normal(code: str) -> str | None:
    import ast

    try:
        return ast.dump(ast.parse(code))
    except SyntaxError:
        return None


def make_mutants(source_notebook: Path, steps: list[str] | None = None) -> list[Mutant]:
    """The mutants of every answer cell of the source notebook (of `steps` only, when given), in notebook order."""
    found = []
    for step, (code, lines) in solution_cells(source_notebook).items():
        if steps is None or step in steps:
            found += step_mutants(step, code, lines)
    return found


def equivalents_file(checks_dir: Path) -> Path:
    return checks_dir / EQUIVALENTS_FILE


def load_equivalents(checks_dir: Path) -> list[Equivalent]:
    """The survivors the author judged equivalent, each with its one-line reason."""
    path = equivalents_file(checks_dir)
    if not path.is_file():
        return []
    entries = tomllib.loads(path.read_text()).get("mutant", [])
    return [Equivalent(e["step"], e["change"], e["reason"]) for e in entries]


def toml_entry(mutant: Mutant, reason: str = "") -> str:
    """What the author pastes into equivalent_mutants.toml to record a survivor as equivalent."""
    return (f"[[mutant]]\nstep = {json.dumps(mutant.step)}\nchange = {json.dumps(mutant.change, ensure_ascii=False)}\n"
            f"reason = {json.dumps(reason or 'WHY IT IS EQUIVALENT, in one line')}\n")


def mutant_name(index: int) -> str:
    return f"mutant_{index:03d}"


def probe_differences(student: dict, reference: dict, step: str) -> list[str]:
    """The names of the step's probe values that differ between two runs of the probes."""
    mine, theirs = student.get(step, {}), reference.get(step, {})
    if mine.get("probe_error") or mine.get("cell_error"):
        return ["(its cell or probe raised)"]
    names = sorted(set(mine.get("values", {})) | set(theirs.get("values", {})))
    return [n for n in names if not same_value(mine.get("values", {}).get(n), theirs.get("values", {}).get(n))]


def same_value(a, b) -> bool:
    import torch

    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b) or (a.is_floating_point() and torch.allclose(a, b, equal_nan=True)))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


