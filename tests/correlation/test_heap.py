"""The garbage collector's policy in correlation processes (servicegraph.runtime.heap).

``BatchHeap`` freezes what each batch leaves behind, which is safe only because the
correlator makes no reference cycles: frozen cycles wait for the next full pass.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from servicegraph.runtime.heap import BatchHeap
from tests.correlation.conftest import World


@pytest.fixture()
def collector() -> Iterator[None]:
    """Leave the collector as it was: no frozen objects, no saved garbage."""
    gc.collect()
    yield
    gc.set_debug(0)
    gc.garbage.clear()
    gc.unfreeze()
    gc.collect()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_survivors_of_a_batch_are_frozen_and_freed_by_the_next_full_pass(
    collector: None,
) -> None:
    now = [0.0]
    heap = BatchHeap(full_interval_s=60.0, clock=lambda: now[0])
    heap.settle()
    node = Node()
    alive = weakref.ref(node)
    heap.after_batch()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()  # what an automatic pass does: frozen objects are not looked at
    assert alive() is not None

    now[0] = 59.0
    heap.after_batch()  # not due yet
    gc.collect()
    assert alive() is not None

    now[0] = 60.0
    heap.after_batch()  # the full pass
    assert alive() is None


def test_the_first_batch_settles_the_heap(collector: None) -> None:
    """A Celery worker has no start-up hook after the projection loads: its first
    correlation does the full pass."""
    node = Node()
    alive = weakref.ref(node)
    del node
    BatchHeap(clock=lambda: 0.0).after_batch()
    assert alive() is None


def test_correlation_makes_no_reference_cycles(world: World, collector: None) -> None:
    """Every kind of change a batch makes: grouping under a switch, an inferred root,
    repeats, flapping, resolving after the hold time, reopening, a problem. Objects the
    batches drop must be freed by reference counting alone."""
    # first use fills caches and imports lazily; only what follows is measured
    world.send(world.event("NodeDown", "db-1"))
    world.clock.advance(minutes=30)
    world.send(world.event("NodeDown", "db-1", "resolved"))
    world.clock.advance(minutes=30)
    world.services.correlator.process_pending()

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage
    for round_ in range(3):
        world.send(*(world.event("NodeDown", k) for k in ("db-1", "db-2", "db-3")))
        world.clock.advance(seconds=20)
        world.send(world.event("SwitchDown", "acc-1"), world.event("NodeDown", "db-1"))
        for _ in range(3):  # flapping
            world.clock.advance(seconds=5)
            world.send(world.event("PortFlap", "dist-1", "resolved"))
            world.clock.advance(seconds=5)
            world.send(world.event("PortFlap", "dist-1"))
        world.clock.advance(seconds=10)
        world.send(
            *(world.event(n, k, "resolved") for n in ("NodeDown",) for k in ("db-1", "db-2"))
        )
        world.send(world.event("NodeDown", "db-3", "resolved"))
        world.send(world.event("SwitchDown", "acc-1", "resolved"))
        world.send(world.event("PortFlap", "dist-1", "resolved"))
        world.clock.advance(minutes=20)
        world.services.correlator.process_pending()  # resolves after the hold time
        if round_ == 0:
            world.send(world.event("SwitchDown", "acc-1"))  # reopens
            world.clock.advance(minutes=1)
            world.send(world.event("SwitchDown", "acc-1", "resolved"))
            world.clock.advance(minutes=20)
            world.services.correlator.process_pending()
    for key in ("orders-app", "core-1", "db-1"):  # one root cause on three CIs: a problem
        world.send(world.event("CertificateExpired", key))
        world.clock.advance(minutes=10)
    assert world.services.tickets.counts()["problems"] == 1
    gc.collect()
    found = [type(o).__qualname__ for o in gc.garbage]
    assert found == [], f"reference cycles left by correlation: {sorted(set(found))}"
