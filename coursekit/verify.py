"""coursekit verify: an assignment keeps its promises, shown with the real grading pipeline.

An assignment is honest when its source solution earns full marks, its untouched release earns
nothing and reads "not attempted", each sample mistake costs points once, in its own step only,
with a hint holding its word, and each equivalent rewrite earns full marks. Its files must also
agree: every step a hidden check or probe names is in the notebook, each step's checks add up to
its test cell's points, each sample applies to the source, and the release shows no solution line.

`static_faults` reads the files; `grade_in_scratch` grades the solution, the release and every
sample in a scratch copy of the course (so the course's gradebook and reports stay as they are);
`judge` turns that run's grades.csv and checks.csv into faults. The kit's own tests call `judge`
on their graded classes, and `coursekit verify` runs all three.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .course import CourseError, grading_files, hidden_checks_dir, load_config, source_notebooks
from .grader_text import leaked_lines
from .mutants import equivalents_file, load_equivalents, make_mutants, mutant_name, probe_differences
from .report import NOT_ATTEMPTED, read_csv_rows
from .samples import CourseSamples, Sample, answers, apply_edits, load_samples, write_samples

SOLUTION, RELEASE = "full_marks", "untouched_release"  # the names write_samples gives them


@dataclass(frozen=True)
class Fault:
    kind: str  # solution, release, mistake, equivalent, points, step, sample, leak
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class Notebook:
    """What the source notebook of an assignment grades."""
    path: Path
    answers: list[str]  # grade ids of the code answer cells, in order
    test_points: dict[str, float]  # grade id of each autograded test cell -> its points
    manual: list[str]  # grade ids of the cells a person grades (a written answer)


def read_notebook(path: Path) -> Notebook:
    nb = nbformat.read(path, as_version=4)
    answer_ids, tests, manual = [], {}, []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if meta.get("solution") and cell.cell_type == "code":
            answer_ids.append(grade_id)
        if meta.get("grade") and meta.get("solution"):
            manual.append(grade_id)
        elif meta.get("grade") and cell.cell_type == "code":
            tests[grade_id] = float(meta.get("points", 0))
    return Notebook(path, answer_ids, tests, manual)


def grade_markers(checks_dir: Path) -> list[tuple[str, float, str]]:
    """(step, points, 'file:line check') of every @pytest.mark.grade(...) in the hidden checks."""
    found = []
    for module in grading_files(checks_dir, "test_*.py"):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) and decorator.func.attr == "grade":
                    keywords = {k.arg: k.value for k in decorator.keywords}
                    step = decorator.args[0] if decorator.args else keywords.get("step")
                    points = keywords.get("points")
                    found.append((step.value if isinstance(step, ast.Constant) else "?",
                                  float(points.value) if isinstance(points, ast.Constant) else 1.0,
                                  f"{module.name}:{node.lineno} {node.name}"))
    return found


def probe_steps(checks_dir: Path) -> list[tuple[str, str]]:
    """(step, function) of every probe_<step> and stand_in_<step> that probes.py defines."""
    probes = checks_dir / "probes.py"
    if not probes.is_file():
        return []
    steps = []
    for node in ast.parse(probes.read_text(), str(probes)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for prefix in ("probe_", "stand_in_"):
                if node.name.startswith(prefix):
                    steps.append((node.name.removeprefix(prefix), node.name))
    return steps


def static_faults(root: Path, assignment: str) -> list[Fault]:
    """What the files alone show: unknown steps, points that do not add up, samples that do not apply, leaks."""
    faults = []
    checks_dir = hidden_checks_dir(load_config(root), root, assignment)
    for source in source_notebooks(root, assignment):
        release = root / "release" / assignment / source.name
        if not release.is_file():
            faults.append(Fault("leak", f"{release} does not exist: run coursekit release {assignment}"))
        else:
            faults += [Fault("leak", f"{release} shows a line of the solution or hidden tests: {line!r}")
                       for line in leaked_lines(source, release)]
    notebook = read_notebook(source_notebooks(root, assignment)[0])
    markers = grade_markers(checks_dir)
    for step, points, where in markers:
        if step not in notebook.answers:
            faults.append(Fault("step", f"{checks_dir.name}/{where} grades step {step!r}, which "
                                        f"{notebook.path.name} does not have (its steps: {', '.join(notebook.answers)})"))
    for step, function in probe_steps(checks_dir):
        if step not in notebook.answers:
            faults.append(Fault("step", f"probes.py's {function} names step {step!r}, which {notebook.path.name} does not have"))
    totals: dict[str, float] = {}
    for step, points, _ in markers:
        totals[step] = totals.get(step, 0.0) + points
    for step, total in totals.items():
        cell = f"test_{step}"
        if step in notebook.answers and cell not in notebook.test_points:
            faults.append(Fault("points", f"the checks of {step!r} have no test cell {cell!r} to score in {notebook.path.name}"))
        elif cell in notebook.test_points and abs(total - notebook.test_points[cell]) > 1e-9:
            faults.append(Fault("points", f"the checks of {step!r} add up to {total:g} points, but its test cell {cell} "
                                          f"is worth {notebook.test_points[cell]:g}"))
    samples = load_samples(root, assignment)
    if samples is not None:
        faults += sample_faults(samples, notebook)
    return faults


def sample_faults(samples: CourseSamples, notebook: Notebook) -> list[Fault]:
    faults, solutions = [], answers(notebook.path)
    names = [s.name for s in samples.samples]
    for name in sorted({n for n in names if names.count(n) > 1}):
        faults.append(Fault("sample", f"{samples.path.name} defines {name!r} more than once"))
    for sample in samples.samples:
        if sample.name in (SOLUTION, RELEASE):
            faults.append(Fault("sample", f"{sample.name!r} is the name of the solution's or the release's run: rename the sample"))
        elif sample.step not in solutions:
            faults.append(Fault("sample", f"{sample.name} changes step {sample.step!r}, which {notebook.path.name} does not have"))
            continue
        try:
            changed = apply_edits(solutions[sample.step], sample)
        except ValueError as exc:
            faults.append(Fault("sample", str(exc)))
            continue
        if changed == solutions[sample.step]:
            faults.append(Fault("sample", f"{sample.name} leaves the {sample.step} answer as the solution has it"))
        if sample.mistake and not sample.hint:
            faults.append(Fault("sample", f"{sample.name} is a mistake with no hint word: name a word its hint must hold"))
    return faults


def judge(grades: dict[str, dict], checks: list[dict], samples: list[Sample], notebook: Notebook) -> list[Fault]:
    """The faults a graded run of the solution, the release and the samples shows (grades.csv's and checks.csv's rows)."""
    faults, full = [], notebook.test_points
    hidden = bool(checks)

    def scores(student: str, kind: str) -> dict[str, float] | None:
        row = grades.get(student)
        if row is None:
            faults.append(Fault(kind, f"{student} was not graded: it has no row in grades.csv"))
        elif row["status"].startswith("not graded") or not row["status"].startswith("graded"):
            faults.append(Fault(kind, f"{student} was NOT GRADED: {row.get('problem') or row['status']}"))
        else:
            return {cell: float(row[cell] or 0) for cell in full}
        return None

    def failed(student: str) -> list[dict]:
        return [c for c in checks if c["student"] == student and c["passed"] == "False"]

    solution = scores(SOLUTION, "solution")
    if solution is not None:
        faults += [Fault("solution", f"the source solution earns {solution[c]:g} of {full[c]:g} in {c}"
                                     + (f" (hint: {failed(SOLUTION)[0]['hint']})" if failed(SOLUTION) else ""))
                   for c in full if solution[c] < full[c]]
    release = scores(RELEASE, "release")
    if release is not None:
        faults += [Fault("release", f"the untouched release earns {release[c]:g} in {c}") for c in full if release[c] > 0]
        faults += [Fault("release", f"the untouched release fails {c['check']} with {c['hint']!r}, not 'not attempted'")
                   for c in failed(RELEASE) if not c["hint"].startswith(NOT_ATTEMPTED)]
    for sample in samples:
        got = scores(sample.name, "mistake" if sample.mistake else "equivalent")
        if got is None:
            continue
        if not sample.mistake:
            faults += [Fault("equivalent", f"{sample.name} is equivalent but earns {got[c]:g} of {full[c]:g} in {c}")
                       for c in full if got[c] < full[c]]
            continue
        own = f"test_{sample.step}"
        if own in full and got[own] >= full[own]:
            faults.append(Fault("mistake", f"{sample.name} loses nothing in {own}: no check catches it"))
        faults += [Fault("mistake", f"{sample.name} loses points outside its own step: {got[c]:g} of {full[c]:g} in {c}")
                   for c in full if c != own and got[c] < full[c]]
        if not hidden:
            continue  # visible tests only: their message is the hint, and nothing else is scored
        mine = [c for c in failed(sample.name) if c["step"] == sample.step]
        if len(mine) > 1:
            faults.append(Fault("mistake", f"{sample.name} fails {len(mine)} checks of {sample.step} "
                                           f"({', '.join(c['check'] for c in mine)}): a mistake should cost once"))
        if mine and sample.hint and not any(sample.hint.lower() in c["hint"].lower() for c in mine):
            faults.append(Fault("mistake", f"{sample.name}'s hint lacks {sample.hint!r}: {mine[0]['hint']!r}"))
    return faults


def scratch_course(root: Path, assignment: str, folder: Path) -> Path:
    """A course holding only this assignment, its configuration and its hidden checks, in `folder`."""
    for name in ("course_config.py", "nbgrader_config.py"):
        if (root / name).is_file():
            shutil.copy(root / name, folder / name)
    for part in ("source", "release"):
        if (root / part / assignment).is_dir():
            shutil.copytree(root / part / assignment, folder / part / assignment)
    checks_dir = hidden_checks_dir(load_config(root), root, assignment)
    if checks_dir.is_dir() and checks_dir.is_relative_to(root):  # elsewhere, the copied configuration still points at it
        shutil.copytree(checks_dir, folder / checks_dir.relative_to(root), ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def grade_in_scratch(root: Path, assignment: str, folder: Path, workers: int | None = None,
                     scheduler: str | None = None, mutants: list | None = None,
                     steps: list[str] | None = None, sandboxed: bool = True) -> tuple[dict, list, Path]:
    """Grade the solution, the release and every sample (of `steps` only, when given), and each mutant, in a scratch
    course in `folder` with `coursekit grade`, all in one run; (grades.csv's rows by student, checks.csv's rows, the run's log)."""
    course = scratch_course(root, assignment, folder)
    if mutants and not sandboxed and (course / "course_config.py").is_file():
        # every submission of this run is the author's own code (the solution, its samples, its mutants): nothing to
        # isolate, and the fork server's kernels, with torch imported once, grade them about 2.6 times faster
        with open(course / "course_config.py", "a") as config:
            config.write('\nc.Sandbox.mode = "none"  # coursekit verify --mutants: the author\'s own code only (--sandboxed keeps it)\n')
    from .samples import make_submission, write_submission

    source = source_notebooks(course, assignment)[0]
    release = course / "release" / assignment / source.name
    found = load_samples(course, assignment)
    if found is not None:
        write_samples(course, assignment, None if steps is None else [s.name for s in found.samples if s.step in steps])
    else:  # no samples.py: the solution and the release only
        write_submission(course, assignment, SOLUTION, make_submission(source, release, None, ""))
        write_submission(course, assignment, RELEASE, nbformat.read(release, as_version=4))
    for index, mutant in enumerate(mutants or []):  # a mutant is one more submission of the same run
        write_submission(course, assignment, mutant_name(index), make_submission(source, release, mutant.as_sample(mutant_name(index)),
                                                                                 found.written_answer if found else ""))
    log = course / "grade.log"
    command = [sys.executable, "-m", "coursekit.cli", "--course", str(course), "grade", assignment, "--regrade"]
    if workers:
        command += ["--workers", str(workers)]
    if scheduler:
        command += ["--scheduler", scheduler]
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=course, stdout=out, stderr=subprocess.STDOUT).returncode
    if code not in (0, 1):  # 1: some NOT GRADED, which judge reports
        raise CourseError(f"grading the samples of {assignment} failed (exit {code}); its log: {log}\n"
                          + "\n".join(log.read_text().splitlines()[-5:]))
    reports = course / "reports" / assignment
    grades = {row["student"]: row for row in read_csv_rows(reports / "grades.csv")}
    checks = read_csv_rows(reports / "checks.csv") if (reports / "checks.csv").is_file() else []
    return grades, checks, log


