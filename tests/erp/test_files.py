"""The file feed on real files: encodings, delimiters, broken rows at their physical lines,
XLSX, JSON, the newest export of a directory, and write-back to an export file."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from servicegraph.collectors.erp.feeds import WriteBackRow, open_feed, open_target
from servicegraph.collectors.erp.files import FileFeed, FileTarget, sniff_delimiter
from servicegraph.collectors.erp.mapping import map_records
from servicegraph.collectors.erp.records import FeedError, FeedRead
from servicegraph.collectors.erp.spec import ErpSource, build_source
from tests.erp.messy import BAD_KINDS, COLUMNS, write_messy_export


def source(path: Path, kind: str = "csv", **extra: Any) -> ErpSource:
    spec = {"kind": kind, "path": str(path), "key": "InventoryNo", "class": "server", **extra}
    return build_source("x", spec, path="erp.sources.x")


def read(path: Path, kind: str = "csv", **extra: Any) -> FeedRead:
    return FileFeed(source(path, kind, **extra)).read()


def lines_of(read_: FeedRead) -> list[int]:
    return [int(e.origin.rsplit(":", 1)[1]) for e in read_.errors]


def record_lines(read_: FeedRead) -> list[int]:
    return [int(r.origin.rsplit(":", 1)[1]) for r in read_.records]


ONE_C = (
    "InventoryNo;SerialNo;Name;Category;Value\r\n"
    "БП-000001;FOC1234X;Коммутатор Cisco 2960;Коммутатор;12 345,67\r\n"
    'БП-000002;;"Сервер HP; стойка 3";Сервер;4500,00\r\n'
)


# --- encodings --------------------------------------------------------------------------


def test_utf8_without_bom(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(ONE_C.encode("utf-8"))
    got = read(path)
    assert got.errors == [] and got.complete and got.notes == ()
    assert [r.origin for r in got.records] == [f"{path}:2", f"{path}:3"]
    assert got.records[0].fields["Name"] == "Коммутатор Cisco 2960"
    assert got.records[1].fields["Name"] == "Сервер HP; стойка 3"
    assert got.records[1].fields["SerialNo"] == ""


def test_utf8_with_bom_keeps_the_first_column_name_clean(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ONE_C.encode("utf-8"))
    for encoding in ("auto", "utf-8"):
        got = read(path, encoding=encoding)
        assert got.errors == []
        assert next(iter(got.records[0].fields)) == "InventoryNo"
        assert got.records[0].fields["InventoryNo"] == "БП-000001"


def test_windows_1251_from_1c_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "1c.csv"
    path.write_bytes(ONE_C.replace("12 345", "12\u00a0345").encode("cp1251"))
    got = read(path)
    assert got.errors == []
    assert got.notes == ("read as windows-1251 (detected)",)
    first = got.records[0].fields
    assert first["Category"] == "Коммутатор"
    assert first["Value"] == "12\u00a0345,67"  # the decimal comma is the mapping's business
    # and the same file declared as what it is reads without a note
    declared = read(path, encoding="cp1251")
    assert declared.records == got.records and declared.notes == ()


def test_windows_1252_is_told_from_1251(tmp_path: Path) -> None:
    path = tmp_path / "de.csv"
    path.write_bytes("InventoryNo;Name\n1;Müller Café\n2;Größe\n".encode("cp1252"))
    got = read(path)
    assert got.notes == ("read as windows-1252 (detected)",)
    assert [r.fields["Name"] for r in got.records] == ["Müller Café", "Größe"]


def test_excel_unicode_text_utf16_with_tabs(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("InventoryNo\tName\r\nБП-1\tИБП APC\r\n".encode("utf-16"))
    got = read(path)
    assert got.notes == ("read as utf-16 (detected)",)
    assert got.records[0].fields == {"InventoryNo": "БП-1", "Name": "ИБП APC"}


def test_1251_declared_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "1c.csv"
    path.write_bytes(ONE_C.encode("cp1251"))
    got = read(path, encoding="utf-8")
    assert got.records == [] and not got.complete
    assert len(got.errors) == 1
    error = got.errors[0]
    assert error.origin == f"{path}:2"
    # line 2 starts "БП-": the first byte that is not UTF-8 is its first character
    assert "line 2, column 1" in error.message
    assert "the file looks like Windows-1251: set encoding: cp1251 or auto" in error.message


def test_bytes_in_no_codec_auto_knows_are_one_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    # 0x98 is the one byte Windows-1251 leaves undefined
    path.write_bytes("InventoryNo;Name\r\n1;Сервер".encode("cp1251") + b"\x98\r\n")
    got = read(path)
    assert got.records == [] and not got.complete
    assert got.errors[0].origin == f"{path}:2"
    assert "neither UTF-8 nor Windows-1251 (byte 0x98 at line 2, column 9)" in got.errors[0].message


def test_declared_single_byte_codec_on_a_utf8_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(ONE_C.encode("utf-8"))
    got = read(path, encoding="cp1251")
    assert got.errors == []
    assert "valid UTF-8" in got.notes[0]


# --- delimiters -------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", ["\t", ",", "|", ";"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [
        ["InventoryNo", "Name", "Value", "Place"],
        ["A1", '"Switch; core"', "1.5", "Room 1"],
        ["A2", '"Router, edge"', "2.5", "Room 2"],
        ["A3", "Server", "3", "Room 3"],
    ]
    path = tmp_path / "a.csv"
    path.write_text("\n".join(delimiter.join(r) for r in rows) + "\n", encoding="utf-8")
    got = read(path)
    assert got.errors == [] and got.notes == ()
    assert [r.fields["Name"] for r in got.records] == ["Switch; core", "Router, edge", "Server"]
    assert read(path, delimiter=delimiter).records == got.records


def test_decimal_commas_do_not_fool_the_sniffer() -> None:
    lines = ["InventoryNo;Value;Place\n"] + [f"A{i};1,5;Room {i},2\n" for i in range(30)]
    assert sniff_delimiter(lines) == ";"
    # quoted delimiters are not counted
    assert sniff_delimiter(["a,b,c\n", '1,"x;y;z;w",3\n', "2,q,4\n"]) == ","


# --- broken rows ------------------------------------------------------------------------


def test_broken_quoting_and_cell_counts_are_reported_at_their_lines(tmp_path: Path) -> None:
    text = (
        "InventoryNo;Name;Place\n"  # 1
        "1;ok;x\n"  # 2
        '2;"unclosed;y\n'  # 3: an unclosed quote; csv would swallow lines 4 and 5
        "3;fine;z\n"  # 4
        '4;"quoted ""q""";w\n'  # 5: good; its first quote ends what line 3 opened
        '5;"x"y;v\n'  # 6: text after a closing quote
        "6;too;many;cells\n"  # 7
        "7;few\n"  # 8
        "\n"  # 9: blank, skipped
        '8;"two\n'  # 10: a quoted line break: one record on lines 10-11
        'lines";u\n'  # 11
        '9; "spaced"  ;t\n'  # 12: spaces round a quoted cell are fine
        ";;\n"  # 13: nothing on it, skipped
        "10;last;s\n"  # 14
    )
    path = tmp_path / "a.csv"
    path.write_text(text, encoding="utf-8")
    got = read(path)
    assert lines_of(got) == [3, 6, 7, 8]
    assert "broken quoting" in got.errors[0].message
    assert "broken quoting" in got.errors[1].message
    assert "has 4 cells, the header has 3 columns" in got.errors[2].message
    assert "has 2 cells" in got.errors[3].message
    assert record_lines(got) == [2, 4, 5, 10, 12, 14]
    by_key = {r.fields["InventoryNo"]: r.fields for r in got.records}
    assert by_key["4"]["Name"] == 'quoted "q"'
    assert by_key["8"]["Name"] == "two\nlines"
    assert by_key["9"]["Name"] == "spaced"
    assert got.complete  # the file was read through; the bad rows are refused one by one


