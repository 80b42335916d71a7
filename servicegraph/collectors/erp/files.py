"""ERP exports read from files (CSV, XLSX, JSON, or the newest export in a directory),
and write-back to an export file the ERP imports.

What ERP exports are like, and so what this module expects: 1C and friends write
Windows-1251 with ``;`` and decimal commas; hand-edited files break quoting; a row may
lose or gain a cell. A file is read as a whole and every bad row becomes a RowError naming
``file:line`` (the physical line a user's editor shows, where the record starts), while
the good rows around it are still read. Only what stops the whole file (a wrong encoding,
no header, a header naming a column twice) refuses it with one error, and a file that is
not there or cannot be opened raises FeedError.

How Python's csv module behaves on broken quoting (checked on CPython 3.11), and what
this reader does about it:

- ``strict=False`` (the default) never complains: ``"x"y`` silently becomes ``xy``, and an
  unclosed quote swallows every following line, delimiters and all, into one cell up to
  the next quote character in the file (or the end of the file).
- ``strict=True`` raises csv.Error for text after a closing quote (``';' expected after
  '"'``), for a stray ``\\r`` inside a line, and for a quote still open at the end of the
  file (``unexpected end of data``). The reader resets at every ``next()``: after an error
  it goes on with the line after the one it failed on, and the rest of that line is lost.
  An unclosed quote that meets a later quote still "succeeds" with the swallowed lines
  inside one cell.

So the reader runs in strict mode over a line source it can rewind: a record is refused
(broken quoting) when csv raises, or when it spans several lines and has the wrong number
of cells or a cell that swallowed a line holding a whole row's delimiters; either way
reading resumes at the line after the one the bad record started on, so the good rows an
unclosed quote swallowed are read after all. A quoted cell with a real line break inside
(a note) is kept: it has the header's number of cells.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fnmatch
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from servicegraph.collectors.erp.feeds import Progress, WriteBackRow
from servicegraph.collectors.erp.records import (
    FeedError,
    FeedRead,
    RowError,
    SourceRecord,
    json_type,
    list_at,
)
from servicegraph.collectors.erp.spec import ErpSource

EXPORT_KINDS = {".csv": "csv", ".xlsx": "xlsx", ".json": "json"}
DELIMITERS = (";", ",", "\t", "|")
PROGRESS_EVERY = 1000
SNIFF_LINES = 20  # data lines after the header the delimiter sniffer looks at
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_DETECT_SAMPLE = 1 << 20  # bytes the Cyrillic-or-Western guess looks at
# Windows-1251 letters: the Cyrillic alphabet at 0xC0-0xFF, yo at 0xA8 and 0xB8. Cyrillic
# words are runs of them; Western text in cp1252 has its accented letters one at a time
# between ASCII letters.
_CP1251_RUN = re.compile(rb"[\xa8\xb8\xc0-\xff]{2,}")
_ASCII = bytes(range(128))
_CODEC_NAMES = {
    "utf-8": "UTF-8",
    "utf-16": "UTF-16",
    "cp1251": "Windows-1251",
    "cp1252": "Windows-1252",
}


class _Refused(Exception):
    """The whole file is refused with one error (read() turns it into a FeedRead)."""

    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


class FileFeed:
    """A file source (``kind`` csv, xlsx, json or directory) as a Feed."""

    def __init__(self, source: ErpSource) -> None:
        if source.path is None:
            raise FeedError(f"erp.sources.{source.name}.path is not set: name the export file")
        self.source = source
        self.path = source.path

    def read(self, progress: Progress | None = None) -> FeedRead:
        path, kind = self.export()
        try:
            if kind == "xlsx":
                return _read_xlsx(
                    path,
                    sheet=self.source.option("sheet"),
                    header_row=_header_row(self.source),
                    progress=progress,
                    source=self.source,
                )
            data = _read_bytes(path, self.source)
            if kind == "json":
                records = self.source.option("records")
                if records is not None and not isinstance(records, str):
                    raise FeedError(
                        f"erp.sources.{self.source.name}.records is the dotted path of the "
                        f"list, e.g. data.items (got {records!r})"
                    )
                return _read_json(
                    path,
                    data,
                    encoding=self.source.option("encoding", "auto"),
                    records=records,
                    progress=progress,
                )
            return _read_csv(
                path,
                data,
                encoding=self.source.option("encoding", "auto"),
                delimiter=self.source.option("delimiter", "auto"),
                progress=progress,
            )
        except _Refused as refused:
            return FeedRead(records=[], errors=[refused.error], complete=False)

    def export(self) -> tuple[Path, str]:
        """The file to read and its kind: the declared file, or a directory's newest export."""
        if self.source.kind != "directory":
            return self.path, self.source.kind
        found = newest_export(self.path, self.source.option("pattern") or "*")
        return found, EXPORT_KINDS[found.suffix.lower()]


