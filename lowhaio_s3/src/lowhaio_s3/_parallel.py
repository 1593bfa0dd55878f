"""Jobs run at most `concurrency` at a time, in an `asyncio.TaskGroup` that lives as long as the
call: the first error (or a cancellation) cancels the others, and is raised as it is, not in an
ExceptionGroup, with a note of any other that came at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable

Job = Callable[[], Awaitable[object]]


async def bounded(jobs: AsyncIterable[Job], concurrency: int) -> None:
    """Run each job that `jobs` gives, in a task, at most `concurrency` at once. The next job
    is taken from `jobs` while the last one taken waits for its turn: a producer that reads a
    part into memory for each job holds at most concurrency + 1 of them."""
    slots = asyncio.Semaphore(concurrency)

    async def run(job: Job) -> None:
        try:
            await job()
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as group:
            async for job in jobs:
                await slots.acquire()
                group.create_task(run(job))
    except BaseExceptionGroup as errors:
        raise first_of(errors) from None


def first_of(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a TaskGroup's (a job's, or the producer's), with a note of the
    others."""
    first, *others = errors.exceptions
    if isinstance(first, BaseExceptionGroup):  # pragma: no cover - TaskGroup nests none
        first = first_of(first)
    for other in others:
        first.add_note(f"also: {type(other).__name__}: {other}")
    return first
