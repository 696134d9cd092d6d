"""UDP ports on loopback: round trips, connected ports, multicast on 127.0.0.1, errors."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from reactor.interfaces import IListeningPort, IMulticastTransport, IReactorUDP, IUDPTransport
from reactor.protocol import CannotListenError, DatagramProtocol, IPv4Address, MessageLengthError
from tests.netsupport import runUntil


class Recorder(DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.started = False
        self.stopped = False
        self.refused = 0

    def startProtocol(self) -> None:
        self.started = True

    def stopProtocol(self) -> None:
        self.stopped = True

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.got.append((datagram, addr))

    def connectionRefused(self) -> None:
        self.refused += 1


class UDPEcho(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram, addr)


def test_udpRoundTrip(reactor: Any) -> None:
    """Datagrams go to an echo port and come back, with the sender's (host, port)."""
    assert verifyObject(IReactorUDP, reactor)
    server = reactor.listenUDP(0, UDPEcho(), interface="127.0.0.1")
    client = Recorder()
    cport = reactor.listenUDP(0, client, interface="127.0.0.1")
    assert client.started
    assert verifyObject(IUDPTransport, cport)
    assert verifyObject(IListeningPort, cport)
    assert verifyObject(IMulticastTransport, cport)
    target = ("127.0.0.1", server.getHost().port)
    for i in range(20):
        cport.write(b"ping %d" % i, target)
    runUntil(reactor, lambda: len(client.got) == 20)
    assert sorted(d for d, _ in client.got) == sorted(b"ping %d" % i for i in range(20))
    assert all(addr == target for _, addr in client.got)
    assert isinstance(cport.getHost(), IPv4Address) and cport.getHost().type == "UDP"
    stopped: list[Any] = []
    cport.stopListening().addCallback(stopped.append)
    server.stopListening()
    runUntil(reactor, lambda: bool(stopped))
    assert client.stopped and stopped == [None]


def test_udpIPv6RoundTrip(reactor: Any) -> None:
    """UDP works on ::1."""
    try:
        server = reactor.listenUDP(0, UDPEcho(), interface="::1")
    except CannotListenError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    client = Recorder()
    cport = reactor.listenUDP(0, client, interface="::1")
    cport.write(b"six", ("::1", server.getHost().port))
    runUntil(reactor, lambda: bool(client.got))
    assert client.got[0][0] == b"six"
    assert client.got[0][1] == ("::1", server.getHost().port)
    cport.stopListening()
    server.stopListening()


def test_connectedPortSeesRefusal(reactor: Any) -> None:
    """A connected UDP port learns (connectionRefused) that nobody listens at its peer."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    deadPort = probe.getsockname()[1]
    probe.close()
    client = Recorder()
    cport = reactor.listenUDP(0, client, interface="127.0.0.1")
    cport.connect("127.0.0.1", deadPort)
    with pytest.raises(ValueError, match="connected"):
        cport.write(b"x", ("127.0.0.1", 9))
    cport.write(b"anyone?")

    def poke() -> bool:
        if not client.refused:
            cport.write(b"anyone?")
        return client.refused > 0

    runUntil(reactor, poke)
    cport.stopListening()


def test_oversizedDatagramRaises(reactor: Any) -> None:
    """A datagram larger than UDP allows raises MessageLengthError at write."""
    cport = reactor.listenUDP(0, Recorder(), interface="127.0.0.1")
    with pytest.raises(MessageLengthError):
        cport.write(b"x" * 70000, ("127.0.0.1", 9))
    with pytest.raises(TypeError):
        cport.write("text", ("127.0.0.1", 9))
    with pytest.raises(ValueError, match="literal"):
        cport.write(b"x", ("example.invalid", 9))
    cport.stopListening()


def test_multicastOnLoopback(reactor: Any) -> None:
    """Join a group on 127.0.0.1, receive our own multicast datagram, set TTL, leave the group."""
    group = "239.255.77.77"
    receiver = Recorder()
    rport = reactor.listenMulticast(0, receiver, listenMultiple=True)
    joined: list[Any] = []
    errors: list[Any] = []
    rport.joinGroup(group, "127.0.0.1").addCallbacks(joined.append, errors.append)
    if errors:
        rport.stopListening()
        pytest.skip(f"the kernel refused multicast on loopback: {errors[0].getErrorMessage()}")
    sender = reactor.listenUDP(0, Recorder(), interface="127.0.0.1")
    sender.setTTL(1)
    assert sender.getTTL() == 1
    sender.setLoopbackMode(True)
    assert sender.getLoopbackMode()
    outErrors: list[Any] = []
    sender.setOutgoingInterface("127.0.0.1").addErrback(outErrors.append)
    if outErrors:
        pytest.skip(f"cannot send multicast from 127.0.0.1: {outErrors[0].getErrorMessage()}")
    assert sender.getOutgoingInterface() == "127.0.0.1"

    def send() -> bool:
        if not receiver.got:
            sender.write(b"to the group", (group, rport.getHost().port))
        return bool(receiver.got)

    try:
        runUntil(reactor, send, timeout=3)
    except AssertionError:
        pytest.skip("multicast datagrams are not delivered on this loopback interface")
    assert receiver.got[0][0] == b"to the group"
    left: list[Any] = []
    rport.leaveGroup(group, "127.0.0.1").addCallback(left.append)
    assert left == [None]
    failed: list[Any] = []
    rport.leaveGroup(group, "127.0.0.1").addErrback(failed.append)
    assert failed and failed[0].check(OSError)
    with pytest.raises(ValueError, match="ttl"):
        sender.setTTL(300)
    rport.stopListening()
    sender.stopListening()
