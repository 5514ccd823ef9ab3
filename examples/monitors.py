"""Monitors: being told when a task ends, and how.

``yield task.monitor(other)`` makes ``task`` receive a ``pycos.MonitorStatus`` message when
``other`` ends. Its ``type`` says how it ended:

* ``StopIteration``: a normal end; ``value`` is the task's return value;
* an exception class (``ValueError`` …): the task raised it; ``value`` is the traceback text;
* ``GeneratorExit``: the task was terminated (``other.terminate()``);
* ``pycos.PeerLost``: the node hosting a remote task went away (networked programs only).

A common use is a supervisor that restarts a worker that failed.

Run: ``python examples/monitors.py`` (finishes by itself in well under a second).
"""

import pycos


def worker(job, attempt, task=None):
    yield task.sleep(0.01)
    if job == "flaky" and attempt == 1:
        raise ValueError(f"{job} failed on attempt {attempt}")
    if job == "forever":
        yield task.suspend()  # never resumed: only terminate() ends it
    return f"{job} finished on attempt {attempt}"


def describe(status):
    kind = status.type
    if kind is StopIteration:
        return f"returned {status.value!r}"
    if kind is GeneratorExit:
        return "was terminated"
    last_line = status.value.strip().splitlines()[-1]
    return f"raised {kind.__name__} ({last_line})"


def supervisor(task=None):
    jobs = {}
    for job in ("steady", "flaky", "forever"):
        w = pycos.Task(worker, job, 1)
        yield task.monitor(w)
        jobs[w] = (job, 1)

    forever = next(w for w, (job, _) in jobs.items() if job == "forever")
    ended = 0
    while ended < 3:
        status = yield task.receive()
        job, attempt = jobs.pop(status.info)
        print(f"supervisor: {job!r} (attempt {attempt}) {describe(status)}")
        if status.type not in (StopIteration, GeneratorExit):
            # Failed: start it again and watch the new task instead.
            w = pycos.Task(worker, job, attempt + 1)
            yield task.monitor(w)
            jobs[w] = (job, attempt + 1)
            continue
        ended += 1
        if job == "flaky":
            # Everything else is done: stop the task that would wait forever.
            print(f"supervisor: terminating 'forever' (alive: {forever.is_alive()})")
            forever.terminate()
    print("supervisor: all jobs accounted for")


if __name__ == "__main__":
    pycos.Task(supervisor).value()
