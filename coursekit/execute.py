"""Stage: run a notebook in a fresh kernel, then probe its answer cells.

`ExecuteAndProbe` is nbgrader's own Execute preprocessor plus one thing: after
the last cell it keeps the kernel alive long enough to run the assignment's
probes (tests/hidden/<assignment>/probes.py) and puts what they return in
resources["coursekit"]["probes"]. Only inputs and probe code go into the
kernel; reference values and assertions never do.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import os
import time
from pathlib import Path

import nbformat
import torch
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_output
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Integer, Unicode

from . import probe_runtime
from .clean import LIMIT_NOTE
from .fork_sandbox import SandboxedForkKernelManager, fork_sandbox_problem
from .kernels import ForkedKernelManager
from .sandbox import Sandbox, SandboxedKernelManager, use_bwrap

RUNTIME_SOURCE = Path(probe_runtime.__file__).read_text()
PROBE_PREFIX = "probe_"


def probes_file(checks_root: str | Path, assignment: str) -> Path:
    return Path(checks_root) / assignment / "probes.py"


STAND_IN_PREFIX = "stand_in_"


def probe_sources(probes_source: str) -> tuple[str, dict[str, str]]:
    """The probes file split into what is sent at once, and what is sent just before each step's probe.

    A probe and the stand-ins it uses (stand_in_<step>: correct code for another step) reach the
    kernel only when that probe runs, and a stand-in never before its own step has been probed:
    while a student's function is being probed, no correct version of it is anywhere in the kernel.
    """
    tree = ast.parse(probes_source)
    lines = probes_source.splitlines(keepends=True)

    def text(node) -> str:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return "".join(lines[start - 1:node.end_lineno])

    prelude, stand_ins, probes = [], {}, {}
    for node in tree.body:
        name = getattr(node, "name", "")
        if name.startswith(PROBE_PREFIX):
            probes[name.removeprefix(PROBE_PREFIX)] = text(node)
        elif name.startswith(STAND_IN_PREFIX):
            stand_ins[name.removeprefix(STAND_IN_PREFIX)] = text(node)
        else:
            prelude.append(text(node))
    steps = list(probes)
    unknown = [s for s in stand_ins if s not in steps]
    if unknown:
        raise ValueError(f"probes.py has stand-ins for steps it never probes: {unknown}")
    per_step, sent = {}, set()
    for index, step in enumerate(steps):
        # stand-ins of the steps probed before this one, sent once
        due = [s for s in steps[:index] if s in stand_ins and s not in sent]
        sent.update(due)
        per_step[step] = "".join(stand_ins[s] + "\n\n" for s in due) + probes[step]
    return "\n\n".join(prelude), per_step


def decode_probe_output(encoded: str) -> dict:
    """Bytes from the kernel back into plain values; weights_only refuses anything that could run code."""
    data = torch.load(io.BytesIO(base64.b64decode(encoded)), weights_only=True)
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        raise ValueError("the probe result has an unexpected form")
    return data


class ExecuteAndProbe(Execute):
    """nbgrader's Execute, followed by the assignment's probes in the same kernel."""

    checks_root = Unicode("tests/hidden", help="Folder holding <assignment>/probes.py and the hidden checks.").tag(config=True)
    probe_timeout = Integer(20, help="Seconds one step's probe may run before it is interrupted.").tag(config=True)
    fork_kernels = Bool(False, help="Start each kernel from coursekit's fork server, which has torch imported already, "
                        "instead of as a new process from scratch.").tag(config=True)

    replay_directory = Unicode("", help="Folder of runs made by coursekit's workers (<student>/<notebook>.json): "
                               "use a worker's run of this very notebook instead of running it again.").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds the cells of one notebook may run in all; cells past it are not run.").tag(config=True)
    max_output_bytes = Integer(200_000, help="Output one cell may keep; the rest is dropped, with a note.").tag(config=True)
    # nbclient's default, "graceful", interrupts the kernel, asks it to shut down and waits for it to exit: the
    # grader wants nothing more from a kernel once its probes have run, and a student's atexit handler gets no say
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate", help=(
        "How a notebook's kernel is stopped once its cells and probes have run: immediate kills it (and whatever it "
        "started); graceful asks it to shut down first.")).tag(config=True)
    runs_reference = Bool(False, help="This is the reference solution, which gets longer time limits (REFERENCE_ALLOWANCE); "
                          "set by coursekit, not in a configuration file.")

    def preprocess(self, nb, resources=None, km=None):
        if self.replay_directory:
            replayed = self.replay(nb, resources)
            if replayed is not None:
                return replayed
        # Same as nbconvert's ExecutePreprocessor.preprocess, with the probes run before the kernel stops.
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)  # this loads the configured limits again: scale them after it
        if self.runs_reference:
            self.probe_timeout, self.timeout = reference_limits(self.probe_timeout, self.timeout)
        self.sandbox = sandbox = Sandbox(parent=self)  # read once: the limits named in hints come from here too
        sandboxed = use_bwrap(sandbox.mode)
        if sandboxed:
            # forked from the sandboxed server where this machine allows nested namespaces; else a bwrap process each
            self.kernel_manager_class = SandboxedForkKernelManager if fork_sandbox_problem() is None else SandboxedKernelManager
        elif self.fork_kernels:
            self.kernel_manager_class = ForkedKernelManager
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._output_bytes: dict[int, int] = {}
        assignment = (resources or {}).get("nbgrader", {}).get("assignment")
        # as nbgrader's autograde says to the kernels it runs, also on the workers, which run outside it
        env = {**os.environ, "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", "autograde")}
        with self.setup_kernel(env=env):
            info_msg = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            try:
                self.run_cells(resources)
            except DeadKernelError as exc:
                raise DeadKernelError(self.why_the_kernel_died(exc)) from exc
            if sandboxed:
                note_disk_limit(self.nb, sandbox.disk_mb)
            probes = self.run_probes(assignment) if assignment else {}
        self.set_widgets_metadata()
        self.resources.setdefault("coursekit", {})["probes"] = probes
        return self.nb, self.resources

    def ran_out_of_memory(self) -> bool:
        """Whether the sandbox's memory cgroup killed the kernel (the sandbox alone knows)."""
        cgroups = getattr(getattr(self.km, "provisioner", None), "cgroups", None)
        return cgroups is not None and cgroups.ran_out_of_memory()

    def why_the_kernel_died(self, exc: Exception) -> str:
        if self.ran_out_of_memory():
            return f"Kernel died: {memory_limit_words(self.sandbox.memory_mb)}"
        return str(exc)

    def run_cells(self, resources) -> None:
        """Every cell in turn, each within its own time limit and all within notebook_timeout."""
        deadline = time.monotonic() + self.notebook_timeout
        cell_timeout = self.timeout
        try:
            for index, cell in enumerate(self.nb.cells):
                left = deadline - time.monotonic()
                if left <= 0 and cell.cell_type == "code":
                    cell.outputs = [new_output("error", ename="NotebookTimeout", traceback=[],
                                               evalue=f"not run: the notebook's cells ran past their {self.notebook_timeout} s in all")]
                    continue
                self.timeout = max(1, min(cell_timeout, int(left))) if cell_timeout else max(1, int(left))
                try:
                    self.preprocess_cell(cell, resources, index)
                except ValueError as exc:
                    if "Signature" not in str(exc):
                        raise
                    raise RuntimeError("the kernel sent a message with a bad signature, so its outputs cannot be "
                                       "trusted (code that forks the kernel process can cause this)") from exc
        finally:
            self.timeout = cell_timeout

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's output handling, with a cap per cell: a flood of prints cannot bloat the graded notebook."""
        if probe_runtime.MIME in msg.get("content", {}).get("data", {}):
            return super().output(outs, msg, display_id, cell_index)
        msg.get("content", {}).get("metadata", {}).pop(LIMIT_NOTE, None)  # the grader's notes are the grader's to write
        used = self._output_bytes.get(cell_index, 0)
        if used > self.max_output_bytes:
            return None
        used += len(json.dumps(msg.get("content", {})))
        self._output_bytes[cell_index] = used
        if used > self.max_output_bytes:
            # an output of its own kind: nbclient would merge a stream note into the flood, where it gets cut
            note = new_output("display_data", data={"text/plain": f"[output past {self.max_output_bytes} bytes was dropped by the grader]"})
            outs.append(note)
            return note
        return super().output(outs, msg, display_id, cell_index)

    def replay(self, nb, resources):
        """Take a worker's outputs for this notebook, if the worker ran the very same cells.

        nbgrader restores locked and test cells before this step; a submission
        whose cells it changed runs again here, so the score is always that of
        the notebook nbgrader would run.
        """
        names = resources.get("nbgrader", {})
        path = Path(self.replay_directory) / names.get("student", "") / f"{names.get('notebook', '')}.json"
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        if record["error"]:
            raise RuntimeError(f"the notebook could not be run: {record['error']}")
        executed = nbformat.from_dict(record["executed"])
        if cell_sources(executed) != cell_sources(nb):
            self.log.warning("%s: its locked cells were edited; running it again as nbgrader restored it", path.stem)
            return None
        for cell, ran in zip(nb.cells, executed.cells):
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = ran.outputs, ran.execution_count
        nb.metadata["language_info"] = executed.metadata.get("language_info", {})
        resources.setdefault("coursekit", {}).update(probes=None, checks=record["checks"])
        return nb, resources

    def run_probes(self, assignment: str) -> dict:
        """Each step's probe, run in the notebook's kernel; step -> what it brought back.

        A step whose probe fails gets a "probe_error": a hint the kit writes for the student
        (nothing of nbclient's or the kernel's own error text, which can quote the probe).
        """
        path = probes_file(self.checks_root, assignment)
        if not path.exists():
            return {}
        prelude, per_step = probe_sources(path.read_text())
        answers = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in self.nb.cells if cell.cell_type == "code"}
        setup = (f"_coursekit = {{}}\nexec({RUNTIME_SOURCE!r}, _coursekit)\nexec({prelude!r}, _coursekit)\n"
                 "_coursekit['stop_leftover_processes']()")
        results: dict = {}
        self.grader_errors: dict[str, str] = {}  # for staff only: what failed on the grader's side, by step
        setup_failure = self.run_hidden(setup, "setup")[1]
        for step, step_source in per_step.items():
            if setup_failure:
                results[step] = {"probe_error": probe_failure_hint(setup_failure, step, self.probe_timeout), "values": {},
                                 "grader_error": f"the probes' set-up failed: {self.grader_errors.get('setup', setup_failure)}"}
                continue
            if step not in answers:
                results[step] = {"probe_error": f"your {step} code could not be checked: the notebook has no cell with grade id {step!r}", "values": {}}
                continue
            code = (
                f"exec({step_source!r}, _coursekit)\n"
                "from IPython.display import display as _ck_display\n"
                f"_ck_display({{{probe_runtime.MIME!r}: _coursekit['run_probe'](_coursekit['{PROBE_PREFIX}{step}'], "
                f"{answers[step]!r}, globals(), {step!r})}}, raw=True)"
            )
            encoded, failure = self.run_hidden(code, step)
            if encoded is None:
                results[step] = {"probe_error": probe_failure_hint(failure or GRADER_SIDE, step, self.probe_timeout,
                                                                   self.sandbox.memory_mb), "values": {},
                                 "grader_error": self.grader_errors.get(step, failure or "no result")}
                continue
            try:
                results[step] = decode_probe_output(encoded)
            except Exception as exc:  # tampered or broken bytes: the step fails, the grader goes on
                self.log.warning("probe %s: its result could not be read back: %s: %s", step, type(exc).__name__, exc)
                results[step] = {"probe_error": f"your {step} code could not be checked: what it returned could not be read "
                                 "back (the grader accepts plain tensors, numbers, strings, lists and dicts)", "values": {}}
                continue
            if "timed_out" in results[step]:
                results[step]["probe_error"] = timeout_hint(step, results[step]["timed_out"], self.probe_timeout)
            elif results[step].get("probe_error"):
                results[step]["probe_error"] = f"your {step} code could not be checked: {results[step]['probe_error']}"
        return results

    def run_hidden(self, code: str, step: str) -> tuple[str | None, str | None]:
        """Run code in the kernel outside the notebook; return (probe payload, failure: TIMEOUT, DEAD_KERNEL,
        GRADER_SIDE or None). What went wrong on the grader's side is logged for staff, never passed on."""
        cell = new_code_cell(code)
        saved_timeout, self.timeout = self.timeout, self.probe_timeout
        self.nb.cells.append(cell)  # nbclient addresses the cell it runs by its index in the notebook
        try:
            self.execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
        except CellTimeoutError:  # its text previews the probe cell: never shown to anyone
            self.log.warning("probe %s: the kernel did not answer within %s s of its time limit", step, self.iopub_timeout)
            return None, TIMEOUT
        except DeadKernelError:
            return None, OUT_OF_MEMORY if self.ran_out_of_memory() else DEAD_KERNEL
        except Exception as exc:  # a broken kernel connection costs this step, not the run
            self.grader_errors[step] = f"{type(exc).__name__}: {str(exc)[:300]}"
            self.log.warning("probe %s failed on the grader's side: %s", step, self.grader_errors[step])
            return None, GRADER_SIDE
        finally:
            self.nb.cells.pop()
            self.timeout = saved_timeout
        payload, failure = None, None
        for output in cell.outputs:
            if output.output_type == "display_data" and probe_runtime.MIME in output.get("data", {}):
                payload = output["data"][probe_runtime.MIME]
            elif output.output_type == "error":
                failure = TIMEOUT if output.ename in ("CellTimeoutError", "KeyboardInterrupt") else GRADER_SIDE
                if failure == GRADER_SIDE:
                    self.grader_errors[step] = f"{output.ename}: {str(output.evalue)[:300]}"
                    self.log.warning("probe %s failed in the kernel: %s", step, self.grader_errors[step])
        return payload, failure


