"""Hostile and broken submissions, graded in one real run beside an honest one.

Each case is a submission in the test course. The run must survive all of them,
the honest submission must keep its full marks, each case must get the outcome
written beside it, and the gradebook must be consistent afterwards.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
from conftest import (ASSIGNMENT, COURSEKIT, REPO, SAMPLES, TRAINING, assert_no_grader_line_shown, cgroups_left_behind,
                      make_course, notebook_paths, read_csv, run_coursekit)
from test_grading import FULL, FULL_SCORES, scores

from coursekit.execute import STAND_IN_PREFIX, probe_sources
from coursekit.samples import make_submission, write_submission
from coursekit.sandbox import bwrap_problem

LABELS_REVERSED = next(s for s in SAMPLES[ASSIGNMENT] if s.name == "labels_reversed")
ANSWER_STEPS = ["flatten", "labels", "datasets", "init_params", "linear1", "accuracy", "mnist_loss", "dataloader"]


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def with_last_cell(nb, code):
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nb


def steal_reference(course, grade_id):
    """An answer that runs the reference solution's own cell, read from the course folder."""
    source = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return (f"import json\n_source = json.load(open({str(source)!r}))\n"
            f"exec(''.join(next(c for c in _source['cells'] if c['metadata'].get('nbgrader', {{}}).get('grade_id') == {grade_id!r})['source']))")


GRADER_SECRET = "token-that-only-the-grader-has"
FILL_EVERY_FOLDER = """
import errno, os
for folder in (".", "/tmp", os.path.expanduser("~"), "/dev/shm"):
    path = os.path.join(folder, "fill.bin")
    try:
        with open(path, "wb") as f:
            for i in range(600):
                f.write(b"x" * 2**20)
        print(folder, "wrote 600 MiB")
    except OSError as exc:
        print(folder, "stopped:", errno.errorcode[exc.errno], "after", os.path.getsize(path) // 2**20, "MiB")
    os.remove(path)
"""


