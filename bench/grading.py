"""Benchmark: coursekit grade against nbgrader's own sequential autograde, on this machine.

    make bench                      # K=24 against nbgrader, then growth with K and workers, then 500
    python bench/grading.py --k 24 --skip-growth --skip-class
    python bench/grading.py --only-class       # a class of 500, sandboxed (issue 13: at most 10 minutes)

Both tools run student kernels as course_config.py says (in bubblewrap where it
works); one more run shows coursekit without the sandbox, for its cost, and one
more nbgrader with `c.Sandbox.mode = "none"`, whose kernels jupyter_client starts
as it comes (a new Python importing torch for each notebook: --skip-stock leaves
it out). bench/cpu_split.py then grades the same class one submission at a time
in one process and splits its CPU: the kernels (the same kernels nbgrader's run
used), driving them and the hidden checks, and nbgrader's autograde and feedback.
The kernels' and nbgrader's parts, spread over every core, are as fast as any
grader that runs those kernels and keeps nbgrader's gradebook and pages can go:
the bench prints that bound beside the ratio.

Each run gets its own fresh copy of the course and K submissions: the full
solution and the typical mistakes of the sample set, in turn. Both tools grade
with the same course_config.py, so the same probes and hidden checks; the
scores in the two gradebooks must agree, or the benchmark fails. The baseline
is `nbgrader autograde` followed by `nbgrader generate_feedback`, because
`coursekit grade` also writes feedback. CPU seconds include every process the
run started (workers, fork servers, kernels): read from a cpuacct cgroup made for
the run where the machine allows it, as rusage misses processes in bwrap's PID
namespaces.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coursekit.grade import fingerprint  # noqa: E402
from coursekit.samples import make_submission, require_samples, write_submission  # noqa: E402

ASSIGNMENT = "mnist_sgd"
BIN = Path(sys.executable).parent


def make_course(folder: Path, k: int, kinds: int | None = None, sandbox: str = "") -> Path:
    """A course with k submissions: the full solution and the samples' mistakes in turn (only the first `kinds` of them);
    `sandbox`, a Sandbox.mode for its course_config.py."""
    for name in ("source", "release"):
        shutil.copytree(REPO / name, folder / name)
    shutil.copytree(REPO / "tests" / "hidden", folder / "tests" / "hidden", ignore=shutil.ignore_patterns("__pycache__"))
    for config in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(REPO / config, folder / config)
    if sandbox:
        with open(folder / "course_config.py", "a") as f:
            f.write(f"\nc.Sandbox.mode = {sandbox!r}\n")
    source = folder / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    release = folder / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    mix = [None, *(s for s in require_samples(REPO, ASSIGNMENT).samples if s.mistake)][:kinds]
    for i in range(k):
        sample = mix[i % len(mix)]
        write_submission(folder, ASSIGNMENT, f"student{i:04d}", make_submission(source, release, sample))
    return folder


def cgroup_seconds(folder: Path) -> float:
    """CPU seconds of a cgroup: cpuacct.usage (v1, nanoseconds) or cpu.stat's usage_usec (v2)."""
    if (folder / "cpuacct.usage").exists():
        return int((folder / "cpuacct.usage").read_text()) / 1e9
    stat = (folder / "cpu.stat").read_text()
    return int(next(line.split()[1] for line in stat.splitlines() if line.startswith("usage_usec"))) / 1e6


