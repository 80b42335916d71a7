"""What every backend owes `servicegraph export` / `import --from-export` of the desk, as
documented in ``servicegraph.ticketing.ports``: ``TicketStore.snapshot`` (every record,
freeze windows and changes with their approvals, tasks and accepted conflicts included,
in the stated orders, whole, consistent while writers carry on, in pages), the restore
writes of ``TicketUnit`` (worklog with its own ``seq``, problem links with their times)
after which numbering continues, and ``DirectoryStore.export_records`` /
``restore_records`` (each record with its time, the version, an empty target only).

A backend's test module subclasses ``DeskExportContract``, sets ``__test__ = True`` and
provides the fixtures ``repo`` and ``other_repo`` (two empty, migrated repositories of
that backend, as ``ticket_contract`` has them) and ``directory`` and ``other_directory``
(two empty directory stores). A backend that cannot run here is skipped with the reason,
never faked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError
from servicegraph.events.model import AlertCycle
from servicegraph.ticketing.model import LinkKind, TicketLink, WorklogEntry, WorklogKind
from servicegraph.ticketing.ports import (
    DirectoryRecords,
    DirectoryStore,
    PeopleBatch,
    ProblemLink,
    Stamped,
)
from tests.contract.directory_contract import ALICE, BOB, DBA, EMAIL, FAX, NETWORK, NOC, VPN
from tests.contract.directory_contract import people as directory_people
from tests.contract.ticket_contract import (
    ALERTS,
    DESK,
    FULL_CHANGE,
    FULL_PROBLEM,
    INCIDENTS,
    NAIVE,
    Repository,
    at,
    make_change,
    make_freeze,
    make_problem,
)

T1 = dt.datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=dt.UTC)


def fill(repo: Repository) -> dict[str, Any]:
    """Every kind of record, written in an order unlike the snapshot's; returns them."""
    cycles = [
        AlertCycle("a3", at(10), at(12), "inc-2"),
        AlertCycle("a1", at(3), None, "inc-1"),
        AlertCycle("a1", at(0), at(2), "inc-1"),
    ]
    problems = [
        make_problem(2, root_ci_id="ci-b"),
        FULL_PROBLEM,
        make_problem(1, known_error="ke"),
    ]
    changes = [make_change(7, ["ci-c", "ci-a"]), FULL_CHANGE, make_change(3, ["ci-b"])]
    windows = [
        make_freeze("q4", 500, 600, reason="year end"),
        make_freeze("launch", 700, 800, ci_ids=("ci-shop",)),
    ]
    alerts = [dataclasses.replace(a, change_id="chg-5") if a.fingerprint == "a2" else a
              for a in ALERTS.values()]  # fmt: skip
    links = [
        TicketLink("inc-3", "inc-1", LinkKind.DUPLICATE_OF, at(40), "bob"),
        TicketLink("inc-1", "chg-3", LinkKind.CAUSED_BY_CHANGE, at(41), "alice"),
        TicketLink("inc-1", "inc-2", LinkKind.RELATED, at(42), "alice"),
    ]
    with repo.tickets.unit() as unit:
        unit.save_alerts(alerts[::-1])
        unit.save_incidents(list(INCIDENTS.values())[::-1] + list(DESK.values()))
        unit.record_cycles(cycles)
        for problem in problems:
            unit.save_problem(problem)
        unit.link_problem("prb-2", ["inc-3", "inc-1"], at(50))
        unit.link_problem("prb-1", ["inc-2"], at(51))
        for change in changes:
            unit.save_change(change)
        for window in windows:
            unit.save_freeze_window(window)
        unit.save_links(links)
        unit.append_worklog(
            [
                WorklogEntry("inc-2", at(60), "bob", WorklogKind.COMMENT, "first"),
                WorklogEntry("inc-1", at(59), "alice", WorklogKind.CHANGED, "", 0, "tags",
                             '["a"]', '["a","b"]'),
                WorklogEntry("prb-1", at(61), "system", WorklogKind.CREATED, "opened"),
            ]
        )  # fmt: skip
    return {
        "alerts": alerts,
        "cycles": cycles,
        "problems": problems,
        "changes": changes,
        "windows": windows,
        "links": links,
    }


