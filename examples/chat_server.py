"""A chat server with two scripted clients, alice and bob, in one program.

Each connection has a reader task on the server. A message from one member is broadcast to every
other member (``send_msg`` on their sockets). Messages are framed with ``send_msg`` / ``recv_msg``.
The clients follow a small script; ``pycos.Event`` objects order their turns, so the
conversation comes out the same on every run. The server ends when the last member leaves.

Run: ``python examples/chat_server.py`` (binds 127.0.0.1 on a free port).
"""

import socket

import pycos
from pycos import AsyncSocket

members = {}  # name -> connection


def broadcast(sender, text):
    for name, conn in list(members.items()):
        if name != sender:
            yield conn.send_msg(f"{sender}: {text}".encode())


def member(conn, task=None):
    name = (yield conn.recv_msg()).decode()  # first message: the member's name
    yield from broadcast(name, "joined")
    members[name] = conn
    yield conn.send_msg(f"server: welcome {name}, {len(members)} online".encode())
    while True:
        msg = yield conn.recv_msg()
        if not msg or msg == b"/quit":
            break
        yield from broadcast(name, msg.decode())
    del members[name]
    yield from broadcast(name, "left")
    conn.close()


def server(listener, expected, task=None):
    sessions = []
    for _ in range(expected):
        conn, _address = yield listener.accept()
        sessions.append(pycos.Task(member, conn))
    for session in sessions:
        yield session.finish()
    listener.close()
    print("server: everybody left, closing")


def chatter(name, address, script, after=None, task=None):
    """Join once the event ``after`` (if any) is set, then run ``script``: ("say", text)
    sends, ("hear", n) prints the next n messages, ("set", ev) and ("wait", ev) hand the turn
    to the other client."""
    if after is not None:
        yield after.wait()
    sock = AsyncSocket(socket.socket())
    sock.settimeout(10)
    yield sock.connect(address)
    yield sock.send_msg(name.encode())
    for action, arg in script:
        if action == "say":
            yield sock.send_msg(arg.encode())
        elif action == "hear":
            for _ in range(arg):
                print(f"{name} sees  {(yield sock.recv_msg()).decode()}")
        elif action == "set":
            arg.set()
        elif action == "wait":
            yield arg.wait()
    yield sock.send_msg(b"/quit")
    sock.close()


def main(task=None):
    listener = AsyncSocket(socket.socket())
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    address = listener.getsockname()
    srv = pycos.Task(server, listener, 2)
    alice_in, bob_in, alice_done = pycos.Event(), pycos.Event(), pycos.Event()
    alice = pycos.Task(chatter, "alice", address, [
        ("hear", 1), ("set", alice_in), ("wait", bob_in), ("hear", 1),
        ("say", "hi bob"), ("hear", 1), ("say", "see you"), ("set", alice_done)])
    bob = pycos.Task(chatter, "bob", address, [
        ("hear", 1), ("set", bob_in), ("hear", 1), ("say", "hello alice"),
        ("hear", 1), ("wait", alice_done), ("hear", 1)], after=alice_in)
    yield alice.finish()
    yield bob.finish()
    yield srv.finish()


if __name__ == "__main__":
    pycos.Task(main).value()
