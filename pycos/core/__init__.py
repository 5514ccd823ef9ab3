"""Layer L1: the scheduler, tasks, traps, timers, poller, wait queue and clocks.

Modules: ``scheduler`` (``Pycos``: run queue, timers, inbox, the loop), ``task`` (``Task``,
``SysTask``), ``traps`` (what a task may yield, and the mistakes named), ``timers``,
``poller`` (readiness of descriptors), ``waker`` (waking a sleeping scheduler from other
threads), ``clock`` (real and fake time), ``waitqueue``, ``status`` (``MonitorStatus``),
``mailbox`` (messages counted against the link that brought them), ``exiting`` (the end at
interpreter exit) and ``lowlevel``, the one door through which the layers above act on a
scheduler (a hygiene test keeps every other module outside ``core`` off its private names).

Imports only L0 (``pycos.errors``, ``pycos._log``) and the standard library; never the network
layer. ``pycos/__init__.py`` re-exports the public names.
"""

from .clock import Clock, FakeClock, SystemClock
from .poller import READ, WRITE, ConcurrentWaitError
from .scheduler import Pycos
from .status import MonitorException, MonitorStatus
from .task import SysTask, Task
from .traps import Trap, WaitIO
from .waitqueue import WaitQueue

__all__ = [
    "SysTask",
    "Clock", "FakeClock", "SystemClock", "Pycos", "Task", "MonitorStatus", "MonitorException",
    "WaitQueue", "Trap",
    "WaitIO", "READ", "WRITE", "ConcurrentWaitError",
]
