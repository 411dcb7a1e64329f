"""make bench: what a kernel's start and stop cost the grader, with jupyter_client's fixed waits and without them
(coursekit/prompt_kernels.py).

For each fork server the grader uses (sandboxed where this machine allows it, and not), KERNELS kernels one after
another: start to ready (the client's wait_for_ready), one empty cell, and stop (a kill, then waiting for the
process to go, as ExecuteAndProbe stops them; and, for comparison, jupyter_client's graceful shutdown). Once as
jupyter_client does it (its client, its 0.1 s polls, ZeroMQ's 0.1 s reconnect), once as the grader does now.
Prints the median of each part, in milliseconds, and the wall time of the whole.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from traitlets.config import Config  # noqa: E402

from coursekit.fork_sandbox import SandboxedForkKernelManager, fork_sandbox_problem  # noqa: E402
from coursekit.kernels import ForkedKernelManager  # noqa: E402

KERNELS = 15
# jupyter_client's own behaviour, on the kit's managers: its client, its polling and ZeroMQ's reconnect interval
STOCK = Config({"KernelManager": {"client_class": "jupyter_client.asynchronous.AsyncKernelClient",
                                  "exit_poll_interval": 0.1, "reconnect_interval_ms": 100}})


async def one_kernel(manager_class, config: Config, graceful: bool, folder: str) -> dict[str, float]:
    times = {}
    km = manager_class(kernel_name="python3", config=config)
    start = time.perf_counter()
    await km.start_kernel(cwd=folder)
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    times["start to ready"] = time.perf_counter() - start
    begun = time.perf_counter()
    await kc.execute_interactive("pass", timeout=60)
    times["an empty cell"] = time.perf_counter() - begun
    begun = time.perf_counter()
    kc.stop_channels()
    await km.shutdown_kernel(now=not graceful)
    times["stop"] = time.perf_counter() - begun
    return times


def measure(manager_class, config: Config, graceful: bool, folder: str) -> tuple[dict[str, float], float]:
    asyncio.run(one_kernel(manager_class, config, graceful, folder))  # the fork server starts: not counted
    began = time.perf_counter()
    runs = [asyncio.run(one_kernel(manager_class, config, graceful, folder)) for _ in range(KERNELS)]
    return {part: statistics.median(r[part] for r in runs) for part in runs[0]}, time.perf_counter() - began


def main() -> None:
    import tempfile

    managers = [("unsandboxed fork server", ForkedKernelManager)]
    if fork_sandbox_problem() is None:
        managers.insert(0, ("sandboxed fork server", SandboxedForkKernelManager))
    print(f"{KERNELS} kernels one after another; median milliseconds of each part")
    print(f"{'':72}{'start to ready':>16}{'an empty cell':>15}{'stop':>8}{'all':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for label, manager_class in managers:
            for how, config, graceful in (("jupyter_client's waits, graceful stop", STOCK, True),
                                          ("jupyter_client's waits, killed", STOCK, False),
                                          ("the grader's (prompt_kernels.py), killed", Config(), False)):
                parts, wall = measure(manager_class, config, graceful, folder)
                print(f"{label + ', ' + how:72}" + "".join(f"{parts[p] * 1000:>{w}.0f}" for p, w in
                                                          (("start to ready", 16), ("an empty cell", 15), ("stop", 8)))
                      + f"{wall:>8.1f} s", flush=True)


if __name__ == "__main__":
    main()
