"""Run ``snmpsim-command-responder`` with two fixes for pysnmp 7 (tests only).

1. snmpsim 1.2.2 overrides the responders' ``handleMgmtOperation``, but pysnmp 7 calls
   ``handle_management_operation``: snmpsim's data-file selection by transport endpoint
   never runs and every endpoint answers from the community's file. The override is
   re-attached under the new name, with the probe rewritten for pysnmp 7's method names.
2. snmpsim keeps only 32 data files open and re-opens (re-reads the index of) any other
   file on every request; ``SNMPSIM_MAX_OPEN`` raises that limit for many-device runs.

Usage: python -m tests.snmp.snmpsim_shim <snmpsim-command-responder arguments>
"""

from __future__ import annotations

import os
import sys
from hashlib import md5
from typing import Any

from pysnmp.entity.rfc3413 import cmdrsp
from snmpsim import controller, datafile
from snmpsim.commands import responder


def _probe_context(handler: Any, snmp_engine: Any) -> bytes:
    """snmpsim's probe_hash_context with pysnmp 7 names: pick the data file for the
    request's community/context, transport endpoint and source address."""
    ctx = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
    domain, address = ctx["transportDomain"], ctx["transportAddress"]
    engine_id, context_name = ctx["contextEngineId"], ctx["contextName"].prettyPrint()
    engine_label = (
        datafile.SELF_LABEL if engine_id == snmp_engine.snmpEngineID else engine_id.prettyPrint()
    )
    for candidate in datafile.probe_context(domain, address, engine_label, context_name):
        name = md5(candidate).hexdigest().encode() if len(candidate) > 32 else candidate
        try:
            instrum = handler.snmpContext.get_mib_instrum(name)
        except Exception:  # pysnmp raises its own error type for unknown contexts
            continue
        if isinstance(
            instrum, controller.MibInstrumController | controller.DataIndexInstrumController
        ):
            return name
    return context_name.encode() if isinstance(context_name, str) else context_name


def _patch() -> None:
    pairs = (
        (responder.GetCommandResponder, cmdrsp.GetCommandResponder),
        (responder.SetCommandResponder, cmdrsp.SetCommandResponder),
        (responder.NextCommandResponder, cmdrsp.NextCommandResponder),
        (responder.BulkCommandResponder, cmdrsp.BulkCommandResponder),
    )
    for cls, base in pairs:

        def handle(
            self: Any, engine: Any, state: Any, context_name: Any, pdu: Any, _base: Any = base
        ) -> None:
            try:
                _base.handle_management_operation(
                    self, engine, state, _probe_context(self, engine), pdu
                )
            except responder.NoDataNotification:
                self.release_state_information(state)

        cls.handle_management_operation = handle  # type: ignore[method-assign]
    datafile.DataFile.max_queue_entries = int(os.environ.get("SNMPSIM_MAX_OPEN", "31"))


if __name__ == "__main__":
    _patch()
    sys.argv[0] = "snmpsim-command-responder"
    sys.exit(responder.main())
