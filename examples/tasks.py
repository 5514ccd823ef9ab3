"""Tasks: creating them, what ``yield`` does, results, sub-generators, suspend/resume.

Run: ``python examples/tasks.py`` (finishes by itself in well under a second).
"""

import threading

import pycos


def countdown(name, n, task=None):
    # 'task=None' receives the Task object: it is how a task reaches its own methods.
    while n > 0:
        print(f"{name}: {n}")
        n -= 1
        # Yielding a plain value (here None) lets the other ready tasks run first.
        yield
    return f"{name} done"


def add(a, b, task):
    # A sub-generator: 'yield add(...)' in a task runs it on the caller's stack and the
    # yield evaluates to its return value. Only the task's own function gets 'task'
    # injected, so the caller passes it on.
    yield task.sleep(0.01)
    return a + b


def compute(task=None):
    total = yield add(1, 2, task)
    total = yield add(total, 10, task)
    print(f"compute: 1 + 2 + 10 = {total}")
    return total


def sleeper(ready, task=None):
    # suspend/sleep: the yield evaluates to what resume() passes, or to alarm_value on timeout.
    ready.set()  # a threading.Event: tells the main thread we are about to suspend
    got = yield task.suspend(timeout=5, alarm_value="timed out")
    print(f"sleeper: woken with {got!r}")
    got = yield task.sleep(0.01, alarm_value="slept")
    print(f"sleeper: {got!r}")
    return got


def failing(task=None):
    yield task.sleep(0)
    raise ValueError("something went wrong")


def waiter(others, task=None):
    # 'yield t.finish()' waits in a task for another task's result.
    results = []
    for other in others:
        results.append((yield other.finish()))
    print(f"waiter: results {results}")
    return results


def first_steps(task=None):
    # Tasks created by a task start in creation order, and each 'yield' hands over to the
    # next ready task, so the two countdowns interleave.
    a = pycos.Task(countdown, "a", 3)
    b = pycos.Task(countdown, "b", 2)
    c = pycos.Task(compute)
    return (yield pycos.Task(waiter, [a, b, c]).finish())


def main():
    # value() blocks the calling (non-task) thread until the task ends and gives its result.
    pycos.Task(first_steps).value()

    ready = threading.Event()
    s = pycos.Task(sleeper, ready)
    # resume() is a plain call that plain threads may use too. It reaches the scheduler after
    # the task's current step, so once 'ready' is set the task is sure to be suspended.
    ready.wait(5)
    s.resume("hello from the main thread")
    print(f"main: sleeper returned {s.value()!r}")

    # A task that raises ends; its result is a MonitorStatus describing the exception.
    status = pycos.Task(failing).value()
    print(f"main: failing task ended with {status.type.__name__}")

    try:
        pycos.Task(print, "not a generator function")
    except TypeError:
        print("main: print is not a generator function -> TypeError")
    print("main: all tasks done")


if __name__ == "__main__":
    main()
