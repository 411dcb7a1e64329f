"""Sandboxed kernels without paying for `import torch` each time: a fork server inside bubblewrap.

One server per run (or per worker process that starts its own) runs in ONE
bubblewrap sandbox, made as each kernel's used to be: uid 1000, a cleared
environment, no network, nothing of the course, Python, the venv, the kit and
the MNIST sample read-only. It imports torch, numpy, PIL and ipykernel once
(kernels.PRELOAD). The grader and the server share one run folder, bound into
the sandbox at the same path:

    RUN/fork.sock           the server's socket: one JSON request per kernel
    RUN/ready-<id>.sock     the grader listens here for that kernel, until it is placed in its cgroups
    RUN/k<id>/              the kernel's staging folder: connection.json, its ipc sockets,
              work/         a copy of the submission folder (the kernel's working folder)
              home/         its home

For each request the server forks a child, which, before any student code:
1. connects to RUN/ready-<id>.sock (it is about to disappear from its view);
2. enters new user, mount, PID, IPC, network and UTS namespaces (sandbox_disk.py),
   keeping uid 1000, and makes `/` private;
3. puts its working folder, home, /tmp and /dev/shm on one tmpfs of
   Sandbox.disk_mb (sandbox_disk.limit_writable_folders), and covers RUN, so that
   it sees only its own staging folder, never another kernel's nor the server's socket;
4. forks the process that is PID 1 of the new PID namespace, and exits. PID 1
   mounts a /proc of its own where the kernel allows it, tells the grader it is
   ready over the connection from 1 (SCM_CREDENTIALS: the grader reads its pid
   as the grader sees it), waits until the grader has moved it into the kernel's
   pids and memory cgroups and says "go", sets the rlimits, drops every
   capability and forks the kernel, PID 2, which becomes an ipykernel as
   kernels.become_kernel does (fresh seeds). PID 1 only reaps, and exits with the
   kernel: everything left in the namespace dies with it.

Each kernel keeps the server's hash seed (str hashes, set order): a running
interpreter cannot take a new one, and no grading outcome depends on it.
A kernel can see in /proc that the other kernels exist (a fresh /proc cannot be
mounted below bubblewrap's, whose parts it covers), not their files, memory or
environment: each is in a user namespace of its own.

So two kernels of one run cannot see each other's files (mount namespaces), name
each other's processes (PID namespaces) or meet on a loopback or abstract socket
(network namespaces), and no kernel can signal the server. The grader kills a
kernel by killing its PID 1; interrupts go by message.

    python -m coursekit.fork_sandbox SOCKET   runs the server (inside bwrap; started by
                                              `SandboxedForkServer`)
"""
from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from . import sandbox_disk
from .kernels import ForkedKernelProvisioner, ForkServer, become_kernel, running_fork_server, serve
from .sandbox import (BWRAP_READ_ONLY_ROOT, KernelCgroups, SandboxedKernelManager, bwrap_common_argv, bwrap_problem,
                      command_problem, kernel_env, sockets_parent)

SHARED_SERVER_ENV = "COURSEKIT_SANDBOXED_FORK_SERVER"  # a socket: use that server instead of starting one
READY_TIMEOUT = 120  # seconds a kernel may take to be ready: the first waits for the server's imports
# The kernel's problems before student code runs, as the grader reads them; set through an environment variable in
# the isolation tests only, to show that each test fails without that isolation (never in course_config.py).
SKIP_ISOLATION_ENV = "COURSEKIT_TEST_SKIP_ISOLATION"


def server_bwrap_argv(run_dir: str) -> list[str]:
    """The bubblewrap command for the server: as a kernel's used to be (sandbox.bwrap_argv), with the run folder
    bound and nothing of the course."""
    argv = [*bwrap_common_argv(), "--bind", run_dir, run_dir, "--chdir", "/", *BWRAP_READ_ONLY_ROOT]
    env = kernel_env("/", {})
    del env["MPLCONFIGDIR"]  # each kernel gets its own home, and matplotlib's folder in it
    for name, value in env.items():
        argv += ["--setenv", name, value]
    return argv


