"""Twisted programs ported by changing their imports only: each runs under Twisted and under ours.

Every program below is written the Twisted way. ``port()`` rewrites its import lines with the
README's porting table (and nothing else); each test runs the program in a fresh interpreter
under both flavours (a Twisted reactor cannot run twice in one process) and checks that both
print the same, expected, output. A program that must differ because of a documented "Beyond
Twisted" choice is adjusted to print what both agree on, with a comment saying so.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from tests.deferred_support import mypyErrors

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The README's "Porting from Twisted" table, one import line at a time.
PORTS = {
    "from twisted.internet import reactor": "from reactor import getReactor\nreactor = getReactor()",
    "from twisted.internet import defer": "import reactor as defer",
    "from twisted.internet import task": "from reactor import task",
    "from twisted.internet import threads": "import deferthreads as threads",
    "from twisted.internet import protocol": "from reactor import protocol",
    "from twisted.internet import error": "from reactor import error",
    "from twisted.python.failure import Failure": "from reactor import Failure",
    "from twisted.python.threadpool import ThreadPool": "from deferthreads import ThreadPool",
    "from twisted.enterprise import adbapi": "import adbapi",
}

FLAVOURS = pytest.mark.parametrize("flavour", ["twisted", "ours"])


def port(source: str) -> str:
    """Rewrite the Twisted import lines of ``source`` for deferthreads; any other Twisted use is an error."""
    lines = []
    for line in source.splitlines():
        if "twisted" in line:
            assert line in PORTS, f"not an import the porting table covers: {line!r}"
            lines.append(PORTS[line])
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def runProgram(source: str, flavour: str, *argv: str) -> str:
    """Run ``source`` (ported first for ``ours``) in a fresh interpreter; return its stdout (must succeed)."""
    if flavour == "ours":
        source = port(source)
    result = runRaw(source, *argv)
    assert result.returncode == 0, f"{flavour} exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def runRaw(source: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as is in a fresh interpreter, bounded in time."""
    command = [sys.executable, "-c", source, *argv]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=30, check=False)


def checkProgram(source: str, expected: str, flavour: str, *argv: str) -> None:
    """Assert that ``source`` prints ``expected`` under ``flavour``."""
    assert runProgram(source, flavour, *argv) == expected.lstrip("\n")


REACT_THREADS = """
import threading
from twisted.internet import defer
from twisted.internet import task
from twisted.internet import threads

def crunch(n):
    return sum(range(n)), threading.current_thread() is not threading.main_thread()

@defer.inlineCallbacks
def main(reactor):
    ticks = []
    def tick():
        ticks.append(len(ticks))
        if len(ticks) == 3:
            loop.stop()
    loop = task.LoopingCall(tick)
    loopDone = loop.start(0.001, now=True)
    print(loop.deferred is loopDone)
    results = yield defer.DeferredList(
        [threads.deferToThread(crunch, 10), threads.deferToThread(crunch, 100),
         threads.deferToThread(lambda: 1 // 0)],
        consumeErrors=True,
    )
    stopped = yield loopDone
    print([(ok, r if ok else r.type.__name__) for ok, r in results])
    print(ticks, stopped is loop, loop.running, loop.deferred)
    value = yield task.deferLater(reactor, 0, lambda: "later")
    print(value)

task.react(main)
"""


@FLAVOURS
def test_reactWithInlineCallbacksThreadsAndLoopingCall(flavour: str) -> None:
    """react + inlineCallbacks + deferToThread + LoopingCall + DeferredList behave as in Twisted."""
    expected = """
True
[(True, (45, True)), (True, (4950, True)), (False, 'ZeroDivisionError')]
[0, 1, 2] True False None
later
"""
    checkProgram(REACT_THREADS, expected, flavour)


ADBAPI_SQLITE = """
import os, sqlite3, sys
from twisted.internet import defer
from twisted.internet import task
from twisted.enterprise import adbapi

path = os.path.join(sys.argv[1], "ported.sqlite")

def addUsers(txn, names):
    txn.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    for name in names:
        txn.execute("INSERT INTO users (name) VALUES (?)", (name,))
    txn.execute("SELECT count(*) FROM users")
    return txn.fetchone()[0]

def duplicate(txn):
    txn.execute("INSERT INTO users (name) VALUES (?)", ("zed",))
    txn.execute("INSERT INTO users (name) VALUES (?)", ("ada",))

@defer.inlineCallbacks
def main(reactor):
    pool = adbapi.ConnectionPool("sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1)
    count = yield pool.runInteraction(addUsers, ["ada", "grace"])
    rows = yield pool.runQuery("SELECT id, name FROM users ORDER BY id")
    print(count, [tuple(r) for r in rows])
    caught = []
    def onIntegrity(failure):
        failure.trap(sqlite3.IntegrityError)
        caught.append(failure.getErrorMessage())
        return "handled"
    print((yield pool.runInteraction(duplicate).addErrback(onIntegrity)), caught)
    rows = yield pool.runQuery("SELECT name FROM users WHERE name = ?", ("zed",))
    print("rolled back:", list(rows) == [])
    try:
        yield pool.runQuery("SELECT nope FROM nowhere")
    except sqlite3.OperationalError as e:
        print("operational", "nowhere" in str(e))
    yield pool.runOperation("UPDATE users SET name = ? WHERE name = ?", ("ADA", "ada"))
    def withConn(conn):
        cur = conn.cursor()
        cur.execute("SELECT name FROM users ORDER BY id")
        return [r[0] for r in cur.fetchall()]
    print((yield pool.runWithConnection(withConn)))
    print((yield pool.runQuery("SELECT 1").addCallback(lambda rows: rows[0][0])))
    pool.close()

task.react(main)
"""


