"""The public test doubles: reactor.testing, deferthreads.testing.SynchronousThreadPool and
adbapi.testing.FakeDriver."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from adbapi.testing import FakeDriver
from deferthreads import IThreadPool, ThreadPoolStopped, deferToThreadPool
from deferthreads.testing import SynchronousThreadPool
from reactor import Deferred, Reactor, getReactor
from reactor.error import ConnectionDone
from reactor.interfaces import (
    IConsumer,
    IPushProducer,
    IReactorCore,
    IReactorFDSet,
    IReactorSSL,
    IReactorTCP,
    IReactorTime,
    IReactorUDP,
    IReactorUNIX,
    ITCPTransport,
)
from reactor.protocol import Factory, Protocol
from reactor.testing import (
    AccumulatingProtocol,
    MemoryReactor,
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
    defaultReactorSetTo,
)


class Upper(Protocol):
    """Writes back what it receives in upper case; closes on b'bye'."""

    def dataReceived(self, data: bytes) -> None:
        if data == b"bye":
            self.transport.loseConnection()
        else:
            self.transport.write(data.upper())


# ---------------------------------------------------------------------------- reactor.testing


def test_theDoublesProvideTheirInterfaces() -> None:
    """StringTransport, MemoryReactor and MemoryReactorClock pass verifyObject for what they declare."""
    transport = StringTransport()
    for transportInterface in (ITCPTransport, IConsumer, IPushProducer):
        assert verifyObject(transportInterface, transport)
    reactorInterfaces = (IReactorCore, IReactorTCP, IReactorUNIX, IReactorUDP, IReactorSSL, IReactorFDSet)
    for reactorInterface in reactorInterfaces:
        assert verifyObject(reactorInterface, MemoryReactor())
    assert verifyObject(IReactorTime, MemoryReactorClock())


def test_stringTransportRecordsWritesAndClears() -> None:
    """A protocol's writes are in value(); clear() forgets them; non-bytes raise TypeError naming data."""
    proto = Upper()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"abc")
    transport.writeSequence([b"-", b"x"])
    assert transport.value() == b"ABC-x"
    transport.clear()
    assert transport.value() == b""
    with pytest.raises(TypeError, match="data must be bytes"):
        transport.write("text")  # type: ignore[arg-type]


def test_stringTransportRemembersLossAbortAndProducerState() -> None:
    """loseConnection/abortConnection/pause/resume/stop are recorded, not performed."""
    transport = StringTransport()
    transport.pauseProducing()
    assert transport.producerState == "paused"
    transport.resumeProducing()
    assert transport.producerState == "producing"
    transport.registerProducer(object(), True)
    with pytest.raises(RuntimeError, match="is registered"):
        transport.registerProducer(object(), True)
    transport.unregisterProducer()
    transport.loseConnection()
    assert transport.disconnecting and not transport.aborted
    with pytest.raises(RuntimeError, match="disconnecting"):
        transport.pauseProducing()
    transport.abortConnection()
    assert transport.aborted
    transport.stopProducing()
    assert transport.producerState == "stopped"


def test_stringTransportWithDisconnectionTellsTheProtocolOnce() -> None:
    """loseConnection delivers connectionLost(ConnectionDone) to the protocol, once."""
    proto = AccumulatingProtocol()
    proto.closedDeferred = Deferred()
    fired: list[object] = []
    proto.closedDeferred.addCallback(fired.append)
    transport = StringTransportWithDisconnection()
    transport.protocol = proto
    proto.makeConnection(transport)
    transport.loseConnection()
    transport.loseConnection()
    assert proto.closed == 1 and fired == [None]
    assert proto.closedReason is not None and proto.closedReason.check(ConnectionDone)


def test_accumulatingProtocolCollectsDataAndFiresMade() -> None:
    """AccumulatingProtocol keeps received bytes and fires madeDeferred with itself."""
    proto = AccumulatingProtocol()
    made: list[Any] = []
    proto.madeDeferred = Deferred()
    proto.madeDeferred.addCallback(made.append)
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"ab")
    proto.dataReceived(b"c")
    assert made == [proto] and proto.made == 1 and proto.data == b"abc"


def test_memoryReactorRecordsListensAndConnects() -> None:
    """listenTCP/connectTCP and the other network calls are recorded; the factory can then be driven."""
    reactor = MemoryReactor()
    factory = Factory.forProtocol(Upper)
    port = reactor.listenTCP(8080, factory, interface="127.0.0.1")
    connector = reactor.connectTCP("db.example", 5432, factory, timeout=3)
    reactor.listenUNIX("/tmp/s.sock", factory)
    reactor.listenUDP(53, Protocol())
    assert reactor.tcpServers == [(8080, factory, 50, "127.0.0.1")]
    assert reactor.tcpClients == [("db.example", 5432, factory, 3, None)]
    assert reactor.unixServers[0][0] == "/tmp/s.sock" and reactor.udpServers[0][0] == 53
    assert port.getHost().port == 8080 and connector.getDestination().host == "db.example"
    assert reactor.connectors == [connector]
    # The recorded factory builds the protocol a connection would get.
    proto = reactor.tcpServers[0][1].buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"hi")
    proto.dataReceived(b"bye")
    assert transport.value() == b"HI" and transport.disconnecting


