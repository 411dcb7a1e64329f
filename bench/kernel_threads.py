"""make bench: why each kernel gets torch threads = cores / kernels at once (coursekit/parallel.py, kernel_threads).

Two kernels from the fork server run the same SGD on a small two-layer net side by side, once with what the server's
torch has (a thread per core, as every kernel had before) and once as the grader now sets them; then one kernel alone,
as nbgrader's own commands run them. Prints wall and CPU seconds per kernel.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coursekit.kernels import KERNEL_THREADS_ENV, ForkedKernelManager  # noqa: E402

ROUNDS = 3
SGD = """
import time, torch
torch.manual_seed(0)
x, y = torch.rand(1000, 784), (torch.rand(1000, 1) > 0.5).float()
w1, b1 = torch.randn(784, 30, requires_grad=True), torch.zeros(30, requires_grad=True)
w2, b2 = torch.randn(30, 1, requires_grad=True), torch.zeros(1, requires_grad=True)
wall, cpu = time.perf_counter(), time.process_time()
for epoch in range(40):
    for i in range(0, 1000, 64):
        p = (x[i:i+64] @ w1 + b1).relu() @ w2 + b2
        torch.where(y[i:i+64] == 1, 1 - p.sigmoid(), p.sigmoid()).mean().backward()
        for q in (w1, b1, w2, b2):
            q.data -= 0.1 * q.grad
            q.grad.zero_()
print(torch.get_num_threads(), time.perf_counter() - wall, time.process_time() - cpu)
"""


async def run_sgd(threads: int | None) -> tuple[int, float, float]:
    """In a kernel forked with `threads` torch threads, or, None, with what the fork server's torch has (a thread per core)."""
    env = {name: value for name, value in os.environ.items() if name != KERNEL_THREADS_ENV}
    km = ForkedKernelManager(kernel_name="python3")
    await km.start_kernel(env=env if threads is None else {**env, KERNEL_THREADS_ENV: str(threads)})
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        printed = []
        await kc.execute_interactive(SGD, timeout=600, output_hook=lambda m: printed.append(m["content"].get("text", "")))
        used, wall, cpu = "".join(printed).split()
        return int(used), float(wall), float(cpu)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


async def main() -> None:
    cores = os.cpu_count() or 1
    print(f"{cores} cores; the same SGD (40 epochs of a 784-30-1 net on 1000 images) in each kernel")
    for label, kernels, threads in (("2 kernels at once, torch's default threads", 2, None),
                                    ("2 kernels at once, as the grader sets them", 2, max(1, cores // 2)),
                                    ("1 kernel alone, torch's default threads", 1, None)):
        for _ in range(ROUNDS):  # how badly threads spin against each other varies from one start to the next
            started = time.monotonic()
            results = await asyncio.gather(*(run_sgd(threads) for _ in range(kernels)))
            per_kernel = ", ".join(f"{wall:.2f} s wall / {cpu:.2f} CPU s" for _, wall, cpu in results)
            print(f"{label:<45} {results[0][0]} thread(s) each: {per_kernel} (all: {time.monotonic() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
