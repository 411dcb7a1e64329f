"""Stage: start and stop the grader's kernels without jupyter_client's fixed waits.

jupyter_client waits on a clock where an event would do, and a kernel forked in a fraction of a second paid for it
twice:
- `wait_for_ready` reads IOPub after the kernel's first reply until 0.2 s pass with no message: 0.2 s of every
  kernel's start, with both cores idle if the other worker waits too;
- shutting down, and killing, look every 0.1 s whether the process has gone: about 0.1 s of every stop;
- ZeroMQ retries a connection every 0.1 s, and a client that connects before the forked kernel binds its
  sockets waits that long.

`PromptKernelClient` waits instead for the IOPub message that ends its own kernel_info request (its `idle`
status): when it arrives, IOPub is connected and everything the kernel published before it has been read, which
is what the 0.2 s of quiet stood for. `PromptKernelManager` looks every few milliseconds and has ZeroMQ reconnect
every few. A sandboxed kernel's start fell from 456 to 243 ms and its stop from 114 to 56 ms
(bench/kernel_start.py; "How grading works" in the README).
"""
from __future__ import annotations

import time
from queue import Empty

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Float, Integer, Type, default


class PromptKernelClient(AsyncKernelClient):
    """An AsyncKernelClient whose wait_for_ready ends when a kernel_info request's last IOPub message arrives."""

    iopub_wait = Float(0.02, help="Seconds to wait for IOPub to carry a kernel_info request's idle status before "
                       "sending another request: a subscriber that joined after the first was published sees the "
                       "next.").tag(config=True)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        sent: set[str] = set()
        while True:
            sent.add(self.kernel_info())
            try:
                reply = await self._async_get_shell_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["parent_header"].get("msg_id") in sent and await self._idle_after(sent):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    async def _idle_after(self, sent: set[str]) -> bool:
        """Read IOPub up to the idle status that ends one of the requests `sent`: True once it arrives, False if
        none comes within iopub_wait (IOPub not connected when they were published)."""
        until = time.monotonic() + self.iopub_wait
        while True:
            try:
                msg = await self._async_get_iopub_msg(timeout=max(0.0, until - time.monotonic()))
            except Empty:
                return False
            if (msg["msg_type"] == "status" and msg["parent_header"].get("msg_id") in sent
                    and msg["content"].get("execution_state") == "idle"):
                return True


class PromptKernelManager(AsyncKernelManager):
    """An AsyncKernelManager with PromptKernelClient clients that sees its kernel's exit within a few milliseconds."""

    client_class = DottedObjectName("coursekit.prompt_kernels.PromptKernelClient", config=True)
    # AsyncKernelManager gives client_factory a default of its own, which does not follow client_class's
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient, config=True)
    reconnect_interval_ms = Integer(5, help="Milliseconds between the client's attempts to connect to a kernel that "
                                    "has not bound its sockets yet (ZeroMQ's own: 100).").tag(config=True)
    exit_poll_interval = Float(0.005, help="Seconds between looks at whether a kernel being stopped has exited "
                               "(jupyter_client's own: 0.1).").tag(config=True)

    @default("context")
    def _context_default(self) -> zmq.asyncio.Context:
        # the client connects before the new kernel has bound its sockets, and ZeroMQ tries again every 0.1 s
        context = super()._context_default()
        context.setsockopt(zmq.RECONNECT_IVL, self.reconnect_interval_ms)
        return context

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        await super()._async_wait(pollinterval=min(pollinterval, self.exit_poll_interval))