def test_memoryReactorRunsTriggersAndRecordsItsLifecycle() -> None:
    """run fires startup and the callWhenRunning calls; stop fires shutdown; a removed trigger never runs."""
    reactor = MemoryReactor()
    order: list[str] = []
    reactor.callWhenRunning(order.append, "running")
    reactor.addSystemEventTrigger("before", "shutdown", order.append, "before shutdown")
    removed = reactor.addSystemEventTrigger("after", "shutdown", order.append, "removed")
    reactor.removeSystemEventTrigger(removed)
    with pytest.raises(ValueError, match="phase"):
        reactor.addSystemEventTrigger("whenever", "shutdown", print)
    reactor.run()
    assert reactor.hasRun and reactor.running
    reactor.stop()
    assert order == ["running", "before shutdown"] and reactor.hasStopped and not reactor.running
    with pytest.raises(Exception, match="isn't running"):
        reactor.stop()


def test_memoryReactorClockRunsTimedCallsWhenAdvanced() -> None:
    """MemoryReactorClock schedules on its clock: calls run when the test advances time."""
    reactor = MemoryReactorClock()
    seen: list[float] = []
    reactor.callLater(2, lambda: seen.append(reactor.seconds()))
    reactor.advance(1)
    assert seen == [] and len(reactor.getDelayedCalls()) == 1
    reactor.advance(1)
    assert seen == [2.0] and reactor.getDelayedCalls() == []


def test_defaultReactorSetToSwapsAndRestoresTheDefault() -> None:
    """Inside the block getReactor() is the given reactor (or a new lazy one for None); then the old one."""
    before = getReactor()
    mine = Reactor()
    try:
        with defaultReactorSetTo(mine):
            assert getReactor() is mine
        with defaultReactorSetTo(None):
            fresh = getReactor()
            assert fresh is not before and fresh is not mine
        fresh.close()
        assert getReactor() is before
    finally:
        mine.close()
    with pytest.raises(TypeError, match="reactor must be a Reactor"), defaultReactorSetTo(object()):  # type: ignore[arg-type]
        pass


# ---------------------------------------------------------------------------- deferthreads.testing


def test_synchronousThreadPoolIsAnIThreadPool() -> None:
    """SynchronousThreadPool passes verifyObject(IThreadPool)."""
    assert verifyObject(IThreadPool, SynchronousThreadPool())


def test_synchronousThreadPoolRunsInTheCallersThreadAtOnce() -> None:
    """With a MemoryReactor, deferToThreadPool's Deferred has fired when the call returns."""
    # deferToThreadPool is annotated with ThreadPool; any IThreadPool works (callInThreadWithCallback).
    pool: Any = SynchronousThreadPool()
    d = deferToThreadPool(MemoryReactor(), pool, lambda a, b: (a + b, threading.current_thread()), 1, b=2)
    box: list[Any] = []
    d.addCallback(box.append)
    assert box == [(3, threading.current_thread())]
    assert pool.statistics().completed == 1 and len(pool.calls) == 1


def test_synchronousThreadPoolDeliversFailuresWithTheirTraceback() -> None:
    """An exception in the call arrives as a Failure naming the function in its traceback."""
    pool: Any = SynchronousThreadPool()

    def broken() -> None:
        raise LookupError("nothing here")

    box: list[Any] = []
    deferToThreadPool(MemoryReactor(), pool, broken).addErrback(box.append)
    [failure] = box
    assert failure.check(LookupError) and "broken" in failure.getTraceback()
    assert pool.statistics().failed == 1


