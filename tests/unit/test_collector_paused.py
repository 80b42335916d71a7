"""The collector is paused by entry points around a large import, not by the domain."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import pytest

from servicegraph.bootstrap import Services
from servicegraph.cmdb.observation import CIObservation, ObservationBatch
from servicegraph.runtime.heap import collector_paused


@pytest.fixture()
def enabled() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_enabled_again_after(enabled: None) -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_enabled_again_after_an_error(enabled: None) -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("import failed")
    assert gc.isenabled()


def test_nested_pauses_enable_it_only_at_the_outermost(enabled: None) -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled(enabled: None) -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_reconciliation_leaves_the_collector_alone(services: Services, enabled: None) -> None:
    states: list[bool] = []
    write = services.store.write

    @contextlib.contextmanager
    def observed_write() -> Iterator[object]:
        with write() as writer:
            states.append(gc.isenabled())
            yield writer

    services.store.write = observed_write  # type: ignore[method-assign,assignment]
    batch = ObservationBatch("snmp", [CIObservation("server", "s1", {"serial_number": "S1"})])
    assert services.reconciler.apply(batch).cis_created == 1
    assert states == [True]
