"""Traps: the values a task yields to block, and the checks that catch them misused.

``task.sleep(1)``, ``task.receive()``, ``lock.acquire()`` … return small immutable trap objects;
nothing happens until the task yields one, and then only the scheduler acts on it by calling
``trap._apply(scheduler, task)``. ``_apply`` returns either the result of the ``yield`` at once
(the task keeps running without a trip through the run queue) or ``SUSPEND`` when the task was
parked or rescheduled. This module also holds the "wait kind" sentinels a parked task points at,
the pending-exception markers (``TERMINATE``), and the scheduler's small rules on what tasks pass
and return: timeout arguments, pre-PEP 479 returns, and — for its exit handler — how the main
thread ended.

Two user mistakes are caught here, always on cold paths (the scheduler pays one comparison per
yield for the first and one set lookup per plain-value yield for the second):

* **An operation never yielded** (``task.sleep(1)`` without ``yield``). Each public call that
  makes an operation for the running task notes it in the scheduler's ``_made`` slot
  (``note_made``); the scheduler clears the slot when the task yields that very operation. When
  the task instead yields something else, makes another operation, or ends, ``unyielded`` /
  ``made_again`` / ``ended`` look at the pending one: if nothing else refers to it (it was
  dropped, so it can never be yielded) a ``RuntimeWarning`` "… was never yielded" is issued at
  the line that made it, as an un-awaited coroutine is reported. That line is found from the
  bytecode of the task's code (``_sites``), because keeping every creating frame would cost
  memory in every task. An operation still referenced elsewhere (kept to be yielded later) is
  let go without a word.
* **A yielded value that is clearly a mistake** (a method or function not called, an ``async def``
  coroutine, a lock itself …): ``bad_yield`` returns the ``TypeError`` the scheduler raises in
  the task, naming what was yielded and the fix. Other values keep SPEC §1.1: a cooperative
  reschedule that evaluates to the value.

Imports only the standard library.
"""

from __future__ import annotations

import dis
import functools
import inspect
import linecache
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from types import (
    AsyncGeneratorType,
    BuiltinFunctionType,
    CodeType,
    CoroutineType,
    FrameType,
    FunctionType,
    GeneratorType,
    MethodType,
    ModuleType,
)
from typing import Any, ClassVar, TypeVar

__all__ = [
    "Trap", "SUSPEND", "SUSPENDED", "RECEIVING", "WOKEN", "TERMINATE", "Suspend", "Receive",
    "RECEIVE_FOREVER",
    "WaitTask", "WaitIO", "note_made", "made_again", "unyielded", "ended",
    "describe_generator_op", "yield_mistake", "bad_yield", "legacy_return", "short_name",
    "YIELD_KINDS", "IS_TRAP", "IS_GENERATOR", "IS_SUSPECT",
    "note_main_frame", "main_ended_by",
]

_Op = TypeVar("_Op")
#: How the scheduler treats a yielded value, by its exact type: every Trap subclass (added as it
#: is defined) is applied, a generator runs as a sub-call, and the ``SUSPECT`` types go to
#: ``bad_yield``. Any type not in the table is a plain value: one dict lookup sorts them all.
IS_TRAP, IS_GENERATOR, IS_SUSPECT = "trap", "generator", "suspect"
YIELD_KINDS: dict[type, str] = {GeneratorType: IS_GENERATOR}


class _PerThread(threading.local):
    #: The scheduler whose thread this is; None in other threads.
    sched: Any = None


#: ``_thread_scheduler.sched`` is the scheduler whose thread this is (None in other threads).
_thread_scheduler = _PerThread()


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def cancel_wait(self, task: Any) -> None:
        """Nothing to undo: the task is not on any queue."""


#: Returned by ``_apply`` when the task is no longer running (parked or rescheduled).
SUSPEND = _Sentinel("suspend")
#: Wait kind of a task in ``suspend``/``sleep`` (woken by ``resume``).
SUSPENDED = _Sentinel("suspended")
#: Wait kind of a task in ``receive`` (woken by ``send``).
RECEIVING = _Sentinel("receiving")
#: A task whose wait completed (it holds a result: a message, a lock …) but has not run yet.
WOKEN = _Sentinel("woken")


