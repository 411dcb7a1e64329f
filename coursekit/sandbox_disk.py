"""Inside the sandbox, before the kernel: put every folder the kernel can write on one size-limited tmpfs.

bubblewrap 0.8's --tmpfs takes no size, so this small program, run by bwrap in
place of the kernel, makes the limit itself: it enters a user and mount namespace
of its own (nested in bwrap's), mounts a tmpfs of `size` MiB, copies the working
folder and the home into it, binds them, /tmp and /dev/shm from it where they
were, and execs the kernel. A write past the limit fails in the student's cell
with "No space left on device"; the grading machine's disk is never written.
The kernel keeps uid 1000, PID 2 and no capabilities (exec as a non-root uid
drops them), so it cannot remount or unmount any of it.

Usage: python sandbox_disk.py SIZE_MIB WORKDIR RUN_DIR HOME -- KERNEL COMMAND...
This file is run by path, not imported: it needs nothing but the standard library.
"""
import ctypes
import os
import shutil
import sys

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 2, 4, 4096, 16384
LIBC = ctypes.CDLL(None, use_errno=True)


def fail(what: str) -> None:
    errno = ctypes.get_errno()
    raise OSError(errno, f"coursekit sandbox: {what}: {os.strerror(errno)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if LIBC.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                  data.encode() if data else None) != 0:
        fail(f"mount {target}")


def folder_size(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


STAGE = "/.coursekit"  # bwrap makes STAGE/limited and STAGE/run before it makes / read-only


def bind(source: str, target: str) -> None:
    os.makedirs(target, exist_ok=True)  # a mount point under the new /tmp or /dev/shm is made there
    mount(source, target, None, MS_BIND | MS_REC)


def limit_writable_folders(size_mib: int, workdir: str, run_dir: str, home: str) -> None:
    """One tmpfs of size_mib (beyond what was handed in) for the working folder, /tmp, /dev/shm and the home.

    The run folder (the kernel's connection file and sockets, shared with the grader) stays the host's
    own; it is set aside before /tmp or /dev/shm are covered, and bound back where it was after.
    """
    uid, gid = os.getuid(), os.getgid()
    if LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        fail("unshare")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    limited = f"{STAGE}/limited"
    size = size_mib * 2**20 + folder_size(workdir) + folder_size(home)  # room for the files handed in, plus the limit
    mount("coursekit", limited, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=755")
    mount(run_dir, f"{STAGE}/run", None, MS_BIND | MS_REC)
    shutil.copytree(workdir, f"{limited}/work", symlinks=True)
    shutil.copytree(home, f"{limited}/home", symlinks=True)
    for name in ("tmp", "shm"):
        os.makedirs(f"{limited}/{name}")
        os.chmod(f"{limited}/{name}", 0o1777)
    bind(f"{limited}/tmp", "/tmp")
    bind(f"{limited}/shm", "/dev/shm")
    bind(f"{STAGE}/run", run_dir)
    bind(f"{limited}/work", workdir)
    bind(f"{limited}/home", home)
    os.chdir(workdir)  # the old working folder is now under the mount


def main(argv: list[str]) -> None:
    size_mib, workdir, run_dir, home, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    limit_writable_folders(int(size_mib), workdir, run_dir, home)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
