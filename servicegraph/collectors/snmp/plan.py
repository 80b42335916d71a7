"""The plan of one discovery run, as plain data: the devices to load (those that answered,
and a placeholder for each neighbour that did not) and the links between them.

``transform.plan`` builds it from the run's snapshots; ``devices`` and ``neighbours`` fill
it in; the observation batches are made from it. It lives apart from all three so that
each can use it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from servicegraph.cmdb.observation import CIObservation
from servicegraph.collectors.snmp.mibs import DeviceSnapshot


@dataclass(frozen=True)
class End:
    """One end of a link: a device of the plan and, when known, its interface."""

    device: int
    if_index: int | None = None
    port: str | None = None  # the port as a neighbour table named it


@dataclass(frozen=True)
class Link:
    from_end: End
    to_end: End
    protocol: str


@dataclass
class PlannedDevice:
    observation: CIObservation
    snapshot: DeviceSnapshot | None  # None: a placeholder
    depth: int


@dataclass
class Plan:
    devices: list[PlannedDevice] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def discovered(self) -> int:
        return sum(1 for d in self.devices if d.snapshot is not None)

    @property
    def placeholders(self) -> int:
        return sum(1 for d in self.devices if d.snapshot is None)
