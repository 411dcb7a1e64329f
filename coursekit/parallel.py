"""Stage: run submissions and judge them in worker processes, here or on a Dask cluster.

The expensive part of grading, running a notebook and its probes in a fresh
kernel, then the hidden checks, then nbgrader's autograde and feedback, needs
no course gradebook. Workers do all of it: `grade_submission` takes the
submission's files and a `CheckBundle` (the hidden checks as text, the reference
values, the execution settings, the course's configuration and a gradebook of
the assignment's rows) and returns a `GradedSubmission` of plain data: the run
(`run_submission`'s `SubmissionRun`) and what nbgrader made of it in a scratch
course (scratch_grade.py). The coordinator alone writes the course (grade.py,
commit.py).

Workers are threads in local worker processes (`LocalWorkers`), whose kernels
come from one fork server (kernels.py) that the coordinator starts, or the
workers of an existing Dask cluster (`DaskWorkers`), each process with its own
fork server.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import multiprocessing
import multiprocessing.util
import os
import pickle
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .course import leave_quickly, process_folder, remove_process_folders

# The worker functions import nbformat, torch, nbgrader and pytest when they first run, so that
# the coordinator can open its pool before it loads any of them and the workers start meanwhile.

# The configuration sections that decide how a notebook is executed (RestoreCellMetadata: which cells run)
EXECUTION_SECTIONS = ("NotebookClient", "ExecutePreprocessor", "Execute", "ExecuteAndProbe", "Sandbox", "RestoreCellMetadata")


@dataclass(frozen=True)
class CheckBundle:
    """Everything a worker needs to judge one assignment, as plain data that travels to any machine."""

    assignment: str
    files: dict[str, str]  # the hidden check folder: file name -> text (probes.py, test_*.py, pytest.ini)
    execution: dict  # configuration sections for ExecuteAndProbe, from course_config.py
    # the reference solution's probe values (notebook name -> values), pickled: the coordinator passes them on as
    # they are, since unpickling them would import torch there (about 2.5 CPU s, and 1 s more at exit) for nothing
    reference: bytes = field(default=b"", compare=False)
    sources: dict[str, str] = field(default_factory=dict)  # notebook name -> the source notebook (JSON), for its cells' marks
    # for grading in the worker (scratch_grade.py): the course's whole nbgrader configuration, and a gradebook
    # (sqlite file) holding this assignment's rows; without a gradebook, workers only run and the coordinator grades
    config: dict = field(default_factory=dict, compare=False)
    gradebook: bytes = field(default=b"", compare=False)

    @property
    def key(self) -> str:
        digest = hashlib.sha256(repr((sorted(self.files.items()), sorted(self.sources.items()))).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SubmissionJob:
    student: str
    notebooks: list[str]  # the assignment's notebook file names, in order
    files: dict[str, bytes]  # the submission folder: relative path -> content


@dataclass
class NotebookRun:
    executed: dict | None  # the notebook after execution, as nbformat JSON; None when it could not run
    checks: list[dict]  # each hidden check's outcome (checks.CheckResult as a dict)
    error: str  # why it could not be run, or ''


@dataclass
class SubmissionRun:
    student: str
    notebooks: dict[str, NotebookRun]
    seconds: float
    worker: str  # host:pid of the worker process that ran it


@dataclass
class GradedSubmission:
    """A submission run and, when the worker could grade it too, nbgrader's autograded notebooks, feedback and rows."""

    run: SubmissionRun
    grading: object | None  # scratch_grade.ScratchGrading; None when the bundle carried no gradebook


def make_bundle(checks_dir: Path, assignment: str, config, source_dir: Path | None = None) -> CheckBundle:
    from .course import grading_files

    # none for an assignment without hidden checks
    files = {p.name: p.read_text() for p in grading_files(checks_dir) if p.parent == checks_dir and p.suffix in (".py", ".ini")}
    execution = {name: dict(config[name]) for name in EXECUTION_SECTIONS if name in config}
    sources = {p.name: p.read_text() for p in sorted(source_dir.glob("*.ipynb"))} if source_dir else {}
    return CheckBundle(assignment, files, execution, sources=sources, config=config)


MAX_OTHER_FILE_BYTES = 1_000_000  # a submission's files besides its notebooks: bigger ones stay behind


