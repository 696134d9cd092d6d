"""TLS for the reactor (Twisted's ``twisted.internet.ssl``): settings objects for ``connectSSL``,
``listenSSL`` and ``transport.startTLS``.

Clients verify by default::

    reactor.connectSSL("example.com", 443, factory, optionsForClientTLS("example.com"))

A server needs its certificate and key::

    reactor.listenSSL(8443, factory, CertificateOptions(privateKey=keyPEM, certificate=certPEM))
"""

from __future__ import annotations

from reactor._tlsoptions import CertificateOptions, ClientTLSOptions, VerificationError, optionsForClientTLS

__all__ = ["CertificateOptions", "ClientTLSOptions", "VerificationError", "optionsForClientTLS"]
