"""What a listening port does when ``accept()`` fails for want of descriptors, buffers or memory.

When the process has used up its descriptors (EMFILE), the system its file table (ENFILE) or the
kernel its buffers or memory (ENOBUFS, ENOMEM), ``accept()`` fails but the connection stays in the
listen queue, so the listening socket stays readable. A port that only logs and returns is called
again on the next loop turn, and the next: a busy loop writing a log line per turn until some
connection closes. An :class:`AcceptLimiter` ends that in one of two ways.

- **Shed** (EMFILE, while the port holds its spare descriptor): the port keeps one descriptor open
  on ``/dev/null`` for this moment. It closes the spare, accepts the waiting connections one at a
  time into the freed slot, closes each at once, and reopens the spare. The client learns at once
  that it was refused, instead of waiting in the queue until it gives up; the listening socket is
  quiet until the next client arrives; and once descriptors are free again, the next client is
  simply accepted.
- **Pause** (ENFILE, ENOBUFS, ENOMEM, or EMFILE without the spare): the port stops watching its
  socket and watches it again after a delay on the reactor's clock, 0.05 s at first and doubling
  up to 1 s while accepts keep failing. Waiting clients stay in the kernel's queue meanwhile.

The first failure starts an *episode*, logged once (a warning on the ``reactor.network`` logger);
the first accept that succeeds again ends it, and a second warning says how long it lasted, how
many connections were refused and how many ``accept()`` calls failed. Stopping the port during an
episode cancels the pending resume, closes the spare and logs the same summary.

Every field is owned by the reactor thread; nothing here may be called from another thread.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

__all__: list[str] = []

log = logging.getLogger("reactor.network")

# accept() failed for want of a resource: the connection stays queued, the socket stays readable.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept() failed for this one connection only (the client gave up, a protocol error, or on Linux a
# firewall rule refused it): the port goes on to the next one.
SKIP_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})

FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0
# Connections refused per shed, so one readable event cannot hold the loop for long.
SHED_BATCH = 64


class SpareDescriptor:
    """One descriptor held open so that it can be given up when the process runs out of them."""

    def __init__(self) -> None:
        self._fd = -1  # reactor thread

    @property
    def held(self) -> bool:
        """Whether the descriptor is open."""
        return self._fd >= 0

    def reserve(self) -> bool:
        """Open the descriptor if it is not open; whether it is open now (False: none to spare)."""
        if self._fd < 0:
            try:
                self._fd = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                return False
        return True

    def release(self) -> bool:
        """Close the descriptor, freeing its slot; whether there was one to close."""
        if self._fd < 0:
            return False
        fd, self._fd = self._fd, -1
        os.close(fd)
        return True


class AcceptLimiter:
    """A listening port's answer to resource errors from ``accept()`` (see the module docstring).

    ``port`` is the selectable registered with ``port.reactor`` for reading; it has ``socket``
    (None once closed) and ``logPrefix()``. The port calls :meth:`started` once it listens,
    :meth:`acceptFailed` on an error of :data:`RESOURCE_ERRNOS`, :meth:`acceptSucceeded` after an
    accept that succeeded while :attr:`failing`, and :meth:`stopped` when it closes.
    """

    def __init__(self, port: Any, keepSpare: bool = True) -> None:
        self._port = port
        self._spare = SpareDescriptor() if keepSpare else None
        # The current episode (reactor thread): when it began (None: accepts are not failing),
        # connections closed unserved, failed accept() calls, the next pause and its timer.
        self._since: float | None = None
        self.refused = 0
        self.failed = 0
        self._delay = FIRST_PAUSE
        self._resumeCall: Any = None

    @property
    def failing(self) -> bool:
        """Whether an episode is on: an accept failed and none has succeeded since."""
        return self._since is not None

    @property
    def paused(self) -> bool:
        """Whether the port has stopped watching its socket until a timer resumes it."""
        return self._resumeCall is not None

    def started(self) -> None:
        """The port listens: take the spare descriptor (going without if none can be had)."""
        if self._spare is not None:
            self._spare.reserve()

    def acceptFailed(self, error: OSError, listener: Any) -> None:
        """``listener.accept()`` failed with ``error`` (one of :data:`RESOURCE_ERRNOS`): shed or pause.

        Raises what an accept made while shedding raises for another reason than the ones above
        (the port then closes, as for such an error from its own accept).
        """
        reactor = self._port.reactor
        first = self._since is None
        if first:
            self._since = reactor.seconds()
        self.failed += 1
        if error.errno == errno.EMFILE and self._shed(listener):
            if first:
                log.warning(
                    "%s: cannot accept a connection (%s); refusing new connections at once"
                    " until descriptors free up",
                    self._port.logPrefix(),
                    error,
                )
            return
        delay = self._delay
        self._delay = min(delay * 2, MAX_PAUSE)
        self._cancelResume()
        reactor.removeReader(self._port)
        self._resumeCall = reactor.callLater(delay, self._resume)
        if first:
            log.warning(
                "%s: cannot accept a connection (%s); not accepting for %g s, then retrying"
                " (waiting up to %g s between tries) until an accept succeeds",
                self._port.logPrefix(),
                error,
                delay,
                MAX_PAUSE,
            )

    def acceptSucceeded(self) -> None:
        """An accept succeeded: end the episode (logging its summary) and watch the socket again."""
        if self._resumeCall is not None:
            self._cancelResume()
            self._port.reactor.addReader(self._port)
        if self._spare is not None:
            self._spare.reserve()
        if self._since is not None:
            self._logSummary("accepting connections again")
        self._reset()

    def stopped(self) -> None:
        """The port closed: cancel the resume, give back the spare, log the episode if one was on."""
        self._cancelResume()
        if self._spare is not None:
            self._spare.release()
        if self._since is not None:
            self._logSummary("stopped listening")
        self._reset()

    def _shed(self, listener: Any) -> bool:
        """Accept-and-close the waiting connections in the spare's slot.

        True if the spare is held again and no resource error stopped the shedding (the port may
        keep watching its socket); False if it must pause.
        """
        spare = self._spare
        if spare is None or not spare.release():
            return False
        clean = True
        try:
            for _ in range(SHED_BATCH):
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    if e.errno in SKIP_ERRNOS:
                        continue
                    if e.errno in RESOURCE_ERRNOS:
                        # Another thread took the freed slot before us.
                        self.failed += 1
                        clean = False
                        break
                    raise
                sock.close()
                self.refused += 1
        finally:
            # Again before anything else (a log line, another thread) can take the slot.
            reserved = spare.reserve()
        return clean and reserved

    def _resume(self) -> None:
        self._resumeCall = None
        if self._port.socket is None:
            return
        if self._spare is not None:
            self._spare.reserve()
        self._port.reactor.addReader(self._port)

    def _cancelResume(self) -> None:
        call, self._resumeCall = self._resumeCall, None
        if call is not None and call.active():
            call.cancel()

    def _logSummary(self, what: str) -> None:
        assert self._since is not None
        lasted = self._port.reactor.seconds() - self._since
        log.warning(
            "%s: %s after %.3g s of failing accepts: %d connection(s) refused, %d accept() call(s) failed",
            self._port.logPrefix(),
            what,
            lasted,
            self.refused,
            self.failed,
        )

    def _reset(self) -> None:
        self._since = None
        self.refused = 0
        self.failed = 0
        self._delay = FIRST_PAUSE

    def __repr__(self) -> str:
        if self._since is None:
            return "<AcceptLimiter accepting>"
        state = "paused" if self.paused else "shedding"
        return f"<AcceptLimiter {state}: {self.refused} refused, {self.failed} failed>"