def read_all(repo: Repository) -> dict[str, list[Any]]:
    with repo.tickets.snapshot() as view:
        return {
            "alerts": list(view.alerts()),
            "alert_cycles": list(view.alert_cycles()),
            "incidents": list(view.incidents()),
            "problems": list(view.problems()),
            "problem_links": list(view.problem_links()),
            "freeze_windows": list(view.freeze_windows()),
            "changes": list(view.changes()),
            "links": list(view.links()),
            "worklog": list(view.worklog()),
            "counts": [view.counts()],
        }


def restore(repo: Repository, everything: dict[str, list[Any]]) -> None:
    """Write a snapshot's records back the way ``desk_export`` does."""
    with repo.tickets.unit() as unit:
        unit.save_alerts(everything["alerts"])
        unit.record_cycles(everything["alert_cycles"])
        unit.save_incidents(everything["incidents"])
        for problem in everything["problems"]:
            unit.save_problem(problem)
        unit.restore_problem_links(everything["problem_links"])
        for window in everything["freeze_windows"]:
            unit.save_freeze_window(window)
        for change in everything["changes"]:
            unit.save_change(change)
        unit.save_links(everything["links"])
        unit.restore_worklog(everything["worklog"])


def stamped(*records: Any, when: dt.datetime = T1) -> tuple[Stamped[Any], ...]:
    return tuple(Stamped(r, when) for r in records)


