"""A tiny HTTP/1.0 server: one task per connection, a page, and scripted requests.

The server reads a request head (bounded in size and time), answers ``GET /`` with a small HTML
page and anything else with 404, then closes the connection. Two scripted clients fetch pages:
a task speaking HTTP over an ``AsyncSocket``, and ordinary blocking code (``urllib``) in a
thread, which shows that the scheduler serves both kinds alike. The server exits after these
requests.

Run: ``python examples/tiny_httpd.py`` (binds 127.0.0.1 on a free port).
"""

import socket
import threading
import urllib.request

import pycos
from pycos import AsyncSocket

PAGE = b"<html><body><h1>Hello from pycos</h1></body></html>\n"
MAX_HEAD = 8192


def read_head(conn):
    """Sub-call: bytes of the request up to the blank line (None if too long or cut)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = yield conn.recv(1024)
        if not chunk or len(head) + len(chunk) > MAX_HEAD:
            return None
        head += chunk
    return head


def handle(conn, task=None):
    conn.settimeout(5)  # a client that stalls is dropped after 5 s
    try:
        head = yield read_head(conn)
        if head is None:
            return None
        method, path, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method == "GET" and path == "/":
            status, body = "200 OK", PAGE
        else:
            status, body = "404 Not Found", b"not here\n"
        yield conn.sendall(f"HTTP/1.0 {status}\r\nContent-Type: text/html\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return f"{method} {path} -> {status}"
    except (OSError, ValueError) as exc:
        return f"dropped: {exc!r}"
    finally:
        conn.close()


def server(listener, requests, task=None):
    for _ in range(requests):
        conn, _address = yield listener.accept()
        line = yield pycos.Task(handle, conn).finish()
        print(f"server: {line}")
    listener.close()
    print("server: done")


def task_client(address, path, task=None):
    sock = AsyncSocket(socket.socket())
    sock.settimeout(5)
    yield sock.connect(address)
    yield sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = b""
    while True:
        chunk = yield sock.recv(4096)
        if not chunk:
            break
        response += chunk
    sock.close()
    status_line = response.split(b"\r\n", 1)[0].decode()
    print(f"task client: {status_line}")


def thread_client(url, done, result):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(url, timeout=5) as reply:
            result.append(f"{reply.status} {reply.read().decode().strip()}")
    finally:
        done.set()


def main(task=None):
    listener = AsyncSocket(socket.socket())
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    address = listener.getsockname()
    srv = pycos.Task(server, listener, 2)
    yield pycos.Task(task_client, address, "/missing").finish()
    done = pycos.Event()  # set by the thread; Event.set may be called from any thread
    result = []
    threading.Thread(target=thread_client,
                     args=(f"http://127.0.0.1:{address[1]}/", done, result)).start()
    yield done.wait()
    print(f"thread client: {result[0] if result else 'failed'}")
    yield srv.finish()


if __name__ == "__main__":
    pycos.Task(main).value()