def test_an_unclosed_quote_at_the_end_does_not_lose_the_rows_after_it(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('InventoryNo;Name;Place\n1;ok;x\n2;"open;y\n3;after;z\n4;more;w\n')
    got = read(path)
    assert lines_of(got) == [3]
    assert "never closed" in got.errors[0].message
    assert record_lines(got) == [2, 4, 5]


def test_a_swallow_that_closes_with_the_right_cell_count_is_still_caught(
    tmp_path: Path,
) -> None:
    # line 2's quote is closed on line 4: three cells, as many as the header, but a whole
    # row (line 3) sits inside one of them
    path = tmp_path / "a.csv"
    path.write_text('InventoryNo;Name;Place\n1;"open;x\n2;y;z\n3;w";v\n', encoding="utf-8")
    got = read(path)
    assert lines_of(got) == [2]
    assert record_lines(got) == [3, 4]
    assert got.records[1].fields == {"InventoryNo": "3", "Name": 'w"', "Place": "v"}


def test_crlf_lines_count_like_an_editor_does(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"InventoryNo;Name\r\n1;a\r\n\r\n2;b;c\r\n3;c\r\n")
    got = read(path)
    assert lines_of(got) == [4]
    assert record_lines(got) == [2, 5]


def test_cells_are_stripped(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(" InventoryNo ; Name \n  A1  ;  core switch \t\n", encoding="utf-8")
    assert read(path).records[0].fields == {"InventoryNo": "A1", "Name": "core switch"}


def test_duplicate_header_names_refuse_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("InventoryNo;Name;Name\n1;a;b\n", encoding="utf-8")
    got = read(path)
    assert got.records == [] and not got.complete
    assert len(got.errors) == 1
    assert got.errors[0].origin == f"{path}:1"
    assert "'Name' twice (columns 2 and 3)" in got.errors[0].message


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_one_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(content)
    got = read(path)
    assert got.records == [] and not got.complete
    assert [e.message for e in got.errors] == ["empty file: the first line must name the columns"]


def test_a_missing_or_unreadable_file_raises_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"does not exist \(erp\.sources\.x\.path\)"):
        read(tmp_path / "nope.csv")
    with pytest.raises(FeedError, match="is a directory"):
        read(tmp_path)


def test_progress_is_told_every_thousand_records_and_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "InventoryNo;Name\n" + "".join(f"{i};n{i}\n" for i in range(2500)), encoding="utf-8"
    )
    calls: list[tuple[int, int | None]] = []
    FileFeed(source(path)).read(lambda done, total: calls.append((done, total)))
    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]