@FLAVOURS
def test_adbapiSqliteWithTrappedErrors(flavour: str, tmp_path: pathlib.Path) -> None:
    """An adbapi program on sqlite3: runInteraction, runQuery, rollback, failure.trap in an errback."""
    expected = """
2 [(1, 'ada'), (2, 'grace')]
handled ['UNIQUE constraint failed: users.name']
rolled back: True
operational True
['ADA', 'grace']
1
"""
    checkProgram(ADBAPI_SQLITE, expected, flavour, str(tmp_path))


ADBAPI_SUBCLASS = """
import os, sqlite3, sys
from twisted.internet import defer
from twisted.internet import task
from twisted.enterprise import adbapi

path = os.path.join(sys.argv[1], "sub.sqlite")
seen = []

class LoggingTransaction(adbapi.Transaction):
    def execute(self, *a, **kw):
        seen.append(("exec", a[0].split()[0]))
        return self._cursor.execute(*a, **kw)

@defer.inlineCallbacks
def main(reactor):
    pool = adbapi.ConnectionPool("sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1,
                                 cp_openfun=lambda conn: seen.append(("open", type(conn).__name__)))
    pool.transactionFactory = LoggingTransaction
    print(pool.min, pool.max, pool.dbapiName, pool.dbapi is sqlite3, pool.noisy, pool.reconnect,
          pool.connargs == (path,), sorted(pool.connkw))
    def work(txn):
        txn.execute("CREATE TABLE t (x INTEGER)")
        txn.execute("INSERT INTO t VALUES (1)")
        print(isinstance(txn, LoggingTransaction), txn.rowcount,
              isinstance(txn._connection, adbapi.Connection))
        txn.execute("SELECT x FROM t")
        return txn.fetchall()
    print((yield pool.runInteraction(work)))
    def withConn(conn):
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM t")
        count = cursor.fetchone()[0]
        conn.commit()
        return count, isinstance(conn, adbapi.Connection)
    print((yield pool.runWithConnection(withConn)))
    print(seen)
    print(pool.running)
    pool.close()
    print(pool.running)

task.react(main)
"""


@FLAVOURS
def test_adbapiTransactionSubclassAndOpenfun(flavour: str, tmp_path: pathlib.Path) -> None:
    """A custom transactionFactory, cp_openfun and the pool's Twisted attributes work unchanged."""
    expected = """
1 1 sqlite3 True False False True ['check_same_thread']
True 1 True
[(1,)]
(1, True)
[('open', 'Connection'), ('exec', 'CREATE'), ('exec', 'INSERT'), ('exec', 'SELECT')]
True
False
"""
    checkProgram(ADBAPI_SUBCLASS, expected, flavour, str(tmp_path))


DEFERRED_CHAINS = """
from twisted.internet import defer
from twisted.python.failure import Failure

log = []
def cb(result, tag, *, extra):
    log.append(("cb", result, tag, extra))
    return result * 2
def eb(failure, tag, *, extra):
    log.append(("eb", failure.type.__name__, tag, extra))
    return -1

for fire in (lambda d: d.callback(21), lambda d: d.errback(ValueError("x"))):
    d = defer.Deferred()
    d.addCallbacks(cb, eb, callbackArgs=("A",), callbackKeywords={"extra": 1},
                   errbackArgs=("B",), errbackKeywords={"extra": 2})
    fire(d)
    d.addCallback(log.append)
print(log)

a, b = defer.Deferred(), defer.Deferred()
seen = []
b.addCallback(seen.append)
a.chainDeferred(b)
a.callback("chained")
print(seen, a.result)

p = defer.Deferred()
order = []
p.addCallback(lambda r: order.append(("first", r)) or r)
p.pause()
p.callback(1)
order.append("paused")
p.addCallback(lambda r: order.append(("second", r)))
order.append(("called", p.called, p.paused))
p.unpause()
print(order)

out = []
dl = defer.DeferredList([defer.succeed(1), defer.fail(KeyError("k")), defer.succeed(3)], consumeErrors=True)
dl.addCallback(out.append)
print([(ok, v if ok else (type(v).__name__, v.type.__name__)) for ok, v in out[0]])
defer.DeferredList([defer.Deferred(), defer.succeed("x")], fireOnOneCallback=True).addCallback(print)
dl3 = defer.DeferredList([defer.Deferred(), defer.fail(OSError("o"))],
                         fireOnOneErrback=True, consumeErrors=True)
dl3.addErrback(lambda f: print(f.type.__name__, f.value.index, f.value.subFailure.type.__name__,
                               isinstance(f.value.subFailure, Failure)))

g = defer.gatherResults([defer.succeed(1), defer.fail(ZeroDivisionError("z")), defer.succeed(3)],
                        consumeErrors=True)
def onFirstError(f):
    f.trap(defer.FirstError)
    print("first", f.value.index, f.value.subFailure.type.__name__, f.value.subFailure.getErrorMessage())
    return f.value.subFailure.value.args
g.addErrback(onFirstError).addCallback(print)
defer.gatherResults([defer.succeed(1), defer.succeed(2)]).addCallback(print)

f = defer.fail(KeyError("k"))
f.addErrback(lambda f: f.trap(ValueError)).addErrback(
    lambda f: print("retrapped", f.check(LookupError), f.check(ValueError)))
def boom():
    raise RuntimeError("boom")
defer.maybeDeferred(boom).addErrback(lambda f: print(f.getErrorMessage(), f.type is RuntimeError))
try:
    1 / 0
except ZeroDivisionError:
    defer.fail().addErrback(lambda f: print("current", f.type.__name__))
"""