TIMEOUT, DEAD_KERNEL, OUT_OF_MEMORY, GRADER_SIDE = "timeout", "dead kernel", "out of memory", "grader side"


def memory_limit_words(memory_mb: int) -> str:
    return f"the notebook used more than {memory_mb} MiB of memory, the limit for a notebook"


def timeout_hint(step: str, where: str | None, limit: int) -> str:
    """What a student reads when their code for `step` ran past the probe's time limit.

    `where` is the function of theirs that was running ("accuracy", "DataLoader.__iter__"),
    "<module>" for the top level of their cell, or empty when it is not known.
    """
    advice = "check it for a loop that never ends (a `while` whose condition never becomes false, say)"
    if where and where != "<module>":
        return f"`{where}` did not return within {limit} s, so the grader stopped it: {advice}"
    if where == "<module>":
        return f"your {step} cell did not finish within {limit} s, so the grader stopped it: {advice}"
    return f"your {step} code did not finish within {limit} s, so the grader stopped it: {advice}"


def probe_failure_hint(failure: str, step: str, limit: int, memory_mb: int = 0) -> str:
    """The student's hint for a probe that brought nothing back, written by the kit."""
    if failure == TIMEOUT:
        return timeout_hint(step, None, limit)
    if failure == OUT_OF_MEMORY:
        return f"your {step} code could not be checked: the kernel was stopped because {memory_limit_words(memory_mb)}"
    if failure == DEAD_KERNEL:
        return (f"your {step} code could not be checked: the kernel stopped while it ran (it crashed, ran out of "
                "memory, or called exit)")
    return (f"your {step} code could not be checked, because of a problem on the grader's side, not in your code: "
            "your teacher can see what went wrong")


