"""Message passing between a server task and several client tasks.

Clients send requests ``(client, op, value)`` to the server; the server replies with
``client.send(...)``. A client finds the server by name with ``Task.locate`` (the same call
finds tasks on other nodes once the program is networked). ``deliver`` is the acknowledged
form of ``send``: 1 when the message is queued at the receiver, 0 when it could not be.

Run: ``python examples/client_server.py`` (finishes by itself in well under a second).
"""

import pycos


def server(task=None):
    task.register("calc")  # findable with Task.locate("calc")
    served = 0
    while True:
        msg = yield task.receive()
        if msg == "quit":
            break
        client, op, value = msg
        if op == "square":
            client.send(("ok", value * value))
        elif op == "negate":
            client.send(("ok", -value))
        else:
            client.send(("error", f"unknown operation {op!r}"))
        served += 1
    task.unregister("calc")
    print(f"server: served {served} requests, stopping")
    return served


def client(name, requests, task=None):
    calc = yield pycos.Task.locate("calc")
    for op, value in requests:
        calc.send((task, op, value))
        # Wait at most 5 seconds for the reply; on timeout the yield evaluates to alarm_value.
        status, answer = yield task.receive(timeout=5, alarm_value=("timeout", None))
        print(f"{name}: {op}({value}) -> {status} {answer}")
    return name


def main_task(task=None):
    srv = pycos.Task(server)
    clients = [
        pycos.Task(client, "client-1", [("square", 3), ("negate", 4)]),
        pycos.Task(client, "client-2", [("square", 12), ("cube", 2)]),
    ]
    for c in clients:
        yield c.finish()
    ok = yield srv.deliver("quit")
    served = yield srv.finish()
    print(f"main: quit delivered: {ok}; server result: {served}")
    # Sending to a task that has ended: send gives -1 and deliver gives 0.
    print(f"main: send to ended server: {srv.send('hello')}")
    print(f"main: deliver to ended server: {(yield srv.deliver('hello'))}")


if __name__ == "__main__":
    pycos.Task(main_task).value()