def hostile_submissions(course):
    """name -> notebook (or raw bytes), each built from the full solution or the labels_reversed mistake."""
    source, release = notebook_paths(course, ASSIGNMENT)
    full = lambda: make_submission(source, release, None)  # noqa: E731
    reversed_labels = lambda: make_submission(source, release, LABELS_REVERSED)  # noqa: E731
    cases = {}

    nb = nbformat.read(release, as_version=4)
    for step in ANSWER_STEPS:
        cell(nb, step).source = steal_reference(course, step)
    cases["steals_reference"] = nb

    cases["writes_gradebook"] = with_last_cell(full(), (
        f"import sqlite3\ncon = sqlite3.connect({str(course / 'gradebook.db')!r})\n"
        "con.execute('update grade set auto_score = 100, manual_score = 100')\ncon.commit()"))

    nb = reversed_labels()
    cell(nb, "labels").source = ("import torch, torch.testing\n"
                                 "torch.allclose = torch.equal = lambda *a, **k: True\n"
                                 "torch.testing.assert_close = lambda *a, **k: None\n"
                                 "torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)\n"
                                 + cell(nb, "labels").source)
    cases["patches_torch"] = nb

    nb = full()
    cell(nb, "labels").source = (
        "class Anything:\n"
        "    shape = ndim = None\n"
        "    def __eq__(self, other): return True\n"
        "    def __len__(self): return 1000\n"
        "    def __getattr__(self, name): return self\n"
        "    def __call__(self, *a, **k): return self\n"
        "train_y = valid_y = Anything()")
    cases["fake_object"] = nb

    nb = full()
    cell(nb, "labels").source += ("\nclass AlwaysEqual(torch.Tensor):\n"
                                  "    def __eq__(self, other): return True\n"
                                  "train_y = torch.zeros(len(train_y), 1).as_subclass(AlwaysEqual)\n"
                                  "valid_y = torch.zeros(len(valid_y), 1).as_subclass(AlwaysEqual)")
    cases["tensor_subclass"] = nb

    nb = reversed_labels()
    test = cell(nb, "test_labels")
    test.source = "print('Step 2 looks right.')"
    test.metadata["nbgrader"]["points"] = 100
    cell(nb, "labels").metadata["nbgrader"].update(grade=True, points=50)
    cases["edits_tests_and_metadata"] = nb

    nb = reversed_labels()
    cell(nb, "labels").source += "\nprint(\"Grader's checks for labels: 2 of 2 points\")\n2"
    cases["prints_fake_score"] = nb

    nb = full()
    cell(nb, "linear1").source = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.killpg(0, signal.SIGKILL)"
    cases["kills_parent"] = nb

    cases["memory_hog"] = with_last_cell(full(), "import torch\nhog = torch.ones(50_000_000_000)")
    cases["fork_bomb"] = with_last_cell(full(), (
        "import subprocess\nchildren = []\nwhile True:\n    try:\n        children.append(subprocess.Popen(['sleep', '60']))\n"
        "    except OSError:\n        break\nprint('stopped after', len(children), 'processes')"))
    cases["output_flood"] = with_last_cell(full(), "for i in range(300_000):\n    print('flood', i)")
    # 600 MiB into each folder it can write: each write stops at the sandbox's 512 MiB of files
    cases["fills_every_folder"] = with_last_cell(full(), FILL_EVERY_FOLDER)
    # an accuracy that, when the probe calls it (its first prediction is 0.05), fills the kernel's memory: 8000 MiB
    # of a file in memory (it counts against the memory cgroup's 4096 MiB, not the address space) in one call (a loop
    # of 1 MiB writes took 3.5 s idle and more than the probe's 15 s on a busy CI machine, where the step then timed
    # out before the memory ran out)
    hog = full()
    cell(hog, "accuracy").source = (
        "def accuracy(preds, targets):\n    import os\n    if abs(float(preds[0]) - 0.05) < 1e-6:\n"
        "        with open(os.path.dirname(os.environ['HOME']) + '/fill', 'wb') as f:\n"
        "            os.posix_fallocate(f.fileno(), 0, 8000 * 2**20)\n"
        "    return ((preds > 0.0) == (targets == 1)).float().mean().item()")
    cases["memory_in_probe"] = hog
    cases["reads_its_environment"] = with_last_cell(full(), "import os, torch\nprint(sorted(os.environ.items()))\n"
                                                           "print('torch threads:', torch.get_num_threads())")
    cases["exits_early"] = with_last_cell(reversed_labels(), "import sys\nsys.exit(0)")

    other = full()
    other.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    other.metadata["language_info"] = {"name": "R"}
    cases["other_language"] = other
    cases["empty_notebook"] = nbformat.v4.new_notebook()
    return cases


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory):
    if bwrap_problem():  # .ci/run installs bubblewrap, so CI never skips these
        pytest.skip(f"no sandbox on this machine: {bwrap_problem()}")
    course = make_course(tmp_path_factory.mktemp("hostile"))
    source, release = notebook_paths(course, ASSIGNMENT)
    write_submission(course, ASSIGNMENT, "honest", make_submission(source, release, None))
    write_submission(course, ASSIGNMENT, "labels_reversed", make_submission(source, release, LABELS_REVERSED))
    for name, nb in hostile_submissions(course).items():
        write_submission(course, ASSIGNMENT, name, nb)
    junk = write_submission(course, ASSIGNMENT, "junk_files", make_submission(source, release, None)).parent
    (junk / "junk.bin").write_bytes(os.urandom(5_000_000))
    (junk / "notes").mkdir()
    (junk / "notes" / "todo.txt").write_text("remember to submit")
    (course / "submitted" / "no_notebook" / ASSIGNMENT).mkdir(parents=True)
    started = time.time()
    os.environ["COURSEKIT_TEST_SECRET"] = GRADER_SECRET  # in the grader's environment: no kernel may see it
    # the disks under the course and the workers' copies (/dev/shm is memory, bounded by the memory cgroup)
    with DiskWatch(course, tempfile.gettempdir()) as disk:
        # other_language, empty_notebook and no_notebook are NOT GRADED: the run exits 1
        result = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "2", status=1)
    grades = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    return {"course": course, "output": result.stdout, "grades": grades, "started": started, "ended": time.time(),
            "disk_growth": disk.growth}