def test_synchronousThreadPoolRefusesCallsAfterStopAndBadArguments() -> None:
    """After stop() calls raise ThreadPoolStopped; non-callables and bad sizes raise naming them."""
    pool = SynchronousThreadPool()
    pool.start()
    pool.callInThread(lambda: None)
    pool.stop()
    with pytest.raises(ThreadPoolStopped):
        pool.callInThread(print)
    assert pool.statistics().rejected == 1 and pool.state == "stopped"
    with pytest.raises(TypeError, match="f must be callable"):
        SynchronousThreadPool().callInThread(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxthreads"):
        SynchronousThreadPool(2, 1)
    with pytest.raises(TypeError, match="onResult"):
        SynchronousThreadPool().callInThreadWithCallback(3, print)  # type: ignore[arg-type]


async def test_synchronousThreadPoolOnARealReactorFiresInTheReactorThread() -> None:
    """On a running reactor the result still comes home through callFromThread, in the reactor thread."""
    reactor = getReactor()
    pool: Any = SynchronousThreadPool()
    value = await deferToThreadPool(reactor, pool, lambda: threading.get_ident())
    assert value == threading.get_ident() and reactor.isReactorThread()


# ---------------------------------------------------------------------------- adbapi.testing


def _cursor(driver: FakeDriver) -> Any:
    return driver.connect().cursor()


def test_fakeDriverServesScriptedRowsAndColumns() -> None:
    """A statement matching a rule (whitespace folded) gets its rows, description and rowcount."""
    driver = FakeDriver()
    driver.script("SELECT id, name FROM users", [(1, "ann"), (2, "bob")], columns=("id", "name"))
    cursor = _cursor(driver)
    cursor.execute("SELECT id,  name\n FROM users".replace(",  ", ", "))
    assert cursor.description is not None and [d[0] for d in cursor.description] == ["id", "name"]
    assert cursor.rowcount == 2
    assert cursor.fetchone() == (1, "ann") and cursor.fetchall() == [(2, "bob")]
    assert driver.statements == ["SELECT id, name\n FROM users"]


def test_fakeDriverMatchesPatternsCallablesAndCountsUses() -> None:
    """Regex and callable rules match; a rule with times=n serves n executions, then the next rule."""
    driver = FakeDriver()
    driver.script(re.compile(r"^INSERT"), rowcount=1, times=1)
    driver.script(re.compile(r"^INSERT"), error=driver.IntegrityError("duplicate"))
    driver.script(lambda sql, params: params == (7,), handler=lambda sql, params: [(params[0] * 2,)])
    cursor = _cursor(driver)
    cursor.execute("INSERT INTO t VALUES (1)")
    assert cursor.rowcount == 1
    with pytest.raises(driver.IntegrityError, match="duplicate"):
        cursor.execute("INSERT INTO t VALUES (1)")
    cursor.execute("SELECT %s", (7,))
    assert cursor.fetchall() == [(14,)]


def test_fakeDriverRefusesAnUnscriptedStatementNamingIt() -> None:
    """A statement no rule matches raises the driver's ProgrammingError with the SQL in the message."""
    driver = FakeDriver()
    with pytest.raises(driver.ProgrammingError, match="no scripted result for 'DELETE FROM t'"):
        _cursor(driver).execute("DELETE FROM t")


def test_fakeDriverExceptionsFollowDbApiAndBelongToTheDriver() -> None:
    """The DB-API hierarchy is there, and each driver has its own classes."""
    one, two = FakeDriver(), FakeDriver("otherdb")
    assert issubclass(one.IntegrityError, one.DatabaseError) and issubclass(one.DatabaseError, one.Error)
    assert issubclass(one.InterfaceError, one.Error) and not issubclass(one.Error, two.Error)
    assert one.apilevel == "2.0" and one.__name__ == "fakedb" and two.__name__ == "otherdb"


def test_fakeDriverScriptsConnectAndCommitFailures() -> None:
    """scriptConnect/scriptCommit make the next calls fail; then they succeed again."""
    driver = FakeDriver()
    driver.scriptConnect(driver.OperationalError("server down"))
    driver.scriptCommit(driver.OperationalError("commit lost"))
    with pytest.raises(driver.OperationalError, match="server down"):
        driver.connect()
    conn = driver.connect()
    with pytest.raises(driver.OperationalError, match="commit lost"):
        conn.commit()
    conn.commit()
    conn.close()
    assert conn.commits == 1 and conn.closed and len(driver.connections) == 1
    with pytest.raises(driver.InterfaceError, match="closed"):
        conn.cursor()


def test_fakeDriverChecksItsArguments() -> None:
    """Bad rules and names raise at the call, naming the argument."""
    driver = FakeDriver()
    with pytest.raises(TypeError, match="match"):
        driver.script(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="error"):
        driver.script("SELECT 1", error="boom")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        driver.script("SELECT 1", times=0)
    with pytest.raises(ValueError, match="real driver"):
        FakeDriver("sqlite3")


async def test_fakeDriverBacksAConnectionPool(connectionPoolFactory: Any) -> None:
    """ConnectionPool(fakeDriver) runs queries, interactions (committed) and returns scripted errors."""
    driver = FakeDriver()
    driver.script("SELECT name FROM users WHERE id = %s", [("ann",)])
    driver.script("UPDATE users SET name = %s", rowcount=1)
    driver.script("DROP TABLE users", error=driver.ProgrammingError("not allowed"))
    pool = connectionPoolFactory(driver, cp_min=1, cp_max=1)
    assert await pool.runQuery("SELECT name FROM users WHERE id = %s", (1,)) == [("ann",)]

    def rename(txn: Any) -> int:
        txn.execute("UPDATE users SET name = %s", ("bea",))
        return int(txn.rowcount)

    assert await pool.runInteraction(rename) == 1
    with pytest.raises(driver.ProgrammingError, match="not allowed"):
        await pool.runOperation("DROP TABLE users")
    assert driver.executed[:2] == [
        ("SELECT name FROM users WHERE id = %s", (1,)),
        ("UPDATE users SET name = %s", ("bea",)),
    ]
    assert sum(conn.commits for conn in driver.connections) >= 1