@FLAVOURS
def test_deferredChainsListsAndFirstError(flavour: str) -> None:
    """addCallbacks with args/keywords, chainDeferred, pause/unpause, DeferredList and FirstError formats."""
    expected = """
[('cb', 21, 'A', 1), 42, ('eb', 'ValueError', 'B', 2), -1]
['chained'] None
['paused', ('called', True, 1), ('first', 1), ('second', 1)]
[(True, 1), (False, ('Failure', 'KeyError')), (True, 3)]
('x', 1)
FirstError 1 OSError True
first 1 ZeroDivisionError z
('z',)
[1, 2]
retrapped <class 'LookupError'> None
boom True
current ZeroDivisionError
"""
    checkProgram(DEFERRED_CHAINS, expected, flavour)


FAILURES = """
import io
from twisted.internet import defer
from twisted.python.failure import Failure

def inner():
    raise KeyError("missing")
try:
    inner()
except KeyError:
    f = Failure()
print(f.type is KeyError, f.value.args, f.tb is not None, f.getErrorMessage())
print("inner" in f.getTraceback(), "KeyError" in f.getTraceback())
buf = io.StringIO()
f.printTraceback(file=buf)
print("inner" in buf.getvalue())
try:
    f.raiseException()
except KeyError as e:
    tb, names = e.__traceback__, []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    print("inner" in names)
f2 = Failure(ValueError("built"))
print(f2.type.__name__, f2.getErrorMessage(), f2.check(ArithmeticError, ValueError).__name__)
try:
    f2.trap(TypeError)
except ValueError as e:
    print("trap reraised", e.args)
f.cleanFailure()
print(f.getErrorMessage(), f.value.args, Failure(ValueError("v"), ValueError).type is ValueError)
d = defer.Deferred()
def failing(result):
    raise IndexError("in callback")
d.addCallback(failing)
d.addErrback(lambda f: print("callback failed", f.type.__name__, "failing" in f.getTraceback()))
d.callback(None)
def chained(result):
    inner = defer.Deferred()
    inner.callback(result + 1)
    return inner
defer.succeed(1).addCallback(chained).addCallback(print)
twice = defer.Deferred()
twice.callback(1)
try:
    twice.callback(2)
except defer.AlreadyCalledError:
    print("AlreadyCalledError")
"""


@FLAVOURS
def test_failureInspectionAndReraise(flavour: str) -> None:
    """Failure capture, getTraceback, printTraceback, raiseException, trap and check, as in Twisted."""
    expected = """
True ('missing',) True 'missing'
True True
True
True
ValueError built ValueError
trap reraised ('built',)
'missing' ('missing',) True
callback failed IndexError True
2
AlreadyCalledError
"""
    checkProgram(FAILURES, expected, flavour)


COROUTINES = """
from twisted.internet import defer
from twisted.internet import task

async def child(clock, x):
    await task.deferLater(clock, 1, lambda: None)
    if x < 0:
        raise ValueError(x)
    return x * 10

async def parent(clock):
    out = [await child(clock, 1)]
    try:
        await child(clock, -1)
    except ValueError as e:
        out.append(("caught", e.args))
    out.append(await defer.succeed("plain"))
    out.append(await defer.ensureDeferred(child(clock, 2)))
    return out

clock = task.Clock()
results = []
defer.Deferred.fromCoroutine(parent(clock)).addCallback(results.append)
for _ in range(5):
    clock.advance(1)
print(results)

async def waitsForever(gate):
    try:
        await gate
    except defer.CancelledError:
        return "cancelled-inside"
gate = defer.Deferred()
w = defer.Deferred.fromCoroutine(waitsForever(gate))
w.addBoth(results.append)
w.cancel()
print(results[-1], gate.called)

@defer.inlineCallbacks
def generator(clock):
    x = yield task.deferLater(clock, 2, lambda: 5)
    y = yield defer.Deferred.fromCoroutine(child(clock, x))
    return x + y
g = generator(clock)
clock.advance(2)
clock.advance(1)
print(g.result)
try:
    defer.Deferred.fromCoroutine(lambda: 1)
except defer.NotACoroutineError:
    print("not a coroutine")
"""


@FLAVOURS
def test_fromCoroutineAwaitAndCancel(flavour: str) -> None:
    """async def with await on Deferreds, ensureDeferred, cancellation reaching the await, inlineCallbacks."""
    expected = """
[[10, ('caught', (-1,)), 'plain', 20]]
cancelled-inside True
55
not a coroutine
"""
    checkProgram(COROUTINES, expected, flavour)


