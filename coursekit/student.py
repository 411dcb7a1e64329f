"""Stage: the student's side. Check a notebook before submitting; bundle what students get.

`check_notebook` runs a student's notebook from a fresh kernel, with the tests
that are in it and nothing else: no course directory, no gradebook, no hidden
check, no reference value. It reports each step as passed, failed (with the
visible assertion's message) or not attempted, and what would trip autograding.

`bundle_release` zips what students need to work in any Jupyter, the kit installed or
not (release/<assignment>/, the MNIST sample, README.txt), for an LMS upload, after
checking that nothing of a solution or a hidden test is in it.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .data import BUNDLED_FOLDER

NOT_ATTEMPTED = "NotImplementedError"
WRITTEN_STUB = "YOUR ANSWER HERE"  # nbgrader's stub for a written answer
CODE_STUB = "raise NotImplementedError()"  # and the last line of its stub for code


class NotebookProblem(ValueError):
    """The file cannot be checked at all; the message names it and says why."""


@dataclass
class StepStatus:
    step: str
    state: str  # "passed", "failed", "not attempted", "answered" (a written answer)
    message: str = ""


def grade_id(cell) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")


def read_notebook(path: Path):
    import nbformat

    if not path.exists():
        raise NotebookProblem(f"{path} does not exist")
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (UnicodeDecodeError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        raise NotebookProblem(f"{path} is not a notebook: it is not valid JSON ({exc})") from exc


def error_of(cell) -> tuple[str, str] | None:
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return output.ename, output.evalue
    return None


def step_statuses(notebook) -> list[StepStatus]:
    """One status per answer cell, in notebook order, judged by the visible test cell after it."""
    tests = {grade_id(c).removeprefix("test_"): c for c in notebook.cells if grade_id(c).startswith("test_")}
    statuses = []
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("solution"):
            continue
        step = meta.get("grade_id", "")
        if cell.cell_type == "markdown":
            attempted = WRITTEN_STUB not in cell.source
            statuses.append(StepStatus(step, "answered" if attempted else "not attempted",
                                       "a written answer: course staff grade it" if attempted else "the written answer is still the stub"))
            continue
        raised = error_of(cell)
        if CODE_STUB in cell.source or (raised and raised[0] == NOT_ATTEMPTED):
            statuses.append(StepStatus(step, "not attempted", "the cell still raises NotImplementedError"))
        elif raised:
            statuses.append(StepStatus(step, "failed", f"your cell raised {raised[0]}: {raised[1]}"))
        elif step in tests and error_of(tests[step]):
            ename, evalue = error_of(tests[step])
            cause = "not attempted" if NOT_ATTEMPTED in (ename + evalue) else "failed"
            statuses.append(StepStatus(step, cause, f"{ename}: {evalue}" if evalue else ename))
        else:
            statuses.append(StepStatus(step, "passed"))
    return statuses


def reminders(path: Path, notebook) -> list[str]:
    """What would make autograding go wrong, in words a student can act on."""
    found = []
    expected = notebook.metadata.get("coursekit", {}).get("notebook")
    if expected and path.name != expected:
        found.append(f"the file is called {path.name!r}; upload it as {expected!r}, or the grader will not find it")
    unfinished = False  # after a step not yet attempted, later cells fail for that reason alone
    cascade = 0
    for index, cell in enumerate(notebook.cells, start=1):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and (CODE_STUB in cell.source or WRITTEN_STUB in cell.source):
            unfinished = True
        if cell.cell_type != "code":
            continue
        gid = grade_id(cell)
        label = f"cell {index}" + (f" ({gid})" if gid else "")
        raised = error_of(cell)
        if raised and not gid.startswith("test_") and not unfinished:
            if cascade == 0:
                found.append(f"{label} raises {raised[0]}: {raised[1]}; cells after it may fail because of it")
            cascade += 1
        if gid.startswith("test_") and any(o.output_type == "stream" and o.name == "stderr" for o in cell.get("outputs", [])):
            found.append(f"{label} writes to stderr (a warning, say); nbgrader scores such a test cell zero")
    if cascade > 1:
        found.append(f"{cascade - 1} more cell(s) raise errors after that one")
    return found


def check_notebook(path: Path, timeout: int = 60) -> tuple[list[StepStatus], list[str]]:
    """Run the notebook from a fresh kernel with its visible tests; (status per step, reminders)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    notebook = read_notebook(path)
    if not any(grade_id(c) for c in notebook.cells):
        raise NotebookProblem(f"{path} has no graded cells: is it an assignment notebook?")
    with tempfile.TemporaryDirectory(prefix="ck-") as sockets:
        # ipc: the kernel is only reachable from this machine, and does not warn about plain TCP
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(notebook, km=km, timeout=timeout, allow_errors=True,
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        try:
            client.execute()
        finally:  # nbclient leaves a kernel manager it was given running
            run_sync(km.shutdown_kernel)(now=True)
    return step_statuses(notebook), reminders(path, notebook)


def format_check(path: Path, statuses: list[StepStatus], found: list[str]) -> str:
    width = max((len(s.step) for s in statuses), default=4)
    lines = [f"Checked {path.name} from a fresh kernel, with the tests you can see:"]
    for s in statuses:
        lines.append(f"  {s.step.ljust(width)}  {s.state.upper() if s.state == 'failed' else s.state}" + (f": {s.message}" if s.message else ""))
    passed = sum(s.state == "passed" for s in statuses)
    code_steps = sum(s.state != "answered" for s in statuses)
    lines.append(f"{passed} of {code_steps} steps pass the visible tests. The grader checks more than these tests do.")
    if found:
        lines.append("Before you submit:")
        lines.extend(f"  - {line}" for line in found)
    return "\n".join(lines)


README_NAME = "README.txt"  # the students' instructions in a bundle

STUDENT_README = """\
{title}
{underline}

You can work on this assignment in any Jupyter (JupyterLab, Notebook, VS Code, Colab); nothing else from the course is needed.

1. Install the packages it uses:
       pip install {packages}
   and, if you have no Jupyter yet: pip install jupyterlab
2. Unzip this file and keep what it holds together{data_note}.
3. Open {notebooks} in Jupyter and write your answer in each cell marked "YOUR CODE HERE". The cell after it
   checks your answer: Kernel > Restart Kernel and Run All Cells shows which steps pass (the grader checks more).
4. Hand in {notebooks} on the course's page, under the same name: {only}.
"""


def code_cells(notebook: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]


def code_of(notebook: Path) -> str:
    return "\n".join(code_cells(notebook))


def required_packages(notebooks: list[Path]) -> list[str]:
    """What a student must pip install to run the notebooks: the distributions of the modules their code imports,
    less the standard library and the kit (which the notebooks only use where it is installed)."""
    import ast
    import importlib.metadata
    import sys

    modules = set()
    for cell in (cell for notebook in notebooks for cell in code_cells(notebook)):
        # IPython's magics and shell escapes are not Python; a cell that does not parse (a stub) imports nothing
        code = "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.partition(".")[0])
    modules -= set(sys.stdlib_module_names) | {"coursekit"}
    distributions = importlib.metadata.packages_distributions()
    return sorted({(distributions.get(module) or [module])[0].lower() for module in modules})


def student_readme(assignment: str, notebooks: list[Path], with_data: bool) -> str:
    names = " and ".join(p.name for p in notebooks)
    title = f"{assignment}: working on it anywhere"
    return STUDENT_README.format(
        title=title, underline="=" * len(title), packages=" ".join(required_packages(notebooks)), notebooks=names,
        data_note=f": {names} reads its digits from the {BUNDLED_FOLDER} folder next to it" if with_data else "",
        only=f"the notebook only, not the {BUNDLED_FOLDER} folder" if with_data else "the notebook only")


def uses_course_data(root: Path, notebooks: list[Path]) -> bool:
    """Whether the notebooks read the course's data (through the kit, with the bundled folder to fall back on)."""
    using = [p for p in notebooks if "coursekit" in code_of(p)]
    for notebook in using:
        if f"'{BUNDLED_FOLDER}'" not in code_of(notebook) and f'"{BUNDLED_FOLDER}"' not in code_of(notebook):
            raise NotebookProblem(f"{notebook.relative_to(root)} imports coursekit, which students who work elsewhere do not have, "
                                  f"and never falls back on the {BUNDLED_FOLDER} folder the bundle puts next to it: "
                                  f"give its set-up cell `Path('{BUNDLED_FOLDER}')` where the kit is missing")
    return bool(using)


def revealed_lines(root: Path, assignment: str, files: dict[str, bytes]) -> list[str]:
    """'name: line' for each line of a solution, hidden check or probe, and each solution marker, in the bundle's
    text files (notebooks by their cells); images and other binary files hold no line."""
    from .course import hidden_checks_dir, load_config, source_notebooks
    from .grader_text import REGIONS
    from .guard import protected_text

    checks_dir = hidden_checks_dir(load_config(root), root, assignment)
    secret = {}
    for source in source_notebooks(root, assignment):
        secret.update(protected_text(checks_dir, source))
    found = []
    for name, data in files.items():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name.endswith(".ipynb"):
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        found += [f"{name}: {marker}" for region in REGIONS for marker in region if marker in text]
        found += [f"{name}: {line!r} (a line of {origin.name})" for line, origin in secret.items() if line in text]
    return sorted(found)


def bundle_release(root: Path, assignment: str, output: Path) -> list[str]:
    """Zip what students need to work anywhere, with or without the kit: release/<assignment>/ (notebooks and public
    helper files), the MNIST sample the grader's kernels read (when the notebooks use it), and README.txt; after
    checking that none of it reveals a line of a solution, hidden check or probe. Return the names in the zip."""
    from .data import mnist_sample_path, sample_images

    folder = root / "release" / assignment
    if not folder.is_dir():
        raise NotebookProblem(f"{folder} does not exist: run `coursekit release {assignment}` first")
    released = sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    files = {f"{assignment}/{p.relative_to(folder)}": p.read_bytes() for p in released}
    notebooks = sorted(folder.glob("*.ipynb"))
    with_data = uses_course_data(root, notebooks)
    files[f"{assignment}/{README_NAME}"] = student_readme(assignment, notebooks, with_data).encode()
    if with_data:
        sample = mnist_sample_path()
        files.update({f"{assignment}/{BUNDLED_FOLDER}/{p.relative_to(sample)}": p.read_bytes() for p in sample_images(sample)})
    leaks = revealed_lines(root, assignment, files)
    if leaks:
        raise NotebookProblem(f"the bundle of {assignment} would reveal {len(leaks)} line(s) of solutions or hidden checks, "
                              f"e.g. {leaks[0]}: run `coursekit release {assignment}` again, or take the file out of {folder}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return list(files)