# --- the messy export -------------------------------------------------------------------

MESSY_MAPPING = {
    "class": "server",
    "fields": {
        "name": "Name",
        "identifiers.serial_number": "SerialNo",
        "attributes.cost_centre": "CostCenter",
        "attributes.owner": "Responsible",
        "attributes.purchase_date": {"from": "PurchaseDate", "transforms": [{"date": "%d.%m.%Y"}]},
        "attributes.value": {"from": "Value", "transforms": [{"decimal": "comma"}]},
    },
}


def test_every_bad_row_of_a_messy_export_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    bad = write_messy_export(path, rows=10_000)
    assert set(bad) == set(BAD_KINDS)
    assert 200 <= sum(len(v) for v in bad.values()) <= 300  # ~2-3% of the rows
    spec = {"kind": "csv", "path": str(path), "key": "InventoryNo", **MESSY_MAPPING}
    src = build_source("x", spec, path="erp.sources.x")
    got = FileFeed(src).read()
    assert got.notes == ("read as windows-1251 (detected)",)
    assert list(got.records[0].fields) == list(COLUMNS)
    assert lines_of(got) == bad["broken_quoting"]
    assert len(got.records) + len(got.errors) == 10_000
    mapped = map_records(src, got.records)
    refused: dict[str, list[int]] = {"PurchaseDate": [], "Value": [], "InventoryNo": []}
    for error in mapped.errors:
        assert error.field is not None
        refused[error.field].append(int(error.origin.rsplit(":", 1)[1]))
    assert refused["PurchaseDate"] == bad["bad_date"]
    assert refused["Value"] == bad["bad_value"]
    assert refused["InventoryNo"] == bad["duplicate_inventory"]
    serials = {int(r.origin.rsplit(":", 1)[1]): r.fields["SerialNo"] for r in got.records}
    assert [line for line, serial in serials.items() if serial == ""] == bad["missing_serial"]


