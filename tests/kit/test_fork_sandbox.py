"""Kernels forked from the sandboxed fork server, through the real thing: one server, two kernels at once,
started by jupyter_client as ExecuteAndProbe starts them. Neither may read the other's files or /tmp, signal
the other or the server, or meet the other on a loopback or abstract socket.

Each isolation can be left out for a test run (COURSEKIT_TEST_SKIP_ISOLATION=mount,pid,net,proc): the test that
guards it must then fail, which is how each was shown to fail (see the README)."""
import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from coursekit.fork_sandbox import SandboxedForkKernelManager, SandboxedForkServer, fork_sandbox_problem
from coursekit.kernels import running_fork_server

pytestmark = pytest.mark.skipif(bool(fork_sandbox_problem()), reason=f"no sandboxed fork server here: {fork_sandbox_problem()}")


async def run(kc, code: str, timeout: float = 30) -> str:
    """What the cell printed, and its error as 'ERROR name: value'."""
    msg_id = kc.execute(code)
    printed = []
    while True:
        msg = await kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            printed.append(f"ERROR {msg['content']['ename']}: {msg['content']['evalue']}")
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(printed)


class Kernel:
    def __init__(self, loop, workdir: Path):
        self.loop, self.km = loop, SandboxedForkKernelManager(kernel_name="python3")
        loop.run_until_complete(self.km.start_kernel(cwd=str(workdir)))
        self.kc = self.km.client()
        self.kc.start_channels()
        loop.run_until_complete(self.kc.wait_for_ready(timeout=60))

    def run(self, code: str) -> str:
        return self.loop.run_until_complete(run(self.kc, code))

    def alive(self) -> bool:
        return self.loop.run_until_complete(self.km.is_alive())

    @property
    def workdir(self) -> str:
        return f"{self.km.run_dir}/work"

    def stop(self):
        self.kc.stop_channels()
        self.loop.run_until_complete(self.km.shutdown_kernel(now=True))


def namespace_pids(pid: int) -> list[int]:
    """A process's pid in each PID namespace it is in, outermost first (NSpid in /proc/PID/status)."""
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("NSpid:"))
    return [int(p) for p in line.split()[1:]]


def server_python_pid() -> int:
    """The server's Python process (inside bwrap), as this process sees it."""
    pending, found = [running_fork_server(SandboxedForkServer).process.pid], []
    while pending:
        pid = pending.pop()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if command[0] != b"bwrap" and b"coursekit.fork_sandbox" in b" ".join(command):  # bwrap's own command names it too
            found.append(pid)
        for task in Path(f"/proc/{pid}/task").iterdir():
            pending += [int(p) for p in (task / "children").read_text().split()]
    # each kernel's PID 1 is a fork of the server, with its command line, one PID namespace deeper
    assert found, "the fork server's Python process was not found"
    return min(found, key=lambda pid: len(namespace_pids(pid)))


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    loop = asyncio.new_event_loop()
    started = []
    try:
        for name in ("a", "b"):
            workdir = tmp_path_factory.mktemp(f"submission_{name}")
            (workdir / "handed_in.txt").write_text(f"the files of {name}\n")
            started.append(Kernel(loop, workdir))
        yield started
    finally:
        for kernel in started:
            kernel.stop()
        loop.close()


def test_each_kernel_is_pid_2_as_uid_1000_in_its_cgroups_with_its_own_files_and_fresh_seeds(kernels):
    a, b = kernels
    code = ("import os, random, numpy, torch, json\n"
            "print(json.dumps([os.getpid(), os.getuid(), open('handed_in.txt').read(), open('/proc/self/cgroup').read(),"
            " random.random(), float(numpy.random.rand()), float(torch.rand(1)), sorted(os.environ)]))")
    seen = [json.loads(kernel.run(code)) for kernel in kernels]
    for (pid, uid, handed_in, cgroup, *_), name in zip(seen, "ab"):
        assert (pid, uid, handed_in) == (2, 1000, f"the files of {name}\n")
        assert "/coursekit/k" in cgroup  # placed in its own cgroups before any of this ran
    assert seen[0][4:7] != seen[1][4:7]  # random, numpy and torch: each kernel its own seeds
    assert "COURSEKIT_TEST_SKIP_ISOLATION" not in seen[0][7] and "HOME" in seen[0][7]