@dataclass
class MutationRun:
    """What `verify --mutants` found: every mutant, and which survived, were recorded equivalent, or were killed."""
    made: list
    killed: list
    equivalent: list  # (mutant, its record)
    survivors: list  # (mutant, why it survived)
    seconds: float = 0.0


def judge_mutants(grades: dict[str, dict], mutants: list, notebook: Notebook, equivalents: list) -> tuple[list[Fault], MutationRun]:
    """A mutant is killed when it loses points in its own step's test cell (or is not graded at all: its kernel died).
    A survivor recorded as equivalent is fine; a recorded one that loses points, or a record no mutant matches, is a fault."""
    faults, run = [], MutationRun(list(mutants), [], [], [])
    mutated = {m.step for m in mutants}  # with --step, the records of other steps are not in question
    records = {(e.step, e.change): e for e in equivalents if e.step in mutated}
    used = set()
    for index, mutant in enumerate(mutants):
        row, cell = grades.get(mutant_name(index)), f"test_{mutant.step}"
        record = records.get((mutant.step, mutant.change))
        if record is not None:
            used.add((mutant.step, mutant.change))
        graded = row is not None and row["status"].startswith("graded")
        survived = graded and cell in notebook.test_points and float(row[cell] or 0) >= notebook.test_points[cell]
        if record is not None:
            lost = [c for c in notebook.test_points if graded and float(row[c] or 0) < notebook.test_points[c]]
            if not graded or lost:
                faults.append(Fault("equivalent", f"the mutant of {mutant.step} {mutant.change} is recorded as equivalent "
                                                  f"({record.reason}) but " + (f"loses points in {', '.join(lost)}" if graded else
                                                                               f"was NOT GRADED: {row.get('problem') if row else 'no row'}")))
            run.equivalent.append((mutant, record))
        elif survived:
            run.survivors.append((mutant, ""))
        else:
            run.killed.append(mutant)
    for key in sorted(set(records) - used):
        faults.append(Fault("mutant", f"equivalent_mutants.toml records {key[0]} {key[1]}, which no mutant of the solution is any more: "
                                      "remove the record"))
    return faults, run