CLOCK = """
from twisted.internet import task
from twisted.internet import error

clock = task.Clock()
calls = []
dc = clock.callLater(10, calls.append, "a")
print(dc.getTime(), dc.active(), clock.seconds())
clock.advance(5)
dc.reset(10)
print(dc.getTime())
dc.delay(5)
print(dc.getTime())
clock.advance(19)
print(calls, dc.active())
clock.advance(1)
# Twisted sets called/cancelled to 1, ours to True: equal, so compare as bools.
print(calls, dc.active(), bool(dc.called))
for name, args in (("cancel", ()), ("reset", (1,)), ("delay", (1,))):
    try:
        getattr(dc, name)(*args)
    except error.AlreadyCalled:
        print(name, "AlreadyCalled")
dc2 = clock.callLater(1, calls.append, "b")
dc2.cancel()
try:
    dc2.cancel()
except error.AlreadyCancelled:
    print("AlreadyCancelled", dc2.active(), bool(dc2.cancelled))
print(len(clock.getDelayedCalls()))
clock.callLater(3, calls.append, "c")
clock.callLater(1, calls.append, "d")
print([c.getTime() - clock.seconds() for c in sorted(clock.getDelayedCalls(), key=lambda c: c.getTime())])
clock.pump([1, 1, 1])
print(calls)
counts = []
lc = task.LoopingCall.withCount(counts.append)
lc.clock = clock
lc.start(2, now=False)
clock.advance(2)
clock.advance(5)
lc.stop()
print(counts)
task.deferLater(clock, 3, lambda: "done").addCallback(calls.append)
d2 = task.deferLater(clock, 3, lambda: "never")
d2.addErrback(lambda f: calls.append(f.type.__name__))
d2.cancel()
clock.advance(3)
print(calls)
print(issubclass(error.ConnectionRefusedError, error.ConnectError), error.ReactorNotRunning.__name__)
"""


@FLAVOURS
def test_clockDelayedCallsAndLoopingCallWithCount(flavour: str) -> None:
    """task.Clock, DelayedCall reset/delay/getTime/active and its errors, withCount, deferLater cancel."""
    expected = """
10.0 True 0.0
15.0
20.0
['a'] False
['a'] False True
cancel AlreadyCalled
reset AlreadyCalled
delay AlreadyCalled
AlreadyCancelled False True
0
[1.0, 3.0]
['a', 'd', 'c']
[1, 2]
['a', 'd', 'c', 'CancelledError', 'done']
True ReactorNotRunning
"""
    checkProgram(CLOCK, expected, flavour)


SYNC_AND_TIMEOUTS = """
from twisted.internet import defer
from twisted.internet import task

clock = task.Clock()
out = []
lock = defer.DeferredLock()
def critical(tag):
    out.append(("in", tag, lock.locked))
    return task.deferLater(clock, 1, lambda: out.append(("out", tag)))
lock.run(critical, "a")
lock.run(critical, "b")
clock.advance(1)
clock.advance(1)
print(out, lock.locked)

sem = defer.DeferredSemaphore(2)
running = []
for i in range(4):
    sem.run(lambda i=i: (running.append(i), task.deferLater(clock, 1, lambda: None))[1])
print(running, sem.tokens, len(sem.waiting))
clock.advance(1)
print(running, sem.tokens)
clock.advance(1)
print(sem.tokens)

q = defer.DeferredQueue(size=2, backlog=1)
got = []
q.get().addCallback(got.append)
for item in (1, 2, 3):
    q.put(item)
try:
    q.put(4)
except defer.QueueOverflow:
    got.append("overflow")
q.get().addCallback(got.append)
q.get().addCallback(got.append)
print(got, len(q.pending))

cancelled = []
d = defer.Deferred(lambda d: cancelled.append("canceller ran"))
d.addErrback(lambda f: cancelled.append(f.type.__name__))
d.cancel()
print(cancelled)
t = defer.Deferred()
t.addTimeout(5, clock)
t.addErrback(lambda f: print("timeout", f.type.__name__, f.check(defer.TimeoutError) is not None))
clock.advance(5)
t2 = defer.Deferred()
t2.addTimeout(5, clock, onTimeoutCancel=lambda result, timeout: ("custom", timeout))
t2.addBoth(print)
clock.advance(5)
t3 = defer.Deferred()
t3.addTimeout(5, clock)
t3.callback("quick")
clock.advance(10)
print(t3.result, clock.getDelayedCalls())

n = []
def work():
    n.append(1)
    if len(n) == 2:
        raise ValueError("stop")
lc = task.LoopingCall(work)
lc.clock = clock
lc.start(1).addErrback(lambda f: print("loop failed", f.getErrorMessage(), lc.running))
clock.advance(1)
defer.race([defer.Deferred(), defer.succeed("winner")]).addCallback(print)
"""


@FLAVOURS
def test_locksQueuesTimeoutsAndRace(flavour: str) -> None:
    """DeferredLock/Semaphore/Queue, a canceller, addTimeout on a Clock, a failing LoopingCall, race."""
    expected = """
[('in', 'a', True), ('out', 'a'), ('in', 'b', True), ('out', 'b')] False
[0, 1] 0 2
[0, 1, 2, 3] 0
2
[1, 'overflow', 2, 3] 0
['canceller ran', 'CancelledError']
timeout TimeoutError True
('custom', 5)
quick []
loop failed stop False
(1, 'winner')
"""
    checkProgram(SYNC_AND_TIMEOUTS, expected, flavour)


THREADPOOL = """
import threading
from twisted.python.threadpool import ThreadPool

pool = ThreadPool(minthreads=1, maxthreads=3, name="qa")
print(pool.min, pool.max, pool.name, pool.started)
pool.start()
print(pool.started)
done = threading.Event()
results = []
def onResult(success, result):
    inWorker = threading.current_thread() is not threading.main_thread()
    results.append((success, result if success else type(result).__name__, inWorker))
    if len(results) == 3:
        done.set()
pool.callInThreadWithCallback(onResult, lambda a, b=0: a + b, 1, b=2)
pool.callInThreadWithCallback(onResult, lambda: 1 // 0)
pool.callInThreadWithCallback(onResult, str.upper, "x")
print(done.wait(10))
print(sorted(results, key=repr))
ran = threading.Event()
pool.callInThread(ran.set)
print(ran.wait(10))
print(len(pool.threads) >= 1, all(isinstance(t, threading.Thread) for t in pool.threads), pool.q.qsize())
pool.adjustPoolsize(minthreads=2, maxthreads=4)
print(pool.min, pool.max)
pool.stop()
print(pool.joined, pool.started)
"""


