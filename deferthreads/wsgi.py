"""A PEP 3333 WSGI container: HTTP/1.1 on the reactor (``reactor.web``), the application in a thread pool.

Twisted's ``twisted.web.wsgi`` for this library, and a server to run as a program::

    python -m deferthreads.wsgi package.module:app --port 8000 --threads 16
    python -m deferthreads.wsgi package.module:app --port 8000 --workers 2   # N processes on one port

In a program that runs its own reactor::

    from deferthreads.wsgi import WSGIContainer
    from reactor.web import listenHTTP

    listenHTTP(8000, WSGIContainer(app, reactor=reactor, threadpool=pool), reactor=reactor)

* :class:`WSGIContainer`: the ``reactor.web`` handler running one application (environ, ``start_response``
  with ``exc_info``, the ``write`` callable, streamed ``wsgi.input``, ``wsgi.errors`` to logging,
  ``wsgi.file_wrapper``, backpressure to the worker, ``close()`` always called).
* :func:`listenWSGI` / :class:`WSGIServer`: a container on a TCP, TLS or Unix port with a graceful stop
  (stop accepting, finish requests in flight, drain the pool) at reactor shutdown; :func:`run` adds the
  reactor run; :func:`main` is the command line.
* :class:`FileWrapper`: ``wsgi.file_wrapper``; :class:`ClientGone`: what ``write`` and ``wsgi.input`` raise
  in the application once its client has gone.
"""

from __future__ import annotations

from deferthreads._wsgicontainer import ClientGone, StartResponse, WSGIApplication, WSGIContainer
from deferthreads._wsgienviron import FileWrapper
from deferthreads._wsgiserve import WSGIServer, listenWSGI, loadApplication, main, run

__all__ = [
    "ClientGone",
    "FileWrapper",
    "StartResponse",
    "WSGIApplication",
    "WSGIContainer",
    "WSGIServer",
    "listenWSGI",
    "loadApplication",
    "main",
    "run",
]

if __name__ == "__main__":
    raise SystemExit(main())