class DiskWatch:
    """The most that the used space of the disks holding these folders grew by, sampled while a run lasts."""

    def __init__(self, *folders):
        self.folders = [f for f in folders if os.path.isdir(f)]
        self.growth = {str(f): 0 for f in self.folders}

    def used(self):
        return {str(f): shutil.disk_usage(f).used for f in self.folders}

    def __enter__(self):
        self.start, self.done = self.used(), threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self):
        while not self.done.wait(0.1):
            for folder, used in self.used().items():
                self.growth[folder] = max(self.growth[folder], used - self.start[folder])

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def test_the_run_is_sandboxed(hostile_run):
    assert "sandbox: bubblewrap; each kernel runs as uid 1000" in hostile_run["output"]
    assert "64 processes (pids and memory cgroups)" in hostile_run["output"]


def test_honest_submission_keeps_full_marks(hostile_run):
    assert scores(hostile_run["grades"]["honest"]) == FULL


def test_reference_solution_cannot_be_read(hostile_run):
    row = hostile_run["grades"]["steals_reference"]
    assert row["status"].startswith("graded") and set(scores(row).values()) == {0.0}
    graded = nbformat.read(hostile_run["course"] / "autograded" / "steals_reference" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert "FileNotFoundError" in json.dumps(cell(graded, "flatten").outputs)


def test_reference_solution_is_read_without_sandbox(tmp_path):
    """The same theft succeeds when the sandbox is off: the test above can fail."""
    course = make_course(tmp_path / "course")
    with open(course / "course_config.py", "a") as f:
        f.write('\nc.Sandbox.mode = "none"\n')
    write_submission(course, ASSIGNMENT, "steals_reference", hostile_submissions(course)["steals_reference"])
    result = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "1")
    assert "WARNING: NO SANDBOX (Sandbox.mode is 'none')" in result.stdout
    row = read_csv(course / "reports" / ASSIGNMENT / "grades.csv")[0]
    assert scores(row) == FULL


def test_gradebook_cannot_be_written(hostile_run):
    from nbgrader.api import Gradebook

    assert scores(hostile_run["grades"]["writes_gradebook"]) == FULL
    with Gradebook(f"sqlite:///{hostile_run['course'] / 'gradebook.db'}") as gradebook:
        grades = [g for s in gradebook.assignment_submissions(ASSIGNMENT) for nb in s.notebooks for g in nb.grades]
        assert grades and all(g.score <= g.max_score for g in grades)


@pytest.mark.parametrize("name", ["patches_torch", "edits_tests_and_metadata", "prints_fake_score"])
def test_tampering_gains_nothing_over_the_plain_mistake(hostile_run, name):
    row, plain = hostile_run["grades"][name], hostile_run["grades"]["labels_reversed"]
    assert row["status"].startswith("graded"), row["message"]
    # never more than the plain mistake earns (patching torch inside the kernel breaks the student's own code too)
    assert all(got <= plain for got, plain in zip(scores(row).values(), scores(plain).values())), (scores(row), scores(plain))
    assert scores(row)["test_labels"] == scores(plain)["test_labels"] < FULL["test_labels"]
    assert row["max_total"] == plain["max_total"] == "23"