@FLAVOURS
def test_threadPoolUsedDirectly(flavour: str) -> None:
    """ThreadPool start, callInThreadWithCallback (success and failure), threads, q, adjustPoolsize, stop."""
    expected = """
1 3 qa False
True
True
[(False, 'Failure', True), (True, 'X', True), (True, 3, True)]
True
True True 0
2 4
True False
"""
    checkProgram(THREADPOOL, expected, flavour)


BLOCKING_CALLS = """
import sys, threading
from twisted.internet import defer
from twisted.internet import task
from twisted.internet import threads
from twisted.python.threadpool import ThreadPool

def inWorker(reactor):
    inReactorThread = lambda: threading.current_thread() is threading.main_thread()
    out = [threads.blockingCallFromThread(reactor, inReactorThread)]
    out.append(threads.blockingCallFromThread(reactor, task.deferLater, reactor, 0, lambda: "from-deferred"))
    try:
        threads.blockingCallFromThread(reactor, defer.fail, KeyError("k"))
    except KeyError as e:
        out.append(("raised", e.args))
    try:
        threads.blockingCallFromThread(reactor, lambda: 1 // 0)
    except ZeroDivisionError:
        out.append("zero")
    return out

async def main(reactor, greeting, count):
    print(await threads.deferToThread(inWorker, reactor))
    calls = []
    ran = defer.Deferred()
    # The last call of the batch says when the batch is done (the pool's other threads may finish first).
    threads.callMultipleInThread([
        (calls.append, (1,), {}),
        (calls.append, (2,), {}),
        (reactor.callFromThread, (ran.callback, None), {}),
    ])
    await ran
    print(calls)
    pool = ThreadPool(minthreads=0, maxthreads=2, name="mine")
    pool.start()
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
    work = [threads.deferToThreadPool(reactor, pool, str.upper, greeting) for _ in range(int(count))]
    print(await defer.gatherResults(work))
    got = defer.Deferred()
    # Twisted names pool threads "PoolThread-mine-1", ours "mine-worker-1": both carry the pool's name.
    pool.callInThread(lambda: reactor.callFromThread(got.callback, "mine" in threading.current_thread().name))
    print(await got)
    fired = []
    dc = reactor.callLater(3600, fired.append, "never")
    print(dc.active(), round(dc.getTime() - reactor.seconds()))
    dc.cancel()
    print(dc.active(), fired)

task.react(lambda reactor, *argv: defer.Deferred.fromCoroutine(main(reactor, *argv)), sys.argv[1:])
"""


@FLAVOURS
def test_blockingCallFromThreadAndOwnPool(flavour: str) -> None:
    """blockingCallFromThread in a worker, callMultipleInThread, deferToThreadPool, callFromThread, argv."""
    expected = """
[True, 'from-deferred', ('raised', ('k',)), 'zero']
[1, 2]
['HI', 'HI', 'HI']
True
True 3600
False []
"""
    checkProgram(BLOCKING_CALLS, expected, flavour, "hi", "3")


REACT_FAILS = """
from twisted.internet import defer
from twisted.internet import task

async def main(reactor):
    await task.deferLater(reactor, 0)
    raise ValueError("main failed")

task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
"""


@FLAVOURS
def test_reactExitsOneOnFailure(flavour: str) -> None:
    """react exits with status 1 and prints the traceback when main fails."""
    result = runRaw(port(REACT_FAILS) if flavour == "ours" else REACT_FAILS)
    assert result.returncode == 1
    assert "ValueError: main failed" in result.stderr


TCP_ECHO = """
from twisted.internet import defer
from twisted.internet import protocol
from twisted.internet import error
from twisted.internet import task

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data.upper())

class Client(protocol.Protocol):
    def connectionMade(self):
        self.factory.events.append("made")
        self.transport.write(b"ping")
    def dataReceived(self, data):
        self.factory.events.append(data)
        self.transport.loseConnection()
    def connectionLost(self, reason):
        self.factory.events.append(("protoLost", reason.check(error.ConnectionDone) is not None))

class ClientF(protocol.ClientFactory):
    protocol = Client
    def __init__(self):
        self.events = []
        self.done = defer.Deferred()
    def startedConnecting(self, connector):
        self.events.append("started")
    def clientConnectionFailed(self, connector, reason):
        refused = reason.check(error.ConnectionRefusedError) is not None
        self.events.append(("failed", refused, reason.type.__name__))
        self.done.callback(self.events)
    def clientConnectionLost(self, connector, reason):
        self.events.append(("lost", reason.type.__name__, isinstance(reason.value, error.ConnectionDone)))
        self.done.callback(self.events)

async def main(reactor):
    factory = protocol.Factory()
    factory.protocol = Echo
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    host = port.getHost()
    print(host.type, host.host)
    cf = ClientF()
    connector = reactor.connectTCP("127.0.0.1", host.port, cf, timeout=5)
    print(await cf.done)
    print(connector.getDestination().port == host.port)
    await port.stopListening()
    refused = ClientF()
    reactor.connectTCP("127.0.0.1", host.port, refused, timeout=5)
    print(await refused.done)

task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
"""


