"""Sensor streams: the RC car of pynetwork's prelude (seed 002), with ``pycos.swarm``.

The car (a Raspberry Pi in the seed) is a gateway process with two *stream* subroutines —
``proximity`` (the distance to an obstacle ahead, every 20 ms) and ``speed`` (the wheel
encoder, every 50 ms), generators that yield ``(ident, buffer)`` items with JSON bytes made by
pynetwork's ``backend2`` converters — a *sink*, ``steer``, that takes a command as its
``buffer`` and returns the number of commands applied, and a *batch*, ``status``. This
process is the controller (the laptop): with a swarm of three clients — one per stream and one
for control — it consumes both streams through callbacks (no polling), tells the car to go
through the sink once the first distance comes, and brakes when the obstacle comes closer
than 60 cm. Once the car stands
still, the proximity generator ends its stream with ``ident < 0``, so ``eos_callback`` runs;
the speed callback returns False instead, which aborts that endless stream: the gateway closes
the generator (its ``finally`` runs) and ``eos_callback`` is not called. ``close_gateway()``
then ends the gateway's blocking ``start``.

The gateway is this file again, run as ``--role gateway``. Both are on 127.0.0.1 only, with a
random secret, and find each other by address (no broadcast); the run takes about two
seconds. Run: ``python examples/sensor_stream.py``.
"""

import argparse
import os
import secrets
import subprocess
import sys
import threading
import time

import pycos.netpycos as netpycos
import pycos.swarm.backend2 as bk
from pycos.swarm import Controller, Gateway

SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))
START_CM = 200.0  # the obstacle is this far ahead when the car starts
BRAKE_AT_CM = 60.0  # the controller brakes when it is closer than this
DECELERATION = 400.0  # cm/s² while braking
MAX_READINGS = 1000  # a sensor stream never runs longer than this many readings


# ---------------------------------------------------------------------- the car (gateway)
class Car:
    """The car's state, read by the sensors' handler threads and changed by the sink's."""

    def __init__(self):
        self.lock = threading.Lock()
        self.distance = START_CM  # to the obstacle
        self.speed = 0.0  # cm/s
        self.braking = False
        self.moved = False
        self.commands = 0
        self.clock = time.monotonic()

    def _advance(self):
        now = time.monotonic()
        dt, self.clock = now - self.clock, now
        speed = max(0.0, self.speed - DECELERATION * dt) if self.braking else self.speed
        self.distance -= (self.speed + speed) / 2 * dt
        self.speed = speed
        if self.distance <= 0:  # bumped into it: it stops there
            self.distance, self.speed = 0.0, 0.0

    def read(self):
        """(distance in cm, speed in cm/s, whether it stands still after having moved)."""
        with self.lock:
            self._advance()
            return self.distance, self.speed, self.moved and self.speed == 0

    def apply(self, command):
        with self.lock:
            self._advance()
            if command["cmd"] == "go":
                self.speed, self.braking, self.moved = float(command["speed"]), False, True
            elif command["cmd"] == "brake":
                self.braking = True
            else:
                raise ValueError(f"unknown steering command {command['cmd']!r}")
            self.commands += 1
            return self.commands


CAR = Car()


def proximity(period):
    """Stream subroutine (runs in a handler thread): the distance ahead, until the car stands
    still; then an ident < 0 ends the stream."""
    for ident in range(MAX_READINGS):
        distance, _speed, stopped = CAR.read()
        if stopped:
            bk.safe_print(f"gateway: proximity sensor: the car stands still {distance:.0f} cm "
                          "from the obstacle, end of stream (ident -1)")
            yield -1, b""
            return
        yield ident, bk.obj_to_json_bytes({"cm": round(distance, 1)})
        time.sleep(period)


def speed(period):
    """Stream subroutine: the wheel encoder's speed, endlessly (the controller stops it)."""
    try:
        ident = 0
        while ident < MAX_READINGS:
            _distance, cm_s, _stopped = CAR.read()
            yield ident, bk.obj_to_json_bytes({"cm_s": round(cm_s, 1)})
            ident += 1
            time.sleep(period)
    finally:  # runs when the controller aborts the stream: the gateway closes the generator
        bk.safe_print("gateway: speed sensor stopped (its stream was closed)")


def steer(buffer):
    """Sink subroutine: a steering command as JSON bytes; returns the commands applied."""
    command = bk.json_bytes_to_obj(buffer)
    applied = CAR.apply(command)
    bk.safe_print(f"gateway: steering: {command['cmd']}" +
                  (f" at {command['speed']} cm/s" if "speed" in command else ""))
    return applied


