"""The scheduler: ``pycos.Pycos``.

Owns the run queue, the timer heap, the poller, the thread-safe inbox and every task's run state.
One instance per process runs in its own daemon thread; scheduler state is touched only by that
thread. Other threads reach it through ``_post`` (a deque plus the wake-up socket).

One loop pass: drain the inbox; run the tasks that were ready when the pass began (FIFO, one
batch); poll I/O (timeout 0 if anything is ready, else until the next timer); fire due timers.

A parked task records what it waits on in ``task._wait`` (an object with ``cancel_wait(task)``)
and, when timed, its timer entry in ``task._timer``; ``_wake`` / ``_wake_exc`` undo both. That is
the single way tasks block and resume. Imports L0 and the other ``core`` modules only; the
networked node plugs in through ``router`` (see ``pycos.net``).
"""

from __future__ import annotations

import atexit as _atexit
import bisect
import threading
import traceback
from collections import deque
from collections.abc import Callable
from types import GeneratorType
from typing import Any

from .._log import logger
from ..errors import ClosedWhileWaiting, HotSwapException, InternalError
from .clock import Clock, SystemClock
from .exiting import at_interpreter_exit, unfinished
from .poller import READ, Callback, Poller
from .status import MonitorStatus, TracebackText
from .timers import TimerHeap
from .traps import (
    IS_GENERATOR,
    IS_TRAP,
    RECEIVE_FOREVER,
    RECEIVING,
    SUSPEND,
    SUSPENDED,
    TERMINATE,
    WOKEN,
    YIELD_KINDS,
    _AfterResult,
    _thread_scheduler,
    bad_yield,
    ended,
    legacy_return,
    note_main_frame,
    unyielded,
)
from .traps import _check_timeout as _check_timeout
from .waker import Waker

__all__ = ["Pycos", "TERMINATE", "current_scheduler"]


#: While tasks are ready, poll I/O (without blocking) once this many tasks have run.
_POLL_EVERY = 32
_instance_lock = threading.RLock()


def current_scheduler() -> Pycos:
    """The scheduler new tasks go to: this thread's own if it is a scheduler thread, else the
    process-wide one (created if needed)."""
    sched: Pycos | None = _thread_scheduler.sched
    if sched is not None and sched._alive:
        return sched
    sched = Pycos._running_instance
    if sched is None or not sched._alive:
        sched = Pycos.instance()
    return sched