@FLAVOURS
def test_tcpEchoWithClientFactoryCallbacks(flavour: str) -> None:
    """A Protocol/Factory echo over listenTCP/connectTCP; clientConnectionLost and clientConnectionFailed."""
    expected = """
TCP 127.0.0.1
['started', 'made', b'PING', ('protoLost', True), ('lost', 'ConnectionDone', True)]
True
['started', ('failed', True, 'ConnectionRefusedError')]
"""
    checkProgram(TCP_ECHO, expected, flavour)


RECONNECTING = """
from twisted.internet import defer
from twisted.internet import protocol
from twisted.internet import error
from twisted.internet import task

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data.upper())

class Client(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"ping")
    def dataReceived(self, data):
        self.factory.events.append(data)
        self.factory.stopTrying()
        self.transport.loseConnection()

class Reconnecting(protocol.ReconnectingClientFactory):
    protocol = Client
    initialDelay = delay = 0.01
    factor = 1.5
    jitter = 0
    def __init__(self, relisten):
        self.events = []
        self.relisten = relisten
        self.done = defer.Deferred()
    def buildProtocol(self, addr):
        self.events.append(("built", self.retries, round(self.delay, 3)))
        self.resetDelay()
        return protocol.ReconnectingClientFactory.buildProtocol(self, addr)
    def clientConnectionFailed(self, connector, reason):
        self.events.append(("failed", reason.type.__name__, self.retries))
        if self.retries == 1:
            self.relisten()
        protocol.ReconnectingClientFactory.clientConnectionFailed(self, connector, reason)
    def clientConnectionLost(self, connector, reason):
        self.events.append(("lost", reason.check(error.ConnectionDone) is not None, self.continueTrying))
        protocol.ReconnectingClientFactory.clientConnectionLost(self, connector, reason)
        self.done.callback(None)

class NotConnecting:
    reactor = None
    def stopConnecting(self):
        raise error.NotConnectingError()

async def main(reactor):
    server = protocol.Factory.forProtocol(Echo)
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    number = port.getHost().port
    await port.stopListening()
    ports = []
    f = Reconnecting(lambda: ports.append(reactor.listenTCP(number, server, interface="127.0.0.1")))
    reactor.connectTCP("127.0.0.1", number, f, timeout=5)
    await f.done
    print(f.events, f.retries, f.delay, f.continueTrying, f.connector is not None)
    await ports[0].stopListening()
    g = protocol.ReconnectingClientFactory()
    g.maxRetries = 0
    g.clock = task.Clock()
    g.clientConnectionFailed(NotConnecting(), None)
    print(g.retries, g.clock.getDelayedCalls())
    g.maxRetries = None
    g.jitter = 0
    g.resetDelay()
    g.retry()
    print([round(c.getTime(), 3) for c in g.clock.getDelayedCalls()], round(g.delay, 3))
    g.stopTrying()
    print(g.clock.getDelayedCalls(), g.continueTrying)
    try:
        protocol.ReconnectingClientFactory().retry()
    except ValueError:
        print("no connector")

task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
"""


@FLAVOURS
def test_reconnectingClientFactoryRetriesUntilStopped(flavour: str) -> None:
    """ReconnectingClientFactory retries a refused connection, resetDelay, stopTrying, maxRetries, clock."""
    expected = """
[('failed', 'ConnectionRefusedError', 0), ('failed', 'ConnectionRefusedError', 1), ('built', 2, 0.022), b'PING', ('lost', True, 0)] 0 0.01 0 True
1 []
[1.0] 2.718
[] 0
no connector
"""  # noqa: E501 - one line of the program's output
    checkProgram(RECONNECTING, expected, flavour)


STOP_CONNECTING = """
from twisted.internet import defer
from twisted.internet import protocol
from twisted.internet import error
from twisted.internet import task

class Quiet(protocol.Protocol):
    def connectionMade(self):
        self.factory.made.callback(self)

async def main(reactor):
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    client = protocol.ClientFactory.forProtocol(Quiet)
    client.made = defer.Deferred()
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port, client)
    proto = await client.made
    try:
        connector.stopConnecting()
    except error.NotConnectingError:
        print("NotConnectingError")
    proto.transport.loseConnection()
    await port.stopListening()

task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
"""


@pytest.mark.parametrize("flavour", ["twisted", "ours"])
def test_stopConnectingWhenConnectedRaisesNotConnectingError(flavour: str) -> None:
    """connector.stopConnecting() on a connected connector raises error.NotConnectingError."""
    checkProgram(STOP_CONNECTING, "NotConnectingError\n", flavour)


BUGGY_CONNECTION_MADE = """
import sys
from twisted.internet import defer
from twisted.internet import protocol
from twisted.internet import task

class Server(protocol.Protocol):
    def connectionMade(self):
        self.factory.count += 1
        if self.factory.count == 1:
            raise AttributeError("bug in the first connectionMade")
    def dataReceived(self, data):
        self.transport.write(data[::-1])

class Once(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"abc")
    def dataReceived(self, data):
        self.factory.got.callback(data)
        self.transport.loseConnection()

async def main(reactor, kind, address):
    server = protocol.Factory.forProtocol(Server)
    server.count = 0
    if kind == "tcp":
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        connect = lambda f: reactor.connectTCP("127.0.0.1", port.getHost().port, f)
    else:
        port = reactor.listenUNIX(address, server)
        connect = lambda f: reactor.connectUNIX(address, f)
    for _ in range(2):
        cf = protocol.ClientFactory.forProtocol(Once)
        cf.got = defer.Deferred()
        connect(cf)
        print(await cf.got.addTimeout(1, reactor).addErrback(lambda f: f.type.__name__))
    print(server.count)
    await port.stopListening()

task.react(lambda reactor, *argv: defer.Deferred.fromCoroutine(main(reactor, *argv)), sys.argv[1:])
"""



