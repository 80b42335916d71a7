"""The reports contract over the SQLite adapter (``storage.sqlite.reports``): the tickets
saved by the SQLite ticket store's unit, the clocks written straight into ``ticket_sla``
through the test store's connection; plus what only SQLite has (periods labelled in SQL,
a file whose tables are missing)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicegraph.cmdb.errors import StoreError
from servicegraph.storage.sqlite import SqliteGraphStore
from servicegraph.storage.sqlite.file import to_us
from servicegraph.storage.sqlite.reports import SqliteReportStore, period_sql
from servicegraph.storage.sqlite.tickets import SqliteTicketStore
from servicegraph.ticketing.model import Incident
from servicegraph.ticketing.report_periods import Per, label
from servicegraph.ticketing.report_ports import ReportStore
from servicegraph.ticketing.report_service import ReportService
from servicegraph.ticketing.reports import report_query
from tests.contract.report_contract import NOW, ReportContract, Seed, World


def _save_clocks(file: SqliteGraphStore, rows: list[list[Any]]) -> None:
    conn = file._read()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"INSERT INTO ticket_sla VALUES ({', '.join('?' * 21)})", rows)
    conn.execute("COMMIT")


class TestSqliteReports(ReportContract):
    __test__ = True

    @pytest.fixture(scope="class")
    @classmethod
    def seed(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
        files: list[SqliteGraphStore] = []

        def seed(tickets: list[Incident], clocks: list[list[Any]]) -> ReportStore:
            file = SqliteGraphStore(tmp_path_factory.mktemp("reports") / "desk.sqlite3")
            files.append(file)
            file.migrate()
            with SqliteTicketStore(file).unit() as unit:
                unit.save_incidents(tickets)
            _save_clocks(file, clocks)
            return SqliteReportStore(file)

        yield seed
        for file in files:
            file.close()

    @pytest.fixture
    def failing_reports(self, tmp_path: Path) -> Iterator[ReportStore]:
        file = SqliteGraphStore(tmp_path / "old.sqlite3")
        file.migrate()
        file._read().execute("DROP TABLE ticket_sla")
        yield SqliteReportStore(file)
        file.close()

    def test_the_sql_labels_of_utc_periods_are_the_domains(self, world: World) -> None:
        """``period_sql`` labels a day, an ISO week and a month in SQL as ``label`` does,
        over ten years of instants, the ISO weeks around every new year included."""
        rng = random.Random(3)
        moments = [
            dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=h)
            for h in range(0, 24 * 3660, 7)
        ]
        moments += [dt.datetime(y, 12, 31, 23, 59, 59, tzinfo=dt.UTC) for y in range(2015, 2035)]
        moments += [
            dt.datetime(y, 1, d, tzinfo=dt.UTC) for y in range(2015, 2035) for d in (1, 2, 3, 4)
        ]
        rng.shuffle(moments)
        conn = world.service._store._file._read()  # type: ignore[attr-defined]
        for per in Per:
            sql = f"SELECT {period_sql(per, 'value')} FROM json_each(?)"
            got = [r[0] for r in conn.execute(sql, (json.dumps([to_us(m) for m in moments]),))]
            assert got == [label(m, per, dt.UTC) for m in moments], per


def test_a_store_that_cannot_answer_says_so(tmp_path: Path) -> None:
    file = SqliteGraphStore(tmp_path / "old.sqlite3")
    file.migrate()
    conn = file._read()
    conn.execute("DROP TABLE ticket_sla")
    try:
        service = ReportService(SqliteReportStore(file), clock=lambda: NOW)
        with pytest.raises(StoreError, match="reading a report failed"):
            service.run(report_query("sla"))
    finally:
        file.close()
