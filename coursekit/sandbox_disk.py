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
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
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


def mounts_under(folders: tuple[str, ...]) -> list[tuple[str, bool]]:
    """The mount points below these folders (not the folders themselves), outermost only, with whether each
    is read-only: what bwrap bound there (the venv, the kit, the data, when they live under /tmp)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            if any(point.startswith(folder + "/") for folder in folders):
                found.append((point, "ro" in fields[5].split(",")))
    outermost = [(p, ro) for p, ro in found if not any(p.startswith(q + "/") for q, _ in found)]
    return sorted(set(outermost), key=lambda m: m[0].count("/"))


def limit_writable_folders(size_mib: int, workdir: str, run_dir: str, home: str) -> None:
    """One tmpfs of size_mib (beyond what was handed in) for the working folder, /tmp, /dev/shm and the home.

    Whatever else bwrap bound below /tmp or /dev/shm (the run folder with the kernel's connection file and
    sockets, shared with the grader; the venv or the kit when they live under /tmp) stays as it was: it is
    set aside before /tmp and /dev/shm are covered, and bound back where it was after.
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
    kept = [(point, ro) for point, ro in mounts_under(("/tmp", "/dev/shm")) if point != workdir]
    mount("coursekit", limited, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=755")
    shutil.copytree(workdir, f"{limited}/work", symlinks=True)
    shutil.copytree(home, f"{limited}/home", symlinks=True)
    mount(run_dir, f"{STAGE}/run", None, MS_BIND | MS_REC)  # the run folder, set aside
    for number, (point, _) in enumerate(kept):  # the others, set aside in the tmpfs itself
        if point != run_dir:
            bind(point, f"{limited}/.kept/{number}")
    for name in ("tmp", "shm"):
        os.makedirs(f"{limited}/{name}")
        os.chmod(f"{limited}/{name}", 0o1777)
    bind(f"{limited}/tmp", "/tmp")
    bind(f"{limited}/shm", "/dev/shm")
    for number, (point, read_only) in enumerate(kept):
        bind(f"{STAGE}/run" if point == run_dir else f"{limited}/.kept/{number}", point)
        if read_only:
            mount("none", point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if run_dir not in (point for point, _ in kept):
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