@pytest.mark.parametrize("flavour", ["twisted", "ours"])
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_exceptionInConnectionMadeKeepsServing(flavour: str, kind: str, tmp_path: pathlib.Path) -> None:
    """A server protocol raising in connectionMade is logged; its connection and the port keep working."""
    expected = """
b'cba'
b'cba'
2
"""
    checkProgram(BUGGY_CONNECTION_MADE, expected, flavour, kind, str(tmp_path / "sock"))


SHUTDOWN_TRIGGERS = """
from twisted.internet import reactor
from twisted.internet import defer

log = []
def before():
    log.append(("before", reactor.running))
    d = defer.Deferred()
    reactor.callLater(0.01, lambda: (log.append("held"), d.callback(None)))
    return d
def during(tag):
    log.append(("during", tag))
reactor.addSystemEventTrigger("before", "shutdown", before)
reactor.addSystemEventTrigger("during", "shutdown", during, "x")
reactor.addSystemEventTrigger("after", "shutdown", during, tag="after")
removed = reactor.addSystemEventTrigger("during", "shutdown", during, "removed")
reactor.removeSystemEventTrigger(removed)
reactor.addSystemEventTrigger("after", "startup", log.append, "started")
reactor.callWhenRunning(lambda: (log.append(("running", reactor.running)), reactor.stop()))
reactor.run(installSignalHandlers=False)
print(log, reactor.running)
try:
    reactor.stop()
except Exception as e:
    print(type(e).__name__, isinstance(e, RuntimeError))
"""


@FLAVOURS
def test_shutdownTriggerReturningDeferredHoldsShutdown(flavour: str) -> None:
    """A 'before shutdown' trigger returning a Deferred holds the later phases until it fires."""
    expected = """
['started', ('running', True), ('before', True), 'held', ('during', 'x'), ('during', 'after')] False
ReactorNotRunning True
"""
    checkProgram(SHUTDOWN_TRIGGERS, expected, flavour)


PROTOCOL_ERRORS = """
from twisted.internet import defer
from twisted.internet import protocol
from twisted.internet import error
from twisted.internet import task

class Server(protocol.Protocol):
    def dataReceived(self, data):
        if data.startswith(b"boom"):
            raise ValueError("bad data")
        if data.startswith(b"abort"):
            self.transport.abortConnection()
            return
        self.transport.write(data)
    def connectionLost(self, reason):
        self.factory.serverReasons.append(reason.type.__name__)
        if len(self.factory.serverReasons) == 2:
            self.factory.bothLost.callback(None)

class Client(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(self.factory.payload)
    def connectionLost(self, reason):
        self.factory.lost.callback(reason.type.__name__)

async def main(reactor):
    sf = protocol.Factory.forProtocol(Server)
    sf.serverReasons = []
    sf.bothLost = defer.Deferred()
    port = reactor.listenTCP(0, sf, interface="127.0.0.1")
    out = []
    for payload in (b"boom", b"abort"):
        cf = protocol.ClientFactory.forProtocol(Client)
        cf.payload = payload
        cf.lost = defer.Deferred()
        reactor.connectTCP("127.0.0.1", port.getHost().port, cf)
        out.append(await cf.lost)
    await sf.bothLost
    print(out, sf.serverReasons)
    await port.stopListening()

task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
"""


@FLAVOURS
def test_dataReceivedExceptionAndAbortConnectionReasons(flavour: str) -> None:
    """An exception in dataReceived closes its connection with it; abortConnection gives ConnectionAborted."""
    expected = """
['ConnectionDone', 'ConnectionLost'] ['ValueError', 'ConnectionAborted']
"""
    checkProgram(PROTOCOL_ERRORS, expected, flavour)


CANCELLATION = """
from twisted.internet import defer
from twisted.internet import task

clock = task.Clock()
log = []
@defer.inlineCallbacks
def worker():
    try:
        yield task.deferLater(clock, 10, lambda: None)
    except defer.CancelledError:
        log.append("gen saw CancelledError")
        raise
d = worker()
d.addErrback(lambda f: log.append(("outer", f.type.__name__)))
d.cancel()
print(log, clock.getDelayedCalls())

lock = defer.DeferredLock()
lock.acquire().addCallback(lambda r: log.append(("lock", r is lock)))
w = lock.acquire()
w.addErrback(lambda f: log.append(("waiter", f.type.__name__)))
w.cancel()
lock.release()
print(log[-2:], lock.locked)
sem = defer.DeferredSemaphore(1)
sem.acquire().addCallback(lambda r: log.append(("sem", r is sem)))
print(log[-1])
q = defer.DeferredQueue()
g = q.get()
g.addErrback(lambda f: log.append(("get", f.type.__name__)))
g.cancel()
q.put(1)
print(log[-1], list(q.pending))

calls = []
def bad():
    raise RuntimeError("in callLater")
clock.callLater(1, bad)
clock.callLater(1, calls.append, "after")
try:
    clock.advance(1)
except RuntimeError as e:
    print("clock propagated", e.args)
print(calls, len(clock.getDelayedCalls()))
"""