class _SchedulerMeta(type):
    """One live scheduler per process: calling the class returns it, creating it if needed."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        with _instance_lock:
            inst = Pycos._running_instance
            if inst is not None and inst._alive:
                if not isinstance(inst, cls):
                    raise RuntimeError(
                        f"a {type(inst).__name__} scheduler is already running; create the "
                        f"{cls.__name__} before any task, or terminate the running one first")
                if args or kwargs:
                    logger.debug("scheduler already running; arguments %s %s ignored", args,
                                 kwargs)
                return inst
            target = Pycos._default_class if cls is Pycos else cls
            inst = type.__call__(target, *args, **kwargs)
            Pycos._running_instance = inst
            return inst


class Pycos(metaclass=_SchedulerMeta):
    """The task scheduler (a per-process singleton, created on first use).

    Args:
        clock: the time source for timers; ``pycos.FakeClock()`` gives virtual time in tests.
    """

    #: The class ``Pycos()`` instantiates; ``pycos.netpycos`` sets it to the networked node.
    _default_class: type = None  # type: ignore[assignment]
    _running_instance: Pycos | None = None

    #: Router for tasks and channels on other nodes; installed by the networked node.
    router: Any = None
    #: Seconds the interpreter exit waits for the scheduler to stop after the main thread ended
    #: by an exception or ``sys.exit`` (or Ctrl-C interrupted the wait for tasks).
    exit_timeout: float = 5.0
    #: How long ``terminate`` waits for the scheduler thread (None: until it has stopped).
    _stop_timeout: float | None = None

    def __init__(self, clock: Clock | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"unexpected arguments for the local scheduler: {sorted(kwargs)} "
                            "(the networked node is pycos.netpycos.Pycos)")
        self._clock = clock if clock is not None else SystemClock()
        self._ready: deque[Any] = deque()
        self._inbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._timers = TimerHeap()
        self._poller = Poller(self._wake, self._wake_exc)
        self._waker = Waker()
        self._poller.add_waiter(self._waker, READ, Callback(self._waker.drain))
        self._clock.attach(self._waker.wake)
        self._live: set[Any] = set()
        self._nondaemons = 0
        self._idle_waiters: list[threading.Event] = []
        self._atexit_fns: list[tuple[Any, ...]] = []
        self._names: dict[tuple[str, str], Any] = {}
        self._names_lock = threading.Lock()
        self._current: Any = None
        #: The last operation the running task made and has not yielded yet (see ``traps``).
        self._made: Any = None
        self._sleeping = False
        self._quit = False
        self._alive = True
        self._tid: int | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._main, name="pycos-scheduler",
                                        daemon=True)
        self._thread.start()
        note_main_frame()
        _atexit.register(self._at_interpreter_exit)
        logger.debug("scheduler started with %s poller", self._poller.name)

    # ---------------------------------------------------------------- public API
    @classmethod
    def private(cls, clock: Clock | None = None, name: str = "pycos-private") -> Pycos:
        """A scheduler of its own, not the process-wide one, running in its own thread.

        Tasks created from its tasks run on it; everything else behaves as on the main
        scheduler. The networked node runs its service tasks (heartbeats, connections) on one, so
        a user task that computes for a long time without yielding cannot stall them. It is not
        finished at interpreter exit: its owner terminates it. ``name`` names its thread."""
        sched: Pycos = type.__call__(Pycos, clock=clock)
        sched._thread.name = name
        # Its owner stops it; a finish at interpreter exit could run before the owner's own
        # exit handler still needs it (exit handlers run in reverse order of registration).
        _atexit.unregister(sched._at_interpreter_exit)
        return sched

    @classmethod
    def instance(cls, *args: Any, **kwargs: Any) -> Pycos:
        """The running scheduler, created with these arguments if there is none."""
        return cls(*args, **kwargs)

    @staticmethod
    def scheduler() -> Pycos | None:
        """The running scheduler, or None if none has been created (or it has stopped)."""
        inst = Pycos._running_instance
        return inst if inst is not None and inst._alive else None

    @staticmethod
    def cur_task(scheduler: Pycos | None = None) -> Any:
        """The task running now; None when called outside a task (from another thread)."""
        inst = scheduler or _thread_scheduler.sched
        if inst is None or threading.get_ident() != inst._tid:
            return None
        return inst._current

    @property
    def location(self) -> Any:
        """Location of this node; None for the local (non-networked) scheduler."""
        return None

    @property
    def name(self) -> str:
        """Name of this node; empty for the local scheduler."""
        return ""

    @property
    def clock(self) -> Clock:
        """The clock timers run on."""
        return self._clock

    def time(self) -> float:
        """Current reading of the scheduler's clock (seconds, monotonic)."""
        return self._clock.time()

    def is_alive(self) -> bool:
        """True while the scheduler thread runs."""
        return self._alive and self._thread.is_alive()

    def join(self, timeout: float | None = None, show_running: bool = False) -> bool:
        """Plain call from a thread (not a task): wait until every non-daemon task has ended.

        The scheduler keeps running. Returns True when all ended, False if ``timeout`` passed.
        """
        self._check_not_in_scheduler("join")
        if timeout is not None:
            _check_timeout(timeout, "timeout")
        if show_running:
            for task in list(self._live):
                logger.info("waiting for %r%s", task, " (daemon)" if task._daemon else "")
        event = threading.Event()
        if not self._post(self._add_idle_waiter, event):
            return True
        return event.wait(timeout)

    def finish(self) -> None:
        """Plain call from a thread: wait for the non-daemon tasks, run the ``atexit``
        functions, then stop. Also runs at interpreter exit. From inside a task it only
        requests that shutdown (it cannot block the scheduler)."""
        if not self._alive:
            return
        if threading.get_ident() == self._tid:
            threading.Thread(target=self.finish, name="pycos-finish", daemon=True).start()
            return
        self.join()
        self.terminate()  # which runs the atexit functions first

    def terminate(self) -> None:
        """Stop now: the ``atexit`` functions run, then every task still alive is closed
        (GeneratorExit at its yield) and threads waiting in ``value()`` get None. Callable
        from any thread or task."""
        if self._alive:
            self._run_atexit()
        with _instance_lock:
            if not self._alive:
                return
            self._alive = False
            if Pycos._running_instance is self:
                Pycos._running_instance = None
        self._quit = True
        self._waker.wake()
        if threading.get_ident() != self._tid:
            self._stopped.wait(self._stop_timeout)
        logger.debug("scheduler terminated")

    def atexit(self, priority: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` at ``finish``; higher ``priority`` runs first."""
        if not callable(fn):
            raise TypeError(f"atexit needs a callable, got {fn!r}")
        with _instance_lock:
            keys = [(-p, i) for i, (p, *_rest) in enumerate(self._atexit_fns)]
            pos = bisect.bisect_right(keys, (-priority, len(keys)))
            self._atexit_fns.insert(pos, (priority, fn, args, kwargs))

    def drop_atexit(self, priority: int, fn: Callable[..., Any]) -> None:
        """Forget every ``atexit`` entry of ``fn`` at ``priority``."""
        with _instance_lock:
            self._atexit_fns = [e for e in self._atexit_fns
                                if not (e[0] == priority and e[1] == fn)]

    # --------------------------------------------------------------- registry
    def _register(self, kind: str, name: str, obj: Any) -> int:
        """Make ``obj`` findable as ``name`` among objects of ``kind``; -1 if taken."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered name must be a non-empty str, got {name!r}")
        with self._names_lock:
            current = self._names.get((kind, name))
            if current is not None and current is not obj:
                logger.warning("%s name %r is already registered", kind, name)
                return -1
            self._names[(kind, name)] = obj
        return 0

    def _unregister(self, kind: str, name: str, obj: Any) -> int:
        """Remove a registration made by ``obj``; -1 if it has none under ``name``."""
        with self._names_lock:
            if self._names.get((kind, name)) is not obj:
                return -1
            del self._names[(kind, name)]
        return 0

    def _lookup(self, kind: str, name: str) -> Any:
        """The local object registered as ``name``, or None."""
        return self._names.get((kind, name))

    # ------------------------------------------------------------ thread entry
    def _in_thread(self) -> bool:
        return threading.get_ident() == self._tid

    def _check_not_in_scheduler(self, what: str) -> None:
        if threading.get_ident() == self._tid:
            from ..errors import ContextError

            raise ContextError(f"{what}() blocks the calling thread and cannot be used inside a "
                               "task; use 'yield' with the task-side equivalent instead")

    def _post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` on the scheduler thread soon (any thread). False if stopped."""
        if not self._alive:
            return False
        self._inbox.append((fn, args))
        if self._sleeping:
            self._waker.wake()
        return True

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` now if on the scheduler thread, else post it; returns its result
        (or None when posted)."""
        if threading.get_ident() == self._tid:
            return fn(*args)
        self._post(fn, *args)
        return None

    def _add_idle_waiter(self, event: threading.Event) -> None:
        if self._nondaemons == 0:
            event.set()
        else:
            self._idle_waiters.append(event)

    def _add_value_waiter(self, task: Any, event: threading.Event) -> None:
        if task._gen is None:
            event.set()
        else:
            if task._waiters is None:
                task._waiters = []
            task._waiters.append(event)

    def _run_atexit(self) -> None:
        with _instance_lock:
            fns, self._atexit_fns = self._atexit_fns, []
        for _priority, fn, args, kwargs in fns:
            try:
                fn(*args, **kwargs)
            except Exception:
                logger.warning("atexit function %r failed:\n%s", fn, traceback.format_exc())

    def _at_interpreter_exit(self) -> None:
        """At interpreter exit: see ``pycos.core.exiting``."""
        at_interpreter_exit(self)

    def _unfinished(self) -> str:
        return unfinished(self)

    # ------------------------------------------------------------- task state
    def _spawn(self, task: Any) -> None:
        """Admit a new task (scheduler thread)."""
        self._live.add(task)
        if not task._daemon:
            self._nondaemons += 1
        self._ready.append(task)

    def _reschedule(self, task: Any, value: Any) -> Any:
        """Trap helper: put ``task`` at the end of the run queue with ``value``."""
        task._wait = None
        task._value = value
        self._ready.append(task)
        return SUSPEND

    def _park(self, task: Any, wait: Any, timeout: float | None, alarm: Any) -> None:
        """Park ``task`` on ``wait``; after ``timeout`` s it resumes with ``alarm``."""
        task._wait = wait
        if timeout is not None:
            task._timer = self._timers.add(self._clock.time() + timeout, self._on_timeout, task,
                                           alarm)

    def _park_raise(self, task: Any, wait: Any, timeout: float, exc: BaseException) -> None:
        """Like ``_park`` but the timeout raises ``exc`` in the task."""
        task._wait = wait
        task._timer = self._timers.add(self._clock.time() + timeout, self._on_timeout_raise,
                                       task, exc)

    def _on_timeout(self, task: Any, alarm: Any) -> None:
        task._timer = None
        wait = task._wait
        if wait is not None and wait is not WOKEN:
            wait.cancel_wait(task)
            self._wake(task, alarm)

    def _on_timeout_raise(self, task: Any, exc: BaseException) -> None:
        task._timer = None
        wait = task._wait
        if wait is not None and wait is not WOKEN:
            wait.cancel_wait(task)
            self._wake_exc(task, exc)

    def _wake(self, task: Any, value: Any) -> None:
        """Resume a parked task with ``value`` (its wait object already let go of it)."""
        timer = task._timer
        if timer is not None:
            task._timer = None
            self._timers.cancel(timer)
        task._wait = WOKEN
        task._value = value
        self._ready.append(task)

    def _wake_exc(self, task: Any, exc: Any) -> None:
        """Resume a parked task by raising ``exc`` (or ``TERMINATE``) at its yield."""
        task._exc = exc
        self._wake(task, None)

    def _interrupt(self, task: Any, exc: Any) -> int:
        """Deliver ``exc`` (an exception or ``TERMINATE``) to ``task`` at its current yield."""
        if task._gen is None:
            return -1
        if task is self._current:
            # The task is running now: act right after it yields.
            self._post(self._interrupt, task, exc)
            return 0
        pending = task._exc
        if pending is not None:
            # One pending interruption at a time; termination overrides anything else.
            if exc is TERMINATE:
                task._exc = TERMINATE
            return 0
        wait = task._wait
        if wait is WOKEN:
            task._exc = _AfterResult(exc)
        elif wait is not None:
            wait.cancel_wait(task)
            self._wake_exc(task, exc)
        else:
            task._exc = exc  # rescheduled by a plain yield: raised at that yield
        return 0

    def _send(self, task: Any, message: Any) -> int:
        """Queue ``message`` for a local task, or hand it over if it waits in ``receive``."""
        if task._gen is None:
            return -1
        if task._wait is RECEIVING:
            self._wake(task, message)
            return 0
        msgs = task._msgs
        if msgs is None:
            msgs = task._msgs = deque()
        msgs.append(message)
        return 0

    def _resume(self, task: Any, update: Any) -> int:
        if task._gen is None:
            return -1
        if task._wait is SUSPENDED:
            self._wake(task, update)
        else:
            logger.debug("resume of %r ignored: it is not suspended", task)
        return 0

    def _try_swap(self, task: Any) -> int:
        """Throw a pending ``HotSwapException`` into ``task`` once it is at a safe point."""
        gen = task._swap
        if gen is None or task._gen is None:
            return -1 if task._gen is None else 0
        if not task._hot or task._callers:
            return 0  # postponed until hot_swappable(True) / the sub-call stack unwinds
        task._swap = None
        return self._interrupt(task, HotSwapException(gen))

    def _end(self, task: Any, result: Any, exc: BaseException | None,
             terminated: bool = False) -> None:
        """Finish ``task``: record its result, tell monitors and waiters, forget it."""
        if self._made is not None:
            ended(self, task)
        if exc is not None:
            tb = exc.__traceback__
            trace = TracebackText("".join(traceback.format_exception(
                type(exc), exc, tb.tb_next if tb is not None else None)), exc.args)
            if type(exc) is ClosedWhileWaiting:  # its socket was closed on purpose
                logger.debug("%r ended: %s:\n%s", task, exc, trace)
            else:
                logger.error("uncaught exception in %r:\n%s", task, trace)
            result = status = MonitorStatus(task, type(exc), trace)
        elif terminated:
            status = MonitorStatus(task, GeneratorExit, None)
        else:
            status = None
        task._gen = None
        task._callers = None
        task._swap = None
        task._value = result
        task._msgs = None
        task._wait = None
        if task._timer is not None:
            self._timers.cancel(task._timer)
            task._timer = None
        self._live.discard(task)
        if not task._daemon:
            self._nondaemons -= 1
            if self._nondaemons == 0 and self._idle_waiters:
                for event in self._idle_waiters:
                    event.set()
                self._idle_waiters.clear()
        waiters = task._waiters
        if waiters:
            task._waiters = None
            for waiter in waiters:
                if isinstance(waiter, threading.Event):
                    waiter.set()
                else:
                    self._wake(waiter, result)
        monitors = task._monitors
        if monitors:
            task._monitors = None
            if status is None:
                status = MonitorStatus(task, StopIteration, result)
            for monitor in monitors:
                if monitor.send(status) != 0:
                    logger.debug("monitor %r of %r is gone", monitor, task)

    # ------------------------------------------------------------- running
    def _run(self, task: Any) -> None:
        """Run ``task`` until it parks, reschedules or ends (the hot path).

        While it runs, ``task._wait`` keeps what woke it (WOKEN, or None); every way of leaving
        sets it (a wait, RECEIVING, None for a reschedule or the end), which saves a store per
        run."""
        self._current = task
        gen = task._gen
        value = task._value
        task._value = None
        exc = task._exc
        after = None  # an interruption due at the next yield (see _AfterResult)
        if exc is not None:
            task._exc = None
            if type(exc) is _AfterResult:
                after, exc = exc.exc, None
            elif exc is TERMINATE:
                self._close(task)
                self._current = None
                return
        while True:
            try:
                if exc is None:
                    r = gen.send(value)
                else:
                    error, exc = exc, None
                    r = gen.throw(error)
            except StopIteration as stop:
                callers = task._callers
                if callers:
                    gen = task._gen = callers.pop()
                    value = stop.value
                    if not callers and task._swap is not None:
                        self._try_swap(task)
                    continue
                self._end(task, stop.value, None)
                break
            except BaseException as error:  # noqa: BLE001 - a task may raise anything
                legacy, result = legacy_return(error)
                callers = task._callers
                if legacy:
                    if callers:
                        gen = task._gen = callers.pop()
                        value = result
                        continue
                    self._end(task, result, None)
                    break
                if callers:
                    gen = task._gen = callers.pop()
                    exc = error
                    continue
                if (type(error) is HotSwapException and error.args
                        and type(error.args[0]) is GeneratorType and task._hot):
                    gen = task._gen = error.args[0]
                    value = None
                    continue
                self._end(task, None, error)
                break
            if after is not None:
                self._made = None  # what it yielded is dropped: the interruption comes first
                if after is TERMINATE:
                    if type(r) is GeneratorType:
                        r.close()
                    self._close(task)
                    break
                exc, after = after, None
                continue
            if r is RECEIVE_FOREVER:  # the hot case of receive(), inlined
                self._made = None
                msgs = task._msgs
                if msgs:
                    value = msgs.popleft()
                    continue
                task._wait = RECEIVING
                break
            if self._made is not None:  # the task made an operation: is this it?
                if self._made is r:
                    self._made = None
                else:
                    problem = unyielded(self, task, gen)
                    if problem is not None:
                        exc = problem
                        continue
            cls = type(r)
            if cls in YIELD_KINDS:  # one lookup sorts traps, generators and suspects
                kind = YIELD_KINDS[cls]
                if kind is IS_TRAP:
                    try:
                        value = r._apply(self, task)
                    except Exception as error:  # a trap that cannot start: raised in the task
                        exc = error
                        continue
                    if value is SUSPEND:
                        break
                    continue
                if kind is IS_GENERATOR:
                    callers = task._callers
                    if callers is None:
                        callers = task._callers = []
                    callers.append(gen)
                    gen = task._gen = r
                    value = None
                    continue
                problem = bad_yield(r)  # a method not called, an async def coroutine …
                if problem is not None:
                    exc = problem
                    continue
            task._wait = None  # anything else: a cooperative reschedule
            task._value = r
            self._ready.append(task)
            break
        self._current = None

    def _close(self, task: Any) -> None:
        """Terminate: GeneratorExit at the yield of each generator on the task's stack."""
        stack = [task._gen] + list(reversed(task._callers or ()))
        for gen in stack:
            try:
                gen.close()
            except BaseException:  # noqa: BLE001
                logger.warning("closing %r raised:\n%s", task, traceback.format_exc())
        self._end(task, None, None, terminated=True)

    def _internal_error(self, error: BaseException, task: Any) -> None:
        """A bug in the scheduler itself: say so loudly, fail the task, keep serving."""
        self._current = None
        self._made = None
        err = InternalError(f"scheduler error while running {task!r}: {error!r}")
        err.__cause__ = error
        logger.critical("pycos internal error:\n%s",
                        "".join(traceback.format_exception(type(err), err, None)) +
                        "".join(traceback.format_exception(error)))
        if task is not None and task._gen is not None:
            try:
                self._end(task, None, err)
            except BaseException:  # noqa: BLE001
                logger.critical("could not end %r after an internal error", task)

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        for _ in range(len(inbox)):
            fn, args = inbox.popleft()
            try:
                fn(*args)
            except Exception as error:  # noqa: BLE001
                self._internal_error(error, None)

    def _main(self) -> None:
        self._tid = threading.get_ident()
        _thread_scheduler.sched = self
        try:
            self._loop()
        except BaseException as error:  # noqa: BLE001
            self._internal_error(error, None)
        finally:
            self._shutdown()

    def _loop(self) -> None:
        ready = self._ready
        inbox = self._inbox
        timers = self._timers
        heap = timers._heap
        clock = self._clock
        now = clock.time
        poller = self._poller
        poll = poller.poll
        records = poller._records
        run = self._run
        ran = 0  # tasks run since the last poll
        while not self._quit:
            if inbox:
                self._drain_inbox()
            n = len(ready)
            ran += n
            while n:
                n -= 1
                task = ready.popleft()
                try:
                    run(task)
                except BaseException as error:  # noqa: BLE001
                    self._internal_error(error, task)
            if self._quit:
                break
            if ready or inbox:
                # Busy: look at I/O without blocking, but not on every short pass; the inbox
                # is read each pass anyway, so only real descriptors make a poll worthwhile.
                if ran >= _POLL_EVERY and len(records) > 1:
                    poll(0.0)
                    ran = 0
            else:
                ran = 0
                timeout = self._idle_timeout()
                self._sleeping = True
                if inbox:
                    timeout = 0.0
                poll(timeout)
                self._sleeping = False
            if heap and heap[0][0] <= now():
                for entry in timers.pop_due(now()):
                    fn, task, arg = entry[2], entry[3], entry[4]
                    try:
                        fn(task, arg)
                    except BaseException as error:  # noqa: BLE001
                        self._internal_error(error, task)

    def _idle_timeout(self) -> float | None:
        """How long an idle pass may block in poll: until the next timer, or forever.

        With a virtual clock the scheduler never sleeps on timers: with ``autojump`` it moves the
        clock to the next deadline once no descriptor is ready, otherwise it waits for
        ``advance``."""
        deadline = self._timers.next_deadline()
        if deadline is None:
            return None
        timeout = max(0.0, deadline - self._clock.time())
        clock = self._clock
        if clock.virtual and timeout:
            if not clock.autojump:
                return None
            if self._poller.poll(0.0) == 0 and not self._ready and not self._inbox:
                clock.jump_to(deadline)  # type: ignore[attr-defined]
            return 0.0
        return timeout

    def _shutdown(self) -> None:
        """Close every live task, release thread waiters and OS resources."""
        self._alive = False
        for fn, args in self._inbox:  # tasks created but not yet admitted end too
            if fn == self._spawn:
                self._live.add(args[0])
        for task in list(self._live):
            if task._gen is None:
                continue
            self._current = task
            try:
                self._close(task)
            except BaseException:  # noqa: BLE001
                logger.warning("closing %r failed:\n%s", task, traceback.format_exc())
        self._current = None
        self._live.clear()
        for event in self._idle_waiters:
            event.set()
        self._idle_waiters.clear()
        for _fn, args in list(self._inbox):
            for arg in args:  # release threads blocked in join()/value() requests
                if isinstance(arg, threading.Event):
                    arg.set()
        self._inbox.clear()
        self._ready.clear()
        self._timers.clear()
        self._poller.close()
        self._waker.close()
        with _instance_lock:
            if Pycos._running_instance is self:
                Pycos._running_instance = None
        self._stopped.set()


Pycos._default_class = Pycos