def kit_parent() -> str:
    """The folder holding the coursekit package, for the server's sys.path (the package is bound read-only;
    an editable install's .pth may name the repository, of which nothing else is bound)."""
    return str(Path(__file__).resolve().parent.parent)


@functools.cache
def fork_sandbox_problem() -> str | None:
    """None when kernels can be forked from a sandboxed server here (nested namespaces work inside bwrap);
    else why not, and each kernel is a new bwrap process instead (sandbox.SandboxedKernelManager)."""
    if bwrap_problem():
        return bwrap_problem()
    with tempfile.TemporaryDirectory(prefix="ck-", dir=sockets_parent()) as run_dir:
        argv = [*server_bwrap_argv(run_dir), sys.executable, "-I", "-S", sandbox_disk.__file__, "--probe-forked-namespaces"]
        return command_problem(argv, "the check of nested namespaces could not run",
                               "a process forked inside bwrap cannot make namespaces of its own")


# ---------------------------------------------------------------- server side (inside bwrap)
def start_isolated_kernel(request: dict) -> None:
    """In the child the server forked for one kernel: isolate it, let the grader place it, become the kernel."""
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ready.connect(request["ready"])  # now: it is hidden once the mounts below are made
    skipped = set(request.get("skip_isolation", ()))
    try:
        namespaces = sandbox_disk.FORKED_KERNEL_NAMESPACES
        if "pid" in skipped:
            namespaces &= ~sandbox_disk.CLONE_NEWPID
        if "net" in skipped:
            namespaces &= ~sandbox_disk.CLONE_NEWNET
        sandbox_disk.enter_user_namespace(namespaces)
        sandbox_disk.make_root_private()
        if "net" not in skipped:
            sandbox_disk.bring_up_loopback()
        folder = request["folder"]
        if "mount" in skipped:  # the staging folders stay visible, and /tmp is the server's own
            os.chdir(f"{folder}/work")
        else:
            sandbox_disk.limit_writable_folders(request["disk_mb"], f"{folder}/work", folder, f"{folder}/home",
                                                hide=os.path.dirname(folder))
    except OSError as exc:
        ready.sendall((json.dumps({"error": f"the kernel's sandbox could not be made: {exc}"}) + "\n").encode())
        os._exit(1)
    if os.fork() != 0:
        os._exit(0)  # PID 1 below is left to bwrap's init, which reaps it
    be_pid_one(ready, request, skipped)


def be_pid_one(ready: socket.socket, request: dict, skipped: set) -> None:
    """PID 1 of the kernel's PID namespace: get placed by the grader, then fork the kernel and reap."""
    if "proc" not in skipped:
        sandbox_disk.mount_fresh_proc()
    # Linux checks these credentials and gives the grader our pid as numbered in the grader's PID namespace
    credentials = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    ready.sendmsg([b'{"ready": true}\n'], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)])
    if ready.recv(16) != b"go":  # the grader gave up on this kernel
        os._exit(1)
    ready.close()
    memory = request["memory_mb"] * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sandbox_disk.drop_capabilities()
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)  # no handler: the kernel cannot signal PID 1 of its namespace
    kernel = os.fork()
    if kernel == 0:
        become_kernel(request)
        os._exit(0)
    while True:  # orphans of the kernel come here; when the kernel itself ends, so does the namespace
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == kernel:
            os._exit(max(0, os.waitstatus_to_exitcode(status)))