def newest_export(directory: Path, pattern: str = "*") -> Path:
    """The newest file (by modification time, then name) in ``directory`` matching
    ``pattern`` among .csv, .xlsx and .json; raises FeedError when there is none."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        raise FeedError(
            f"the export directory {directory} does not exist: create it or fix the source's path"
        ) from None
    except NotADirectoryError:
        raise FeedError(f"{directory} is not a directory: a directory source names one") from None
    except OSError as exc:
        raise FeedError(f"cannot list {directory}: {exc.strerror}") from None
    candidates: list[tuple[float, str, Path]] = []
    for entry in entries:
        name = entry.name
        # Excel's lock files (~$x.xlsx) and hidden or temporary files are not exports
        if name.startswith(("~$", ".")) or Path(name).suffix.lower() not in EXPORT_KINDS:
            continue
        if not fnmatch.fnmatch(name, pattern):
            continue
        try:
            if not entry.is_file():
                continue
            mtime = entry.stat().st_mtime
        except OSError:
            continue  # removed while we looked
        candidates.append((mtime, name, Path(entry.path)))
    if not candidates:
        raise FeedError(f"no export in {directory} matching {pattern} yet")
    return max(candidates)[2]


def _read_bytes(path: Path, source: ErpSource | None = None) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _file_error(path, exc, source) from None


def _file_error(path: Path, exc: OSError, source: ErpSource | None = None) -> FeedError:
    """An export that cannot be opened, as one line saying what to do."""
    if isinstance(exc, FileNotFoundError):
        where = f" (erp.sources.{source.name}.path)" if source is not None else ""
        return FeedError(f"{path} does not exist{where}: check the path or run the ERP's export")
    if isinstance(exc, IsADirectoryError):
        return FeedError(f"{path} is a directory: name the export file, or use kind: directory")
    if isinstance(exc, PermissionError):
        return FeedError(f"cannot read {path}: permission denied; let this service's user read it")
    return FeedError(f"cannot read {path}: {exc.strerror or exc}")


def _header_row(source: ErpSource) -> int:
    row = source.option("header_row", 1)
    if not isinstance(row, int) or isinstance(row, bool) or row < 1:
        raise FeedError(
            f"erp.sources.{source.name}.header_row is a row number, 1 or more (got {row!r})"
        )
    return row


# --- encodings ------------------------------------------------------------------------


def detect_encoding(data: bytes) -> str:
    """The codec an export is most likely in: a BOM's, UTF-8 when it decodes, else
    Windows-1251 for Cyrillic-looking bytes (what 1C writes), else Windows-1252."""
    if data.startswith(_UTF8_BOM):
        return "utf-8"  # the BOM is dropped after decoding
    if data.startswith(_UTF16_BOMS):
        return "utf-16"  # Excel's "Unicode text"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    sample = data[:_DETECT_SAMPLE]
    high = len(sample.translate(None, _ASCII))
    in_runs = sum(len(run) for run in _CP1251_RUN.findall(sample))
    return "cp1251" if high and in_runs * 2 > high else "cp1252"


def _codec(name: str) -> str:
    import codecs

    canonical = codecs.lookup(name).name
    return {"utf-8-sig": "utf-8", "windows-1251": "cp1251", "windows-1252": "cp1252"}.get(
        canonical, canonical
    )


def _decode(path: Path, data: bytes, encoding: str) -> tuple[str, tuple[str, ...]]:
    """The file's text and what a user should know about how it was read; raises _Refused
    naming the line and column of the first byte that is not in the codec."""
    notes: tuple[str, ...] = ()
    if encoding == "auto" and not data.startswith(_UTF16_BOMS):
        try:  # most exports are UTF-8: decoded once, not once to detect and once to read
            return data.decode("utf-8").removeprefix("\ufeff"), notes
        except UnicodeDecodeError:
            pass
    if encoding == "auto":
        codec = detect_encoding(data)
        notes = (f"read as {_CODEC_NAMES.get(codec, codec).lower()} (detected)",)
    else:
        codec = _codec(encoding)
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise _Refused(_decode_error(path, data, codec, exc, declared=encoding != "auto")) from None
    if encoding != "auto" and codec not in ("utf-8", "utf-16") and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            notes = (
                f"read as {encoding} (declared), but the file is valid UTF-8: if names look "
                "garbled, set encoding: utf-8 or auto",
            )
    return text.removeprefix("\ufeff"), notes


def _decode_error(
    path: Path, data: bytes, codec: str, exc: UnicodeDecodeError, *, declared: bool
) -> RowError:
    line = data.count(b"\n", 0, exc.start) + 1
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode(codec, errors="replace")) + 1
    shown = _CODEC_NAMES.get(codec, codec)
    where = f"byte 0x{data[exc.start]:02X} at line {line}, column {column}"
    if declared:
        guess = detect_encoding(data)
        if guess != codec:
            advice = (
                f"the file looks like {_CODEC_NAMES.get(guess, guess)}: "
                f"set encoding: {guess} or auto"
            )
        else:
            advice = "set encoding: to the codec the ERP writes (e.g. cp1251, cp1252), or auto"
        message = f"cannot be read as {shown} ({where}): {advice}"
    else:
        message = (
            f"is neither UTF-8 nor {shown} ({where}): set encoding: to the codec the ERP "
            "writes (e.g. cp866, koi8-r, latin-1)"
        )
    return RowError(f"{path}:{line}", None, message)


# --- CSV --------------------------------------------------------------------------------


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter among ``; , tab |`` that gives the header the most columns while the
    data lines after it agree; counted outside quotes, line by line (so an unclosed quote
    spoils one line, not the guess). csv.Sniffer guesses wrong on decimal commas."""
    counts: list[dict[str, int]] = []
    for line in lines:
        if not line.strip():
            continue
        found = dict.fromkeys(DELIMITERS, 0)
        quoted = False
        for char in line:
            if char == '"':
                quoted = not quoted
            elif not quoted and char in found:
                found[char] += 1
        counts.append(found)
        if len(counts) > SNIFF_LINES:
            break
    if not counts:
        return ";"
    header, rest = counts[0], counts[1:]
    candidates = [d for d in DELIMITERS if header[d] > 0]
    if not candidates:  # one column: the delimiter its cells hold least
        return min(DELIMITERS, key=lambda d: sum(r[d] for r in rest))

    def score(d: str) -> tuple[bool, int, float]:
        agree = sum(r[d] == header[d] for r in rest) / len(rest) if rest else 1.0
        return (agree >= 0.8, header[d], agree)

    return max(candidates, key=score)


