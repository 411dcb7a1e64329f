"""Kernels that run a student's code in a sandbox, with limits.

Where a process inside bubblewrap can make namespaces of its own (fork_sandbox.fork_sandbox_problem), kernels are
forked from a server in one bubblewrap sandbox (fork_sandbox.py), with the same isolation and limits as below. This
module is the settings, the cgroups and the checks they share, and the fallback described here:

With bubblewrap (`bwrap`) each kernel is a new process in namespaces of its
own: user (it runs as uid 1000, without capabilities), PID (it sees only its
own processes, and its "parent" is the sandbox's init), mount (it sees the
Python installation, the kit's package and the course data, all read-only, its
own working copy and a private home; not source/, tests/, gradebook.db or any
other student's folder), network (loopback only), IPC and UTS. Its environment
is cleared. Limits: address space (RLIMIT_AS, so a runaway allocation raises
MemoryError in the student's cell), and, where the machine lets coursekit make
cgroups, a pids cgroup (a fork bomb stops at `max_processes`, also when the
grader runs as root, where RLIMIT_NPROC does not apply) and a memory cgroup.
Files: every folder the kernel can write (its working copy, /tmp, its home,
/dev/shm) is on one tmpfs of `disk_mb` (sandbox_disk.py makes it inside the
sandbox); bwrap's own root and /dev are read-only.

The kernel talks to the grader over ipc sockets in a folder bound into the
sandbox, so no TCP port is needed across the network namespace.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Enum, Integer
from traitlets.config import Configurable

from .prompt_kernels import PromptKernelManager

SANDBOX_UID = 1000
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class Sandbox(Configurable):
    """How student kernels are isolated and limited (c.Sandbox.* in course_config.py)."""

    mode = Enum(["auto", "bwrap", "none"], default_value="auto", help=(
        "bwrap: every kernel in a bubblewrap sandbox (an error if bwrap cannot run here); "
        "auto: bwrap where it works, else no sandbox, said loudly; none: no sandbox.")).tag(config=True)
    memory_mb = Integer(4096, help="Address space a kernel may use, in MiB.").tag(config=True)
    max_processes = Integer(64, help="Processes and threads a kernel may have at once (pids cgroup).").tag(config=True)
    disk_mb = Integer(512, help=(
        "Files a kernel may write, in MiB, in all the folders it can write (its working folder, /tmp, its home, "
        "/dev/shm): one tmpfs of this size, beyond the files handed in. A write past it fails in the cell with "
        "'No space left on device'; the grading machine's disk is never written.")).tag(config=True)


@functools.cache
def bwrap_problem() -> str | None:
    """None when bubblewrap can make a sandbox on this machine; else why it cannot."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; on Debian or Ubuntu: apt-get install bubblewrap"
    return command_problem([bwrap, "--unshare-all", "--uid", str(SANDBOX_UID), "--ro-bind", "/", "/", "true"],
                           "bwrap could not run", "bwrap cannot make namespaces here")


def command_problem(argv: list[str], cannot_run: str, failed: str) -> str | None:
    """None when a check's command exits 0; else the words for why not, with the start of what it said."""
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cannot_run}: {exc}"
    if probe.returncode != 0:
        return f"{failed}: {probe.stderr.strip()[:200]}"
    return None


def use_bwrap(mode: str) -> bool:
    """Whether kernels go into bwrap; `mode` bwrap without a working bwrap is an error, auto falls back."""
    if mode == "none":
        return False
    problem = bwrap_problem()
    if problem and mode == "bwrap":
        raise RuntimeError(f"Sandbox.mode is 'bwrap' but {problem}")
    return problem is None


def sandbox_plan(config) -> tuple[bool, str]:
    """(whether kernels go into bwrap, a line for the run's output saying what holds); loud when nothing does."""
    limits = Sandbox(config=config)
    if not use_bwrap(limits.mode):
        why = "Sandbox.mode is 'none'" if limits.mode == "none" else bwrap_problem()
        return False, (f"WARNING: NO SANDBOX ({why}). Student code runs with your rights: it can read the course "
                       "folder, gradebook.db and the hidden checks included, use the network and signal your processes. "
                       "Time limits and output caps still hold.")
    KernelCgroups.remove_stale()
    probe = KernelCgroups(f"probe{uuid.uuid4().hex[:8]}", limits)
    cgroups = "pids and memory cgroups" if len(probe.folders) == 2 else "pids cgroup" if probe.limits_processes else \
        "no cgroups (this machine does not let coursekit make them: a fork bomb is not contained)"
    probe.remove()
    from .fork_sandbox import fork_sandbox_problem

    nesting = fork_sandbox_problem()
    start = ("forked from one server with torch imported, itself in a bubblewrap sandbox" if nesting is None else
             f"a new bwrap process importing torch (the fork server's mode is not available: {nesting})")
    return True, (f"sandbox: bubblewrap; each kernel runs as uid {SANDBOX_UID} in its own user, PID, mount, IPC and network "
                  f"namespaces and sees only its own copy of the submission, with Python and the data read-only; "
                  f"each kernel is {start}; "
                  f"limits: {limits.memory_mb} MiB address space, {limits.max_processes} processes ({cgroups}), "
                  f"{limits.disk_mb} MiB of files written")