def explain_survivors(course: Path, assignment: str, run: MutationRun) -> None:
    """Why each survivor survived: its notebook's probes run once more, beside the reference's.

    Equal values mean the probes' inputs never tell it apart (widen them: both signs, values on a threshold,
    other sizes); different values mean a check saw them and compared too little."""
    from .checks import reference_probes
    from .execute import execute_and_probe

    checks_root = hidden_checks_dir(load_config(course), course, assignment).parent
    source = source_notebooks(course, assignment)[0]
    reference = reference_probes(source, assignment, checks_root)
    explained = []
    for mutant, _ in run.survivors:
        index = run.made.index(mutant)
        folder = course / "submitted" / mutant_name(index) / assignment
        try:
            _, probes = execute_and_probe(nbformat.read(folder / source.name, as_version=4), assignment, checks_root, folder)
            differ = probe_differences(probes, reference, mutant.step)
        except Exception as exc:  # the explanation is a courtesy: the survivor is reported all the same
            explained.append((mutant, f"(its probes could not be run again: {type(exc).__name__})"))
            continue
        if differ:
            why = (f"its probe values {', '.join(differ)} differ from the reference's, yet every check of {mutant.step} passed: "
                   "a check compares too little (compare each value, on every input)")
        else:
            why = (f"every probe value of {mutant.step} equals the reference's: no input of probe_{mutant.step} tells it apart "
                   "(give it inputs of both signs, values on each threshold, sizes with every remainder)")
        explained.append((mutant, why))
    run.survivors = explained


