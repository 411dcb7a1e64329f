"""Grading in parallel gives the scores nbgrader's own sequential autograde gives,
on local workers and on a real Dask cluster; kernels from the fork server are fresh processes."""
import asyncio
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest
from conftest import ASSIGNMENT, COURSEKIT, cgroups_left_behind, make_course, read_csv, run_coursekit
from test_grading import FULL, scores

from coursekit.fork_sandbox import fork_sandbox_problem
from coursekit.kernels import ForkedKernelManager, running_fork_server
from coursekit.samples import make_submission, write_samples, write_submission
from coursekit.sandbox import bwrap_problem

SOME = ["full_marks", "labels_reversed", "threshold_half", "shuffle_once", "no_sigmoid"]


def run_in_kernel(code: str) -> str:
    """Start a kernel from the fork server, run code, return what it printed, shut it down."""
    async def run():
        km = ForkedKernelManager(kernel_name="python3")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=30)
            printed = []
            await kc.execute_interactive(code, timeout=30, output_hook=lambda msg: printed.append(msg["content"].get("text", "")))
            return "".join(printed)
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    return asyncio.run(run())


def test_forked_kernels_are_fresh_processes():
    first = run_in_kernel("import os, random, torch\nleft_behind = 1\nprint(os.getpid(), random.random(), torch.initial_seed(), os.getpgrp() == os.getpid())")
    second = run_in_kernel("import os, random, torch\nprint(os.getpid(), random.random(), torch.initial_seed(), 'left_behind' in globals())")
    pid1, rand1, seed1, own_group = first.split()
    pid2, rand2, seed2, leaked = second.split()
    assert pid1 != pid2 and own_group == "True" and leaked == "False"
    # a new process seeds Python's, numpy's and torch's generators afresh; so must each forked kernel
    assert rand1 != rand2 and seed1 != seed2


def test_fork_server_outlives_a_kernel_that_kills_its_group():
    server = running_fork_server()
    out = run_in_kernel("import os\nprint(os.getppid())")
    assert int(out) == server.process.pid

    async def kill_own_group():
        km = ForkedKernelManager(kernel_name="python3")
        await km.start_kernel()
        try:
            os.killpg(km.provisioner.pgid, signal.SIGKILL)  # what a kernel can do to its own group
            deadline = time.monotonic() + 10
            while await km.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return await km.is_alive()
        finally:
            await km.shutdown_kernel(now=True)

    assert asyncio.run(kill_own_group()) is False
    assert server.process.poll() is None
    assert run_in_kernel("print(6 * 7)").strip() == "42"


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("small"))
    write_samples(course, ASSIGNMENT, SOME)
    return course


def gradebook_scores(course, students):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {s: {g.name: g.score for g in gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, s).grades if g.name in FULL}
                for s in students}