class _Lines:
    """The file's physical lines as the csv reader pulls them, rewindable: ``pos`` is the
    number of lines handed out, so a record starts on line ``pos + 1`` (1-based)."""

    __slots__ = ("lines", "pos")

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.pos = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        pos = self.pos
        if pos >= len(self.lines):
            raise StopIteration
        self.pos = pos + 1
        return self.lines[pos]


def _csv_message(exc: csv.Error, *, runs_to: int | None) -> str:
    text = str(exc)
    if "unexpected end of data" in text or "field larger than field limit" in text:
        return "broken quoting: a quote opened on this line is never closed"
    if runs_to:
        return (
            "broken quoting: a quote opened on this line is not closed on it (the cell runs "
            f'to line {runs_to}); close it, or write a quote inside a quoted cell twice ("")'
        )
    if "expected after" in text:
        return (
            "broken quoting: text follows a closing quote; a quote inside a quoted cell is "
            'written twice ("")'
        )
    if "new-line character" in text:
        return "a carriage return (\\r) inside the line: remove it or quote the cell"
    return f"cannot be read: {text}"


def _read_csv(
    path: Path,
    data: bytes,
    *,
    encoding: str = "auto",
    delimiter: str = "auto",
    progress: Progress | None = None,
) -> FeedRead:
    """Every row of a CSV export as a record; raises _Refused for a file-wide problem
    and FeedError for a file that cannot be opened."""
    text, notes = _decode(path, data, encoding)
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")  # classic Mac line ends
    lines = io.StringIO(text).readlines()
    if delimiter == "auto":
        # not a note: a wrong guess shows in every row's error, which names the delimiter
        delimiter = sniff_delimiter(lines[: SNIFF_LINES * 3])
    source = _Lines(lines)
    reader = csv.reader(
        source, delimiter=delimiter, quotechar='"', strict=True, skipinitialspace=True
    )
    # the header: the first line that is not blank
    header: list[str] | None = None
    header_line = 0
    while header is None:
        start = source.pos
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _Refused(
                RowError(
                    f"{path}:{start + 1}",
                    None,
                    f"the header line cannot be read: {_csv_message(exc, runs_to=None)}",
                )
            ) from None
        if source.pos > start + 1:
            raise _Refused(
                RowError(
                    f"{path}:{start + 1}",
                    None,
                    f"the header line cannot be read: a quote opened on it runs to line "
                    f"{source.pos}",
                )
            )
        if any(cell.strip() for cell in row):
            header, header_line = [cell.strip() for cell in row], start + 1
    if header is None:
        raise _Refused(
            RowError(str(path), None, "empty file: the first line must name the columns")
        )
    names, keep, notes = _columns(path, header, header_line, notes)
    width = len(header)
    # rows may leave out unnamed trailing columns (a header written with a trailing ';')
    shortest = keep[-1] + 1 if keep else width
    every = keep == list(range(width))
    total = sum(1 for line in lines[header_line:] if not line.isspace())
    records: list[SourceRecord] = []
    errors: list[RowError] = []
    prefix = f"{path}:"
    while True:
        start = source.pos
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = source.pos
            row_or_none = _retry_line(lines[start], delimiter) if end == start + 1 else None
            if row_or_none is None:
                message = _csv_message(exc, runs_to=end if end > start + 1 else None)
                errors.append(RowError(f"{prefix}{start + 1}", None, message))
                source.pos = start + 1  # what an unclosed quote swallowed is read again
                continue
            row = row_or_none
        end = source.pos
        if not row:
            continue  # a blank line
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue  # ';;;;': nothing on the line
        count = len(cells)
        if end > start + 1 and (count != width or _swallowed(cells, delimiter, width)):
            errors.append(
                RowError(
                    f"{prefix}{start + 1}",
                    None,
                    f"broken quoting: a quote opened on this line runs to line {end}; close "
                    'it, or write a quote inside a quoted cell twice ("")',
                )
            )
            source.pos = start + 1
            continue
        if count != width and not shortest <= count < width:
            errors.append(
                RowError(
                    f"{prefix}{start + 1}",
                    None,
                    f"has {count} cells, the header has {width} columns: a missing or extra "
                    f"'{_shown(delimiter)}' (or an unquoted one inside a cell)",
                )
            )
            continue
        if every:
            fields = dict(zip(names, cells, strict=False))
        else:
            fields = {names[i]: cells[i] for i in keep if i < count}
        records.append(SourceRecord(f"{prefix}{start + 1}", fields))
        if progress is not None and len(records) % PROGRESS_EVERY == 0:
            progress(len(records) + len(errors), total)
    if progress is not None:
        done = len(records) + len(errors)
        progress(done, done)
    return FeedRead(records=records, errors=errors, notes=notes)


