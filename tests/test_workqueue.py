"""The shared keyed work queue the operator and the sandbox's controllers work from."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from permisos.workqueue import WorkQueue


async def test_a_waiting_key_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"
    assert len(queue) == 0


async def test_a_key_added_while_worked_on_is_worked_on_again_afterwards() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    assert len(queue) == 0  # never handed to a second worker at once
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == "a"


async def test_delayed_adds_keep_the_earliest_deadline() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 60)
    queue.add_at("a", datetime.now(UTC) + timedelta(seconds=0.05))
    queue.add_after("a", 30)  # later than the pending one: ignored
    assert len(queue) == 0
    assert await asyncio.wait_for(queue.get(), 2) == "a"
    queue.done("a")
    queue.add_after("b", 0)  # not in the future: at once
    queue.add_at("c", datetime.now(UTC) - timedelta(seconds=1))
    assert len(queue) == 2
    queue.clear()


async def test_clear_forgets_queued_delayed_and_again_keys() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    busy = await queue.get()
    queue.add(busy)
    queue.add_after("c", 0.01)
    queue.clear()
    assert len(queue) == 0
    queue.done(busy)
    await asyncio.sleep(0.05)
    assert len(queue) == 0
    queue.add("b")  # a cleared key can be queued again
    assert await queue.get() == "b"
