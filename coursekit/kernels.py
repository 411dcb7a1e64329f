"""Stage: start fresh Python kernels without paying for `import torch` each time.

A fork server is a small process that imports torch, numpy, PIL and ipykernel
once and then, on request, forks a child that becomes a brand-new ipykernel.
Each kernel is still its own process with its own state (nothing has run in
the server but imports), in its own session and process group; it starts in
a fraction of a second instead of about four.

`ForkedKernelManager` is a jupyter_client kernel manager whose provisioner asks
the fork server for the process, so nbclient and nbgrader's Execute use these
kernels unchanged. Kernels talk over ipc (unix sockets), not TCP.

    python -m coursekit.kernels SOCKET   runs a fork server (started for you
                                         by `running_fork_server()`)
"""
from __future__ import annotations

import asyncio
import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from jupyter_client.provisioning import LocalProvisioner

from .prompt_kernels import PromptKernelManager

# Imported by the server before it forks anything: what a course notebook and a kernel need
# (the ipykernel and IPython modules are the ones a kernel imports as it starts; found by comparing sys.modules)
PRELOAD = ("torch", "numpy", "numpy.random", "PIL.Image", "PIL.PngImagePlugin", "coursekit.data",
           "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
           "IPython.core.interactiveshell", "IPython.core.debugger", "IPython.core.completerlib",
           "IPython.core.oinspect", "IPython.core.logger", "IPython.extensions.storemagic",
           "tornado.gen", "tornado.queues", "tornado.platform.asyncio", "sqlite3")
SHARED_SERVER_ENV = "COURSEKIT_FORK_SERVER"  # a socket: use that fork server instead of starting one
# the torch (OpenMP) threads of one kernel: LocalWorkers sets it for the kernels that run side by side, and a sandbox
# passes it on. Unset (nbgrader's own runs, one kernel at a time; a Dask worker started without it), a kernel keeps
# torch's default, a thread per core.
KERNEL_THREADS_ENV = "OMP_NUM_THREADS"


# ---------------------------------------------------------------- server side
def preload() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from PIL import Image

    Image.init()  # registers every image plugin now rather than in each kernel


def become_kernel(request: dict) -> None:
    """In the forked child: turn into a fresh ipykernel as `python -m ipykernel_launcher ARGS` would."""
    os.setsid()  # its own session and process group, so that signals to it never reach the server
    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    # JPY_PARENT_PID names the grader, whose child this is not: ipykernel would shut down at once
    os.environ.update({k: v for k, v in request["env"].items() if k != "JPY_PARENT_PID"})
    os.chdir(request["cwd"])
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    # what a new process would have: fresh seeds for the generators that seed from the OS at start
    import random

    import numpy
    import torch

    random.seed()
    numpy.random.seed()
    torch.seed()
    # torch was imported by the server with a thread per core: kernels that run side by side must share the cores
    threads = os.environ.get(KERNEL_THREADS_ENV, "").split(",")[0].strip()
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=request["argv"])


_kernels: set[int] = set()  # pids of the kernels this server forked and that have not exited


def reap_children(signum=None, frame=None) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _kernels.discard(pid)


def stop_kernels(signum=None, frame=None) -> None:
    """Take every kernel still running down with the server (and whatever each started)."""
    for pid in list(_kernels):
        try:
            os.killpg(pid, signal.SIGKILL)  # each kernel leads its own process group
        except ProcessLookupError:
            pass
    os._exit(0)


def serve(socket_path: str, start_child=become_kernel, owner: int | None = None) -> None:
    """Fork a child for each request on socket_path, which runs start_child(request) and exits; stop, with every
    kernel, once the process `owner` (by default the parent) is no longer the parent."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(64)  # listening before the imports: early requests wait in the backlog, not fail
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the grader, which stops us in order
    signal.signal(signal.SIGTERM, stop_kernels)
    owner = owner or os.getppid()
    preload()
    server.settimeout(1.0)
    signal.signal(signal.SIGCHLD, reap_children)
    while os.getppid() == owner:  # the grader that started us is gone: so are we, and our kernels
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(10)
            request = json.loads(conn.makefile("r").readline())
            pid = os.fork()
            if pid == 0:
                try:
                    server.close()
                    conn.close()
                    start_child(request)
                finally:
                    os._exit(0)
            _kernels.add(pid)
            conn.sendall((json.dumps({"pid": pid}) + "\n").encode())
    stop_kernels()


# ---------------------------------------------------------------- grader side
def socket_folder_parent() -> str | None:
    """Where to make a folder for unix sockets: the temporary folder (None), or /tmp when the temporary folder's
    path leaves too little of the 107 bytes a socket's path may have (a long TMPDIR; pytest's temporary folders),
    where binding failed with "AF_UNIX path too long". Python 3.13's multiprocessing falls back the same way."""
    return "/tmp" if len(tempfile.gettempdir()) > 60 and os.path.isdir("/tmp") else None