def _columns(
    path: Path, header: list[str], line: int, notes: tuple[str, ...]
) -> tuple[list[str], list[int], tuple[str, ...]]:
    """The header's names, the indexes of the named columns, and a note for unnamed ones;
    raises _Refused for a name given twice."""
    first: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        if name in first:
            raise _Refused(
                RowError(
                    f"{path}:{line}",
                    None,
                    f"the header names '{name}' twice (columns {first[name] + 1} and "
                    f"{index + 1}): every column needs its own name",
                )
            )
        first[name] = index
    if not first:
        raise _Refused(RowError(f"{path}:{line}", None, "the header line names no columns"))
    keep = sorted(first.values())
    unnamed = [i + 1 for i in range(keep[-1]) if not header[i]]
    if unnamed:
        shown = ", ".join(str(i) for i in unnamed)
        notes = (*notes, f"column(s) {shown} have no name in the header: their cells are ignored")
    return header, keep, notes


def _retry_line(line: str, delimiter: str) -> list[str] | None:
    """The line read again without the spaces a hand-aligned file puts after a closing
    quote (``"Switch"  ;``, which strict csv refuses), or None when that is not what was
    wrong."""
    spaces = "[ ]+" if delimiter == "\t" else "[ \t]+"
    after_quote = re.compile(rf'"{spaces}(?={re.escape(delimiter)}|\r?\n|$)')
    fixed = after_quote.sub('"', line)
    if fixed == line:
        return None
    try:
        return next(
            csv.reader([fixed], delimiter=delimiter, strict=True, skipinitialspace=True), None
        )
    except csv.Error:
        return None