class DeskExportContract:
    __test__ = False

    @pytest.fixture
    def repo(self) -> Repository:
        raise NotImplementedError("a backend's test class provides the repo fixture")

    @pytest.fixture
    def other_repo(self) -> Repository:
        raise NotImplementedError("a backend's test class provides an empty second repo")

    @pytest.fixture
    def directory(self) -> DirectoryStore:
        raise NotImplementedError("a backend's test class provides the directory fixture")

    @pytest.fixture
    def other_directory(self) -> DirectoryStore:
        raise NotImplementedError("a backend's test class provides an empty second one")

    # -- the ticket snapshot -------------------------------------------------------------------

    def test_an_empty_snapshot(self, repo: Repository) -> None:
        everything = read_all(repo)
        assert everything.pop("counts") == [dict.fromkeys(everything, 0)]
        assert all(records == [] for records in everything.values())

    def test_the_snapshot_holds_every_record_whole_in_the_stated_orders(
        self, repo: Repository
    ) -> None:
        written = fill(repo)
        everything = read_all(repo)
        store = repo.tickets
        assert [a.fingerprint for a in everything["alerts"]] == sorted(ALERTS)
        with store.unit() as unit:
            alerts = unit.load_alerts(ALERTS)
        assert everything["alerts"] == [alerts[f] for f in sorted(ALERTS)]
        assert everything["alerts"] == sorted(written["alerts"], key=lambda a: a.fingerprint)
        cycles = store.alert_cycles(["a1", "a3"])
        assert everything["alert_cycles"] == cycles["a1"] + cycles["a3"]
        numbers = [i.number for i in everything["incidents"]]
        assert numbers == sorted(numbers) and len(numbers) == len(INCIDENTS) + len(DESK)
        stored = store.get_incidents(i.id for i in everything["incidents"])
        assert everything["incidents"] == [stored[i.id] for i in everything["incidents"]]
        assert [p.number for p in everything["problems"]] == [1, 2, 6]
        assert all(p.incident_ids == [] for p in everything["problems"])
        assert everything["problems"] == sorted(written["problems"], key=lambda p: p.number)
        assert everything["problem_links"] == [
            ProblemLink("prb-1", "inc-2", at(51)),
            ProblemLink("prb-2", "inc-1", at(50)),
            ProblemLink("prb-2", "inc-3", at(50)),
        ]
        assert everything["changes"] == sorted(written["changes"], key=lambda c: c.number)
        assert everything["changes"][1] == FULL_CHANGE, "approvals, tasks, overrides whole"
        assert everything["changes"][2].ci_ids == ["ci-c", "ci-a"], "the CIs in their order"
        assert everything["freeze_windows"] == written["windows"][::-1], "by id"
        keys = [(k.source_id, k.kind.value, k.target_id) for k in everything["links"]]
        assert keys == sorted(keys) and set(everything["links"]) == set(written["links"])
        log = everything["worklog"]
        assert [e.seq for e in log] == sorted(e.seq for e in log)
        assert [e.text for e in log] == ["first", "", "opened"], "by seq, not by time"
        assert log[1].field == "tags" and log[1].new == '["a","b"]'
        counts = everything["counts"][0]
        assert counts == {name: len(records) for name, records in everything.items() if
                          name != "counts"}  # fmt: skip

    def test_the_snapshot_stays_as_it_was_opened(self, repo: Repository) -> None:
        fill(repo)
        with repo.tickets.snapshot() as view:
            first = next(view.incidents())
            with repo.tickets.unit() as unit:
                unit.append_worklog([WorklogEntry("inc-1", at(90), "bob", WorklogKind.COMMENT)])
                unit.save_incidents([dataclasses.replace(first, title="changed meanwhile")])
            assert next(view.incidents()).title == first.title
            assert len(list(view.worklog())) == 3 == view.counts()["worklog"]
        assert len(read_all(repo)["worklog"]) == 4

    def test_the_snapshot_streams_more_than_a_page_each_once(self, repo: Repository) -> None:
        entries = [
            WorklogEntry(f"inc-{n % 7}", at(n), "bob", WorklogKind.COMMENT, str(n))
            for n in range(2_345)
        ]
        changes = [make_change(n, [f"ci-{n}", "ci-z"]) for n in range(1, 1_203)]
        with repo.tickets.unit() as unit:
            unit.append_worklog(entries)
            for change in changes:
                unit.save_change(change)
        everything = read_all(repo)
        assert [e.text for e in everything["worklog"]] == [e.text for e in entries]
        assert everything["changes"] == changes

    # -- restore writes ----------------------------------------------------------------------------

    def test_a_restored_snapshot_reads_the_same_and_numbering_continues(
        self, repo: Repository, other_repo: Repository
    ) -> None:
        fill(repo)
        everything = read_all(repo)
        restore(other_repo, everything)
        assert read_all(other_repo) == everything
        source, copy = repo.tickets, other_repo.tickets
        ids = [i.id for i in everything["incidents"]] + ["prb-1", "prb-2", "chg-3", "chg-7"]
        assert copy.freeze_windows() == source.freeze_windows()
        assert copy.changes_touching(at(0), at(900)) == source.changes_touching(at(0), at(900))
        assert copy.problems_fixed_by(["chg-5"]) == source.problems_fixed_by(["chg-5"]) != []
        assert copy.worklog(ids) == source.worklog(ids)
        assert copy.get_problems(["prb-1", "prb-2"]) == source.get_problems(["prb-1", "prb-2"])
        assert copy.links_of(ids) == source.links_of(ids)
        with repo.tickets.unit() as a, other_repo.tickets.unit() as b:
            assert b.next_incident_number() == a.next_incident_number()
            assert b.next_problem_number() == a.next_problem_number() == 7
            assert b.next_change_number() == a.next_change_number() == 8
            assert b.incidents_named("test/NodeDown", at(-1)) == a.incidents_named(
                "test/NodeDown", at(-1)
            ), "restored incidents are filed under their root alert's name"

    def test_restored_worklog_keeps_its_seqs_and_later_entries_follow(
        self, repo: Repository
    ) -> None:
        entries = [
            WorklogEntry("inc-1", at(1), "alice", WorklogKind.CREATED, "a", 5),
            WorklogEntry("inc-2", at(0), "bob", WorklogKind.COMMENT, "b", 17),
            WorklogEntry("inc-1", at(2), "alice", WorklogKind.CHANGED, "", 1000, "x", None, "1"),
        ]
        with repo.tickets.unit() as unit:
            unit.restore_worklog(entries)
        with repo.tickets.unit() as unit:
            unit.append_worklog([WorklogEntry("inc-1", at(3), "carol", WorklogKind.COMMENT)])
        log = repo.tickets.worklog(["inc-1", "inc-2"])
        assert [e.seq for e in log["inc-1"]][:2] == [5, 1000]
        assert log["inc-1"][:2] == [entries[0], entries[2]] and log["inc-2"] == [entries[1]]
        assert log["inc-1"][2].seq > 1000

    @pytest.mark.parametrize("seq", [0, -3])
    def test_a_restored_entry_without_its_seq_is_refused(self, repo: Repository, seq: int) -> None:
        with pytest.raises(ValueError, match="seq"), repo.tickets.unit() as unit:
            unit.restore_worklog(
                [
                    WorklogEntry("inc-1", at(0), "alice", WorklogKind.COMMENT, "ok", 4),
                    WorklogEntry("inc-1", at(0), "alice", WorklogKind.COMMENT, "no", seq),
                ]
            )
        assert repo.tickets.worklog(["inc-1"]) == {}

    def test_restored_problem_links_keep_their_times_and_touch_no_incident(
        self, repo: Repository
    ) -> None:
        with repo.tickets.unit() as unit:
            unit.save_incidents([INCIDENTS["inc-1"], INCIDENTS["inc-2"]])  # no problem_id
            unit.save_problem(make_problem(1))
            unit.restore_problem_links(
                [ProblemLink("prb-1", "inc-2", at(9)), ProblemLink("prb-1", "inc-1", at(3))]
            )
        (problem,) = repo.tickets.get_problems(["prb-1"]).values()
        assert problem.incident_ids == ["inc-1", "inc-2"], "in the order they were linked"
        incidents = repo.tickets.get_incidents(["inc-1", "inc-2"])
        assert {i.problem_id for i in incidents.values()} == {None}
        with pytest.raises(ValueError), repo.tickets.unit() as unit:
            unit.restore_problem_links([ProblemLink("prb-1", "inc-3", NAIVE)])

    # -- the directory -----------------------------------------------------------------------------

    def test_an_empty_directory_exports_nothing(self, directory: DirectoryStore) -> None:
        assert directory.export_records() == DirectoryRecords()

    def test_the_directory_exports_every_record_with_its_time(
        self, directory: DirectoryStore
    ) -> None:
        directory.save_people(directory_people(), T1)
        later = T1 + dt.timedelta(days=3)
        directory.save_people(PeopleBatch(agents=(BOB,)), later)
        directory.save_catalogue([FAX, EMAIL], [VPN, NETWORK], T1)
        records = directory.export_records()
        assert records.version == directory.version() == 3
        assert records.agents == (Stamped(ALICE, T1), Stamped(BOB, later))
        assert records.groups == stamped(DBA, NOC)
        assert [s.record.id for s in records.contacts] == ["c1", "c2"]
        assert records.services == stamped(EMAIL, FAX)
        assert records.categories == stamped(NETWORK, VPN)
        assert len(records) == 2 + 2 + 1 + 2 + 2 + 2

    def test_restored_records_read_back_as_they_were(
        self, directory: DirectoryStore, other_directory: DirectoryStore
    ) -> None:
        directory.save_people(directory_people(), T1)
        directory.save_people(PeopleBatch(agents=(BOB,)), T1 + dt.timedelta(hours=5))
        directory.save_catalogue([EMAIL, FAX], [NETWORK, VPN], T1)
        records = directory.export_records()
        assert other_directory.restore_records(records) == records.version
        assert other_directory.export_records() == records
        assert other_directory.load_directory() == directory.load_directory()
        assert other_directory.load_catalogue() == directory.load_catalogue()

    def test_membership_restores_from_either_side(self, directory: DirectoryStore) -> None:
        """An export writes membership on the groups' side only (agents without groups)."""
        bare = [Stamped(dataclasses.replace(ALICE, groups=()), T1), Stamped(BOB, T1)]
        directory.restore_records(DirectoryRecords(agents=tuple(bare), groups=stamped(NOC, DBA)))
        loaded = directory.load_directory()
        assert loaded.agents["alice"].groups == ("dba", "noc")
        assert loaded.groups["noc"].members == ("alice", "bob")

    def test_a_restore_moves_the_version_past_what_readers_cached(
        self, directory: DirectoryStore
    ) -> None:
        assert directory.restore_records(DirectoryRecords(version=0)) == 1
        directory.save_catalogue([], [], T1)  # version 2, still empty
        assert directory.restore_records(DirectoryRecords(groups=stamped(DBA), version=1)) == 3

    def test_a_restore_into_a_directory_that_holds_records_writes_nothing(
        self, directory: DirectoryStore
    ) -> None:
        directory.save_catalogue([FAX], [], T1)
        version = directory.version()
        with pytest.raises(StoreError, match="not empty"):
            directory.restore_records(DirectoryRecords(groups=stamped(DBA), version=9))
        assert directory.version() == version
        assert directory.load_directory().groups == {}

    def test_a_naive_time_is_refused_and_nothing_written(self, directory: DirectoryStore) -> None:
        with pytest.raises(ValueError):
            directory.restore_records(
                DirectoryRecords(groups=stamped(DBA), agents=stamped(ALICE, when=NAIVE))
            )
        assert directory.export_records() == DirectoryRecords()