def readable_paths() -> list[str]:
    """What a kernel needs to see, read-only: the system, Python, the venv, the kit's package, the course data."""
    import coursekit
    from coursekit.data import mnist_sample_path

    paths = [p for p in SYSTEM_PATHS if os.path.exists(p)]
    paths += [sys.base_prefix, sys.prefix, str(Path(coursekit.__file__).resolve().parent), str(mnist_sample_path())]
    return list(dict.fromkeys(paths))


def prepare_home(folder: Path) -> None:
    """A private home, with matplotlib's font list copied in, so no kernel rebuilds it (and says so on stderr)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib
        from matplotlib import font_manager  # noqa: F401  builds the font list once, in the grader's cache

        cache = Path(matplotlib.get_cachedir())
        target = folder / ".config" / "matplotlib"
        target.mkdir(parents=True, exist_ok=True)
        for fontlist in cache.glob("fontlist-*.json"):
            shutil.copy(fontlist, target / fontlist.name)
    except ImportError:
        pass


# what nbgrader tells a kernel, and its torch threads (kernels.KERNEL_THREADS_ENV); nothing else of the grader's env
PASSED_ENV = ("NBGRADER_EXECUTION", "NBGRADER_VALIDATING", "OMP_NUM_THREADS")


def bwrap_common_argv() -> list[str]:
    """What every bubblewrap sandbox here starts with: all namespaces new, uid 1000, an empty environment,
    what a kernel needs to read, read-only."""
    argv = ["bwrap", "--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--die-with-parent", "--new-session", "--clearenv",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in readable_paths():
        argv += ["--ro-bind", path, path]
    return argv


# The mount points sandbox_disk.py uses; then bwrap's own root and /dev, tmpfs without a size, are made read-only
BWRAP_READ_ONLY_ROOT = ["--dir", "/.coursekit/limited", "--dir", "/.coursekit/run", "--remount-ro", "/", "--remount-ro", "/dev"]


def bwrap_argv(workdir: str, run_dir: str, home: str, passed_env: dict | None = None) -> list[str]:
    """The bubblewrap command a kernel's own command is appended to."""
    argv = bwrap_common_argv()
    # run_dir holds the connection file, the ipc sockets and the private home
    argv += ["--bind", run_dir, run_dir, "--bind", workdir, workdir, "--chdir", workdir, *BWRAP_READ_ONLY_ROOT]
    for name, value in kernel_env(home, passed_env or {}).items():
        argv += ["--setenv", name, value]
    return argv


def kernel_env(home: str, passed_env: dict) -> dict:
    """A sandboxed kernel's whole environment: nothing of the grader's but PASSED_ENV."""
    from coursekit.data import mnist_sample_path

    return {"HOME": home, "MPLCONFIGDIR": f"{home}/.config/matplotlib", "PATH": f"{sys.prefix}/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8", "COURSEKIT_MNIST_SAMPLE": str(mnist_sample_path()), "PYTHONDONTWRITEBYTECODE": "1",
            **{name: value for name, value in passed_env.items() if name in PASSED_ENV}}


def disk_limit_argv(limits: "Sandbox", workdir: str, run_dir: str, home: str) -> list[str]:
    """The command, run inside bwrap before the kernel's own, that puts every folder the kernel can write
    on one tmpfs of limits.disk_mb MiB (sandbox_disk.py)."""
    return [sys.executable, "-I", "-S", str(Path(__file__).with_name("sandbox_disk.py")), str(limits.disk_mb),
            workdir, run_dir, home, "--"]


def sockets_parent() -> str | None:
    """Where each kernel's run folder (connection file, ipc sockets) is made: /dev/shm, in memory, where a
    kernel's writes count against its memory cgroup instead of filling a disk; else the temporary folder (or /tmp,
    kernels.socket_folder_parent)."""
    from .kernels import socket_folder_parent

    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else socket_folder_parent()