def read_submission(folder: Path, student: str, notebooks: list[str]) -> SubmissionJob:
    """The notebooks of a submission, and its other files up to a size: junk is not carried to every worker."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and ".ipynb_checkpoints" not in p.parts
             and (str(p.relative_to(folder)) in notebooks or p.stat().st_size <= MAX_OTHER_FILE_BYTES)}
    return SubmissionJob(student, notebooks, files)


# ---------------------------------------------------------------- worker side
_bundle_roots: dict[str, Path] = {}
_bundle_lock = threading.Lock()
_checks_folder: Path | None = None


def bundle_checks_root(bundle: CheckBundle) -> Path:
    """The hidden checks written out once per worker process (the folder layout ExecuteAndProbe expects)."""
    with _bundle_lock:
        return _write_bundle(bundle)


def _write_bundle(bundle: CheckBundle) -> Path:
    global _checks_folder
    if bundle.key not in _bundle_roots:
        if _checks_folder is None:
            _checks_folder = process_folder("coursekit-checks-")
        folder = _checks_folder / bundle.key / bundle.assignment
        folder.mkdir(parents=True)
        for name, text in bundle.files.items():
            (folder / name).write_text(text)
        sources = _checks_folder / f"{bundle.key}-source" / bundle.assignment  # RestoreCellMetadata's layout
        sources.mkdir(parents=True)
        for name, text in bundle.sources.items():
            (sources / name).write_text(text)
        _bundle_roots[bundle.key] = folder.parent
    return _bundle_roots[bundle.key]


def bundle_source_root(bundle: CheckBundle) -> Path:
    """The source notebooks written out once per worker process, as <root>/<assignment>/<notebook>.ipynb."""
    return bundle_checks_root(bundle).with_name(f"{bundle.key}-source")


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """A submission's folder, recreated on this worker (kernels run in it, as nbgrader's run in autograded/)."""
    for relpath, content in files.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(content)
    return folder


REFERENCE = "reference"


def execute_notebook(text: bytes, workdir: Path, bundle: CheckBundle, student: str, name: str):
    """Run one notebook with its probes in a fresh forked kernel: (executed notebook, probe values)."""
    import nbformat
    from traitlets.config import Config

    from .execute import ExecuteAndProbe

    notebook = nbformat.reads(text.decode("utf-8"), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    resources = {"metadata": {"path": str(workdir)},
                 "nbgrader": {"assignment": bundle.assignment, "notebook": Path(name).stem, "student": student}}
    if name in bundle.sources:  # the cells nbgrader's sanitize step will hand ExecuteAndProbe, run by the course's kernel
        from .sanitize import sanitize_for_worker

        notebook, resources = sanitize_for_worker(notebook, bundle_source_root(bundle), resources, Config(bundle.execution))
    executor = ExecuteAndProbe(config=Config(bundle.execution), checks_root=str(bundle_checks_root(bundle)), fork_kernels=True)
    executor.replay_directory = ""  # a worker always runs the notebook itself
    executor.runs_reference = student == REFERENCE
    notebook, resources = executor.preprocess(notebook, resources)
    return notebook, resources["coursekit"]["probes"]


def run_submission(job: SubmissionJob, bundle: CheckBundle) -> SubmissionRun:
    """Execute, probe and check every notebook of one submission. Never raises for a bad submission."""
    from .checks import run_checks

    started = time.monotonic()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="coursekit-run-") as scratch:
        workdir = write_files(Path(scratch), job.files)
        for name in job.notebooks:
            try:
                notebook, probes = execute_notebook(job.files[name], workdir, bundle, job.student, name)
            except Exception as exc:  # it is reported in the student's row; the other students go on
                runs[name] = NotebookRun(None, [], f"{type(exc).__name__}: {exc}"[:1000])
                continue
            results = run_checks(bundle_checks_root(bundle) / bundle.assignment, probes, reference_values(bundle).get(name, {}))
            runs[name] = NotebookRun(dict(notebook), [asdict(r) for r in results], "")
    return SubmissionRun(job.student, runs, time.monotonic() - started, f"{os.uname().nodename}:{os.getpid()}")


def grade_submission(job: SubmissionJob, bundle: CheckBundle) -> GradedSubmission:
    """Run a submission, then grade it with nbgrader's autograde and feedback here, in a scratch course."""
    from .scratch_grade import ScratchGrading, grade_in_scratch

    run = run_submission(job, bundle)
    if not bundle.gradebook:
        return GradedSubmission(run, None)
    try:
        grading = grade_in_scratch(job, run, bundle, bundle_checks_root(bundle))
    except Exception as exc:  # the coordinator grades it from the run instead; the message says why
        grading = ScratchGrading(failed={"log": "", "error": f"grading in the worker failed: {type(exc).__name__}: {exc}"})
    return GradedSubmission(run, grading)


_UNPICKLED: dict[str, dict] = {}  # a digest of a bundle's pickled reference -> its values, unpickled once per process


def reference_values(bundle: CheckBundle) -> dict:
    """notebook name -> the reference solution's probe values, from the bundle's pickle."""
    if not bundle.reference:
        return {}
    digest = hashlib.sha256(bundle.reference).hexdigest()
    values = _UNPICKLED.get(digest)
    if values is None:
        values = pickle.loads(bundle.reference)
        if len(_UNPICKLED) >= 4:  # a few runs' references at most: a Dask worker may serve many runs
            _UNPICKLED.clear()
        _UNPICKLED[digest] = values
    return values


def run_reference(job: SubmissionJob, bundle: CheckBundle) -> bytes:
    """The reference solution's probe values, per notebook, pickled (CheckBundle.reference); raises if the solution
    fails its own probes."""
    from .checks import require_working_reference

    reference = {}
    with tempfile.TemporaryDirectory(prefix="coursekit-reference-") as scratch:
        workdir = write_files(Path(scratch), job.files)
        for name in job.notebooks:
            _, probes = execute_notebook(job.files[name], workdir, bundle, REFERENCE, name)
            reference[name] = require_working_reference(probes, name)
    return pickle.dumps(reference, protocol=pickle.HIGHEST_PROTOCOL)


# what grading imports (torch, nbgrader, pytest among them: about 4 CPU s)
WORKER_MODULES = ("coursekit.checks", "coursekit.execute", "coursekit.kernels")


def warm_up() -> None:
    """Import what grading needs now, while the coordinator prepares the gradebook (a no-op in a local worker,
    forked with them imported)."""
    for module in WORKER_MODULES:
        importlib.import_module(module)


# ---------------------------------------------------------------- coordinator side
@dataclass(frozen=True)
class Shared:
    """Stands for an object sent to a local worker process once (the bundle), in place of a copy per job."""

    key: str


def serve_jobs(conn, threads: int, environment: dict[str, str] | None = None) -> None:
    """A local worker process: run the jobs that arrive on conn, `threads` at a time, and send back results;
    `environment`, the coordinator's at the time it started this worker (not the fork server's, from its first).

    Threads beyond one process per core (worker_processes): a job often waits for its kernel (a process of its
    own), and each extra worker process would import torch, nbgrader and pytest once more.
    """
    if environment is not None:
        os.environ.clear()
        os.environ.update(environment)
    warm_up()
    shared: dict[str, object] = {}
    send_lock = threading.Lock()

    def reply(job_id: int, future: concurrent.futures.Future) -> None:
        try:
            message = (job_id, True, future.result())
        except Exception as exc:  # sent back as text: the exception itself may not survive pickling
            message = (job_id, False, f"{type(exc).__name__}: {exc}")
        with send_lock:
            conn.send(message)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                # the coordinator is gone (killed, say): no result can reach it, so stop now rather than grade every
                # job still queued here for nobody (leaving the pool would wait for them all); the kernels stop with
                # their fork server, which leaves when its parent does
                leave_at_once(1)
            except KeyboardInterrupt:
                # Ctrl-C reached the whole process group, and the coordinator stops the run: so does this worker, with
                # its kernels, rather than wait for jobs whose kernels may never answer
                leave_at_once(130)
            if message is None:
                break
            job_id, fn, args = message
            if fn == "share":
                shared[args[0].key] = args[1]
                continue
            args = [shared[a.key] if isinstance(a, Shared) else a for a in args]
            pool.submit(fn, *args).add_done_callback(lambda f, job_id=job_id: reply(job_id, f))
    leave_quickly()  # the process ends here: the coordinator's close() waits for it