def verify(root: Path, assignment: str, workers: int | None = None, scheduler: str | None = None,
           keep: Path | None = None, mutants: bool = False, steps: list[str] | None = None,
           sandboxed: bool = False) -> tuple[list[Fault], dict]:
    """Every fault of the assignment, and what was graded (for the summary). With `mutants`, each step's solution
    is also mutated and every mutant graded in the same run (see coursekit/mutants.py); `steps` limits samples and mutants."""
    import time

    started = time.monotonic()
    faults = static_faults(root, assignment)
    notebook = read_notebook(source_notebooks(root, assignment)[0])
    found = load_samples(root, assignment)
    samples = [s for s in (found.samples if found else []) if steps is None or s.step in steps]
    if any(f.kind == "sample" for f in faults):  # a sample that does not apply cannot be written
        return faults, {"notebook": notebook, "samples": samples, "graded": False}
    made = make_mutants(notebook.path, steps) if mutants else []
    checks_dir = hidden_checks_dir(load_config(root), root, assignment)

    def run(folder: Path):
        grades, checks, log = grade_in_scratch(root, assignment, folder, workers, scheduler, made, steps, sandboxed)
        result = None
        if mutants:
            mutant_faults, result = judge_mutants(grades, made, notebook, load_equivalents(checks_dir))
            explain_survivors(folder, assignment, result)
            mutant_faults += [Fault("mutant", f"{m.step}: {m.change} [{m.operator}] survives, earning full marks in test_{m.step}: {why}")
                              for m, why in result.survivors]
            result.seconds = time.monotonic() - started
            return grades, checks, log, mutant_faults, result
        return grades, checks, log, [], result

    if keep is not None:
        keep.mkdir(parents=True, exist_ok=False)
        grades, checks, log, mutant_faults, result = run(keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix=f"coursekit-verify-{assignment}-") as folder:
            grades, checks, log, mutant_faults, result = run(Path(folder))
    faults += judge(grades, checks, samples, notebook) + mutant_faults
    return faults, {"notebook": notebook, "samples": samples, "graded": True, "hidden": bool(checks), "log": log,
                    "mutants": result, "equivalents_file": equivalents_file(checks_dir)}
