"""``pycos.Task``: a generator function run by the scheduler.

Owns the user-facing task API of SPEC §1.2. A Task holds only its own fields; every state change
is made by the scheduler thread (calls from other threads are posted to it). Blocking methods
return traps (see ``traps``) that act only when yielded. Imports the other ``core`` modules.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Generator
from types import CodeType, FunctionType, GeneratorType
from typing import Any

from ..errors import ContextError
from .scheduler import TERMINATE, Pycos, _check_timeout, current_scheduler
from .traps import (
    RECEIVE_FOREVER,
    RECEIVING,
    WOKEN,
    Receive,
    Suspend,
    Trap,
    WaitTask,
    _thread_scheduler,
    describe_generator_op,
    made_again,
    note_made,
    short_name,
)

__all__ = ["Task", "SysTask"]

_INJECT_NAMES = ("task", "coro")
_CO_GENERATOR = inspect.CO_GENERATOR
_get_ident = threading.get_ident
_inject_cache: dict[CodeType, str | None] = {}


def _inject_name(target: Callable[..., Any]) -> str | None:
    """Name of the parameter (``task`` or asyncoro's ``coro``) defaulting to None that receives
    the Task object, or None."""
    func = getattr(target, "__func__", target)
    code = getattr(func, "__code__", None)
    if code is None:  # functools.partial or another callable: slow path
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            return None
        for name in _INJECT_NAMES:
            param = params.get(name)
            if param is not None and param.default is None:
                return name
        return None
    try:
        return _inject_cache[code]
    except KeyError:
        pass
    result = None
    argc, kwc = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames
    defaults = func.__defaults__ or ()
    kwdefaults = func.__kwdefaults__ or {}
    for name in _INJECT_NAMES:
        if name in names[:argc]:
            index = names.index(name) - (argc - len(defaults))
            if index >= 0 and defaults[index] is None:
                result = name
                break
        elif name in names[argc:argc + kwc] and name in kwdefaults and kwdefaults[name] is None:
            result = name
            break
    _inject_cache[code] = result
    return result


def _split_target(args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Accept ``Task(fn, *a, **kw)`` and pycos's ``Task(target=fn, args=(), kwargs={})``."""
    if args:
        return args[0], args[1:], kwargs
    if "target" not in kwargs:
        raise TypeError("Task() needs a generator function as its first argument")
    target = kwargs.pop("target")
    fargs = tuple(kwargs.pop("args", ()))
    fkwargs = dict(kwargs.pop("kwargs", {}))
    fkwargs.update(kwargs)
    return target, fargs, fkwargs


def _make_generator(task: Any, target: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> GeneratorType[Any, Any, Any]:
    if not ((type(target) is FunctionType and target.__code__.co_flags & _CO_GENERATOR)
            or inspect.isgeneratorfunction(target)):
        raise TypeError(_not_a_generator_function(target))
    name = _inject_name(target)
    if name is not None and name not in kwargs:
        kwargs[name] = task
    try:
        gen = target(*args, **kwargs)
    except TypeError as error:  # calling a generator function only binds its arguments
        raise TypeError(_bad_arguments(target, args, kwargs, error)) from None
    if type(gen) is not GeneratorType:
        raise TypeError(f"{target!r} did not return a generator")
    return gen


def _not_a_generator_function(target: Any) -> str:
    """Why ``target`` cannot be a task, and what to write instead."""
    if isinstance(target, GeneratorType):
        return (f"Task() needs a generator *function*, got the generator {target!r}; pass the "
                "function and its arguments instead")
    if inspect.iscoroutine(target):
        target.close()  # never to be awaited: no second warning about that
        return (f"Task() got the coroutine {short_name(target)}() of an 'async def' function: "
                "an async def coroutine function is not a pycos task; write a generator "
                "function with yield ('def', with 'yield' where it has 'await')")
    func = inspect.unwrap(getattr(target, "func", target))  # functools.partial, decorators
    name = short_name(func)
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return (f"Task() got {name}, an async def coroutine function: it is not a pycos task; "
                "write a generator function with yield ('def', with 'yield' where it has "
                "'await', e.g. 'yield task.sleep(1)' for 'await asyncio.sleep(1)')")
    if inspect.isfunction(func) or inspect.ismethod(func):
        return (f"Task() needs a generator function, but {name} has no yield: a task's function "
                "must contain at least one 'yield' (e.g. 'yield task.sleep(0)'); if it returns a "
                "generator, pass a generator function instead")
    return f"Task() needs a generator function (a def containing 'yield'), got {target!r}"


def _bad_arguments(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                   error: TypeError) -> str:
    """The message for arguments that do not fit ``target`` (``error`` is Python's)."""
    name = getattr(target, "__name__", repr(target))
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    for inject in _INJECT_NAMES:
        param = params.get(inject)
        if (param is not None and param.default is param.empty and inject not in kwargs
                and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)):
            positional = [p for p in params.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if param.kind == param.KEYWORD_ONLY or len(args) < len(positional):
                return (f"{name}() has a parameter '{inject}' without a default: write "
                        f"'def {name}(..., {inject}=None)' so pycos can pass the Task "
                        f"({error})")
    return f"Task({name}, ...): {error}"


def _exception_from(args: tuple[Any, ...]) -> BaseException:
    """Build the exception for ``throw``: (type), (type, value[, tb]), (instance) or a tuple."""
    if len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    if not args:
        raise TypeError("throw() needs an exception class or instance")
    first = args[0]
    if isinstance(first, BaseException):
        return first
    if isinstance(first, type) and issubclass(first, BaseException):
        value = args[1] if len(args) > 1 else None
        if isinstance(value, first):
            exc = value
        elif value is None:
            exc = first()
        elif isinstance(value, tuple):
            exc = first(*value)
        else:
            exc = first(value)
        if len(args) > 2 and args[2] is not None:
            exc = exc.with_traceback(args[2])
        return exc
    raise TypeError(f"throw() needs an exception class or instance, got {first!r}")


class Task:
    """A task: ``Task(fn, *args, **kwargs)`` creates and schedules it at once.

    ``fn`` must be a generator function. If it has a parameter ``task`` (or asyncoro's
    ``coro``) defaulting to None, the Task object is passed there. The task's result is its
    ``return`` value; an uncaught exception ends it (logged with its traceback) and its result is
    then a ``MonitorStatus`` describing the exception.

    Raises:
        TypeError: ``fn`` is not a generator function.
    """

    _DAEMON = False  # SysTask: True

    __slots__ = ("_gen", "_name", "_sched", "_value", "_exc", "_wait", "_timer", "_msgs",
                 "_callers", "_monitors", "_waiters", "_daemon", "_hot", "_swap", "__weakref__")

    _gen: GeneratorType[Any, Any, Any] | None
    _name: str
    _sched: Pycos
    _value: Any
    _exc: Any
    _wait: Any
    _timer: list[Any] | None
    _msgs: Any
    _callers: list[GeneratorType[Any, Any, Any]] | None
    _monitors: dict[Any, None] | None
    _waiters: list[Any] | None
    _daemon: bool
    _hot: bool
    _swap: GeneratorType[Any, Any, Any] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        sched = _thread_scheduler.sched or Pycos._running_instance
        if sched is None or not sched._alive:
            sched = current_scheduler()
        target, fargs, fkwargs = _split_target(args, kwargs)
        self._name = getattr(target, "__name__", "task")
        self._sched = sched
        self._value = self._exc = self._wait = self._timer = self._msgs = None
        self._callers = self._monitors = self._waiters = self._swap = None
        self._daemon = self._DAEMON
        self._hot = False
        gen = self._gen = _make_generator(self, target, fargs, fkwargs)
        self._name = gen.__name__
        if sched._tid == _get_ident():
            sched._spawn(self)
        else:
            sched._post(sched._spawn, self)

    # ------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        """Name of the task's generator function."""
        return self._name

    @property
    def location(self) -> Any:
        """Location of the node hosting the task; None when not networked."""
        return self._sched.location

    @classmethod
    def scheduler(cls) -> Pycos | None:
        """The running scheduler (``Pycos.scheduler()``)."""
        return Pycos.scheduler()

    def __repr__(self) -> str:
        return f"{self._name}/{id(self)}"

    def __reduce__(self) -> Any:
        # A task travels to other nodes as a reference; the networked node's router makes it.
        router = self._sched.router
        if router is None:
            raise TypeError(f"task {self!r} cannot be pickled: tasks are sent to other nodes "
                            "as references, which needs a running node (pycos.netpycos)")
        return router.task_reduce(self)

    def is_alive(self) -> bool:
        """Plain call: True until the task has ended."""
        return self._gen is not None

    def _require_current(self, what: str) -> None:
        if self._sched._current is not self or not self._sched._in_thread():
            raise ContextError(f"{what}() must be called by the task itself ({self!r}), from its "
                               "own code")

    # ------------------------------------------------------------ waiting
    def suspend(self, timeout: float | None = None, alarm_value: Any = None) -> Trap:
        """Use with yield: ``v = yield task.suspend(timeout, alarm_value)``.

        Waits until another party calls ``resume(update)`` (``v`` is ``update``) or ``timeout``
        seconds pass (``v`` is ``alarm_value``). ``timeout <= 0`` returns ``alarm_value`` at once
        (after letting the other ready tasks run). Must be yielded by this task itself.
        """
        _check_timeout(timeout, "timeout", allow_negative=True)
        self._require_current("suspend")
        op = Suspend(timeout, alarm_value)
        sched = self._sched  # note_made, inlined
        if sched._made is not None:
            made_again(sched)
        sched._made = op
        return op

    def sleep(self, timeout: float | None = None, alarm_value: Any = None) -> Trap:
        """Use with yield: ``yield task.sleep(seconds)``; same as ``suspend`` (``resume``
        ends it early)."""
        _check_timeout(timeout, "timeout", allow_negative=True)
        self._require_current("sleep")
        op = Suspend(timeout, alarm_value)
        sched = self._sched  # note_made, inlined
        if sched._made is not None:
            made_again(sched)
        sched._made = op
        return op

    def resume(self, update: Any = None) -> int:
        """May be used with yield. Wake this task from ``suspend``/``sleep`` with ``update``.

        Returns 0, or -1 if the task has ended. Ignored (0) if it is not suspended.
        """
        sched = self._sched
        if sched._tid == _get_ident():
            return sched._resume(self, update)
        if self._gen is None or not sched._post(sched._resume, self, update):
            return -1
        return 0

    wakeup = resume

    def receive(self, timeout: float | None = None, alarm_value: Any = None) -> Trap:
        """Use with yield: ``msg = yield task.receive(timeout, alarm_value)``.

        The oldest queued message; waits for one if none is queued. After ``timeout`` seconds the
        result is ``alarm_value``; ``timeout=0`` polls. Must be yielded by this task itself.
        """
        if timeout is None and alarm_value is None:  # the hot case
            sched = self._sched
            if sched._current is not self:
                self._require_current("receive")
            if sched._made is not None:
                made_again(sched)
            sched._made = RECEIVE_FOREVER
            return RECEIVE_FOREVER
        _check_timeout(timeout)
        self._require_current("receive")
        op = Receive(timeout, alarm_value)
        sched = self._sched  # note_made, inlined
        if sched._made is not None:
            made_again(sched)
        sched._made = op
        return op

    recv = receive

    def finish(self, timeout: float | None = None) -> Trap:
        """Use with yield in another task: ``result = yield t.finish(timeout)``.

        Waits until this task ends and evaluates to its result (None if ``timeout`` passed).
        ``yield t()`` is the same.
        """
        _check_timeout(timeout)
        return note_made(WaitTask(self, timeout))

    __call__ = finish

    def value(self, timeout: float | None = None) -> Any:
        """Plain call from a thread (never from a task): block until this task ends and return
        its result; None if ``timeout`` seconds pass first.

        Raises:
            ContextError: called inside a task (it would block the scheduler; use ``finish``).
        """
        sched = self._sched
        sched._check_not_in_scheduler("value")
        _check_timeout(timeout)
        if self._gen is None:
            return self._value
        event = threading.Event()
        if not sched._post(sched._add_value_waiter, self, event):
            return self._value if self._gen is None else None
        if event.wait(timeout) and self._gen is None:
            return self._value
        return None

    # ------------------------------------------------------------ messages
    def send(self, message: Any) -> int:
        """May be used with yield. Queue ``message`` for this task (it gets it from
        ``receive``). Returns 0, or -1 if the task is known to have ended."""
        sched = self._sched
        if sched._tid == _get_ident():
            if self._wait is RECEIVING:
                if self._timer is None:  # hot path: hand it over
                    self._wait = WOKEN
                    self._value = message
                    sched._ready.append(self)
                    return 0
            else:
                msgs = self._msgs
                if msgs is not None:  # hot path: a live task that has a queue already
                    msgs.append(message)
                    return 0
            return sched._send(self, message)
        if self._gen is None or not sched._post(sched._send, self, message):
            return -1
        return 0

    def deliver(self, message: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``ok = yield t.deliver(message, timeout)``.

        Acknowledged send: 1 once the message is in the task's queue, 0 on any failure (the task
        has ended, the timeout passed, the reference is no longer valid).
        """
        _check_timeout(timeout)
        return 1 if self.send(message) == 0 else 0

    # ------------------------------------------------------------ control
    def throw(self, *args: Any) -> int:
        """Plain call: raise an exception in this task at its current yield.

        Accepts an exception instance, a class, ``(class, value[, traceback])``, or one tuple of
        those. Returns 0, or -1 if the task has ended.
        """
        exc = _exception_from(args)
        sched = self._sched
        if sched._tid == _get_ident():
            return sched._interrupt(self, exc)
        if self._gen is None or not sched._post(sched._interrupt, self, exc):
            return -1
        return 0

    def terminate(self) -> int:
        """Plain call: end this task (GeneratorExit at its yield). Monitors receive a
        ``MonitorStatus`` of type ``GeneratorExit``. Returns 0, or -1 if it already ended."""
        sched = self._sched
        if sched._tid == _get_ident():
            return sched._interrupt(self, TERMINATE)
        if self._gen is None or not sched._post(sched._interrupt, self, TERMINATE):
            return -1
        return 0

    def set_daemon(self, flag: bool = True) -> int:
        """Plain call by the task itself: daemon tasks do not keep ``finish``/``join`` waiting.
        Returns 0.

        Raises:
            ContextError: called for a task other than the running one.
        """
        self._require_current("set_daemon")
        flag = bool(flag)
        if flag != self._daemon:
            self._daemon = flag
            sched = self._sched
            sched._nondaemons += -1 if flag else 1
            if sched._nondaemons == 0 and sched._idle_waiters:
                for event in sched._idle_waiters:
                    event.set()
                sched._idle_waiters.clear()
        return 0

    # ------------------------------------------------------------ monitors
    def monitor(self, observe: Task) -> Any:
        """Use with yield: ``yield task.monitor(other)`` makes ``task`` receive a
        ``MonitorStatus`` message when ``other`` ends. Evaluates to 0, or -1 if ``other`` has
        already ended.

        Raises:
            TypeError: ``other`` is not a Task.
        """
        if not isinstance(observe, Task):
            raise TypeError(f"monitor() needs a Task to observe, got {observe!r}")
        return observe.notify(self)

    def notify(self, monitor: Task) -> Any:
        """Plain call: ``monitor`` receives a ``MonitorStatus`` when this task ends.
        Returns 0, or -1 if this task has ended."""
        if not isinstance(monitor, Task):
            raise TypeError(f"notify() needs a monitor Task, got {monitor!r}")
        sched = self._sched
        if sched._tid == _get_ident():
            return self._add_monitor(monitor)
        if self._gen is None or not sched._post(self._add_monitor, monitor):
            return -1
        return 0

    def _add_monitor(self, monitor: Task) -> int:
        if self._gen is None:
            return -1
        monitors = self._monitors
        if monitors is None:
            monitors = self._monitors = {}  # ordered, and O(1) per monitor
        monitors[monitor] = None
        return 0

    def cancel_wait(self, waiter: Any) -> None:
        """Undo a ``finish`` wait of ``waiter`` on this task (scheduler internal)."""
        if self._waiters and waiter in self._waiters:
            self._waiters.remove(waiter)

    # ------------------------------------------------------------ hot swap
    def hot_swappable(self, flag: bool) -> int:
        """Plain call by the task itself: allow (True) or forbid hot swapping. A swap requested
        while forbidden waits until it is allowed. Returns 0."""
        self._require_current("hot_swappable")
        self._hot = bool(flag)
        if self._hot and self._swap is not None:
            self._sched._try_swap(self)
        return 0

    def hot_swap(self, target: Callable[..., Generator[Any, Any, Any]], *args: Any,
                 **kwargs: Any) -> int:
        """Plain call: replace this task's generator with ``target(*args, **kwargs)`` at its next
        safe point (hot-swappable and not inside a sub-generator). The task gets a
        ``HotSwapException`` at its yield; if it lets it propagate, the new generator starts and
        the message queue is kept. Returns 0, or -1 if the task has ended.

        Raises:
            TypeError: ``target`` is not a generator function.
        """
        gen = _make_generator(self, target, args, dict(kwargs))
        sched = self._sched
        if sched._tid == _get_ident():
            return self._request_swap(gen)
        if self._gen is None or not sched._post(self._request_swap, gen):
            gen.close()
            return -1
        return 0

    def _request_swap(self, gen: GeneratorType[Any, Any, Any]) -> int:
        if self._gen is None:
            gen.close()
            return -1
        self._swap = gen
        return self._sched._try_swap(self)

    # ------------------------------------------------------------ names
    def register(self, name: str | None = None) -> int:
        """Plain call: make this task findable by ``name`` (default: its function name) with
        ``Task.locate``, also from other nodes. Returns 0, or -1 if the name is taken."""
        return self._sched._register("task", name or self._name, self)

    def unregister(self, name: str | None = None) -> int:
        """Plain call: undo ``register``. Returns 0, or -1 if not registered under that name."""
        return self._sched._unregister("task", name or self._name, self)

    @staticmethod
    def locate(name: str, location: Any = None, timeout: float | None = None) -> Any:
        """Use with yield: ``t = yield Task.locate(name, location, timeout)``.

        A reference to the task registered as ``name``: this node first, then the node at
        ``location`` (or every peer). None if not found within ``timeout``.
        """
        _check_timeout(timeout)
        _hint_not_networked("Task", name, location)
        return note_made(_locate("task", name, location, timeout))


_not_networked_said = False


def _hint_not_networked(what: str, name: Any, location: Any) -> None:
    """Say once (a warning) that ``locate`` searches other nodes only on a networked node, when
    the process-wide scheduler is not one and ``name`` is not registered here (or a
    ``location`` is given). Called by the ``locate`` methods, so the warning points at the
    user's call."""
    global _not_networked_said
    if _not_networked_said:
        return
    sched = Pycos.scheduler()
    if sched is None or sched.router is not None:
        return
    kind = "task" if what == "Task" else what.lower()
    if location is None and isinstance(name, str) and sched._lookup(kind, name) is not None:
        return
    _not_networked_said = True
    warnings.warn(f"{what}.locate({name!r}) looks only in this process: the scheduler is not a "
                  "networked node, so other nodes are searched only after 'import "
                  "pycos.netpycos' and a node start (pycos.netpycos.Pycos(...)) before the "
                  "first task", RuntimeWarning, stacklevel=3)


def _locate(kind: str, name: str, location: Any, timeout: float | None) -> Any:
    """Generator shared by the ``locate`` static methods of tasks, channels and RCIs."""
    if not isinstance(name, str):
        raise TypeError(f"locate() needs a name (str), got {name!r}")
    sched = Pycos.instance()  # names live on the process-wide scheduler (the node)
    if location is None or location == sched.location:
        found = sched._lookup(kind, name)
        if found is not None or (location is not None and location == sched.location):
            return found
    router = sched.router
    if router is None:
        return None
    return (yield router.locate(kind, name, location, timeout))


describe_generator_op(_locate, "Task.locate()", ("locate",))


class SysTask(Task):
    """A task for reactive work (serving requests, watching sockets and timers) that runs for
    the life of the program: it is a daemon from the start, so ``finish`` and the exit do not
    wait for it. Otherwise it is a ``Task`` (pycos 4.12's ``SysTask``; there it also ran on a
    scheduler thread of its own, which this package's node keeps for its own work)."""

    __slots__ = ()
    _DAEMON = True
