"""Layer L1: the scheduler, tasks, traps, timers, poller, wait queue and clocks.

Imports only L0 (``pycos.errors``, ``pycos._log``) and the standard library; never the network
layer. ``pycos/__init__.py`` re-exports the public names.
"""

from .clock import Clock, FakeClock, SystemClock
from .poller import READ, WRITE, ConcurrentWaitError
from .scheduler import Pycos
from .status import MonitorException, MonitorStatus
from .task import Task
from .traps import Trap, WaitIO
from .waitqueue import WaitQueue

__all__ = [
    "Clock", "FakeClock", "SystemClock", "Pycos", "Task", "MonitorStatus", "MonitorException",
    "WaitQueue", "Trap",
    "WaitIO", "READ", "WRITE", "ConcurrentWaitError",
]
