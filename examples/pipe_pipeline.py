"""Processes chained by pipes, driven by tasks: write, read line by line, communicate.

Part 1 chains two processes (``producer | squarer``) the way a shell pipeline does and reads the
last one's output line by line with ``AsyncPipe.readline`` while other tasks keep running.
Part 2 uses ``communicate``: feed input, collect stdout and stderr, wait for the exit status.
Both use the running Python interpreter as the child program, so the example runs anywhere.

Run: ``python examples/pipe_pipeline.py``.
"""

import subprocess
import sys

import pycos
from pycos.asyncfile import AsyncPipe

PRODUCER = "import sys\nfor i in range(1, 6):\n    print(i, flush=True)\n"
SQUARER = ("import sys\nfor line in sys.stdin:\n"
           "    n = int(line)\n    print(n, n * n, flush=True)\n")
SHOUTER = ("import sys\ntext = sys.stdin.read()\nsys.stdout.write(text.upper())\n"
           "sys.stderr.write('shouted %d characters' % len(text))\nsys.exit(7)\n")


def ticker(task=None):
    """Shows that the scheduler keeps serving other tasks while the pipes are read."""
    ticks = 0
    while (yield task.receive(timeout=0.01, alarm_value="tick")) == "tick":
        ticks += 1
    return ticks


def pipeline(task=None):
    first = subprocess.Popen([sys.executable, "-c", PRODUCER], stdout=subprocess.PIPE)
    second = subprocess.Popen([sys.executable, "-c", SQUARER], stdin=first.stdout,
                              stdout=subprocess.PIPE)
    first.stdout.close()  # the second process owns that end now
    pipe = AsyncPipe(first, second)
    total = 0
    while True:
        line = yield pipe.readline(timeout=30)
        if not line:
            break
        n, square = map(int, line.split())
        print(f"pipeline: {n} squared is {square}")
        total += square
    status = yield pipe.wait_exit(timeout=30)  # the last process of the chain
    first.wait()  # returns at once: the producer ended before its reader saw end of file
    pipe.close()
    print(f"pipeline: sum of squares {total}, exit status {status}")


def shout(task=None):
    proc = subprocess.Popen([sys.executable, "-c", SHOUTER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = yield AsyncPipe(proc).communicate(b"quiet words\n")
    print(f"communicate: stdout {out.decode().strip()!r}")
    print(f"communicate: stderr {err.decode()!r}, exit status {proc.returncode}")


def main(task=None):
    tick = pycos.Task(ticker)
    yield pycos.Task(pipeline).finish()
    yield pycos.Task(shout).finish()
    tick.send("stop")
    ticks = yield tick.finish()
    print(f"main: the ticker kept running meanwhile ({'yes' if ticks > 0 else 'no'})")


if __name__ == "__main__":
    pycos.Task(main).value()
