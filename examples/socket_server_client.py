"""A TCP server and its clients, all tasks of one program, talking in framed messages.

The server accepts connections and gives each its own task; ``send_msg`` / ``recv_msg`` frame
every message with its length (4 bytes, big-endian), so a message always arrives whole. A client
sets a timeout so a silent server cannot hold it forever. The server stops after serving three
clients; the program then ends by itself.

Run: ``python examples/socket_server_client.py`` (binds 127.0.0.1 on a free port).
"""

import socket

import pycos
from pycos import AsyncSocket


def serve_one(conn, task=None):
    """Answer each request with its reversed text until the client closes."""
    served = 0
    while True:
        request = yield conn.recv_msg()  # b'' when the client closed the connection
        if not request:
            break
        yield conn.send_msg(request[::-1])
        served += 1
    conn.close()
    return served


def server(listener, clients, task=None):
    handlers = []
    for _ in range(clients):
        conn, _address = yield listener.accept()
        handlers.append(pycos.Task(serve_one, conn))
    total = 0
    for handler in handlers:
        total += yield handler.finish()
    listener.close()
    print(f"server: answered {total} requests from {clients} clients")


def client(name, address, words, task=None):
    sock = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.settimeout(10)  # every operation below gives up (socket.timeout) after 10 s
    yield sock.connect(address)
    replies = []
    for word in words:
        yield sock.send_msg(word.encode())
        replies.append((yield sock.recv_msg()).decode())
    sock.close()
    print(f"{name}: {' '.join(replies)}")


def main(task=None):
    listener = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    address = listener.getsockname()
    srv = pycos.Task(server, listener, 3)
    clients = [pycos.Task(client, "client-1", address, ["olleh", "dlrow"]),
               pycos.Task(client, "client-2", address, ["socyp"]),
               pycos.Task(client, "client-3", address, ["kcab", "ot", "tnorf"])]
    for c in clients:
        yield c.finish()
    yield srv.finish()


if __name__ == "__main__":
    pycos.Task(main).value()