def _swallowed(cells: list[str], delimiter: str, width: int) -> bool:
    """A multi-line cell holding a line with a whole row's delimiters: an unclosed quote
    that happened to meet a later one, not a note with a line break."""
    enough = max(width - 1, 2)
    for cell in cells:
        if "\n" in cell:
            for line in cell.split("\n")[1:]:
                if line.count(delimiter) >= enough:
                    return True
    return False


def _shown(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


# --- XLSX -------------------------------------------------------------------------------


def _read_xlsx(
    path: Path,
    *,
    sheet: str | None = None,
    header_row: int = 1,
    progress: Progress | None = None,
    source: ErpSource | None = None,
) -> FeedRead:
    """Every row below the header row of one sheet (default the first) as a record: dates
    as datetime.date (datetime when it has a time), numbers as int or float, the rest text."""
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FeedError(
            f"{path} is not an XLSX workbook ({exc}): export it again as .xlsx"
        ) from None
    except OSError as exc:
        raise _file_error(path, exc, source) from None
    try:
        if sheet is None:
            if not workbook.worksheets:
                raise FeedError(f"{path} has no sheets")
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise FeedError(
                f"{path} has no sheet '{sheet}'; its sheets are "
                f"{', '.join(repr(s) for s in workbook.sheetnames)}: fix the source's sheet"
            )
        max_row = getattr(worksheet, "max_row", None)
        total = max_row - header_row if isinstance(max_row, int) and max_row > header_row else None
        rows = worksheet.iter_rows(min_row=header_row, values_only=True)
        header_cells = next(rows, None)
        header = [_cell_text(v) for v in header_cells or ()]
        if not any(header):
            raise _Refused(
                RowError(
                    f"{path}:{header_row}",
                    None,
                    f"row {header_row} is empty: the header row must name the columns "
                    "(set header_row when they are lower)",
                )
            )
        first: dict[str, int] = {}
        for index, name in enumerate(header):
            if not name:
                continue
            if name in first:
                raise _Refused(
                    RowError(
                        f"{path}:{header_row}",
                        None,
                        f"the header names '{name}' twice (columns "
                        f"{get_column_letter(first[name] + 1)} and {get_column_letter(index + 1)})"
                        ": every column needs its own name",
                    )
                )
            first[name] = index
        columns = [(i, name) for name, i in first.items()]
        width = len(header)
        unnamed = [i for i, name in enumerate(header) if not name]
        records: list[SourceRecord] = []
        unheaded: set[int] = set()
        # read-only sheets pad missing rows with empty ones, so the count is the row number
        for number, values in enumerate(rows, start=header_row + 1):
            cells = [_cell(v) for v in values]
            if all(c == "" for c in cells):
                continue
            fields = {name: cells[i] if i < len(cells) else "" for i, name in columns}
            if len(cells) > width:
                unheaded.update(i for i in range(width, len(cells)) if cells[i] != "")
            unheaded.update(i for i in unnamed if i < len(cells) and cells[i] != "")
            records.append(SourceRecord(f"{path}:{number}", fields))
            if progress is not None and len(records) % PROGRESS_EVERY == 0:
                progress(len(records), total)
    finally:
        workbook.close()
    notes: tuple[str, ...] = ()
    if unheaded:
        letters = ", ".join(get_column_letter(i + 1) for i in sorted(unheaded))
        notes = (f"column(s) {letters} have values but no header: ignored",)
    if progress is not None:
        progress(len(records), len(records))
    return FeedRead(records=records, errors=[], notes=notes)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()  # TRUE / FALSE, as Excel shows them
    if isinstance(value, dt.datetime):
        # Excel stores a date as a datetime at midnight
        return value.date() if value.time() == dt.time() else value
    if isinstance(value, int | float | dt.date):
        return value
    return str(value).strip()


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value).strip()