class _Terminate:
    """Pending-exception marker meaning "close the task's generators"."""

    __repr__ = lambda self: "<terminate>"  # noqa: E731


TERMINATE = _Terminate()


class _AfterResult:
    """Pending exception for a task that was already woken with a result.

    The result was handed over (a message, a lock, a file descriptor turn …), so the task
    first receives it and the exception is raised at its *next* yield: nothing it was given is
    lost or leaked."""

    __slots__ = ("exc",)

    def __init__(self, exc: Any) -> None:
        self.exc = exc


class Trap:
    """Base class of all traps. Subclasses implement ``_apply(sched, task)``.

    ``_what`` (how a user makes it, for messages) and ``_names`` (the method names that make it,
    to find the line in a "never yielded" warning) describe the operation."""

    __slots__ = ()
    _what: ClassVar[str] = "an operation"
    _names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        YIELD_KINDS[cls] = IS_TRAP

    def _apply(self, sched: Any, task: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in names)
        return f"{type(self).__name__}({fields})"


class Suspend(Trap):
    """``yield task.suspend(timeout, alarm_value)`` / ``yield task.sleep(t)``."""

    __slots__ = ("timeout", "alarm")
    _what = "task.sleep()"
    _names = ("sleep", "suspend")

    def __init__(self, timeout: float | None, alarm: Any) -> None:
        self.timeout = timeout
        self.alarm = alarm

    def _apply(self, sched: Any, task: Any) -> Any:
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, self.alarm)
        sched._park(task, SUSPENDED, timeout, self.alarm)
        return SUSPEND


class Receive(Trap):
    """``yield task.receive(timeout, alarm_value)``: the oldest queued message."""

    __slots__ = ("timeout", "alarm")
    _what = "task.receive()"
    _names = ("receive", "recv")

    def __init__(self, timeout: float | None, alarm: Any) -> None:
        self.timeout = timeout
        self.alarm = alarm

    def _apply(self, sched: Any, task: Any) -> Any:
        msgs = task._msgs
        if msgs:
            return msgs.popleft()
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, self.alarm)
        sched._park(task, RECEIVING, timeout, self.alarm)
        return SUSPEND


#: The common ``receive()`` with no timeout, shared by every task.
RECEIVE_FOREVER = Receive(None, None)


class WaitTask(Trap):
    """``yield other.finish(timeout)``: wait until ``other`` ends; its result (None on timeout)."""

    __slots__ = ("other", "timeout")
    _what = "task.finish()"
    _names = ("finish",)

    def __init__(self, other: Any, timeout: float | None) -> None:
        self.other = other
        self.timeout = timeout

    def _apply(self, sched: Any, task: Any) -> Any:
        other = self.other
        if other._gen is None:
            return other._value
        if other is task:
            raise RuntimeError(f"task {task!r} cannot wait for its own end")
        timeout = self.timeout
        if timeout is not None and timeout <= 0:
            return sched._reschedule(task, None)
        if other._waiters is None:
            other._waiters = []
        other._waiters.append(task)
        sched._park(task, other, timeout, None)
        return SUSPEND


class WaitIO(Trap):
    """Wait until ``fileobj`` is readable (``event=READ``) or writable (``WRITE``).

    The ``yield`` evaluates to True when ready. On timeout ``timeout_exc`` is raised in the task;
    closing the descriptor through the poller raises the poller's error in it.
    """

    __slots__ = ("fileobj", "event", "timeout", "timeout_exc")
    _what = "an I/O wait"

    def __init__(self, fileobj: Any, event: int, timeout: float | None,
                 timeout_exc: BaseException | None = None) -> None:
        self.fileobj = fileobj
        self.event = event
        self.timeout = timeout
        self.timeout_exc = timeout_exc

    def _apply(self, sched: Any, task: Any) -> Any:
        rec = sched._poller.add_waiter(self.fileobj, self.event, task)
        if self.timeout is None:
            sched._park(task, rec, None, None)
        else:
            exc = self.timeout_exc or TimeoutError("timed out")
            sched._park_raise(task, rec, self.timeout, exc)
        return SUSPEND