class ForkServer:
    """A fork server: started by this process, or one that another process started (socket_path)."""

    shared_env = SHARED_SERVER_ENV  # how LocalWorkers names the server it started to its worker processes

    def __init__(self, socket_path: str | None = None):
        self.process = None
        if socket_path:
            self.socket_path = socket_path
        else:
            self.socket_path = os.path.join(self.make_folder(), "fork.sock")  # short: the limit is 107 bytes
            self.process = subprocess.Popen(self.server_command(self.socket_path), stdin=subprocess.DEVNULL)
        self.folder = os.path.dirname(self.socket_path)

    def make_folder(self) -> str:
        return tempfile.mkdtemp(prefix="ck-", dir=socket_folder_parent())

    def server_command(self, socket_path: str) -> list[str]:
        # -Xfrozen_modules=off, as in the python3 kernelspec: the debugger that ipykernel loads asks for it. The
        # grader's pid goes along: a server that read its parent itself, after a grader that died within its first
        # second (before the server's imports were done), read init's, and outlived it for good
        return [sys.executable, "-Xfrozen_modules=off", "-m", "coursekit.kernels", socket_path, str(os.getpid())]

    def alive(self) -> bool:
        return self.process.poll() is None if self.process else os.path.exists(self.socket_path)

    def fork_kernel(self, argv: list[str], cwd: str, env: dict) -> int:
        return self.request({"argv": argv, "cwd": cwd, "env": dict(env)})["pid"]

    def request(self, request: dict) -> dict:
        """Send the server one request (one kernel) and return its reply: the pid of the child it forked."""
        deadline = time.monotonic() + 60
        while not os.path.exists(self.socket_path):  # a server started a moment ago binds its socket first thing
            if not self.alive() and self.process or time.monotonic() > deadline:
                raise RuntimeError(f"the kernel fork server ({' '.join(self.server_command(self.socket_path))[-200:]}) "
                                   f"did not start (exit code {self.process and self.process.poll()})")
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(120)  # the first request waits for the server's imports
            conn.connect(self.socket_path)
            conn.sendall((json.dumps(request) + "\n").encode())
            reply = conn.makefile("r").readline()
        if not reply:
            raise RuntimeError(f"the kernel fork server ({self.socket_path}) closed the connection without starting a kernel")
        return json.loads(reply)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


_servers: dict[type, ForkServer] = {}  # the fork server of each kind this process uses
_server_lock = threading.Lock()


def running_fork_server(kind: type[ForkServer] | None = None, fresh: bool = False) -> ForkServer:
    """The fork server of this kind (ForkServer, or fork_sandbox.SandboxedForkServer) this process uses: the shared
    one named in the kind's shared_env (started by LocalWorkers for its worker processes), or its own, started on
    first use (or now, if fresh) and stopped when the process exits."""
    kind = kind or ForkServer
    with _server_lock:
        server = _servers.get(kind)
        if fresh or server is None or not server.alive():
            shared = os.environ.pop(kind.shared_env, None) if server is None and not fresh else None  # once gone, start our own
            server = _servers[kind] = kind(shared)
            atexit.register(server.stop)
        return server


def fork_kernel(argv: list[str], cwd: str, env: dict) -> int:
    """A new kernel's pid; if a shared fork server has gone away, this process starts its own and tries again."""
    server = running_fork_server()
    try:
        return server.fork_kernel(argv, cwd, env)
    except (OSError, RuntimeError):
        if server.process is not None:
            raise
        return running_fork_server(fresh=True).fork_kernel(argv, cwd, env)


class ForkedKernelProvisioner(LocalProvisioner):
    """Launches the kernel through the fork server; watches and signals it by pid."""

    pidfd: int | None = None

    @property
    def has_process(self) -> bool:
        return self.pid is not None

    async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
        argv = cmd[cmd.index("ipykernel_launcher") + 1:]
        env = kwargs.get("env") or os.environ
        cwd = str(kwargs.get("cwd") or os.getcwd())
        self.pid = await asyncio.to_thread(fork_kernel, argv, cwd, env)
        self.pgid, self.cwd = self.pid, cwd
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # old kernels: fall back to asking by pid
            self.pidfd = None
        return self.connection_info

    async def poll(self) -> int | None:
        if self.pid is None:
            return 0
        if self.pidfd is not None:
            return 0 if select.select([self.pidfd], [], [], 0)[0] else None
        try:
            os.kill(self.pid, 0)
            return None
        except ProcessLookupError:
            return 0

    async def wait(self) -> int | None:
        while await self.poll() is None:
            await asyncio.sleep(0.02)
        return 0

    async def send_signal(self, signum: int) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pgid, signum)  # the kernel and anything it started
        except ProcessLookupError:
            pass

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        await super().cleanup(restart=restart)


class ForkedKernelManager(PromptKernelManager):
    """An AsyncKernelManager whose kernels come from this process's fork server, over ipc."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        if self.transport == "ipc":
            self.ip = os.path.join(running_fork_server().folder, f"k{uuid.uuid4().hex[:12]}")

    async def _async_pre_start_kernel(self, **kw):
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ForkedKernelProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


if __name__ == "__main__":
    serve(sys.argv[1], owner=int(sys.argv[2]) if len(sys.argv) > 2 else None)