# --- JSON -------------------------------------------------------------------------------


def _read_json(
    path: Path,
    data: bytes,
    *,
    encoding: str = "auto",
    records: str | None = None,
    progress: Progress | None = None,
) -> FeedRead:
    """Each object of the document's list (or of the list ``records`` names, dotted:
    ``data.items``) as a record; raises _Refused for a file-wide problem."""
    text, notes = _decode(path, data, encoding)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(
            RowError(
                f"{path}:{exc.lineno}",
                None,
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            )
        ) from None
    items = _json_list(path, document, records)
    result: list[SourceRecord] = []
    errors: list[RowError] = []
    total = len(items)
    for index, item in enumerate(items):
        origin = f"{path}: records[{index}]"
        if isinstance(item, Mapping):
            result.append(SourceRecord(origin, item))
        else:
            errors.append(
                RowError(origin, None, f"is {json_type(item)}, not an object of named fields")
            )
        if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
            progress(index + 1, total)
    if progress is not None:
        progress(total, total)
    return FeedRead(records=result, errors=errors, notes=notes)


def _json_list(path: Path, document: Any, records: str | None) -> list[Any]:
    if records:
        try:
            return list_at(document, records, top="the document")
        except ValueError as exc:
            message = (
                f"records: '{records}' {exc}"
                if str(exc).startswith("is ")
                else f"records: '{records}': {exc}"
            )
            raise _Refused(RowError(str(path), None, message)) from None
    if isinstance(document, list):
        return document
    if isinstance(document, Mapping):
        lists = sorted(str(k) for k, v in document.items() if isinstance(v, list))
        hint = f" (its lists: {', '.join(lists)})" if lists else ""
        raise _Refused(
            RowError(
                str(path),
                None,
                f"the document is an object: set records: to the path of the list{hint}",
            )
        )
    raise _Refused(RowError(str(path), None, f"the document is {json_type(document)}, not a list"))


# --- write-back -------------------------------------------------------------------------