# ------------------------------------------------------------------ arguments and returns
_LEGACY_STOP = "generator raised StopIteration"
_legacy_warned = False


def legacy_return(exc: BaseException) -> tuple[bool, Any]:
    """Recognise ``raise StopIteration(v)`` made by the generator itself (PEP 479 turned it into
    RuntimeError). Only the generator's own frame counts: the RuntimeError's traceback then holds
    just the scheduler's frame."""
    global _legacy_warned
    if (type(exc) is RuntimeError and isinstance(exc.__cause__, StopIteration)
            and exc.args == (_LEGACY_STOP,) and exc.__traceback__ is not None
            and exc.__traceback__.tb_next is None):
        if not _legacy_warned:
            _legacy_warned = True
            warnings.warn("ending a task with 'raise StopIteration(value)' is deprecated; "
                          "use 'return value'", DeprecationWarning, stacklevel=2)
        return True, exc.__cause__.value
    return False, None


def _check_timeout(timeout: Any, what: str = "timeout", allow_negative: bool = False) -> None:
    """Validate a timeout argument: None or a non-negative real number."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, got {timeout!r}")
    if timeout != timeout:
        raise ValueError(f"{what} must not be NaN")
    if timeout < 0 and not allow_negative:
        raise ValueError(f"{what} must be >= 0 seconds or None, got {timeout!r}")


# ------------------------------------------------------------------ operations never yielded
#: What ``sys.getrefcount`` says of an object held by one local variable only.
_ALONE = (lambda op: sys.getrefcount(op))(object())
#: Generator operations (``cond.wait()``, ``chan.deliver()`` …): code -> (what, method names).
_GENERATOR_OPS: dict[CodeType, tuple[str, tuple[str, ...]]] = {}
#: Call sites found in a code object: (offset, method name, line, source text).
_site_cache: dict[CodeType, list[tuple[int, str, int, str]]] = {}
#: Warnings registry for reports that have no module of their own (a task that ended).
_registry: dict[Any, Any] = {}
_PYCOS_MODULES = ("pycos", "asyncoro")
_CALLS = ("CALL", "CALL_KW", "CALL_FUNCTION_EX")
_CONSUMED = ("YIELD_VALUE", "RETURN_VALUE", "RETURN_CONST")


def describe_generator_op(fn: Callable[..., Any], what: str, names: tuple[str, ...]) -> None:
    """Declare that the generator function ``fn`` implements an operation users make as
    ``what`` (through a method named in ``names``), for "never yielded" messages."""
    _GENERATOR_OPS[fn.__code__] = (what, names)


def note_made(op: _Op) -> _Op:
    """Note that the running task made ``op``, an operation it must yield; returns ``op``.

    Public calls that return a trap or a generator to be yielded end with
    ``return note_made(op)``. Outside a task (a plain thread, a scheduler callback) nothing is
    noted. Internal code that makes and applies an operation at once must not call this."""
    sched = _thread_scheduler.sched
    if sched is not None and sched._current is not None:
        if sched._made is not None:
            made_again(sched)
        sched._made = op
    return op


def _take_lost(sched: Any) -> Any:
    """Take the pending operation out of ``sched._made``; return it if it is lost (nothing else
    refers to it, so it can never be yielded), else None."""
    op = sched._made
    sched._made = None
    if type(op) is GeneratorType:
        if inspect.getgeneratorstate(op) != inspect.GEN_CREATED:
            return None  # it runs or ran: the task used it with 'yield from'
    elif op is RECEIVE_FOREVER:
        return op  # shared by every task: lost as soon as another step is taken
    if sys.getrefcount(op) > _ALONE:
        return None
    return op


def made_again(sched: Any) -> None:
    """The running task makes an operation while the one it made before is still pending:
    report the earlier one if it is lost.

    Raises:
        RuntimeWarning: the warning itself, when the warnings filter turns it into an error.
    """
    op = _take_lost(sched)
    if op is None:
        return
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in \
            _PYCOS_MODULES:
        frame = frame.f_back
    if frame is None:
        gen = sched._current._gen
        frame = gen.gi_frame if gen is not None else None
    error = _report(op, sched._current, frame, None)
    if error is not None:
        raise error


def unyielded(sched: Any, task: Any, gen: Any) -> BaseException | None:
    """The scheduler's cold path when ``task`` (running ``gen``) yields something other than the
    operation it made last. Returns the warning as an exception to raise in the task when the
    warnings filter makes it an error, else None."""
    op = _take_lost(sched)
    if op is None:
        return None
    return _report(op, task, gen.gi_frame, None)


def ended(sched: Any, task: Any) -> None:
    """``task`` ends with an operation made and not yielded: report it if it is lost."""
    op = _take_lost(sched)
    if op is None:
        return
    gen = task._gen
    code = gen.gi_code if gen is not None else None
    error = _report(op, task, None, code)
    if error is not None:
        from .._log import logger

        logger.warning("%s", error)


def _describe(op: Any) -> tuple[str, tuple[str, ...]]:
    if isinstance(op, Trap):
        return op._what, op._names
    if type(op) is GeneratorType:
        return _GENERATOR_OPS.get(op.gi_code, (f"{short_name(op)}()", ()))
    return repr(op), ()


def _report(op: Any, task: Any, frame: FrameType | None,
            code: CodeType | None) -> BaseException | None:
    """Issue the RuntimeWarning for ``op``. The line that made it is searched in the code of
    ``frame`` (before its current instruction) or of ``code`` (a task that has ended)."""
    what, names = _describe(op)
    globs: dict[str, Any] | None = None
    lasti = -1
    if frame is not None:
        code, lasti, globs = frame.f_code, frame.f_lasti, frame.f_globals
    if code is None:
        return None
    site = _find_site(code, names, lasti)
    if site is not None:  # (no source text for code from 'python -c' or a string)
        lineno, text, after = site[0], site[1] or what, ""
    else:
        text = what
        lineno = frame.f_lineno if frame is not None and frame.f_lineno else code.co_firstlineno
        after = " (it was made before this line)"
    # The task's name, not its id: a mistake repeated by many tasks is one warning per line.
    message = (f"{text} was never yielded{after}: an operation does nothing until the task "
               f"yields it; write 'yield {text}' (in task {getattr(task, 'name', task)})")
    if globs is None:  # a task that has ended: its module, found by file name
        globs = next((vars(m) for m in list(sys.modules.values())
                      if getattr(m, "__file__", None) == code.co_filename), None)
    # The module's own registry, so "default" shows a warning once per line; module=None
    # would silence it.
    extra: dict[str, Any] = {"registry": _registry}
    if globs is not None:
        extra = {"registry": globs.setdefault("__warningregistry__", {}), "module_globals": globs,
                 "module": globs.get("__name__") or code.co_filename}
    try:
        try:
            warnings.warn_explicit(message, RuntimeWarning, code.co_filename, lineno, **extra)
        except Warning:
            raise
        except Exception:  # the module's loader cannot give its source (python -c …)
            extra.pop("module_globals", None)
            warnings.warn_explicit(message, RuntimeWarning, code.co_filename, lineno, **extra)
    except Warning as error:  # the filter says "error": the caller raises it where it can
        return error
    return None


def _find_site(code: CodeType, names: tuple[str, ...], lasti: int) -> tuple[int, str] | None:
    """The line and text of the call ``x.<name>(...)`` in ``code`` that made an operation not
    yielded: the last such site before offset ``lasti``, else the first one after it (in a loop
    the site may follow the current instruction); with ``lasti`` -1, the last one in the code."""
    sites = [s for s in _sites(code) if s[1] in names]
    if not sites:  # made in a lambda, comprehension or nested function of this code?
        inner = [s for c in _nested(code) for s in _sites(c) if s[1] in names]
        return (inner[0][2], inner[0][3]) if inner else None
    if lasti < 0:
        return sites[-1][2], sites[-1][3]
    before = [s for s in sites if s[0] < lasti]
    chosen = before[-1] if before else sites[0]
    return chosen[2], chosen[3]


def _sites(code: CodeType) -> list[tuple[int, str, int, str]]:
    """Method calls in ``code`` whose result is neither yielded nor returned at once.

    A method call ``x.name(args)`` compiles to a LOAD_METHOD/LOAD_ATTR of ``name`` and, later, the
    CALL whose source position starts where the attribute's does; the instruction after that
    CALL tells whether the result is yielded (YIELD_VALUE), returned, or kept / dropped."""
    cached = _site_cache.get(code)
    if cached is not None:
        return cached
    sites: list[tuple[int, str, int, str]] = []
    instrs = [i for i in dis.get_instructions(code) if i.opname not in ("PRECALL", "CACHE")]
    for n, ins in enumerate(instrs):
        if ins.opname not in ("LOAD_METHOD", "LOAD_ATTR") or not isinstance(ins.argval, str):
            continue
        pos = ins.positions
        if pos is None or pos.lineno is None:
            continue
        for m in range(n + 1, len(instrs)):
            call = instrs[m]
            cpos = call.positions
            if (call.opname in _CALLS and cpos is not None and cpos.lineno == pos.lineno
                    and cpos.col_offset == pos.col_offset):
                following = instrs[m + 1].opname if m + 1 < len(instrs) else ""
                if following not in _CONSUMED:
                    sites.append((ins.offset, ins.argval, pos.lineno,
                                  _source(code.co_filename, cpos)))
                break
    _site_cache[code] = sites
    return sites


def _nested(code: CodeType) -> list[CodeType]:
    """The code objects defined inside ``code``, at any depth."""
    found = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            found.append(const)
            found.extend(_nested(const))
    return found


def _source(filename: str, pos: Any) -> str:
    """The source text at ``pos`` (one line only; positions count UTF-8 bytes)."""
    if pos.end_lineno != pos.lineno or pos.col_offset is None or pos.end_col_offset is None:
        return ""
    line = linecache.getline(filename, pos.lineno).encode()
    return line[pos.col_offset:pos.end_col_offset].decode(errors="replace")


# ------------------------------------------------------------------ yields that are mistakes
#: Yielded values of these types may be mistakes: ``bad_yield`` looks closer.
YIELD_KINDS.update(dict.fromkeys((FunctionType, MethodType, BuiltinFunctionType, CoroutineType,
                                  AsyncGeneratorType, functools.partial), IS_SUSPECT))
#: Objects that are never meant to be yielded themselves: type -> what to write instead.
_INSTANCE_FIXES: dict[type, str] = {}


def yield_mistake(cls: type, fix: str) -> None:
    """Make a yielded ``cls`` instance an error in the task; ``fix`` says what to write."""
    YIELD_KINDS[cls] = IS_SUSPECT
    _INSTANCE_FIXES[cls] = fix


def short_name(obj: Any) -> str:
    """``obj``'s qualified name as a user reads it: ``Task.locate``, ``worker`` (no
    ``f.<locals>.`` prefix)."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return str(name).rpartition("<locals>.")[2]