def test_plain_nbgrader_autograde_gives_the_same_scores(small_course, graded_course):
    """nbgrader's own command typed with no flag (the course's nbgrader_config.py loads course_config.py), one
    fresh kernel after another: the same per-cell scores as the kit's parallel run, missing sigmoid included."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    students = [p.name for p in (small_course / "submitted").iterdir()]
    assert set(SOME) <= set(students)
    nbgrader = os.path.join(os.path.dirname(sys.executable), "nbgrader")
    # generate_assignment records the assignment in the gradebook, as staff do before grading
    for command, *options in (["generate_assignment", "--force"], ["autograde", "--create", "--force"]):
        result = subprocess.run([nbgrader, command, ASSIGNMENT, *options],
                                cwd=small_course, capture_output=True, text=True, env=env, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
    plain = gradebook_scores(small_course, SOME)
    assert {s: scores(graded_course["grades"][s]) for s in SOME} == plain
    assert plain["full_marks"] == FULL and plain["labels_reversed"]["test_labels"] < FULL["test_labels"]
    assert plain["no_sigmoid"]["test_mnist_loss"] < FULL["test_mnist_loss"]  # nbgrader's default pipeline gave it full marks


def test_dask_cluster_gives_the_same_scores(tmp_path, graded_course):
    distributed = pytest.importorskip("distributed")
    course = make_course(tmp_path / "course")
    some = SOME[:4]
    write_samples(course, ASSIGNMENT, some)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = run_coursekit(course, "grade", ASSIGNMENT, "--scheduler", cluster.scheduler_address)
    assert f"the Dask cluster at {cluster.scheduler_address} (2 workers, 2 threads)" in result.stdout
    grades = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    assert {s: scores(grades[s]) for s in some} == {s: scores(graded_course["grades"][s]) for s in some}
    assert gradebook_scores(course, ["full_marks"])["full_marks"] == FULL


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    course = make_course(tmp_path / "course")
    write_samples(course, ASSIGNMENT, [])
    result = run_coursekit(course, "grade", ASSIGNMENT, "--scheduler", "tcp://127.0.0.1:9", check=False)
    assert result.returncode == 2
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in result.stderr


# the processes two hanging kernels make, found by their command lines. Sandboxed, they are forked from the sandboxed
# fork server: the server's 2 bwrap processes and itself, and each kernel's PID 1 and kernel, all with the server's
# command; where that mode is not available, each kernel is a process of its own (bwrap, then python). Without the
# sandbox they come from the fork server (the server and 2 kernels).
KERNEL_PROCESSES = {"auto": ("ipykernel_launcher", 2) if fork_sandbox_problem() else ("coursekit.fork_sandbox", 7),
                    # "-m": the worker processes' command line (multiprocessing's forkserver) names coursekit.kernels too
                    "none": ("-m coursekit.kernels", 3)}


def course_of_hanging_submissions(folder, sandbox: str, count: int):
    """A course whose submissions each hang in their accuracy step (an endless loop)."""
    course = make_course(folder)
    with open(course / "course_config.py", "a") as f:
        f.write(f"\nc.Sandbox.mode = {sandbox!r}\n")
    write_samples(course, ASSIGNMENT, [])
    source = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    hangs = nbformat.from_dict(make_submission(source, release, None))
    next(c for c in hangs.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "accuracy").source = \
        "def accuracy(preds, targets):\n    while True:\n        pass"
    for index in range(count):
        write_submission(course, ASSIGNMENT, f"hangs_{index + 1}", hangs)
    return course


def processes_under(psutil, pid: int, marker: str = "") -> list:
    found = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if marker in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            pass
    return found


def still_running(psutil, processes) -> list[int]:
    return [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("sandbox", list(KERNEL_PROCESSES))
def test_ctrl_c_leaves_no_kernel_running(tmp_path, sandbox):
    """Ctrl-C (SIGINT to the whole process group) while kernels run: coursekit stops them all."""
    psutil = pytest.importorskip("psutil")
    if sandbox == "auto" and bwrap_problem():
        pytest.skip(bwrap_problem())
    course = course_of_hanging_submissions(tmp_path / "course", sandbox, 2)
    marker, expected = KERNEL_PROCESSES[sandbox]
    started = time.time()
    # as from a terminal: a job started in the background (CI, say) would inherit SIGINT ignored
    run = subprocess.Popen([*COURSEKIT, "grade", ASSIGNMENT], cwd=course, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(processes_under(psutil, run.pid, marker)) < expected and time.monotonic() < deadline:  # two hanging kernels (and the server)
        time.sleep(0.2)
    seen = processes_under(psutil, run.pid, marker)
    assert len(seen) >= expected, "the kernels never started"
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err[-2000:]
    assert "interrupted" in err
    time.sleep(1)
    assert still_running(psutil, seen) == []
    assert cgroups_left_behind(started, time.time()) == []  # each worker removed its kernels' cgroups as it stopped


def test_ctrl_c_inside_nbgrader_still_stops_the_run():
    """nbgrader's API catches everything (capture_log's bare `except:`): Ctrl-C inside one of its steps becomes a
    step that failed, and a run would go on grading. The kit remembers the Ctrl-C and stops at its next step."""
    import logging

    from nbgrader.utils import capture_log

    from coursekit.cli import CtrlC

    class Step:  # an nbgrader app whose start() is where Ctrl-C comes
        log = logging.getLogger("coursekit-test")

        def start(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs long before this ends

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        CtrlC.install()
        result = capture_log(Step())
        assert result["success"] is False and "KeyboardInterrupt" in result["error"]  # what nbgrader made of it
        with pytest.raises(KeyboardInterrupt):
            CtrlC.check()
    finally:
        signal.signal(signal.SIGINT, before)
        CtrlC.pressed = False


def test_killing_coursekit_alone_stops_its_workers_and_kernels(tmp_path):
    """`kill -9` of the coursekit process alone (not its process group: the OOM killer, say) while a worker holds
    more jobs than it runs: the workers and every kernel stop within seconds, rather than grade the queue for nobody."""
    psutil = pytest.importorskip("psutil")
    course = course_of_hanging_submissions(tmp_path / "course", "none", 12)
    marker, expected = KERNEL_PROCESSES["none"]
    run = subprocess.Popen([*COURSEKIT, "grade", ASSIGNMENT, "--workers", "2"], cwd=course, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(processes_under(psutil, run.pid, marker)) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    seen = processes_under(psutil, run.pid)  # the worker process, the fork server, the kernels
    commands = {p.pid: " ".join(p.cmdline())[:100] for p in seen}
    assert len([c for c in commands.values() if marker in c]) >= expected, "the kernels never started"
    run.kill()
    run.wait(10)
    deadline = time.monotonic() + 5  # the fork server looks for its parent every second
    while still_running(psutil, seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [commands[pid] for pid in still_running(psutil, seen)] == []


SLOW_CHECK = '''import time

import pytest


@pytest.mark.grade("linear1", points=1)
def test_takes_a_second():
    """Long enough for the other job to leave and delete its scratch course meanwhile."""
    time.sleep(1.0)
'''


def test_hidden_checks_take_turns_with_nbgrader_for_the_working_folder(tmp_path):
    """A worker runs two jobs in threads. nbgrader's autograde (scratch_grade) moves the process into its job's scratch
    course while it converts, and pytest's session goes back at its end to the folder it began in: a check run that
    began meanwhile went back into a scratch course already deleted (FileNotFoundError; 6 of 129 submissions in one
    bench run, each graded twice). Here the other job is what nbgrader's BaseConverter.start does, under the lock
    scratch_grade takes."""
    import threading

    from coursekit.checks import run_checks, working_folder_lock

    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "pytest.ini").write_text("[pytest]\n")
    (checks / "test_slow.py").write_text(SLOW_CHECK)
    scratch, home = tmp_path / "scratch_course", os.getcwd()
    scratch.mkdir()
    results, errors = [], []

    def check():
        try:
            results.extend(run_checks(checks, {}, {}))
        except Exception as exc:
            errors.append(exc)

    job = threading.Thread(target=check)
    with working_folder_lock:
        os.chdir(scratch)
        job.start()
        time.sleep(0.3)
        os.chdir(home)
        scratch.rmdir()
    job.join(60)
    assert errors == [] and [r.passed for r in results] == [True]
    assert os.getcwd() == home


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one worker process is all there is to use")
def test_two_jobs_at_once_run_in_two_processes_on_two_cores():
    """The Python half of grading a submission (nbgrader's autograde and feedback, the hidden checks) runs on one core
    in a process, where nbgrader and the checks take turns: two jobs at once on two cores go to two worker processes."""
    from coursekit.parallel import LocalWorkers, worker_processes

    pool = LocalWorkers(2)
    try:
        pids = {future.result(timeout=120) for future in [pool.submit(os.getpid), pool.submit(os.getpid)]}
    finally:
        pool.close()
    assert len(pids) == 2 and os.getpid() not in pids, pids
    # one per core up to one per job, and no process with more than its most threads
    assert [worker_processes(count, 2, 4) for count in (1, 2, 8, 16)] == [1, 2, 2, 4]
    assert worker_processes(64, 64, 4) == 64


def test_a_fork_server_whose_grader_died_at_once_stops(tmp_path):
    """A grader that dies within its first second, before its fork server has even imported itself (a worker that
    failed to start, say): the server stops too. It used to read its parent only then, read init's, and run forever
    (seen for real: a server 58 minutes old, whose script had crashed at once, failed the hostile suite's orphan check)."""
    psutil = pytest.importorskip("psutil")
    printed = tmp_path / "server_pid"  # a file, not a pipe: the server keeps what it inherits open
    with printed.open("w") as out:
        subprocess.run([sys.executable, "-c", "import os\nfrom coursekit.kernels import ForkServer\n"
                        "print(ForkServer().process.pid, flush=True)\nos._exit(0)"], stdout=out, timeout=60, check=True)
    server = psutil.Process(int(printed.read_text().split()[0]))
    deadline = time.monotonic() + 60  # it looks for its grader once its imports (torch) are done, then every second
    while still_running(psutil, [server]) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = still_running(psutil, [server])
    if left:
        server.kill()
    assert left == []