class FileTarget:
    """Write-back to an export file the ERP imports: ``write_back.path``, a CSV (or JSON
    when it ends in .json) with the source's key column and one column per write-back
    field. Each write merges into what the file holds and replaces it atomically, so the
    ERP's import never sees half a file."""

    def __init__(self, source: ErpSource) -> None:
        write_back = source.write_back
        if write_back is None or write_back.path is None:
            raise FeedError(
                f"erp.sources.{source.name}.write_back.path is not set: name the file the "
                "ERP imports"
            )
        self.source = source
        self.path = write_back.path
        self.key_column = source.key.source
        self.fields = list(write_back.fields)
        self.json = self.path.suffix.lower() == ".json"
        declared = source.option("delimiter", "auto")
        self.delimiter = declared if isinstance(declared, str) and declared != "auto" else ";"

    def current(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = set(keys)
        _, table = self._load()
        return {
            key: {f: v for f, v in values.items() if f in self.fields and v not in (None, "")}
            for key, values in table.items()
            if key in wanted
        }

    def write(self, rows: Sequence[WriteBackRow]) -> int:
        if not rows:
            return 0
        columns, table = self._load()
        for name in (self.key_column, *self.fields):
            if name not in columns:
                columns.append(name)
        for row in rows:
            merged = table.setdefault(row.key, {})
            merged.update(row.values)
            for name in row.values:
                if name not in columns:
                    columns.append(name)
        ordered = [{self.key_column: key, **values} for key, values in table.items()]
        data = self._render_json(ordered) if self.json else self._render_csv(columns, ordered)
        write_atomically(self.path, data)
        return len(rows)

    def _load(self) -> tuple[list[str], dict[str, dict[str, Any]]]:
        """The file's columns and its rows by key (empty when it is not there yet)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], {}
        except OSError as exc:
            raise FeedError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise FeedError(
                f"{self.path} is not UTF-8: it is written by this service; move it away and "
                "run write-back again"
            ) from None
        if not text.strip():
            return [], {}
        return self._parse_json(text) if self.json else self._parse_csv(text)

    def _parse_csv(self, text: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        except csv.Error as exc:
            raise FeedError(f"{self.path} cannot be read as CSV ({exc}): move it away") from None
        header = [cell.strip() for cell in rows[0]] if rows else []
        if self.key_column not in header:
            raise FeedError(
                f"{self.path} has no column '{self.key_column}' (it has {', '.join(header)}): "
                "it is not this source's write-back file; fix write_back.path"
            )
        at = header.index(self.key_column)
        table: dict[str, dict[str, Any]] = {}
        for row in rows[1:]:
            if at >= len(row) or not row[at].strip():
                continue
            values = dict(zip(header, row, strict=False))
            key = values.pop(self.key_column).strip()
            table[key] = values
        return header, table

    def _parse_json(self, text: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedError(
                f"{self.path} is not valid JSON ({exc.msg}, line {exc.lineno}): move it away"
            ) from None
        if not isinstance(document, list):
            raise FeedError(f"{self.path} is not a list of records: move it away")
        columns: list[str] = [self.key_column]
        table: dict[str, dict[str, Any]] = {}
        for item in document:
            if not isinstance(item, Mapping) or item.get(self.key_column) in (None, ""):
                continue
            values = dict(item)
            key = str(values.pop(self.key_column)).strip()
            table[key] = values
            columns.extend(c for c in values if c not in columns)
        return columns, table

    def _render_csv(self, columns: list[str], rows: list[dict[str, Any]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(row.get(c)) for c in columns])
        return out.getvalue().encode("utf-8")

    @staticmethod
    def _render_json(rows: list[dict[str, Any]]) -> bytes:
        return (json.dumps(rows, ensure_ascii=False, indent=2, default=_text) + "\n").encode()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: a temporary file in the same directory,
    flushed to disk, then renamed over it (a reader sees the old file or the new one,
    never a part); raises FeedError when the directory cannot be written."""
    directory = path.parent
    if not directory.is_dir():
        raise FeedError(
            f"the directory {directory} does not exist: create it or fix write_back.path"
        )
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise FeedError(f"cannot write in {directory}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private; the ERP's import may run as another user
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        _remove(temporary)
        raise FeedError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(temporary)
        raise
    try:  # the rename itself survives a power cut once the directory is on disk
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
