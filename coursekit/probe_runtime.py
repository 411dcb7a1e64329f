"""Kernel-side half of a probe. This file's *source text* is sent into the
student's kernel (the kernel never imports coursekit), so it must stand alone.

A probe re-runs one answer cell of the student on inputs the grader chose and
returns plain values: tensors, numbers, strings, lists, tuples and dicts. They
leave the kernel as bytes written by torch.save and are read back in the grader
with torch.load(weights_only=True), which cannot run code.
"""
import base64 as _base64
import io as _io
import itertools as _itertools

import torch as _torch

MIME = "application/vnd.coursekit.probe+base64"
MAX_ITEMS = 10_000  # bounds lists a probe sends back (an endless generator, say)


class _Interrupted(Exception):
    """The grader interrupted this probe at its time limit: nothing more of it is run."""


def describe_error(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 500 else text[:500] + "..."


def to_plain(value, depth=0):
    """Turn what student code returned into data that torch.load(weights_only=True) accepts."""
    if depth > 6:
        return {"__object__": "nested too deeply"}
    if isinstance(value, _torch.Tensor):
        return value.detach().cpu().clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__array__") and hasattr(value, "shape"):  # numpy array or scalar
        array = _torch.as_tensor(value.__array__())
        return array.item() if array.ndim == 0 else array
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, depth + 1) for v in value[:MAX_ITEMS]]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {str(k): to_plain(v, depth + 1) for k, v in _itertools.islice(value.items(), MAX_ITEMS)}
    return {"__object__": type(value).__name__}


def stop_leftover_processes(deadline_seconds=2.0):
    """Kill what the notebook left running, so that it cannot use up the limits the probes need.

    Only in a sandbox, where the kernel is PID 2 of a PID namespace of its own and
    kill(-1) reaches that namespace alone (outside one, PID 2 is never a kernel).
    """
    import os
    import signal
    import time

    if os.getpid() != 2:
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:  # reap them: a zombie still counts against the process limit
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            return


def take(iterable, limit):
    """At most `limit` items of an iterable: a loader that never stops cannot hang the probe."""
    return list(_itertools.islice(iter(iterable), limit))


def interrupted_in(exc, filename):
    """Where the student's code was when the grader interrupted it: the innermost function of theirs
    ("DataLoader.__iter__", "accuracy"), "<module>" for the cell's own top level, or None."""
    where, frame = None, exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename == filename:
            where = frame.tb_frame.f_code.co_qualname
        frame = frame.tb_next
    return where


def run_probe(probe, cell_source, student_globals, step):
    """Run `probe` against a fresh copy of the student's namespace; return its encoded result.

    When the grader interrupts it at its time limit (a KeyboardInterrupt), the probe stops there
    and says where the student's code was, so that the kernel is free for the next step at once.
    """
    result = {"cell_error": None, "values": {}}
    filename = f"<your {step} cell>"

    def interrupted(exc):
        result["timed_out"] = interrupted_in(exc, filename) or ""
        return _Interrupted()

    def run_cell(**inputs):
        namespace = dict(student_globals)
        namespace.update(inputs)
        try:
            exec(compile(cell_source, filename, "exec"), namespace)
        except KeyboardInterrupt as exc:
            raise interrupted(exc) from None
        except BaseException as exc:  # a student's cell may raise anything, even SystemExit
            result["cell_error"] = describe_error(exc)
        return namespace

    try:
        thunks = probe(run_cell)
        for name, thunk in thunks.items():
            try:
                result["values"][name] = {"ok": to_plain(thunk())}
            except KeyboardInterrupt as exc:
                raise interrupted(exc) from None
            except _Interrupted:
                raise
            except BaseException as exc:
                result["values"][name] = {"error": describe_error(exc)}
    except _Interrupted:
        result["values"] = {}
    except KeyboardInterrupt as exc:  # in the probe's own code, between two calls of the student's
        interrupted(exc)
        result["values"] = {}
    except BaseException as exc:
        result["probe_error"] = describe_error(exc)
    buffer = _io.BytesIO()
    _torch.save(result, buffer)
    return _base64.b64encode(buffer.getvalue()).decode("ascii")
