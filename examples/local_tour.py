"""A short tour of pycos on one machine.

1. tasks passing a token around a ring with messages;
2. a channel broadcasting to several subscribers;
3. a monitor told how each of three tasks ended: a normal return, an exception, a termination;
4. a blocking function run in a thread pool while tasks keep running.

Run: ``python examples/local_tour.py`` (finishes by itself in about a second). The networked
tour, several nodes on this machine, is ``examples/demo.py``.
"""

import time

import pycos


# ---------------------------------------------------------------- 1. messages
def ring_member(index, task=None):
    # The first message is the next member of the ring; then the token goes round.
    next_member = yield task.receive()
    forwarded = 0
    while True:
        token = yield task.receive()
        if token["hops"] == 0:
            next_member.send(token)  # pass the end of the game on, then end
            return forwarded
        token["hops"] -= 1
        token["path"].append(index)
        forwarded += 1
        next_member.send(token)


def ring(size, hops, task=None):
    members = [pycos.Task(ring_member, i) for i in range(size)]
    for i, member in enumerate(members):
        member.send(members[(i + 1) % size])
    token = {"hops": hops, "path": []}
    members[0].send(token)
    forwarded = []
    for member in members:
        forwarded.append((yield member.finish()))
    print(f"ring: {size} tasks passed a token {hops} times along {token['path']}")
    print(f"ring: each member forwarded it {forwarded} times")


# ---------------------------------------------------------------- 2. channels
def listener(name, chan, task=None):
    yield chan.subscribe(task)
    got = []
    while (msg := (yield task.receive())) is not None:
        got.append(msg)
    print(f"channel: {name} got {got}")


def broadcaster(task=None):
    chan = pycos.Channel("weather")
    listeners = [pycos.Task(listener, n, chan) for n in ("ann", "bob", "cid")]
    reached = yield chan.deliver("sunny", n=len(listeners), timeout=5)
    print(f"channel: first broadcast reached {reached} subscribers")
    chan.send("rain")
    chan.send(None)  # tells the listeners to stop
    for t in listeners:
        yield t.finish()
    chan.close()


# ---------------------------------------------------------------- 3. monitors
def returns(task=None):
    yield task.sleep(0.01)
    return 42


def raises(task=None):
    yield task.sleep(0.01)
    raise KeyError("missing")


def runs_forever(task=None):
    while True:
        yield task.sleep(1)


def watcher(task=None):
    watched = {fn.__name__: pycos.Task(fn) for fn in (returns, raises, runs_forever)}
    names = {t: name for name, t in watched.items()}
    for t in watched.values():
        yield task.monitor(t)
    watched["runs_forever"].terminate()
    for _ in watched:
        status = yield task.receive()
        if status.type is StopIteration:
            how = f"returned {status.value!r}"
        elif status.type is GeneratorExit:
            how = "was terminated"
        else:
            how = f"raised {status.type.__name__}"
        print(f"monitor: {names[status.info]} {how}")


# ---------------------------------------------------------------- 4. threads
def slow_square(x):
    time.sleep(0.2)  # blocking code: run it in a thread, not in a task
    return x * x


def ticker(stop, task=None):
    ticks = 0
    while not stop.is_set():
        yield task.sleep(0.05)
        ticks += 1
    return ticks


def pool_user(task=None):
    pool = pycos.AsyncThreadPool(2)
    stop = pycos.Event()
    tick = pycos.Task(ticker, stop)
    result = yield pool.async_task(slow_square, 7)
    stop.set()
    ticks = yield tick.finish()
    print(f"threads: slow_square(7) = {result} in a thread; a task ticked {ticks} times meanwhile")
    pool.terminate()


def tour(task=None):
    print(f"pycos {pycos.__version__} local tour")
    yield pycos.Task(ring, 4, 10).finish()
    yield pycos.Task(broadcaster).finish()
    yield pycos.Task(watcher).finish()
    yield pycos.Task(pool_user).finish()
    print("tour finished")


if __name__ == "__main__":
    pycos.Task(tour).value()