# the most finished submissions the coordinator writes in one gradebook transaction: each batch's
# submissions are reported done together, so a big one would hold back the first of them
BATCH_MOST = 50


def in_chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class WorkerFailed(RuntimeError):
    """A job's worker raised, or its worker process died; the message says which."""


def kernel_threads(kernels_at_once: int) -> int:
    """The torch threads each kernel gets when `kernels_at_once` run side by side on this machine."""
    return max(1, (os.cpu_count() or 1) // max(1, kernels_at_once))


def worker_processes(count: int, cores: int, most_threads: int) -> int:
    """How many worker processes run `count` jobs at once on `cores` cores: one per core, up to one per job, and
    enough that none runs more than `most_threads` jobs. In one process the Python half of grading (nbgrader's
    autograde and feedback, the hidden checks: about 1.3 CPU s a submission) runs on one core, and nbgrader and the
    checks take turns in it (checks.working_folder_lock); a second process on a second core grades 10 % faster
    (bench: 48 submissions in 93 s against 101 s on 2 cores), for one more import of torch, nbgrader and pytest."""
    return max(-(-count // most_threads), min(count, max(1, cores)))


def leave_at_once(status: int) -> None:
    """End this worker process now, but first stop its kernels and remove their cgroups (KernelCgroups.remove_all:
    once its jobs' threads can no longer do it, they stayed behind, empty, until a run an hour later) and its
    temporary folders."""
    from .sandbox import KernelCgroups

    KernelCgroups.remove_all()
    remove_process_folders()
    os._exit(status)


def short_multiprocessing_folder() -> None:
    """multiprocessing's forkserver listens on a unix socket in its folder (pymp-*, made once in the temporary folder):
    where that path would be too long for a socket, the folder is made in /tmp instead (kernels.socket_folder_parent)."""
    from .kernels import socket_folder_parent

    parent = socket_folder_parent()
    if parent:
        saved, tempfile.tempdir = tempfile.tempdir, parent
        try:
            multiprocessing.util.get_temp_dir()  # made now, under parent, and kept for this process
        finally:
            tempfile.tempdir = saved


class LocalWorkers:
    """Worker processes on this machine (one per core, up to --workers), each running its share of the jobs in threads."""

    THREADS_PER_PROCESS = 4

    def __init__(self, count: int, fork_server: bool = True):
        from . import fork_sandbox
        from .kernels import KERNEL_THREADS_ENV, ForkServer

        self.count = count
        # one fork server for all local workers: torch is imported once per run, not once per worker.
        # Sandboxed kernels come from a fork server in its own sandbox where nested namespaces work, else
        # each is a new bwrap process, and then there is no server.
        if fork_server:
            self.fork_server = ForkServer()
        elif fork_sandbox.fork_sandbox_problem() is None:
            self.fork_server = fork_sandbox.SandboxedForkServer()
        else:
            self.fork_server = None
        processes = worker_processes(count, os.cpu_count() or 1, self.THREADS_PER_PROCESS)
        self.workers, self.pending, self.lock = [], {}, threading.Lock()
        self.job_ids = iter(range(1, 1 << 62))
        # forkserver: one process imports what grading needs once (WORKER_MODULES) and each worker is forked from it,
        # ready (spawn: each worker imported it all again, 4 CPU s before its first job); not fork: this process
        # has threads and open databases
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(WORKER_MODULES))
        short_multiprocessing_folder()
        if self.fork_server:
            os.environ[self.fork_server.shared_env] = self.fork_server.socket_path
        # torch in each kernel gets this machine's cores divided by the kernels that run at once: with its default
        # (every core) two kernels on 2 cores spin against each other in OpenMP's busy wait, and a few seconds of
        # SGD took 40 times as long (bench/kernel_threads.py). The worker processes pass it on to their kernels (kernels.become_kernel).
        threads_before = os.environ.get(KERNEL_THREADS_ENV)
        os.environ[KERNEL_THREADS_ENV] = str(kernel_threads(count))
        try:
            for index in range(processes):
                threads = count // processes + (index < count % processes)
                ours, theirs = context.Pipe()
                process = context.Process(target=serve_jobs, args=(theirs, threads, dict(os.environ)), daemon=True,
                                          name=f"coursekit-worker-{index}")
                process.start()
                theirs.close()
                worker = {"conn": ours, "process": process, "in_flight": 0, "send": threading.Lock()}
                self.workers.append(worker)
                threading.Thread(target=self._receive, args=(worker,), daemon=True).start()
        finally:
            if self.fork_server:
                os.environ.pop(self.fork_server.shared_env, None)
            if threads_before is None:  # as it was for this process's own kernels (the fallback)
                os.environ.pop(KERNEL_THREADS_ENV, None)
            else:
                os.environ[KERNEL_THREADS_ENV] = threads_before

    def _receive(self, worker: dict) -> None:
        while True:
            try:
                job_id, ok, value = worker["conn"].recv()
            except (EOFError, OSError):
                break
            with self.lock:
                future, _ = self.pending.pop(job_id)
                worker["in_flight"] -= 1
            future.set_result(value) if ok else future.set_exception(WorkerFailed(value))
        worker["process"].join(5)
        with self.lock:  # the process is gone: its unfinished jobs fail, and are graded by the coordinator
            lost = [(job_id, f) for job_id, (f, w) in self.pending.items() if w is worker]
            for job_id, _ in lost:
                del self.pending[job_id]
        for _, future in lost:
            future.set_exception(WorkerFailed(f"the worker process stopped (exit code {worker['process'].exitcode})"))

    def _send(self, worker: dict, message) -> None:
        with worker["send"]:
            worker["conn"].send(message)

    def share(self, bundle: CheckBundle):
        token = Shared(f"bundle-{bundle.key}")
        for worker in self.workers:
            self._send(worker, (0, "share", (token, bundle)))
        return token

    def submit(self, fn, *args):
        future = concurrent.futures.Future()
        with self.lock:
            worker = min(self.workers, key=lambda w: w["in_flight"])
            job_id = next(self.job_ids)
            self.pending[job_id] = (future, worker)
            worker["in_flight"] += 1
        try:
            self._send(worker, (job_id, fn, args))
        except OSError as exc:
            with self.lock:
                self.pending.pop(job_id, None)
            future.set_exception(WorkerFailed(f"the worker process cannot take jobs ({exc})"))
        return future

    def batches(self, futures, most: int = BATCH_MOST):
        """The futures as they finish, in lists of all that have finished by then (at most `most` to a list)."""
        remaining = set(futures)
        while remaining:
            done, remaining = concurrent.futures.wait(remaining, return_when=concurrent.futures.FIRST_COMPLETED)
            yield from in_chunks(list(done), most)

    def describe(self) -> str:
        processes = len(self.workers)
        return f"{self.count} local worker{'s' if self.count != 1 else ''} ({processes} process{'es' if processes != 1 else ''})"

    def close(self) -> None:
        for worker in self.workers:
            try:
                self._send(worker, None)
            except OSError:
                pass
        for worker in self.workers:
            worker["process"].join(10)
            if worker["process"].is_alive():
                worker["process"].kill()
        if self.fork_server:
            self.fork_server.stop()


class DaskWorkers:
    """The workers of an existing Dask distributed cluster; only data travels, results come back here."""

    def __init__(self, address: str):
        from distributed import Client

        self.address = address
        try:
            self.client = Client(address, timeout="10s")
        except OSError as exc:
            raise ConnectionError(f"no Dask scheduler answers at {address}: {exc}") from exc

    def share(self, bundle: CheckBundle):
        # sent to every worker once, not with each submission
        return self.client.scatter(bundle, broadcast=True, hash=False)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def batches(self, futures, most: int = BATCH_MOST):
        from distributed import as_completed

        for done in as_completed(list(futures)).batches():
            yield from in_chunks(list(done), most)

    def describe(self) -> str:
        workers = self.client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return f"the Dask cluster at {self.address} ({len(workers)} workers, {threads} threads)"

    def close(self) -> None:
        self.client.close()


def with_reference(bundle: CheckBundle, reference: bytes, gradebook: bytes = b"") -> CheckBundle:
    return replace(bundle, reference=reference, gradebook=gradebook)