# ---------------------------------------------------------------- grader side
class SandboxedForkServer(ForkServer):
    """The fork server in its bubblewrap sandbox: started by this process, or one that another started (socket_path).
    Its folder is the run folder shared with the grader."""

    shared_env = SHARED_SERVER_ENV

    def make_folder(self) -> str:
        # short (ipc socket paths have a 107-byte limit), in memory, root's alone
        return tempfile.mkdtemp(prefix="ck-", dir=sockets_parent())

    def server_command(self, socket_path: str) -> list[str]:
        # the kit's folder first on sys.path: an editable install's .pth may name the repository, not bound here
        code = f"import sys; sys.path.insert(0, {kit_parent()!r}); from coursekit.fork_sandbox import main; main()"
        return [*server_bwrap_argv(os.path.dirname(socket_path)), sys.executable, "-Xfrozen_modules=off", "-c", code, socket_path]

    def fork_kernel(self, request: dict) -> int:  # type: ignore[override]  # its request carries the sandbox's limits
        """Start one kernel; its PID 1 as this process sees it, once it is in its cgroups (request["cgroups"]) and
        about to fork the kernel."""
        cgroups: KernelCgroups = request.pop("cgroups")
        ready_path = os.path.join(self.folder, f"ready-{os.path.basename(request['folder'])}.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(ready_path)
            listener.listen(1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            try:
                self.request(dict(request, ready=ready_path))
                listener.settimeout(READY_TIMEOUT)
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    raise RuntimeError(f"the sandboxed fork server ({self.socket_path}) started no kernel within {READY_TIMEOUT} s") from None
            finally:
                os.unlink(ready_path)
            with conn:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                conn.settimeout(READY_TIMEOUT)
                message, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
                reply = json.loads(message.decode() or "{}")
                if "error" in reply:
                    raise RuntimeError(f"kernel in {request['folder']}: {reply['error']}")
                pid = next((struct.unpack("3i", data)[0] for level, kind, data in ancillary
                            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), None)
                if pid is None or not reply.get("ready"):
                    raise RuntimeError(f"kernel in {request['folder']}: its PID 1 did not say it was ready (got {message[:100]!r})")
                try:
                    for folder in cgroups.folders:  # before any student code: PID 1 forks the kernel after "go"
                        (folder / "cgroup.procs").write_text(str(pid))
                except OSError as exc:
                    os.kill(pid, signal.SIGKILL)
                    raise RuntimeError(f"kernel in {request['folder']}: could not move it into its cgroup: {exc}") from exc
                conn.sendall(b"go")
        return pid


class SandboxedForkProvisioner(ForkedKernelProvisioner):
    """Launches the kernel through the sandboxed fork server; watches and kills it by its PID 1."""

    cgroups: KernelCgroups | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
        import asyncio

        km = self.parent
        limits = km.sandbox
        argv = cmd[cmd.index("ipykernel_launcher") + 1:]
        folder = km.run_dir
        # the kernel's working folder: a copy of the submission, copied again onto its size-limited tmpfs inside
        shutil.copytree(Path(kwargs.get("cwd") or os.getcwd()).resolve(), f"{folder}/work", symlinks=True, dirs_exist_ok=True)
        self.cgroups = KernelCgroups(f"k{uuid.uuid4().hex[:16]}", limits)
        skipped = [part for part in os.environ.get(SKIP_ISOLATION_ENV, "").split(",") if part]
        request = {"argv": argv, "cwd": f"{folder}/work", "env": kernel_env(f"{folder}/home", kwargs.get("env") or {}),
                   "folder": folder, "disk_mb": limits.disk_mb, "memory_mb": limits.memory_mb, "cgroups": self.cgroups,
                   "skip_isolation": skipped}
        self.pid = await asyncio.to_thread(km.server.fork_kernel, request)
        self.pgid, self.cwd = self.pid, request["cwd"]
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        return self.connection_info

    async def send_signal(self, signum: int) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signum)  # PID 1 of the kernel's namespace: when it ends, everything in there ends
        except ProcessLookupError:
            pass

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if self.cgroups is not None:
            self.cgroups.remove()


class SandboxedForkKernelManager(SandboxedKernelManager):
    """An AsyncKernelManager whose kernels are forked from the sandboxed fork server, over ipc sockets in the
    kernel's own staging folder (run_dir: the one folder of the server's run folder that the kernel sees)."""

    provisioner_class = SandboxedForkProvisioner

    def make_run_dir(self) -> str:
        self.server = running_fork_server(SandboxedForkServer)
        folder = os.path.join(self.server.folder, f"k{uuid.uuid4().hex[:12]}")
        os.mkdir(folder)
        return folder


def main() -> None:
    serve(sys.argv[1], start_child=start_isolated_kernel)


if __name__ == "__main__":
    main()