def test_a_hundred_thousand_cp1251_rows_are_read_whole(tmp_path: Path) -> None:
    # their speed is benchmarks/bench_erp.py's "read 100k-row CSV" line, not a timed assertion
    path = tmp_path / "big.csv"
    header = ";".join(f"Col{i}" for i in range(12))
    row = "БП-{0:06d};FOC{0:08d};Коммутатор Cisco Catalyst 2960;Коммутатор;ЦФО-01;Иванов И.И.;"
    row += "01.02.2020;12 345,67;  x  ;Москва, ул. Ленина 1;активен;{0}"
    text = header + "\r\n" + "".join(row.format(i) + "\r\n" for i in range(100_000))
    path.write_bytes(text.encode("cp1251"))
    spec = {"kind": "csv", "path": str(path), "key": "Col0", "class": "server"}
    feed = FileFeed(build_source("x", spec, path="erp.sources.x"))
    got = feed.read()
    assert len(got.records) == 100_000 and got.errors == []
    assert got.records[-1].fields["Col0"] == "БП-099999"
    assert got.records[-1].fields["Col8"] == "x"


# --- XLSX -------------------------------------------------------------------------------


def write_workbook(path: Path) -> None:
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "Summary"
    summary.append(["nothing to see"])
    assets = book.create_sheet("Assets")
    assets.append(["Fixed assets, 2024"])  # a title above the header
    assets.append(["InventoryNo", "Name", "Bought", "Value", "Count", None])
    assets.append(["БП-1", "  Коммутатор  ", dt.date(2023, 5, 17), 12345.67, 3])
    assets.append([None, None, None, None, None])  # an empty row, skipped
    assets.append(["БП-2", "Сервер", dt.datetime(2024, 1, 2, 13, 30), None, 0, "stray"])
    book.save(path)


def test_xlsx_sheet_header_row_dates_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "assets.xlsx"
    write_workbook(path)
    got = read(path, "xlsx", sheet="Assets", header_row=2)
    assert got.errors == []
    assert [r.origin for r in got.records] == [f"{path}:3", f"{path}:5"]
    first, second = (r.fields for r in got.records)
    assert first == {
        "InventoryNo": "БП-1",
        "Name": "Коммутатор",
        "Bought": dt.date(2023, 5, 17),
        "Value": 12345.67,
        "Count": 3,
    }
    assert second["Bought"] == dt.datetime(2024, 1, 2, 13, 30)
    assert second["Value"] == "" and second["Count"] == 0
    assert got.notes == ("column(s) F have values but no header: ignored",)
    # the date transform takes the date as it is
    spec = {
        "kind": "xlsx",
        "path": str(path),
        "sheet": "Assets",
        "header_row": 2,
        "key": "InventoryNo",
        "class": "server",
        "fields": {"attributes.bought": {"from": "Bought", "transforms": [{"date": "%d.%m.%Y"}]}},
    }
    mapped = map_records(build_source("x", spec, path="erp.sources.x"), got.records)
    assert [o.attributes["bought"] for o in mapped.observations] == ["2023-05-17", "2024-01-02"]


def test_xlsx_default_sheet_and_a_missing_sheet(tmp_path: Path) -> None:
    path = tmp_path / "assets.xlsx"
    write_workbook(path)
    got = read(path, "xlsx")  # the first sheet: one header, no rows
    assert got.records == [] and got.errors == []
    with pytest.raises(FeedError, match="no sheet 'Asets'; its sheets are 'Summary', 'Assets'"):
        read(path, "xlsx", sheet="Asets")


