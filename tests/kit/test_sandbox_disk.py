"""The sandbox's size limit on files, on a plain process in bubblewrap (no kernel, so seconds): every
folder it can write stops at the limit, and what bwrap bound below /tmp (a course, a venv or the kit
kept under /tmp, as a CI clone may be) stays visible and read-only."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from coursekit.sandbox import Sandbox, bwrap_argv, bwrap_problem, disk_limit_argv, sockets_parent

pytestmark = pytest.mark.skipif(bool(bwrap_problem()), reason=f"no sandbox on this machine: {bwrap_problem()}")

WRITE_EVERYWHERE = """
import errno, os, sys
for folder in (".", "/tmp", os.environ["HOME"], "/dev/shm"):
    try:
        with open(os.path.join(folder, "fill"), "wb") as f:
            for i in range(64):
                f.write(b"x" * 2**20)
        print(folder, "wrote 64 MiB")
    except OSError as exc:
        print(folder, errno.errorcode[exc.errno], os.path.getsize(os.path.join(folder, "fill")) // 2**20)
    os.remove(os.path.join(folder, "fill"))
for path in ("/newfile", "/dev/newfile", sys.argv[1] + "/newfile"):
    try:
        open(path, "w")
        print(path, "written")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
print(sorted(os.listdir(sys.argv[1]))[:1])
"""


def run_sandboxed(code: str, *args: str, disk_mb: int = 8, extra_binds: list[str] = ()) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ck-work-") as work, tempfile.TemporaryDirectory(dir=sockets_parent()) as run:
        home = os.path.join(run, "home")
        os.makedirs(home)
        Path(work, "handed_in.txt").write_text("the student's file\n")
        argv = bwrap_argv(work, run, home)
        at = argv.index("--remount-ro")  # extra binds go with bwrap's own, before / is made read-only
        argv = argv[:at] + list(extra_binds) + argv[at:]
        limits = Sandbox(disk_mb=disk_mb)
        return subprocess.run([*argv, *disk_limit_argv(limits, work, run, home), sys.executable, "-c", code, *args],
                              capture_output=True, text=True, timeout=60)


def test_every_writable_folder_stops_at_the_limit_and_binds_under_tmp_stay_read_only():
    kit = str(Path(__file__).resolve().parents[2] / "coursekit")
    result = run_sandboxed(WRITE_EVERYWHERE, "/tmp/course/kit", extra_binds=["--ro-bind", kit, "/tmp/course/kit"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for folder in (".", "/tmp", "/dev/shm"):
        assert any(line.startswith(f"{folder} ENOSPC ") for line in lines), result.stdout
    assert sum(" ENOSPC " in line for line in lines) == 4, result.stdout  # the home too, whatever its path
    assert "wrote 64 MiB" not in result.stdout
    assert "/newfile EROFS" in lines and "/dev/newfile EROFS" in lines and "/tmp/course/kit/newfile EROFS" in lines
    assert lines[-1] == "['__init__.py']"  # the kit bound below /tmp is still there to read


def test_the_files_handed_in_are_there_and_count_apart():
    result = run_sandboxed("print(open('handed_in.txt').read().strip())", disk_mb=1)
    assert result.returncode == 0 and result.stdout.strip() == "the student's file", result.stderr