class CpuCgroup:
    """A CPU-accounting cgroup for one run: it counts every process the run starts, also those that
    getrusage(RUSAGE_CHILDREN) never hears of (processes in a bwrap PID namespace are reaped by bwrap's
    init, and those still alive when that namespace ends are reaped by no one we wait for).
    None where this machine does not let us make one (then rusage is all there is)."""

    def __init__(self):
        self.folder = None
        for base, usage in ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage"), (Path("/sys/fs/cgroup"), "cpu.stat")):
            if (base / usage).exists() or (base / "cgroup.controllers").exists():
                folder = base / f"coursekit-bench-{os.getpid()}-{time.monotonic_ns()}"
                try:
                    folder.mkdir()
                except OSError:
                    continue
                self.folder = folder
                break

    def join(self) -> None:
        """In the child, before it execs: into the cgroup, with everything it starts."""
        (self.folder / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        return cgroup_seconds(self.folder)

    def remove(self) -> None:
        for _ in range(100):
            try:
                self.folder.rmdir()
                return
            except OSError:  # processes take a moment to leave
                time.sleep(0.05)


def timed(commands: list[list[str]], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (of all descendants) of running the commands one after the other."""
    # a cache folder of its own: every measured run pays for its reference solution run, as nbgrader's does
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COURSEKIT_CACHE_DIR": tempfile.mkdtemp(dir=cwd.parent)}
    cgroup = CpuCgroup()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    for command in commands:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                                preexec_fn=cgroup.join if cgroup.folder else None)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if cgroup.folder:
        cpu = max(cpu, cgroup.seconds())
        cgroup.remove()
    return wall, cpu


def gradebook_scores(course: Path) -> dict:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for notebook in gradebook.find_assignment(ASSIGNMENT).notebooks:
            for submission in notebook.submissions:
                for grade in submission.grades:
                    if grade.name.startswith("test_"):
                        scores[(submission.student.id, grade.name)] = grade.score
    return scores


def coursekit_run(k: int, workers: int, scratch: Path, sandbox: str = "") -> tuple[float, float, dict]:
    course = make_course(Path(tempfile.mkdtemp(dir=scratch)), k, sandbox=sandbox)
    wall, cpu = timed([[str(BIN / "coursekit"), "grade", ASSIGNMENT, "--workers", str(workers)]], course)
    return wall, cpu, gradebook_scores(course)


def nbgrader_run(k: int, scratch: Path, sandbox: str = "") -> tuple[float, float, dict]:
    # sandbox "none": nbgrader's kernels as jupyter_client starts them, a new Python each (fork_kernels is off)
    course = make_course(Path(tempfile.mkdtemp(dir=scratch)), k, sandbox=sandbox)
    config = "--NbGrader.config_file=course_config"
    timed([[str(BIN / "nbgrader"), "generate_assignment", ASSIGNMENT, config, "--force"]], course)  # staff do this once, before grading
    wall, cpu = timed([[str(BIN / "nbgrader"), "autograde", ASSIGNMENT, config, "--create", "--force"],
                       [str(BIN / "nbgrader"), "generate_feedback", ASSIGNMENT, config, "--force"]], course)
    return wall, cpu, gradebook_scores(course)


class RecordingWorkers:
    """Local workers whose finished jobs are kept: the submissions' graded runs, to hand the coordinator again."""

    def __init__(self, workers):
        self.workers, self.results = workers, {}

    def submit(self, fn, *args):
        future = self.workers.submit(fn, *args)
        future.add_done_callback(lambda f: self.results.__setitem__(fn.__name__ + ":" + fingerprint(args[0].files), f.result()))
        return future

    def __getattr__(self, name):
        return getattr(self.workers, name)


class ReplayingWorkers:
    """Workers that hand back, at once, what recorded workers returned for a submission with the same files."""

    def __init__(self, results: dict):
        self.results = results

    def share(self, bundle):
        return bundle

    def submit(self, fn, job, bundle):
        import concurrent.futures
        from dataclasses import replace

        future = concurrent.futures.Future()
        result = self.results[fn.__name__ + ":" + fingerprint(job.files)]
        if hasattr(result, "run"):  # a graded submission: now this student's
            result = replace(result, run=replace(result.run, student=job.student))
        future.set_result(result)
        return future

    def batches(self, futures, most=None):
        from coursekit.parallel import BATCH_MOST, in_chunks

        yield from in_chunks(list(futures), most or BATCH_MOST)

    def describe(self) -> str:
        return "replayed runs"

    def close(self) -> None:
        pass


def coordinator_capacity(scratch: Path, size: int, distinct: int) -> tuple[float, float, int]:
    """Submissions a minute the coordinator writes (files, gradebook rows, feedback) when its workers are instant.

    A class of `distinct` different submissions is graded for real, keeping each worker's result; then a class of
    `size`, copies of those, is graded in this process with workers that hand the kept results back at once.
    Returns the rate from the first submission written to the last, the CPU seconds of this process per
    submission, and the number of gradebook transactions (batches).
    """
    from coursekit import grade
    from coursekit.parallel import LocalWorkers

    first = make_course(Path(tempfile.mkdtemp(dir=scratch)), distinct)
    opened = grade.open_workers
    recorder = None

    def recording(*args, **kwargs):
        nonlocal recorder
        recorder = RecordingWorkers(opened(*args, **kwargs))
        return recorder

    grade.open_workers = recording
    try:
        grade.grade_assignment(first, ASSIGNMENT, sandboxed=True)
    finally:
        grade.open_workers = opened
    course = make_course(Path(tempfile.mkdtemp(dir=scratch)), size, kinds=distinct)  # the first class's submissions, in turn
    times, batches = [], []
    original_write = grade.GradebookWriter.write

    def counted(self, batch):
        batches.append(len(batch))
        return original_write(self, batch)

    grade.open_workers = lambda *args, **kwargs: ReplayingWorkers(recorder.results)
    grade.GradebookWriter.write = counted
    try:
        cpu = time.process_time()
        outcomes = grade.grade_assignment(course, ASSIGNMENT, sandboxed=True, on_outcome=lambda *_: times.append(time.monotonic()))
        cpu = time.process_time() - cpu
    finally:
        grade.open_workers = opened
        grade.GradebookWriter.write = original_write
    if not all(o.complete for o in outcomes) or len(outcomes) != size:
        raise SystemExit(f"the replayed class was not all graded: {[o.message for o in outcomes if not o.complete][:3]}")
    if gradebook_scores(course) != {(f"student{i:04d}", g): s for (student, g), s in gradebook_scores(first).items()
                                    for i in range(size) if i % distinct == int(student[-4:])}:
        raise SystemExit("the replayed class's scores differ from those of the class graded for real")
    return (len(times) - 1) / (times[-1] - times[0]) * 60, cpu / size, len(batches)


def cpu_split(k: int, scratch: Path) -> dict:
    """bench/cpu_split.py on a fresh course of k: the CPU of the submissions' kernels, of driving them and the hidden
    checks, and of nbgrader's autograde and feedback. The second cgroup only takes the grading process out of the first."""
    import json

    course = make_course(Path(tempfile.mkdtemp(dir=scratch)), k)
    kernels, rest = CpuCgroup(), CpuCgroup()
    if not (kernels.folder and rest.folder):
        return {}
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COURSEKIT_CACHE_DIR": tempfile.mkdtemp(dir=scratch)}
    try:
        result = subprocess.run([sys.executable, str(REPO / "bench" / "cpu_split.py"), str(course), str(kernels.folder),
                                 str(rest.folder)], cwd=course, env=env, capture_output=True, text=True, preexec_fn=kernels.join)
    finally:
        kernels.remove(), rest.remove()
    if result.returncode != 0:
        raise SystemExit(f"bench/cpu_split.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def row(label: str, k: int, wall: float, cpu: float) -> str:
    return f"{label:<34} K={k:<4} {wall:7.1f} s  {k / wall * 60:6.1f}/min  {cpu / k:5.2f} CPU s/submission"


def whole_class(args, scratch: Path) -> int:
    wall, cpu, scores = coursekit_run(args.class_size, args.workers, scratch)
    print(row("coursekit grade, whole class", args.class_size, wall, cpu) + f"  load {os.getloadavg()[0]:.1f}")
    students = {student for student, _ in scores}
    print(f"{len(scores)} grade cells recorded for {len(students)} of {args.class_size} students; "
          f"target: at most 10 minutes (600 s), sandboxed", flush=True)
    return 0 if len(students) == args.class_size else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=24, help="submissions for the comparison with nbgrader")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--class-size", type=int, default=500, help="submissions in the whole-class run")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-class", action="store_true")
    parser.add_argument("--capacity-size", type=int, default=600, help="submissions in the coordinator's capacity run")
    parser.add_argument("--only-capacity", action="store_true", help="measure the coordinator's capacity alone")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-stock", action="store_true", help="skip nbgrader with jupyter_client's own kernels (3 minutes)")
    parser.add_argument("--only-class", action="store_true", help="measure the whole-class run alone")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; coursekit with {args.workers} workers\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="coursekit-bench-") as tmp:
        scratch = Path(tmp)
        if not args.skip_capacity:
            rate, cpu, batches = coordinator_capacity(scratch, args.capacity_size, distinct=6)
            print(f"coordinator capacity (workers hand it finished runs at once): {rate:.0f} submissions/min, "
                  f"{cpu * 1000:.0f} ms CPU each, {args.capacity_size} submissions in {batches} transactions "
                  f"(target: at least 600/min); load {os.getloadavg()[0]:.1f}\n", flush=True)
        if args.only_capacity:
            return 0
        if args.only_class:
            return whole_class(args, scratch)
        base_wall, base_cpu, base_scores = nbgrader_run(args.k, scratch)
        print(row("nbgrader autograde + feedback", args.k, base_wall, base_cpu) + f"  load {os.getloadavg()[0]:.1f}", flush=True)
        kit_wall, kit_cpu, kit_scores = coursekit_run(args.k, args.workers, scratch)
        print(row("coursekit grade", args.k, kit_wall, kit_cpu) + f"  load {os.getloadavg()[0]:.1f}", flush=True)
        if kit_scores != base_scores:
            differ = sorted(key for key in set(kit_scores) | set(base_scores) if kit_scores.get(key) != base_scores.get(key))
            print(f"SCORES DIFFER for {len(differ)} grade cells, e.g. {differ[:5]}")
            return 1
        print(f"scores agree on all {len(kit_scores)} grade cells; coursekit is {base_wall / kit_wall:.1f}x faster "
              f"(target: at least 4x)", flush=True)
        split = cpu_split(args.k, scratch)
        if split:
            # nbgrader's own run uses the very same kernels (course_config.py), and coursekit grades with nbgrader's own
            # autograde and feedback: that work, spread over every core, is as fast as a grader keeping them can be
            cores, n = os.cpu_count() or 1, split["submissions"]
            kernel, nbgrader = split["kernels"] / n, split["nbgrader"] / n
            least = args.k * (kernel + nbgrader) / cores
            print(f"where a submission's CPU goes (one process, {n} in turn): its kernel {kernel:.2f} s (start, cells, "
                  f"probes, stop), driving it and the hidden checks {split['running'] / n:.2f} s, nbgrader's autograde and "
                  f"feedback {nbgrader:.2f} s\nthe kernels and nbgrader's autograde and feedback alone keep {cores} cores "
                  f"busy {least:.1f} s for K={args.k}: a grader that runs these kernels and keeps nbgrader's gradebook "
                  f"and pages is at most {base_wall / least:.1f}x faster than nbgrader's {base_wall:.1f} s", flush=True)
        # both runs above use course_config.py's sandbox; this is what it costs
        wall, cpu, _ = coursekit_run(args.k, args.workers, scratch, sandbox="none")
        print(row("coursekit grade, no sandbox", args.k, wall, cpu), flush=True)
        if not args.skip_stock:
            wall, cpu, stock_scores = nbgrader_run(args.k, scratch, sandbox="none")
            print(row("nbgrader, jupyter_client's kernels", args.k, wall, cpu) + f"  load {os.getloadavg()[0]:.1f}", flush=True)
            agree = "scores agree" if stock_scores == base_scores else "SCORES DIFFER"
            print(f"(a new Python importing torch for each notebook, no sandbox: nbgrader as it comes; {agree}); "
                  f"sandboxed coursekit grade is {wall / kit_wall:.1f}x faster", flush=True)
            if stock_scores != base_scores:
                return 1
        print(flush=True)
        if not args.skip_growth:
            print("growth with the number of workers and of submissions:")
            for workers, k in [(1, args.k), (args.workers, args.k // 2), (args.workers, args.k * 2)]:
                wall, cpu, _ = coursekit_run(k, workers, scratch)
                print(row(f"coursekit grade, {workers} worker(s)", k, wall, cpu), flush=True)
            print()
        if not args.skip_class:
            return whole_class(args, scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