def test_xlsx_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "assets.xlsx"
    path.write_text("InventoryNo;Name\n", encoding="utf-8")
    with pytest.raises(FeedError, match="not an XLSX workbook"):
        read(path, "xlsx")
    with pytest.raises(FeedError, match="does not exist"):
        read(tmp_path / "none.xlsx", "xlsx")


# --- JSON -------------------------------------------------------------------------------


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    items = [{"InventoryNo": "A1", "product": {"name": "Switch"}}, 7, {"InventoryNo": "A2"}]
    path.write_text(json.dumps(items), encoding="utf-8")
    got = read(path, "json")
    assert [r.origin for r in got.records] == [f"{path}: records[0]", f"{path}: records[2]"]
    assert got.records[0].fields["product"] == {"name": "Switch"}
    assert [(e.origin, e.message) for e in got.errors] == [
        (f"{path}: records[1]", "is a number, not an object of named fields")
    ]


def test_json_nested_records(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    document = {
        "meta": {"count": 2},
        "data": {"items": [{"InventoryNo": "A1"}, {"InventoryNo": "A2"}]},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    got = read(path, "json", records="data.items")
    assert [r.fields["InventoryNo"] for r in got.records] == ["A1", "A2"]
    wrong = read(path, "json", records="data.rows")
    assert not wrong.complete and wrong.records == []
    assert "'data.rows': data has no 'rows'; its keys are items" in wrong.errors[0].message
    unset = read(path, "json")
    assert "set records:" in unset.errors[0].message


def test_invalid_json_is_one_error_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[\n  {"InventoryNo": "A1"},\n  {"InventoryNo": }\n]\n', encoding="utf-8")
    got = read(path, "json")
    assert got.records == [] and not got.complete
    assert len(got.errors) == 1
    assert got.errors[0].origin == f"{path}:3"
    assert "not valid JSON" in got.errors[0].message
    assert "line 3, column 19" in got.errors[0].message


# --- directory --------------------------------------------------------------------------


def test_directory_reads_the_newest_export(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    now = time.time()
    older = exports / "assets-1.csv"
    older.write_text("InventoryNo;Name\nA1;old\n", encoding="utf-8")
    newer = exports / "assets-2.json"
    newer.write_text(json.dumps([{"InventoryNo": "A1", "Name": "new"}]), encoding="utf-8")
    other = exports / "people-3.csv"
    other.write_text("InventoryNo;Name\nP1;person\n", encoding="utf-8")
    lock = exports / "~$assets-4.xlsx"
    lock.write_bytes(b"locked by Excel")
    os.utime(older, (now - 100, now - 100))
    os.utime(newer, (now - 50, now - 50))
    os.utime(other, (now, now))
    os.utime(lock, (now + 10, now + 10))
    got = read(exports, "directory", pattern="assets-*")
    assert [r.origin for r in got.records] == [f"{newer}: records[0]"]
    assert got.records[0].fields["Name"] == "new"
    # the same mtime: the name decides
    os.utime(older, (now - 50, now - 50))
    assert read(exports, "directory", pattern="assets-*").records[0].origin.startswith(str(newer))
    everything = FileFeed(source(exports, "directory")).export()
    assert everything == (other, "csv")
    with pytest.raises(FeedError, match=f"no export in {exports} matching inv-\\* yet"):
        read(exports, "directory", pattern="inv-*")
    with pytest.raises(FeedError, match="does not exist"):
        read(tmp_path / "none", "directory")


def test_open_feed_picks_the_file_feed(tmp_path: Path) -> None:
    assert isinstance(open_feed(source(tmp_path / "a.csv")), FileFeed)


# --- write-back -------------------------------------------------------------------------


def target(tmp_path: Path, name: str = "to-erp.csv", **extra: Any) -> FileTarget:
    write_back = {
        "path": str(tmp_path / name),
        "fields": {"SerialNo": "identifiers.serial_number", "Model": "attributes.model"},
    }
    made = open_target(source(tmp_path / "a.csv", write_back=write_back, **extra))
    assert isinstance(made, FileTarget)
    return made


def test_write_back_file_round_trip(tmp_path: Path) -> None:
    out = target(tmp_path)
    assert out.current(["A1"]) == {}  # not exported yet
    written = out.write(
        [
            WriteBackRow("A1", {"SerialNo": "FOC1", "Model": "Катализатор 2960"}),
            WriteBackRow("A2", {"SerialNo": "FOC2"}),
        ]
    )
    assert written == 2
    path = tmp_path / "to-erp.csv"
    assert path.read_bytes().decode("utf-8") == (
        "InventoryNo;SerialNo;Model\r\nA1;FOC1;Катализатор 2960\r\nA2;FOC2;\r\n"
    )
    assert out.current(["A1", "A2", "A3"]) == {
        "A1": {"SerialNo": "FOC1", "Model": "Катализатор 2960"},
        "A2": {"SerialNo": "FOC2"},
    }
    assert out.current(["A2"]) == {"A2": {"SerialNo": "FOC2"}}
    # a merge: the rows not given keep their values, a given field changes, a new key joins
    before = path.stat().st_ino
    with path.open(encoding="utf-8") as held:  # a reader that had the old file open
        rows = [WriteBackRow("A2", {"Model": "R740"}), WriteBackRow("A3", {"SerialNo": "X"})]
        assert out.write(rows) == 2
        assert held.read() == "InventoryNo;SerialNo;Model\nA1;FOC1;Катализатор 2960\nA2;FOC2;\n"
    assert path.stat().st_ino != before  # replaced, not rewritten in place
    assert out.current(["A1", "A2", "A3"]) == {
        "A1": {"SerialNo": "FOC1", "Model": "Катализатор 2960"},
        "A2": {"SerialNo": "FOC2", "Model": "R740"},
        "A3": {"SerialNo": "X"},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to-erp.csv"]  # no temp file left
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_write_back_keeps_the_sources_delimiter_and_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "to-erp.csv"
    path.write_text("InventoryNo,Note,SerialNo\nA1,keep me,OLD\n", encoding="utf-8")
    out = target(tmp_path, delimiter=",")
    assert out.current(["A1"]) == {"A1": {"SerialNo": "OLD"}}
    out.write([WriteBackRow("A1", {"SerialNo": "NEW", "Model": "M"})])
    assert path.read_bytes().decode("utf-8") == (
        "InventoryNo,Note,SerialNo,Model\r\nA1,keep me,NEW,M\r\n"
    )


def test_write_back_refuses_a_file_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "to-erp.csv").write_text("Something;Else\n1;2\n", encoding="utf-8")
    with pytest.raises(FeedError, match="no column 'InventoryNo'"):
        target(tmp_path).current(["A1"])
    missing_dir = build_source(
        "x",
        {
            "kind": "csv",
            "path": str(tmp_path / "a.csv"),
            "key": "InventoryNo",
            "class": "server",
            "write_back": {"path": str(tmp_path / "no" / "out.csv"), "fields": {"S": "ci_id"}},
        },
        path="erp.sources.x",
    )
    with pytest.raises(FeedError, match="does not exist"):
        FileTarget(missing_dir).write([WriteBackRow("A1", {"S": "1"})])


def test_write_back_to_json(tmp_path: Path) -> None:
    out = target(tmp_path, "to-erp.json")
    out.write([WriteBackRow("A1", {"SerialNo": "FOC1"}), WriteBackRow("A2", {"Model": 42})])
    out.write([WriteBackRow("A1", {"Model": "M"})])
    document = json.loads((tmp_path / "to-erp.json").read_text(encoding="utf-8"))
    assert document == [
        {"InventoryNo": "A1", "SerialNo": "FOC1", "Model": "M"},
        {"InventoryNo": "A2", "Model": 42},
    ]
    assert out.current(["A2"]) == {"A2": {"Model": 42}}