@FLAVOURS
def test_cancellingGeneratorsLocksQueuesAndClockErrors(flavour: str) -> None:
    """Cancel reaches an inlineCallbacks generator and lock/queue waiters; Clock.advance propagates errors."""
    expected = """
['gen saw CancelledError', ('outer', 'CancelledError')] []
[('lock', True), ('waiter', 'CancelledError')] False
('sem', True)
('get', 'CancelledError') [1]
clock propagated ('in callLater',)
[] 1
"""
    checkProgram(CANCELLATION, expected, flavour)


REACTOR_CALLS = """
import threading
from twisted.internet import reactor
from twisted.internet import defer
from twisted.internet import task
log = []
def bad():
    raise RuntimeError("in callLater")
reactor.callFromThread(log.append, "queued before run")
thread = threading.Thread(target=reactor.callFromThread, args=(log.append, "from a thread"))
thread.start()
thread.join(10)
reactor.callLater(0, bad)
reactor.callLater(0, log.append, "after bad")
reactor.callWhenRunning(log.append, "running")
d = task.deferLater(reactor, 0.01, lambda: log.append("later"))
d.addCallback(lambda _: reactor.stop())
reactor.run(installSignalHandlers=False)
print(sorted(log))
print(reactor.getDelayedCalls())
"""


@FLAVOURS
def test_reactorCallsBeforeRunFromThreadsAndFailingTimedCall(flavour: str) -> None:
    """callFromThread before run and from a thread, callWhenRunning; a raising callLater is only logged."""
    expected = """
['after bad', 'from a thread', 'later', 'queued before run', 'running']
[]
"""
    checkProgram(REACTOR_CALLS, expected, flavour)


def test_portChangesOnlyImportLines() -> None:
    """port() rewrites exactly the Twisted import lines and refuses any other Twisted use."""

    def body(source: str) -> list[str]:
        imports = ("from ", "import ", "reactor = ")
        return [line for line in source.splitlines() if not line.startswith(imports)]

    ported = port(SHUTDOWN_TRIGGERS)
    assert "twisted" not in ported
    assert body(ported) == body(SHUTDOWN_TRIGGERS)
    with pytest.raises(AssertionError, match="porting table"):
        port("from twisted.web import server\n")


TYPED_PROGRAM = """
from __future__ import annotations

from collections.abc import Generator

import adbapi
from deferthreads import ThreadPool, blockingCallFromThread, deferToThread, deferToThreadPool
from reactor import Deferred, DeferredList, Failure, Reactor, gatherResults, inlineCallbacks, succeed
from reactor.error import ConnectionDone
from reactor.protocol import Factory, Protocol, ReconnectingClientFactory
from reactor.task import Clock, LoopingCall, deferLater, react


def double(x: int) -> int:
    return x * 2


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Client(ReconnectingClientFactory):
    def clientConnectionLost(self, connector: object, reason: Failure) -> None:
        if reason.check(ConnectionDone):
            self.stopTrying()
        super().clientConnectionLost(connector, reason)


def addRow(txn: adbapi.Transaction, value: int) -> int:
    txn.execute("INSERT INTO t VALUES (?)", (value,))
    return value


@inlineCallbacks
def legacy(reactor: Reactor) -> Generator[Deferred[int], object, int]:
    x = yield deferLater(reactor, 0, double, 1)
    assert isinstance(x, int)
    return x


async def main(reactor: Reactor) -> None:
    n: int = await deferToThread(double, 21)
    text: str = await deferLater(reactor, 0, str, n)
    both: list[int] = await gatherResults([succeed(1), deferToThread(double, 2)])
    d: Deferred[str] = succeed(1).addCallback(str)

    def onError(failure: Failure) -> int:
        failure.trap(ValueError)
        return 0

    e: Deferred[int] = deferToThread(int, "x").addErrback(onError)
    for ok, value in await DeferredList([succeed(1), succeed(2)], consumeErrors=True):
        print(ok, value)
    pool = ThreadPool(minthreads=0, maxthreads=2, name="typed")
    pool.start()
    doubled: int = await deferToThreadPool(reactor, pool, double, 4)
    pool.stop()
    back: str = await deferToThread(lambda: blockingCallFromThread(reactor, str.upper, "x"))
    clock = Clock()
    loop = LoopingCall(print, "tick")
    loop.clock = clock
    loop.start(1.0)
    clock.advance(1)
    loop.stop()
    db = adbapi.ConnectionPool("sqlite3", ":memory:", cp_min=1, cp_max=1, cp_reactor=reactor)
    await db.runOperation("CREATE TABLE t (x INTEGER)")
    added: int = await db.runInteraction(addRow, 5)
    rows = await db.runQuery("SELECT x FROM t")
    await db.close()
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, Client.forProtocol(Protocol))
    await port.stopListening()
    total: int = await legacy(reactor)
    print(text, both, d, e, doubled, back, added, rows, total)
    wrong: str = await deferToThread(double, 1)


react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""


def test_typedPortedProgramPassesMypyStrict(tmp_path: pathlib.Path) -> None:
    """A typed program on our API passes mypy --strict; the one deliberately wrong line is caught."""
    errors, output = mypyErrors(TYPED_PROGRAM, tmp_path)
    assert len(errors) == 1, output
    assert "deferToThread" in errors[0] and "Callable[[int], str]" in errors[0], output
