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

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
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


def enter_user_namespace(more_namespaces: int = 0) -> None:
    """A user and mount namespace of our own (plus more_namespaces, CLONE_NEW* flags), keeping our uid and gid.

    The process must be single-threaded (a forked child is), or unshare(CLONE_NEWUSER) fails with EINVAL."""
    uid, gid = os.getuid(), os.getgid()
    if LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS | more_namespaces) != 0:
        fail("unshare")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def limit_writable_folders(size_mib: int, workdir: str, run_dir: str, home: str, hide: str | None = None) -> None:
    """One tmpfs of size_mib (beyond what was handed in) for the working folder, /tmp, /dev/shm and the home.

    Whatever else bwrap bound below /tmp or /dev/shm (the run folder with the kernel's connection file and
    sockets, shared with the grader; the venv or the kit when they live under /tmp) stays as it was: it is
    set aside before /tmp and /dev/shm are covered, and bound back where it was after.
    `hide`: a folder shared by many kernels (the sandboxed fork server's run folder, with every kernel's
    staging folder and the server's socket) that is not kept: only run_dir, inside it, is bound back.
    Called in a user and mount namespace of the caller's own (enter_user_namespace).
    """
    limited = f"{STAGE}/limited"
    size = size_mib * 2**20 + folder_size(workdir) + folder_size(home)  # room for the files handed in, plus the limit
    kept = [(point, ro) for point, ro in mounts_under(("/tmp", "/dev/shm")) if point != workdir
            and not (hide and (point == hide or point.startswith(hide + "/")))]
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
    if hide and os.path.exists(hide):  # not below /tmp or /dev/shm, so still there: cover it with an empty folder
        mount("coursekit", hide, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
    for number, (point, read_only) in enumerate(kept):
        bind(f"{STAGE}/run" if point == run_dir else f"{limited}/.kept/{number}", point)
        if read_only:
            mount("none", point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if run_dir not in (point for point, _ in kept):
        bind(f"{STAGE}/run", run_dir)
    bind(f"{limited}/work", workdir)
    bind(f"{limited}/home", home)
    os.chdir(workdir)  # the old working folder is now under the mount


# ---------------------------------------------------------------- a kernel forked from the sandboxed fork server
# (coursekit/fork_sandbox.py imports these; they are here, with the standard library only, so that the check
# whether this machine allows them can run in a bare `python -I -S` inside bubblewrap)
FORKED_KERNEL_NAMESPACES = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS  # with CLONE_NEWUSER | CLONE_NEWNS
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def make_root_private() -> None:
    """Mounts made here from now on never reach the server or another kernel, nor theirs us."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)


def bring_up_loopback() -> None:
    """A new network namespace has only `lo`, and it is down: up, as bwrap does, so code using 127.0.0.1
    inside the kernel works; it is this kernel's own loopback, so no other kernel is reachable there."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def mount_fresh_proc() -> bool:
    """A /proc of this PID namespace alone; False where the kernel refuses it (a /proc with parts covered,
    as bwrap leaves it, may not be mounted again inside a user namespace): then the server's /proc stays."""
    return LIBC.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0


def drop_capabilities() -> None:
    """Give up every capability this process holds in its own user namespace.

    A forked kernel never execs, so nothing drops them for it (an exec as uid 1000 would): with them, the
    student's code could unmount what hides the other kernels' folders. Also none can be gained again
    by exec (no_new_privs)."""
    for cap in range(64):
        LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails, harmlessly, past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable, for capabilities 0-31 and 32-63: none
    if LIBC.capset(header, data) != 0:
        fail("capset")
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("prctl(PR_SET_NO_NEW_PRIVS)")


def probe_forked_namespaces() -> None:
    """Exit 0 if a process forked here can do what each forked kernel does: new namespaces, a tmpfs, PID 1."""
    child = os.fork()
    if child == 0:
        try:
            enter_user_namespace(FORKED_KERNEL_NAMESPACES)
            make_root_private()
            mount("coursekit", f"{STAGE}/limited", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
            bring_up_loopback()
            init = os.fork()
            if init == 0:
                drop_capabilities()
                os._exit(0 if os.getpid() == 1 else 3)
            os._exit(os.waitstatus_to_exitcode(os.waitpid(init, 0)[1]))
        except OSError as exc:
            print(exc, file=sys.stderr, flush=True)
            os._exit(2)
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if code == 3:
        print("the first process forked in a new PID namespace is not PID 1", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str]) -> None:
    if argv == ["--probe-forked-namespaces"]:
        probe_forked_namespaces()
    size_mib, workdir, run_dir, home, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    enter_user_namespace()
    limit_writable_folders(int(size_mib), workdir, run_dir, home)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