def _owned_by_pycos(cls: type) -> bool:
    return cls.__module__.partition(".")[0] in _PYCOS_MODULES


def bad_yield(value: Any) -> TypeError | None:
    """The error for a yielded ``value`` that is clearly a mistake, or None for an ordinary
    value (then the yield is a cooperative reschedule)."""
    kind = type(value)
    fix = _INSTANCE_FIXES.get(kind)
    if fix is not None:
        return TypeError(f"a task yielded the {kind.__name__} {value!r} itself, which does "
                         f"nothing: {fix}")
    if kind is CoroutineType or kind is AsyncGeneratorType:
        name = short_name(value)
        if kind is CoroutineType:
            value.close()  # it is never awaited: no second warning about that
        return TypeError(f"a task yielded {name}(), made by an 'async def' function: pycos does "
                         f"not run asyncio coroutines; write {name} as a generator function "
                         f"('def' with 'yield' where it has 'await') and yield its call")
    target = value.func if kind is functools.partial else value
    name = short_name(target)
    if inspect.isgeneratorfunction(target):
        return TypeError(f"a task yielded the generator function {name} itself: call it, "
                         f"'yield {_call_text(target)}(...)', to run it as a sub-call")
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        return TypeError(f"a task yielded the 'async def' function {name}: pycos does not run "
                         f"asyncio coroutines; write it as a generator function ('def' with "
                         f"'yield' where it has 'await') and yield its call")
    owner = getattr(target, "__self__", None)
    if isinstance(owner, socket.socket):
        return TypeError(f"a task yielded the method socket.{target.__name__} of a plain socket, "
                         f"without calling it: a plain socket would block every task; wrap it, "
                         f"sock = pycos.AsyncSocket(sock), and write 'yield "
                         f"sock.{target.__name__}(...)'")
    if owner is not None and not isinstance(owner, ModuleType):
        cls = owner if isinstance(owner, type) else type(owner)
        if _owned_by_pycos(cls):
            return TypeError(f"a task yielded the method {cls.__name__}.{target.__name__} "
                             f"without calling it: write 'yield {_call_text(target)}(...)'")
        return None
    if getattr(target, "__module__", "").partition(".")[0] in _PYCOS_MODULES:
        return TypeError(f"a task yielded the function {name} without calling it: write "
                         f"'yield {name}(...)'")
    return None