# how a failed write shows in a cell, raised or caught and printed (a write swallowed in silence is not seen)
DISK_FULL = ("No space left on device", "ENOSPC", "[Errno 28]")


def note_disk_limit(nb, disk_mb: int) -> None:
    """Say, under each cell where a write failed for want of space, that the notebook reached its limit."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        said = [json.dumps(o) for o in cell.outputs if o.output_type in ("error", "stream")]
        if not any(word in text for text in said for word in DISK_FULL):
            continue
        text = (f"[the grader: your notebook wrote more than {disk_mb} MiB of files, the limit for a notebook's files "
                "(its folder, /tmp and your home together), so a write failed with 'No space left on device']")
        cell.outputs.append(new_output("display_data", data={"text/plain": text}, metadata={LIMIT_NOTE: text}))


def cell_sources(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


# The reference solution's cells and probes may take this many times a student's limits (its probes at least
# as long as a cell may): a busy machine slowing them past a limit would stop the whole run, and the reference
# is the course's own code, run once per run.
REFERENCE_ALLOWANCE = 3


def reference_limits(probe_timeout: int, cell_timeout: int | None) -> tuple[int, int | None]:
    """The reference solution's (probe, cell) time limits, from a student's."""
    cell_limit = cell_timeout or 0  # None or 0: cells have no limit of their own
    return max(probe_timeout, cell_limit) * REFERENCE_ALLOWANCE, cell_limit * REFERENCE_ALLOWANCE or cell_timeout


def execute_and_probe(notebook: NotebookNode, assignment: str, checks_root: str | Path, workdir: str | Path,
                      reference: bool = False, **traits) -> tuple[NotebookNode, dict]:
    """Run a whole notebook and its probes outside nbgrader (used for the reference solution)."""
    executor = ExecuteAndProbe(checks_root=str(checks_root), **traits)
    executor.runs_reference = reference
    resources = {"metadata": {"path": str(workdir)}, "nbgrader": {"assignment": assignment}}
    notebook, resources = executor.preprocess(notebook, resources)
    return notebook, resources["coursekit"]["probes"]
