"""Channels: broadcasting messages to subscribers.

A ``pycos.Channel`` passes every message sent to it to all its subscribers: tasks, or other
channels (which apply their own transform and pass the message on to their subscribers).
``yield chan.deliver(msg, n=k)`` waits for at least ``k`` subscribers and says how many tasks
the message reached.

Run: ``python examples/channel.py`` (finishes by itself in well under a second).
"""

import pycos


def only_even(name, msg):
    # A transform gets (channel name, message) and returns the message to pass on, or None
    # to drop it.
    if isinstance(msg, int) and msg % 2:
        return None
    return msg


def subscriber(name, chan, task=None):
    yield chan.subscribe(task)
    received = []
    while True:
        msg = yield task.receive()
        if msg == "end":
            break
        received.append(msg)
    yield chan.unsubscribe(task)
    print(f"{name} on {chan.name!r} received {received}")
    return received


def publisher(task=None):
    news = pycos.Channel("news")
    even = pycos.Channel("even-news", transform=only_even)
    # A channel may subscribe to another: 'even' gets everything 'news' broadcasts.
    yield news.subscribe(even)

    readers = [
        pycos.Task(subscriber, "reader-1", news),
        pycos.Task(subscriber, "reader-2", news),
        pycos.Task(subscriber, "picky", even),
    ]
    # Wait until both readers of 'news' and the 'even' channel have subscribed (3 direct
    # subscribers), then broadcast: the message reaches the three reader tasks.
    reached = yield news.deliver(0, timeout=5, n=3)
    print(f"publisher: message 0 reached {reached} tasks")
    for i in range(1, 6):
        news.send(i)
    # 'end' passes the transform (it is not an odd number), so every reader gets it.
    news.send("end")
    for reader in readers:
        yield reader.finish()
    news.close()
    even.close()
    print(f"publisher: send on a closed channel gives {news.send(99)}")


if __name__ == "__main__":
    pycos.Task(publisher).value()