def _call_text(target: Any) -> str:
    """How a user would name ``target`` in a call: ``task.receive``, ``worker``."""
    owner = getattr(target, "__self__", None)
    if owner is None or isinstance(owner, ModuleType):
        return str(getattr(target, "__name__", "f"))
    if isinstance(owner, type):
        return f"{owner.__name__}.{target.__name__}"
    name = type(owner).__name__
    return f"{_VARIABLE_NAMES.get(name, name.lower())}.{target.__name__}"


#: How pycos's documentation names instances of its classes in examples.
_VARIABLE_NAMES = {"AsyncSocket": "sock", "Channel": "chan", "Condition": "cond",
                   "Semaphore": "sem", "CategorizeMessages": "cm", "WaitQueue": "queue"}


# ------------------------------------------------------------------ how the program ended
# How did the program end? CPython (3.11-3.13) runs atexit callbacks in all three cases below, and
# only an uncaught exception leaves a trace (``sys.last_value``, and ``sys.last_exc`` from 3.12);
# ``sys.exit()`` clears its SystemExit before finalizing, and neither ``sys.excepthook`` nor
# ``threading.excepthook`` sees it. What does tell them apart is the bottom frame of the main
# thread (the ``<module>`` of the script or ``-c`` code, or runpy's ``_run_module_as_main`` for
# ``-m``): a finished frame keeps its last instruction, which is a RETURN only when the program
# ran to its end. A frame still on the stack (atexit run by hand, an embedding) or none found
# (interactive use) falls back to ``sys.last_*``.
_main_frame: FrameType | None = None
_RETURNS = frozenset(dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST")
                     if name in dis.opmap)


def note_main_frame() -> None:
    """Remember the bottom frame of the main thread (once per process)."""
    global _main_frame
    if _main_frame is not None:
        return
    main = threading.main_thread()
    frame = (sys._getframe() if threading.current_thread() is main
             else sys._current_frames().get(main.ident or 0))
    while frame is not None and frame.f_back is not None:
        frame = frame.f_back
    _main_frame = frame


def main_ended_by() -> str | None:
    """At interpreter exit: None if the main thread ran the program to its end, else how it
    ended ("an uncaught ValueError", "SystemExit (sys.exit)")."""
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    frame = _main_frame
    if frame is not None:
        here: FrameType | None = sys._getframe()
        while here is not None and here is not frame:
            here = here.f_back
        if here is None:  # the main frame has finished
            code, lasti = frame.f_code.co_code, frame.f_lasti
            if 0 <= lasti < len(code) and code[lasti] in _RETURNS:
                return None
            return f"an uncaught {type(last).__name__}" if last is not None else \
                "SystemExit (sys.exit)"
    if last is not None and not hasattr(sys, "ps1"):
        return f"an uncaught {type(last).__name__}"
    return None
