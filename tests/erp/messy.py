"""A realistic messy ERP export for the file feed's tests: what a 1C fixed-asset register
looks like when it reaches us (Windows-1251, ``;``, CRLF, dd.mm.yyyy dates, decimal commas
with no-break spaces, quoted names holding ``;`` and doubled quotes, a note-like name with
a line break, blank lines), with bad rows of every kind a user makes, at known lines."""

from __future__ import annotations

import random
from pathlib import Path

COLUMNS = (
    "InventoryNo",
    "SerialNo",
    "Name",
    "Category",
    "CostCenter",
    "Responsible",
    "PurchaseDate",
    "Value",
)
BAD_KINDS = (
    "broken_quoting",
    "missing_serial",
    "duplicate_inventory",
    "bad_date",
    "bad_value",
)
BAD_RATE = 0.025  # share of data rows that are bad, ~2-3% as in real exports

_MODELS = {
    "Коммутатор": ("Cisco Catalyst 2960-X", "Huawei S5720-28X", "Eltex MES2324"),
    "Маршрутизатор": ("Cisco ISR 4331", "MikroTik CCR1036", "Huawei AR2220"),
    "Сервер": ("HP ProLiant DL380 Gen10", "Dell PowerEdge R740", "Huawei FusionServer 2288H"),
    "ИБП": ("APC Smart-UPS 1500", "Eaton 9SX 3000", "Powercom SPT-1000"),
    "Ноутбук": ("Lenovo ThinkPad T14", "HP EliteBook 840"),
    "Принтер": ("Kyocera ECOSYS M2540dn", "HP LaserJet Pro M404"),
}
_SURNAMES = ("Иванов", "Петрова", "Сидоров", "Кузнецова", "Смирнов", "Попов", "Васильева")
_INITIALS = "АБВГДЕИКЛМНОПРСТ"
_BAD_DATES = ("31.02.2023", "2023/13/45", "вчера")
_BAD_VALUES = ("н/д", "12,34,56", "abc", "1\u041e0,00")  # a Cyrillic O for a zero
_NBSP = "\u00a0"


def write_messy_export(path: Path, rows: int = 10_000, seed: int = 7) -> dict[str, list[int]]:
    """Write ``rows`` data rows to ``path``; returns, per kind of bad row (BAD_KINDS), the
    physical line numbers (1-based, the header is line 1) of the rows of that kind.

    Each bad row is bad in one way only, and a duplicate repeats the inventory number of
    an earlier clean row, so a reader and a mapping should report exactly these lines. A
    missing serial is only "bad" to a mapping that requires one."""
    rng = random.Random(seed)
    lines = [";".join(COLUMNS)]
    bad: dict[str, list[int]] = {kind: [] for kind in BAD_KINDS}
    clean_numbers: list[str] = []
    line = 1
    for index in range(rows):
        if rng.random() < 0.0005:  # an empty line a user left when editing
            lines.append("")
            line += 1
        kind = rng.choice(BAD_KINDS) if index >= 20 and rng.random() < BAD_RATE else None
        number = f"БП-{index + 1:06d}"
        category = rng.choice(tuple(_MODELS))
        model = rng.choice(_MODELS[category])
        serial = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(11))
        name = f"{category} {model}"
        cost_centre = f"ЦФО-{rng.randint(1, 40):02d}"
        person = f"{rng.choice(_SURNAMES)} {rng.choice(_INITIALS)}.{rng.choice(_INITIALS)}."
        date = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(2012, 2024)}"
        value = _money(rng)
        name_cell = _name_cell(rng, name) if kind is None else name
        if kind == "broken_quoting":
            # a quote opened and never closed, or text after the closing quote
            name_cell = f'"{name}' if rng.random() < 0.5 else f'"{category}" {model}'
        elif kind == "missing_serial":
            serial = ""
        elif kind == "duplicate_inventory":
            number = rng.choice(clean_numbers)
        elif kind == "bad_date":
            date = rng.choice(_BAD_DATES)
        elif kind == "bad_value":
            value = rng.choice(_BAD_VALUES)
        cells = [number, serial, name_cell, category, cost_centre, person, date, value]
        lines.append(";".join(cells))
        line += 1
        if kind is None:
            clean_numbers.append(number)
        else:
            bad[kind].append(line)
        line += name_cell.count("\n")
    lines.append("")  # the export ends with a line break
    path.write_bytes("\r\n".join(lines).encode("cp1251"))
    return bad


def _money(rng: random.Random) -> str:
    amount = rng.randint(1_500, 2_500_000)
    whole, cents = divmod(amount * 100 + rng.randint(0, 99), 100)
    text = f"{whole:,}".replace(",", _NBSP) if rng.random() < 0.5 else str(whole)
    return f"{text},{cents:02d}"


def _name_cell(rng: random.Random, name: str) -> str:
    """Most names as they are; some quoted as 1C quotes them."""
    roll = rng.random()
    if roll < 0.03:
        return f'"{name}; стойка {rng.randint(1, 9)}"'  # a ';' inside a quoted cell
    if roll < 0.05:
        return f'"{name} ""основной"""'  # doubled quotes inside a quoted cell
    if roll < 0.051:
        # a line break inside a quoted cell
        return f'"{name}\r\nстойка {rng.randint(1, 3)}"'  # noqa: RUF001 (Cyrillic on purpose)
    return name