class KernelCgroups:
    """A pids and a memory cgroup (v1 or v2) for one kernel, where this machine lets coursekit make them."""

    live: set[KernelCgroups] = set()  # this process's, not removed yet: remove_all() as a worker stops on Ctrl-C

    def __init__(self, name: str, limits: Sandbox):
        self.folders: list[Path] = []
        KernelCgroups.live.add(self)
        for controller, files in (("pids", {"pids.max": str(limits.max_processes)}),
                                  ("memory", {"memory.limit_in_bytes": str(limits.memory_mb * 2**20)})):
            for base in (CGROUP_ROOT / controller, CGROUP_ROOT):  # v1 layout, then v2
                if base == CGROUP_ROOT and not (base / "cgroup.controllers").exists():
                    continue  # not a cgroup v2 mount: a folder made there would be a plain folder
                folder = base / "coursekit" / name
                try:
                    folder.mkdir(parents=True)
                except OSError:
                    continue
                if base == CGROUP_ROOT:  # v2: controllers must be enabled for the children of coursekit/
                    self._write(base / "coursekit", "cgroup.subtree_control", "+pids +memory")
                written = [self._write(folder, key if base.name == controller else self._v2(key), value) for key, value in files.items()]
                if all(written):
                    self.folders.append(folder)
                    break
                self._remove(folder)

    @staticmethod
    def _v2(key: str) -> str:
        return {"memory.limit_in_bytes": "memory.max"}.get(key, key)

    @staticmethod
    def _write(folder: Path, key: str, value: str) -> bool:
        try:
            (folder / key).write_text(value)
            return True
        except OSError:
            return False

    def ran_out_of_memory(self) -> bool:
        """Whether the kernel's memory cgroup killed a process for using more than its limit."""
        for folder in self.folders:
            for name in ("memory.oom_control", "memory.events"):  # v1, v2: a line "oom_kill N"
                try:
                    lines = (folder / name).read_text().splitlines()
                except OSError:
                    continue
                if any(line.split()[:1] == ["oom_kill"] and int(line.split()[1]) > 0 for line in lines):
                    return True
        return False

    @property
    def limits_processes(self) -> bool:
        return any((f / "pids.max").exists() for f in self.folders)

    def join_prefix(self) -> list[str]:
        """A command prefix that moves the new process into these cgroups before anything else runs."""
        if not self.folders:
            return []
        moves = "; ".join(f"echo $$ > {f / 'cgroup.procs'}" for f in self.folders)
        return ["sh", "-c", f'{moves}; exec "$@"', "coursekit-kernel"]

    @staticmethod
    def remove_stale(age_seconds: float = 3600) -> None:
        """Remove cgroups of kernels whose grader was killed before it could (empty ones, an hour old)."""
        for controller in ("pids", "memory", ""):
            for folder in (CGROUP_ROOT / controller / "coursekit").glob("*") if (CGROUP_ROOT / controller / "coursekit").is_dir() else []:
                try:
                    if folder.is_dir() and time.time() - folder.stat().st_mtime > age_seconds:
                        folder.rmdir()  # fails, as it should, while a process is in it
                except OSError:
                    pass

    def remove(self) -> None:
        """Kill whatever the kernel left running in its cgroups (a fork bomb's children), then remove them."""
        for folder in self.folders:
            self._remove(folder)
        self.folders = []
        KernelCgroups.live.discard(self)

    @classmethod
    def remove_all(cls) -> None:
        """Every cgroup this process made and has not removed, with the kernels in them."""
        for cgroups in list(cls.live):
            cgroups.remove()

    @staticmethod
    def _remove(folder: Path) -> None:
        for _ in range(100):
            try:
                pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                folder.rmdir()
                return
            except OSError:
                time.sleep(0.02)  # processes take a moment to leave a cgroup once killed


class SandboxedProvisioner(LocalProvisioner):
    """Launches the kernel's command inside bubblewrap, under prlimit and in its own cgroups."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        km = self.parent
        limits = km.sandbox
        self.cgroups = KernelCgroups(f"k{uuid.uuid4().hex[:16]}", limits)
        workdir = str(Path(kwargs.get("cwd") or os.getcwd()).resolve())
        wrapped = [*self.cgroups.join_prefix(), "prlimit", f"--as={limits.memory_mb * 2**20}", "--core=0", "--",
                   *bwrap_argv(workdir, km.run_dir, km.home, kwargs.get("env")), *disk_limit_argv(limits, workdir, km.run_dir, km.home), *cmd]
        kwargs["env"] = {}  # bwrap --clearenv sets the sandbox's own; nothing of the grader's leaks in
        kwargs["stdout"] = kwargs["stderr"] = subprocess.DEVNULL  # the kernel's banner is not the grader's output
        return await super().launch_kernel(wrapped, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if getattr(self, "cgroups", None):
            self.cgroups.remove()


class SandboxedKernelManager(PromptKernelManager):
    """An AsyncKernelManager whose kernels run in bubblewrap, over ipc sockets in a folder bound into the sandbox."""

    provisioner_class = SandboxedProvisioner

    def __init__(self, **kwargs):
        kwargs["transport"] = "ipc"
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self.run_dir = self.make_run_dir()
        self.home = os.path.join(self.run_dir, "home")
        prepare_home(Path(self.home))
        self.ip = os.path.join(self.run_dir, "k")
        self.connection_file = os.path.join(self.run_dir, "connection.json")

    def make_run_dir(self) -> str:
        """The kernel's own folder for its connection file, ipc sockets and home, shared with the grader."""
        return tempfile.mkdtemp(prefix="coursekit-kernel-", dir=sockets_parent())

    async def _async_pre_start_kernel(self, **kw):
        # a signal to bwrap (or to PID 1 of the kernel's namespace) does not reach the kernel in its own session and
        # PID namespace, or ends it: ask it by message
        self.kernel_spec.interrupt_mode = "message"
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = self.provisioner_class(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources
