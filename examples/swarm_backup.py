"""Conditional file backup: Tutorial 1 of pynetwork (seed 002), with ``pycos.swarm``.

A gateway process serves three subroutines — ``mount_usage`` (a batch: the disk usage, packed
with ``struct`` as in the seed), ``remove_logs`` (a batch: deletes the exported log files) and
``readings`` (a stream of ``(ident, bytes)`` items) — and exports its log folder as ``logs``.
This process is the controller: it pings a handler, asks for the usage, reads part of the
stream (the callback returns False at item 500, which aborts it: the gateway's generator is
closed and ``eos_callback`` is not called), and when the usage is above the threshold it
downloads the ``*.log`` files with a swarm of 4 connections, checks them, and has the gateway
delete them. ``close_gateway()`` then ends the gateway's blocking ``start``.

The gateway is this file again, run as ``--role gateway``. Everything is on 127.0.0.1, with a
random secret; the log folder and the backup are made in a temporary directory and removed at
the end. Run: ``python examples/swarm_backup.py [--threshold 0.2]``.
"""

import argparse
import filecmp
import os
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile

import pycos.netpycos as netpycos
import pycos.swarm.backend2 as bk
from pycos.swarm import Controller, Gateway

SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))
LOG_DIR = None  # the gateway's exported folder (set in gateway_main)


# ---------------------------------------------------------------- the gateway's subroutines
def get_usage_percentage(request_id, **kwargs):
    """Batch subroutine (runs in a handler thread): the disk usage of /."""
    total, used, _free = shutil.disk_usage("/")
    usage_per = used / total
    bk.safe_print(f"gateway: request {request_id}: usage {usage_per:.1%}")
    return struct.pack("f", usage_per)  # the data bytes that are sent back


def remove_logs(folder, **kwargs):
    """Batch subroutine: delete the log files of an exported folder. A subroutine runs with
    the gateway's rights, so it checks what a client names: only the ``logs`` export."""
    if folder != "logs":
        raise PermissionError(f"remove_logs only cleans the 'logs' export, not {folder!r}")
    files = [os.path.join(LOG_DIR, f) for f in os.listdir(LOG_DIR) if f.endswith(".log")]
    for f in files:
        os.remove(f)
    bk.safe_print(f"gateway: {len(files)} files deleted")
    return bk.int_to_bytes(len(files))


def readings(n):
    """Stream subroutine: (ident, buffer) items."""
    for i in range(n):
        yield i, bk.str_to_bytes(f"sample {i}")


def gateway_main(log_dir):
    global LOG_DIR
    LOG_DIR = log_dir
    gw = Gateway(port=0, host="127.0.0.1", secret=SECRET, exports={"logs": log_dir},
                 allow_remote_close=True)
    gw.add_subroutine("mount_usage", get_usage_percentage)
    gw.add_subroutine("remove_logs", remove_logs)
    gw.add_subroutine("readings", readings)
    bk.safe_print(f"@port {gw.port}")
    gw.start(blocking=True)  # until the controller's close_gateway()
    bk.safe_print("gateway: closed by the controller")


# ---------------------------------------------------------------- the controller
def make_logs(log_dir):
    """Old log files to back up (and a file that is not a log)."""
    for day in range(12):
        for part in range(3):
            with open(os.path.join(log_dir, f"app-2024-01-{day + 1:02d}.{part}.log"), "wb") as f:
                f.write(os.urandom(1000 * (day + 1)))
    with open(os.path.join(log_dir, "README.txt"), "w") as f:
        f.write("not a log\n")


def controller_main(threshold):
    work = tempfile.mkdtemp(prefix="swarm-backup-")
    log_dir, backup = os.path.join(work, "logs"), os.path.join(work, "backup")
    os.makedirs(log_dir)
    make_logs(log_dir)
    gateway = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "gateway",
                                log_dir], stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        port = int(gateway.stdout.readline().split()[1])  # "@port N"
        netpycos.Pycos(host="127.0.0.1", secret=SECRET, discover_peers=False, udp_port=0)
        controller = Controller(gateway_ip="127.0.0.1", port=port, download_dir=backup)
        with controller.get_swarm(4) as swarm:
            client1 = swarm.clients[0]
            echo, rtt = client1.ping("Hello there..")
            print(f"controller: ping -> {echo!r}")
            b = client1.get_subroutine_batch(name="mount_usage", arguments=[123])
            usage = struct.unpack("f", b)[0]
            bk.safe_print(f"controller: mount usage: {usage:.1%}")
            result = client1.stream("readings", 1000, callback=lambda i, v: i < 500,
                                    eos_callback=print)
            print(f"controller: stream {result.ended}ed after {result.items} items")
            if usage > threshold:
                bk.safe_print("controller: downloading files..")
                got = swarm.get_files("logs", regex=r".+\.log")
                same = all(filecmp.cmp(os.path.join(log_dir, os.path.basename(p)), p,
                                       shallow=False) for p in got)
                print(f"controller: {len(got)} files backed up, identical: {same}")
                count_bytes = client1.get_subroutine_batch(name="remove_logs",
                                                           arguments=["logs"])
                bk.safe_print(f"controller: {bk.bytes_to_int(count_bytes)} files deleted")
            else:
                print(f"controller: usage below {threshold:.0%}: nothing to back up")
            client1.close_gateway()  # ends the gateway's start(blocking=True)
        for line in gateway.stdout:
            print(line, end="")
        print(f"controller: the gateway exited with {gateway.wait(timeout=10)}")
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["gateway"])
    parser.add_argument("--threshold", type=float, default=0.2,
                        help="back up when the disk usage is above this (default 0.2)")
    parser.add_argument("log_dir", nargs="?")
    args = parser.parse_args()
    if args.role == "gateway":
        gateway_main(args.log_dir)
    else:
        controller_main(args.threshold)