def status():
    """Batch subroutine: the car's state."""
    distance, cm_s, _stopped = CAR.read()
    return {"cm": distance, "cm_s": cm_s, "commands": CAR.commands}


def gateway_main():
    netpycos.Pycos(host="127.0.0.1", tcp_port=0, udp_port=0, secret=SECRET,
                   discover_peers=False)
    gw = Gateway(allow_remote_close=True)
    gw.add_subroutine("proximity", proximity)
    gw.add_subroutine("speed", speed)
    gw.add_subroutine("steer", steer)
    gw.add_subroutine("status", status)
    bk.safe_print(f"@port {gw.port}")
    gw.start(blocking=True)  # until the controller's close_gateway()
    bk.safe_print("gateway: closed by the controller")


# ---------------------------------------------------------------------- the controller
def in_thread(work, results, key):
    """Run ``work()`` in a thread; its result (or exception) goes to ``results[key]``."""

    def run():
        try:
            results[key] = work()
        except BaseException as exc:  # re-raised by the main thread
            results[key] = exc

    thread = threading.Thread(target=run, name=key, daemon=True)
    thread.start()
    return thread


def drive(control, prox_client, speed_client):
    braked = threading.Event()
    proximity_done = threading.Event()

    def on_proximity(ident, buffer):  # callbacks run on the stream's thread, in order
        cm = bk.json_bytes_to_obj(buffer)["cm"]
        if ident == 0:  # the sensor works: go
            applied = control.send("steer", bk.obj_to_json_bytes({"cmd": "go", "speed": 100}))
            bk.safe_print(f"controller: {cm:.0f} cm ahead: go at 100 cm/s (the sink has "
                          f"applied {applied} command)")
        if ident % 10 == 0:
            bk.safe_print(f"  proximity #{ident}: {cm:.0f} cm")
        if cm < BRAKE_AT_CM and not braked.is_set():
            braked.set()
            applied = control.send("steer", bk.obj_to_json_bytes({"cmd": "brake"}))
            bk.safe_print(f"controller: obstacle at {cm:.0f} cm: brake! (the sink has applied "
                          f"{applied} commands)")

    def proximity_ended(result):  # eos_callback: the stream ended by itself
        proximity_done.set()
        bk.safe_print(f"controller: proximity stream ended after {result.items} readings "
                      "(eos_callback)")

    def on_speed(ident, buffer):
        cm_s = bk.json_bytes_to_obj(buffer)["cm_s"]
        if ident % 5 == 0:
            bk.safe_print(f"  speed #{ident}: {cm_s:.0f} cm/s")
        stands_still = cm_s == 0 and (braked.is_set() or proximity_done.is_set())
        return not stands_still  # False: abort this stream

    def speed_ended(result):  # never called: that stream is aborted
        bk.safe_print("controller: speed eos_callback called")

    results = {}
    threads = [
        in_thread(lambda: prox_client.stream("proximity", 0.02, callback=on_proximity,
                                             eos_callback=proximity_ended), results, "proximity"),
        in_thread(lambda: speed_client.stream("speed", 0.05, callback=on_speed,
                                              eos_callback=speed_ended), results, "speed"),
    ]
    for thread in threads:
        thread.join(timeout=30)
    for key in ("proximity", "speed"):
        if isinstance(results.get(key), BaseException):
            raise results[key]
        if key not in results:
            raise TimeoutError(f"the {key} stream did not end within 30 s")
    return results


def controller_main():
    gateway = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "gateway"],
                               stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        port = int(gateway.stdout.readline().split()[1])  # "@port N"
        netpycos.Pycos(host="127.0.0.1", udp_port=0, secret=SECRET, discover_peers=False)
        controller = Controller(gateway_ip="127.0.0.1", port=port, timeout=10)
        with controller.get_swarm(3) as swarm:  # three handlers at the gateway, or none
            control, prox_client, speed_client = swarm
            echo, rtt = control.ping("Hello there..")
            print(f"controller: ping -> {echo!r} ({rtt * 1000:.2f} ms)")
            results = drive(control, prox_client, speed_client)
            sp = results["speed"]
            print(f"controller: speed stream {sp.ended}ed after {sp.items} readings by its "
                  "callback; eos_callback not called")
            state = control.batch("status")
            print(f"controller: the car stopped {state['cm']:.0f} cm from the obstacle "
                  f"after {state['commands']} steering commands")
            control.close_gateway()  # ends the gateway's start(blocking=True)
        for line in gateway.stdout:
            print(line, end="")
        print(f"controller: the gateway exited with {gateway.wait(timeout=10)}")
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["gateway"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "gateway":
        gateway_main()
    else:
        controller_main()
