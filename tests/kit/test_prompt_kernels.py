"""The grader's kernels are ready without jupyter_client's 0.2 s of IOPub quiet (coursekit/prompt_kernels.py): ready
must still mean that IOPub is connected, or the first thing a notebook prints could be lost. Real kernels, forked
from the fork servers the grader uses, each asked to print as soon as its client says it is ready."""
import asyncio

import pytest

from coursekit.fork_sandbox import SandboxedForkKernelManager, fork_sandbox_problem
from coursekit.kernels import ForkedKernelManager
from coursekit.prompt_kernels import PromptKernelClient

KERNELS = 12
MANAGERS = [ForkedKernelManager, pytest.param(SandboxedForkKernelManager, marks=pytest.mark.skipif(
    bool(fork_sandbox_problem()), reason=f"no sandboxed fork server here: {fork_sandbox_problem()}"))]


async def first_output(manager_class, tmp_path) -> tuple[type, str]:
    km = manager_class(kernel_name="python3")
    await km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("print('first')")
        printed = []
        while True:
            try:
                msg = await kc.get_iopub_msg(timeout=10)
            except Exception:  # nothing more comes: the output was published before IOPub was connected
                return type(kc), "".join(printed) + "<nothing more>"
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return type(kc), "".join(printed)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


@pytest.mark.parametrize("manager_class", MANAGERS)
def test_a_kernel_ready_at_once_loses_none_of_its_first_output(manager_class, tmp_path):
    outputs = [asyncio.run(first_output(manager_class, tmp_path)) for _ in range(KERNELS)]
    assert {client for client, _ in outputs} == {PromptKernelClient}
    assert [printed for _, printed in outputs] == ["first\n"] * KERNELS
