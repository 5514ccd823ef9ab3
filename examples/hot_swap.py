"""Hot swap: replacing a running task's code while it keeps its message queue.

A worker processes lines of (scripted) input. While it is busy, more lines are queued for it
and its code is replaced with ``worker.hot_swap(new_function, ...)``. The new generator
starts from the beginning, in the same Task, and finds the queued lines still waiting.

A task allows swapping with ``task.hot_swappable(True)``. The swap happens at its next yield
(here, in the middle of its "work"), where a ``HotSwapException`` is raised; a task that does
not catch it is swapped. A task may catch it to finish what it was doing, then re-raise it.

Run: ``python examples/hot_swap.py`` (finishes by itself in well under a second).
"""

import pycos

# The input a user might type; '!swap' asks for the new version of the worker.
SCRIPT = ["hello", "world", "!swap", "pycos", "tasks", "quit"]


def worker_v1(driver, task=None):
    task.hot_swappable(True)
    while True:
        line = yield task.receive()
        if line == "quit":
            return "v1"
        print(f"v1: processing {line!r}")
        # Tell the driver we are busy, then "work" for a while (suspended until resumed).
        driver.send(("busy", line))
        try:
            yield task.suspend(timeout=5)
        except pycos.HotSwapException:
            print(f"v1: swapped out while working on {line!r}")
            raise
        print(f"v1: done with {line!r}")


def worker_v2(prefix, task=None):
    task.hot_swappable(True)
    print("v2: started")
    while True:
        line = yield task.receive()
        if line == "quit":
            return "v2"
        print(f"v2: {prefix}{line.upper()}")


def driver(task=None):
    worker = pycos.Task(worker_v1, task)
    lines = iter(SCRIPT)
    busy_with = None
    for line in lines:
        if line == "!swap":
            break
        if busy_with is not None:
            worker.resume()  # let the worker finish the previous line
        worker.send(line)
        _, busy_with = yield task.receive()  # ("busy", line)
    # The worker is still busy with its last line: queue the rest of the script, then swap.
    rest = list(lines)
    print(f"driver: worker busy with {busy_with!r}; queueing {rest!r}")
    for line in rest:
        worker.send(line)
    print(f"driver: hot_swap -> {worker.hot_swap(worker_v2, '> ')}")
    version = yield worker.finish()
    print(f"driver: worker ended as {version}")
    return version


if __name__ == "__main__":
    pycos.Task(driver).value()