def test_kernels_cannot_read_each_others_files_or_tmp(kernels):
    a, b = kernels
    a.run("import os\nfor folder in ('.', '/tmp', os.environ['HOME'], '/dev/shm'):\n"
          "    open(os.path.join(folder, 'secret_of_a'), 'w').write('a secret')")
    reads = b.run(f"import os\nfor path in ({a.workdir + '/secret_of_a'!r}, {a.workdir + '/handed_in.txt'!r}, "
                  f"'/tmp/secret_of_a', '/dev/shm/secret_of_a', {a.km.run_dir + '/home/secret_of_a'!r}):\n"
                  "    try:\n        print(path, open(path).read())\n    except OSError as exc:\n        print(path, type(exc).__name__)\n"
                  "print(sorted(os.listdir(os.path.dirname(os.path.dirname(os.getcwd())))))")
    assert "a secret" not in reads and "the files of a" not in reads, reads
    assert reads.count("FileNotFoundError") == 5, reads
    # in the shared run folder, b sees its own staging folder alone: not a's, not the server's socket
    assert reads.splitlines()[-1] == repr([os.path.basename(b.km.run_dir)]), reads


def own_tasks(kernel: Kernel) -> set[int]:
    """The pids of a kernel's PID 1, its threads and processes, as they are numbered where the kernel runs."""
    pid_one = kernel.km.provisioner.pid
    pending, own = [pid_one], set()
    while pending:
        pid = pending.pop()
        for task in Path(f"/proc/{pid}/task").iterdir():
            own.add(namespace_pids(int(task.name))[-1])
            pending += [int(p) for p in (task / "children").read_text().split()]
    return own


def test_kernels_cannot_signal_each_other_or_the_server(kernels):
    """Every pid b may signal is its own (kill(pid, 0) succeeds only for those): a and the server cannot be named.
    Then b aims SIGKILL at every process it may signal, and SIGTERM at PID 1: a, the server and b live on."""
    a, b = kernels
    reachable = json.loads(b.run("import os, json\nfound = []\nfor pid in range(1, 32768):\n    try:\n"
                                 "        os.kill(pid, 0)\n        found.append(pid)\n    except OSError:\n        pass\n"
                                 "print(json.dumps(found))"))
    assert reachable and set(reachable) <= own_tasks(b), (reachable, own_tasks(b))
    server = running_fork_server(SandboxedForkServer)
    b.run("import os, signal\nos.kill(1, signal.SIGTERM)\nos.kill(-1, signal.SIGKILL)")  # -1: all but itself and PID 1
    assert a.run("print('a lives')") == "a lives\n"
    assert server.alive() and Path(f"/proc/{server_python_pid()}").exists()
    assert b.run("print('b lives')") == "b lives\n"


def test_kernels_cannot_meet_over_loopback_or_abstract_sockets(kernels):
    a, b = kernels
    a.run("import socket\nlistening = []\n"
          "for family, address in ((socket.AF_INET, ('127.0.0.1', 47123)), (socket.AF_UNIX, '\\0coursekit-test')):\n"
          "    s = socket.socket(family, socket.SOCK_STREAM)\n    s.bind(address)\n    s.listen()\n    listening.append(s)")
    tried = b.run("import socket\n"
                  "for family, address in ((socket.AF_INET, ('127.0.0.1', 47123)), (socket.AF_UNIX, '\\0coursekit-test')):\n"
                  "    try:\n        socket.create_connection(address, 2) if family == socket.AF_INET else "
                  "socket.socket(family).connect(address)\n        print(family.name, 'connected')\n"
                  "    except OSError as exc:\n        print(family.name, type(exc).__name__)")
    assert "connected" not in tried and tried.count("ConnectionRefusedError") == 2, tried
    # each has a loopback of its own that works
    assert b.run("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
                 "socket.create_connection(s.getsockname(), 2)\nprint('own loopback works')") == "own loopback works\n"


def test_killing_a_kernel_ends_its_namespace_and_spares_the_other(tmp_path):
    loop = asyncio.new_event_loop()
    try:
        doomed, other = Kernel(loop, tmp_path), Kernel(loop, tmp_path)
        doomed.run("import subprocess\nchild = subprocess.Popen(['sleep', '300'])")
        pid_one = doomed.km.provisioner.pid
        kernel = int(Path(f"/proc/{pid_one}/task/{pid_one}/children").read_text().split()[0])
        sleep = int(Path(f"/proc/{kernel}/task/{kernel}/children").read_text().split()[0])
        loop.run_until_complete(doomed.km.provisioner.kill())
        loop.run_until_complete(doomed.km.provisioner.wait())
        assert not doomed.alive()
        for _ in range(100):  # the namespace's processes are killed, then reaped by bwrap's init
            if not any(Path(f"/proc/{pid}").exists() for pid in (pid_one, kernel, sleep)):
                break
            time.sleep(0.05)
        assert not any(Path(f"/proc/{pid}").exists() for pid in (pid_one, kernel, sleep))
        assert other.run("print('still here')") == "still here\n"
        for kernel in (doomed, other):
            kernel.stop()
    finally:
        loop.close()