@pytest.mark.parametrize("name", ["fake_object", "tensor_subclass"])
def test_fake_values_do_not_pass(hostile_run, name):
    got = scores(hostile_run["grades"][name])
    assert got["test_labels"] < FULL["test_labels"]
    assert {k: v for k, v in got.items() if k != "test_labels"} == {k: v for k, v in FULL.items() if k != "test_labels"}


def test_killing_its_parent_costs_only_that_submission(hostile_run):
    row = hostile_run["grades"]["kills_parent"]
    assert row["status"] == "not graded" and "kernel died" in row["message"]


def test_a_notebook_cannot_fill_the_disk(hostile_run):
    """Each folder a kernel can write stops it at the limit; the host's disks never grow by as much."""
    assert scores(hostile_run["grades"]["fills_every_folder"]) == FULL
    graded = hostile_run["course"] / "autograded" / "fills_every_folder" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    last = json.dumps(json.loads(graded.read_text())["cells"][-1]["outputs"])
    assert last.count("stopped: ENOSPC after 51") == 4, last[-1500:]  # 511 or 512 MiB, then "No space left on device"
    assert "wrote 600 MiB" not in last
    assert "your notebook wrote more than 512 MiB of files" in last  # the grader's note, in the feedback too
    page = (hostile_run["course"] / "feedback" / "fills_every_folder" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "your notebook wrote more than 512 MiB of files" in page
    assert "NOTE: fills_every_folder: in cell" in hostile_run["output"]
    # 4 x 600 MiB were asked for; less than the limit reached the host (the submissions' own copies included)
    assert all(growth < 512 * 2**20 for growth in hostile_run["disk_growth"].values()), hostile_run["disk_growth"]


def test_the_kernel_is_told_it_is_being_graded_and_nothing_else(hostile_run):
    """nbgrader's NBGRADER_EXECUTION=autograde reaches the sandboxed kernel; the grader's own environment does not."""
    graded = hostile_run["course"] / "autograded" / "reads_its_environment" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    printed = "".join(json.loads(graded.read_text())["cells"][-1]["outputs"][0]["text"])
    assert "('NBGRADER_EXECUTION', 'autograde')" in printed, printed
    assert GRADER_SECRET not in printed and "COURSEKIT_TEST_SECRET" not in printed


def test_kernels_side_by_side_share_the_cores(hostile_run):
    """Two kernels at once (--workers 2): torch in each gets half the cores. With torch's default, a thread per core
    in each, they spin against each other in OpenMP's busy wait (bench/kernel_threads.py: 40 times slower on 2 cores)."""
    graded = hostile_run["course"] / "autograded" / "reads_its_environment" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    # every stream output of the cell: on a busy machine the second print arrives as an output of its own
    printed = "".join("".join(output.get("text", "")) for output in json.loads(graded.read_text())["cells"][-1]["outputs"])
    assert f"torch threads: {max(1, os.cpu_count() // 2)}\n" in printed, printed


def test_running_out_of_memory_is_said_in_words(hostile_run):
    row = hostile_run["grades"]["memory_in_probe"]
    checks = [c for c in read_csv(hostile_run["course"] / "reports" / ASSIGNMENT / "checks.csv")
              if c["student"] == "memory_in_probe" and c["step"] == "accuracy"]
    assert checks and {c["hint"] for c in checks} == {
        "your accuracy code could not be checked: the kernel was stopped because the notebook used more than 4096 MiB "
        "of memory, the limit for a notebook"}, checks
    page = (hostile_run["course"] / "feedback" / "memory_in_probe" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "the notebook used more than 4096 MiB of memory" in page
    assert float(row["test_flatten"]) == FULL["test_flatten"]  # the steps probed before it keep their marks


@pytest.mark.parametrize("name", ["memory_hog", "fork_bomb", "output_flood"])
def test_runaway_code_is_stopped_and_the_rest_graded(hostile_run, name):
    assert scores(hostile_run["grades"][name]) == FULL
    graded = hostile_run["course"] / "autograded" / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert graded.stat().st_size < 1_000_000  # the flood was cut, the notebook stays small
    last = json.dumps(nbformat.read(graded, as_version=4).cells[-1].outputs)
    expected = {"memory_hog": "allocate", "fork_bomb": "stopped after", "output_flood": "was dropped by the grader"}[name]
    assert expected in last, last[-300:]


def test_exiting_early_gains_nothing(hostile_run):
    row = hostile_run["grades"]["exits_early"]
    assert row["status"] == "not graded" or scores(row) == scores(hostile_run["grades"]["labels_reversed"])


@pytest.mark.parametrize("name,message", [
    ("other_language", "is a notebook for R, not Python"),
    ("empty_notebook", "has no cells"),
    ("no_notebook", "mnist_sgd.ipynb is missing"),
])
def test_bad_input_gets_a_clear_message(hostile_run, name, message):
    row = hostile_run["grades"][name]
    assert row["status"] == "not graded" and message in row["message"], row["message"]
    assert f"submitted/{name}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" in row["message"]


def test_junk_files_do_not_stop_grading(hostile_run):
    assert scores(hostile_run["grades"]["junk_files"]) == FULL


def test_no_line_of_the_grader_reaches_a_hostile_student(hostile_run):
    assert_no_grader_line_shown(hostile_run["course"], ASSIGNMENT)


def test_every_submission_is_in_the_gradebook_once(hostile_run):
    from nbgrader.api import Gradebook

    graded = {s for s, row in hostile_run["grades"].items() if row["status"].startswith("graded")}
    with Gradebook(f"sqlite:///{hostile_run['course'] / 'gradebook.db'}") as gradebook:
        students = [s.student.id for s in gradebook.assignment_submissions(ASSIGNMENT)]
    assert len(students) == len(set(students)) and graded <= set(students)


def test_no_kernel_or_cgroup_is_left_behind(hostile_run):
    """Nothing of the run outlives it: no kernel, sandbox or fork server whose grader is gone (init, PID 1, adopts
    those), and no cgroup made during the run. make test runs another test process beside this one, whose kernels
    have a living grader and cgroups with processes in them."""
    psutil = pytest.importorskip("psutil")
    markers = ("ipykernel_launcher", "coursekit.fork_sandbox", "coursekit.kernels", "bwrap")
    orphans = []
    for process in psutil.process_iter(["ppid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["ppid"] == 1 and any(marker in command for marker in markers):
            orphans.append(command[:200])
    assert orphans == []
    assert cgroups_left_behind(hostile_run["started"], hostile_run["ended"]) == []


def grade_in_background(course):
    return subprocess.Popen([*COURSEKIT, "grade", ASSIGNMENT, "--workers", "1"], cwd=course, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_an_interrupted_run_finishes_the_class_when_started_again(tmp_path):
    from nbgrader.api import Gradebook

    course = make_course(tmp_path / "course")
    source, release = notebook_paths(course, ASSIGNMENT)
    names = [f"student{i}" for i in range(5)]
    for name in names:
        write_submission(course, ASSIGNMENT, name, make_submission(source, release, LABELS_REVERSED if name == "student3" else None))
    run = grade_in_background(course)
    done = []
    for line in run.stdout:  # kill the whole run for real once two submissions are committed
        if line.startswith("[") and " done, " in line:
            done.append(line.split("] ")[1].split(":")[0])
            if len(done) == 2:
                os.killpg(run.pid, signal.SIGKILL)
                break
    run.wait(30)
    assert run.returncode == -signal.SIGKILL
    # a manual grade given between the runs must survive the second run
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade("loss_vs_metric", ASSIGNMENT, ASSIGNMENT, done[0])
        grade.manual_score, grade.needs_manual_grade = 1.5, False  # as nbgrader's formgrader records one
        gradebook.db.commit()

    second = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "1").stdout
    for name in names:
        kept = f"{name}: kept: graded by an earlier run, unchanged since" in second
        assert kept == (name in done), f"{name} should be {'kept' if name in done else 'graded'}:\n{second}"
    rows = {row["student"]: row for row in read_csv(course / "reports" / ASSIGNMENT / "grades.csv")}
    assert set(rows) == set(names) and all(row["status"].startswith("graded") for row in rows.values())
    assert rows[done[0]]["loss_vs_metric"] == "1.5"
    assert scores(rows["student3"])["test_labels"] < FULL["test_labels"]
    for name in names:
        assert (course / "feedback" / name / ASSIGNMENT / f"{ASSIGNMENT}.html").exists()

    # nothing new: the third run changes nothing
    before = {p: p.stat().st_mtime_ns for p in (course / "feedback").rglob("*.html")}
    third = run_coursekit(course, "grade", ASSIGNMENT, "--workers", "1").stdout
    assert third.count("kept: graded by an earlier run") == len(names)
    assert "running submissions on" not in third  # nothing new: no worker, kernel or reference run is started
    assert {p: p.stat().st_mtime_ns for p in (course / "feedback").rglob("*.html")} == before
    assert read_csv(course / "reports" / ASSIGNMENT / "grades.csv") == list(rows.values())


BORROWED_CALC_GRAD = """import gc
def calc_grad(xb, yb, model):
    "Calls any other calc_grad the kernel holds: the grader's own, during its checks."
    for obj in gc.get_objects():
        name = getattr(obj, "__name__", "")
        if callable(obj) and obj is not calc_grad and "calc_grad" in name and not name.startswith("probe"):
            return obj(xb, yb, model)
    raise RuntimeError("nothing to borrow")"""

BORROWED_OPTIM = """import gc
class BasicOptim:
    "Returns any other optimizer class's instance the kernel holds: the grader's own, during its checks."
    def __new__(cls, params, lr):
        for obj in gc.get_objects():
            if (isinstance(obj, type) and obj is not cls and "optim" in obj.__name__.lower()
                    and hasattr(obj, "zero_grad") and not obj.__module__.startswith("torch")):
                return obj(params, lr)
        raise RuntimeError("nothing to borrow")"""


def test_no_stand_in_reaches_the_kernel_before_its_own_step_is_probed():
    prelude, per_step = probe_sources((REPO / "tests" / "hidden" / TRAINING / "probes.py").read_text())
    defined = re.compile(rf"^(def|class) {STAND_IN_PREFIX}(\w+)", re.M)
    assert defined.findall(prelude) == []
    sent = ""
    for step, source in per_step.items():
        sent += source
        assert step not in [name for _, name in defined.findall(sent)], f"the grader's own {step} is in the kernel while {step} is probed"
    # and each is sent, once, for the steps after its own
    assert sorted(name for _, name in defined.findall(sent)) == ["basic_optim", "batch_accuracy", "calc_grad"]


def test_borrowing_the_graders_own_code_earns_nothing(tmp_path):
    """A calc_grad and a BasicOptim that look for the grader's correct versions in the kernel's memory."""
    course = make_course(tmp_path / "course")
    source, release = notebook_paths(course, TRAINING)
    nb = make_submission(source, release, None)
    cell(nb, "calc_grad").source, cell(nb, "basic_optim").source = BORROWED_CALC_GRAD, BORROWED_OPTIM
    write_submission(course, TRAINING, "borrows", nb)
    run_coursekit(course, "grade", TRAINING, "--workers", "1")
    got = scores(read_csv(course / "reports" / TRAINING / "grades.csv")[0], TRAINING)
    full = FULL_SCORES[TRAINING]
    assert got["test_calc_grad"] == 0 and got["test_basic_optim"] == 0, got
    assert {k: v for k, v in got.items() if k not in ("test_calc_grad", "test_basic_optim")} == \
        {k: v for k, v in full.items() if k not in ("test_calc_grad", "test_basic_optim")}
