"""The reference solution's probe values, kept from one `coursekit grade` to the next.

Each run of `coursekit grade` begins by running the reference solution with every probe (a kernel and about
5 s for mnist_sgd, on one core, before any submission's checks can run). Its values change only when what
produces them changes, so they are kept in the user's cache folder ($COURSEKIT_CACHE_DIR, else
$XDG_CACHE_HOME/coursekit, else ~/.cache/coursekit) under a key made of all of it: the source notebooks, the
hidden checks and probes, the execution settings of course_config.py, the kit's own code and torch's version.
A run that finds its key takes the values from there; a run with any of those changed runs the solution again,
and so does `--regrade`. Only values with which the solution passed its own probes are kept. The folder holds
what staff's own runs wrote: nothing of a student's reaches it (kernels never see the grader's home).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

from .parallel import CheckBundle

KIT = Path(__file__).resolve().parent


def cache_folder() -> Path:
    base = os.environ.get("COURSEKIT_CACHE_DIR")
    if base:
        return Path(base) / "reference"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coursekit" / "reference"


def reference_key(bundle: CheckBundle, assignment_version: str) -> str:
    """Changes whenever anything that could change the reference solution's probe values changes:
    assignment_version (grade.assignment_fingerprint) covers the source notebooks and the hidden checks' files."""
    digest = hashlib.sha256(assignment_version.encode())
    digest.update(repr(sorted((section, sorted(values.items())) for section, values in bundle.execution.items())).encode())
    for module in sorted(KIT.glob("*.py")):  # the kit's code: how it runs a notebook and probes it
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    for package in ("torch", "numpy"):
        try:
            digest.update(f"{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return f"{bundle.assignment}-{digest.hexdigest()[:32]}"


# a file holds the SHA-256 digest of its pickle, then the pickle: the coordinator checks a file whole without
# unpickling it (which would import torch there); the workers unpickle it
DIGEST_BYTES = hashlib.sha256().digest_size


def load_reference(key: str) -> bytes | None:
    """The pickled values kept under key, or None (none kept, or a file that is not whole: the solution runs again)."""
    try:
        data = (cache_folder() / f"{key}.pickle").read_bytes()
    except OSError:
        return None
    digest, values = data[:DIGEST_BYTES], data[DIGEST_BYTES:]
    return values if values and hashlib.sha256(values).digest() == digest else None


def save_reference(key: str, values: bytes) -> None:
    """Keep the pickled values under key; a cache that cannot be written costs the next run time, not its result."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{key}-", delete=False) as f:
            f.write(hashlib.sha256(values).digest() + values)
        os.replace(f.name, folder / f"{key}.pickle")  # whole or not at all, also with two runs at once
    except Exception:
        pass
