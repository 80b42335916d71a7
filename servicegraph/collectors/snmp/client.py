"""The SNMP client: sessions to one agent each, opened by ``SessionFactory``.

Two implementations share the request logic of ``session.SnmpSession`` (GET, and walks
of several table columns at once):

* ``FastSession`` (v1, v2c; ``fast_session``): requests encoded and responses decoded by
  the small codec in ``ber`` over an asyncio datagram socket. This is the hot path of
  every walk, and it cuts pysnmp's client CPU per varbind by more than an order of
  magnitude (see ``ber``).
* ``PysnmpSession`` (any version, always for v3; ``pysnmp_session``): pysnmp's
  ``hlapi.v3arch.asyncio`` with MIB lookups off. pysnmp does USM (engine discovery, time
  windows, authentication and privacy), which is not worth re-implementing.

Both raise the errors of ``session`` (``SnmpTimeout``, ``SnmpAuthError``,
``SnmpProtocolError``); messages never contain a community or key.
"""

from __future__ import annotations

import contextlib
from typing import Any

from servicegraph.collectors.snmp.credentials import Credential
from servicegraph.collectors.snmp.fast_session import FastSession
from servicegraph.collectors.snmp.pysnmp_session import PysnmpSession
from servicegraph.collectors.snmp.session import SessionOptions, SnmpSession

# What callers outside the collector import from here (runtime.jobs, the SNMP benchmark):
# the factory, and the types it takes and gives.
__all__ = ["FastSession", "SessionFactory", "SessionOptions", "SnmpSession"]


class SessionFactory:
    """Opens sessions; owns the pysnmp engine that v3 sessions share (created on first use,
    since building one loads MIB modules). ``engine="pysnmp"`` routes v1/v2c through
    pysnmp too, e.g. for comparison or an agent the fast path cannot read."""

    def __init__(self, options: SessionOptions, *, engine: str = "fast") -> None:
        if engine not in ("fast", "pysnmp"):
            raise ValueError("engine must be 'fast' or 'pysnmp'")
        self.options = options
        self.engine = engine
        self._snmp_engine: Any = None

    def open(
        self,
        host: str,
        port: int,
        credential: Credential,
        options: SessionOptions | None = None,
    ) -> SnmpSession:
        options = options or self.options
        if credential.version != "3" and self.engine == "fast":
            return FastSession(host, port, credential, options)
        if self._snmp_engine is None:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

            self._snmp_engine = SnmpEngine()
        return PysnmpSession(self._snmp_engine, host, port, credential, options)

    def close(self) -> None:
        """Release the pysnmp engine, in the event loop its sessions ran in (pysnmp binds its
        transport to that loop). Called after that loop has closed, it only drops it."""
        engine, self._snmp_engine = self._snmp_engine, None
        if engine is None:
            return
        with contextlib.suppress(RuntimeError):  # "Event loop is closed": nothing to stop
            engine.close_dispatcher()
