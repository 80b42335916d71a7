"""The small declared transforms a field mapping applies to a raw ERP value, in order.

ERP exports spell the same fact many ways: ``" foc1234x "``, ``"1 234,56"`` (a decimal
comma and a thin space), ``"31.12.2024"``, ``"2,5 t"``. A mapping declares what to do, and
each step is a pure function of the value, so a source's mapping is checked once when the
settings load (``build_transform``) and applied per record without surprises.

Steps (YAML)::

    transforms:
      - trim                      # strip spaces at both ends and collapse inner runs
      - upper                     # or lower, title
      - {map: {Switch: network_device, Router: network_device}, default: server}
      - {date: "%d.%m.%Y"}        # or a list of formats; gives an ISO date (2024-12-31)
      - {decimal: comma}          # "1 234,56" -> 1234.56 (or "point": "1,234.56")
      - {unit: {to: kg, factors: {g: 0.001, kg: 1, t: 1000}}}   # "2,5 t" -> 2500.0
      - integer                   # "0042" -> 42
      - {split: ";"}              # a list of values (identifiers with several values)
      - {default: unknown}        # when the value is empty

An empty value (``""``, ``None``) passes every step but ``default`` untouched: it means the
ERP says nothing, and the field is left out of the observation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed

_SPACES = re.compile(r"\s+")
# spaces, no-break and thin spaces, apostrophes: the thousands separators exports write
_GROUPING = re.compile(r"[\s\u00a0\u202f']")
_NUMBER_UNIT = re.compile(r"^\s*([-+]?[\d\s\u00a0\u202f'.,]*\d)\s*([^\d\s].*)?$")


class TransformError(ValueError):
    """A value a step cannot transform; the message says what was expected."""


Step = Callable[[Any], Any]
_MISSING = object()
_MEMO_SIZE = 50_000


@dataclass(frozen=True)
class Transform:
    """A mapping's steps, applied in order; ``apply`` raises TransformError."""

    steps: tuple[Step, ...] = ()
    spec: tuple[Any, ...] = ()  # as declared, for messages and the README's examples
    # text value -> result: an export repeats its categories, cost centres and dates on
    # thousands of rows, and the steps are pure (a list result is not kept: it is mutable)
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def fills_empty(self) -> bool:
        """A step gives an empty value one (``{default: ...}``); else an empty value
        passes every step unchanged, and need not run them."""
        return any(isinstance(s, Mapping) and "default" in s and "map" not in s for s in self.spec)

    def apply(self, value: Any) -> Any:
        if not self.steps:
            return value
        if isinstance(value, str):
            found = self._memo.get(value, _MISSING)
            if found is not _MISSING:
                return found
            result = self._run(value)
            if not isinstance(result, list):
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.clear()
                self._memo[value] = result
            return result
        return self._run(value)

    def _run(self, value: Any) -> Any:
        for step in self.steps:
            value = step(value)
        return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text_step(fn: Callable[[str], str]) -> Step:
    def step(value: Any) -> Any:
        if _empty(value) or not isinstance(value, str):
            return value
        return fn(value)

    return step


def _trim(value: str) -> str:
    return _SPACES.sub(" ", value.strip())


def _map_step(table: Mapping[str, Any], default: Any, has_default: bool, fold: bool) -> Step:
    keys = {_fold(str(k), fold): v for k, v in table.items()}
    shown = ", ".join(str(k) for k in list(table)[:8]) + (" ..." if len(table) > 8 else "")

    def step(value: Any) -> Any:
        if _empty(value):
            return value
        found = keys.get(_fold(str(value).strip(), fold), _MISSING)
        if found is not _MISSING:
            return found
        if has_default:
            return default
        raise TransformError(f"'{value}' is not in the map ({shown}); add it or a default")

    return step


def _fold(text: str, fold: bool) -> str:
    return text.casefold() if fold else text


def _date_step(formats: Sequence[str]) -> Step:
    def step(value: Any) -> Any:
        if _empty(value):
            return value
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        text = str(value).strip()
        for fmt in formats:
            try:
                return dt.datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
        raise TransformError(f"'{text}' is not a date in the format {' or '.join(formats)}")

    return step


def parse_decimal(text: str, separator: str) -> float:
    """``"1 234,56"`` with ``separator="comma"`` -> 1234.56; raises TransformError."""
    cleaned = _GROUPING.sub("", text.strip())
    if separator == "comma":
        cleaned = cleaned.replace(".", "").replace(",", ".")
    else:
        cleaned = cleaned.replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        mark = "," if separator == "comma" else "."
        raise TransformError(f"'{text}' is not a number (decimal mark '{mark}')") from None


def _decimal_step(separator: str) -> Step:
    def step(value: Any) -> Any:
        if _empty(value) or isinstance(value, int | float):
            return value
        return parse_decimal(str(value), separator)

    return step


def _unit_step(to: str, factors: Mapping[str, float], separator: str) -> Step:
    folded = {k.casefold(): float(v) for k, v in factors.items()}

    def step(value: Any) -> Any:
        if _empty(value) or isinstance(value, int | float):
            return value
        text = str(value)
        m = _NUMBER_UNIT.match(text)
        if m is None:
            raise TransformError(f"'{text}' is not a quantity such as '2.5 {to}'")
        number = parse_decimal(m.group(1), separator)
        unit = (m.group(2) or to).strip().casefold()
        if unit not in folded:
            known = ", ".join(factors)
            raise TransformError(f"'{text}': unknown unit '{unit}'; known: {known}")
        return number * folded[unit]

    return step


def _integer(value: Any) -> Any:
    if _empty(value) or isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        number = float(_GROUPING.sub("", text))
    except ValueError:
        raise TransformError(f"'{text}' is not a whole number") from None
    if not number.is_integer():
        raise TransformError(f"'{text}' is not a whole number")
    return int(number)


def _split_step(separator: str) -> Step:
    def step(value: Any) -> Any:
        if _empty(value) or not isinstance(value, str):
            return value
        return [part.strip() for part in value.split(separator) if part.strip()]

    return step


def _default_step(default: Any) -> Step:
    def step(value: Any) -> Any:
        return default if _empty(value) else value

    return step


_NAMED: dict[str, Step] = {
    "trim": _text_step(_trim),
    "upper": _text_step(str.upper),
    "lower": _text_step(str.lower),
    "title": _text_step(str.title),
    "integer": _integer,
}
_KEYED = ("map", "date", "unit", "decimal", "split", "default")  # unit takes a decimal key


def build_transform(spec: Any, *, field: str) -> Transform:
    """The steps ``spec`` (a list as in the module's docstring) declares; raises
    ValidationFailed naming ``field`` (e.g. ``erp.sources.assets.fields.name.transforms[1]``)."""
    if spec is None:
        return Transform()
    if not isinstance(spec, list):
        raise ValidationFailed("must be a list of steps", field=field)
    steps = [_build_step(s, field=f"{field}[{i}]") for i, s in enumerate(spec)]
    return Transform(tuple(steps), tuple(spec))


def _build_step(spec: Any, *, field: str) -> Step:
    if isinstance(spec, str):
        step = _NAMED.get(spec)
        if step is None:
            raise ValidationFailed(
                f"unknown step '{spec}'; use {', '.join(_NAMED)} or one of "
                f"{', '.join(k + ': ...' for k in _KEYED)}",
                field=field,
            )
        return step
    if not isinstance(spec, Mapping):
        raise ValidationFailed(
            "a step is a name or a mapping such as {date: '%d.%m.%Y'}", field=field
        )
    kind = next((k for k in _KEYED if k in spec), None)
    if kind is None:
        raise ValidationFailed(f"a step mapping has one of {', '.join(_KEYED)}", field=field)
    allowed = {"map": {"map", "default", "ignore_case"}, "unit": {"unit", "decimal"}}.get(
        kind, {kind}
    )
    unknown = set(spec) - allowed
    if unknown:
        raise ValidationFailed(
            f"unknown keys {sorted(unknown)} in a {kind} step; use {', '.join(sorted(allowed))}",
            field=field,
        )
    value = spec[kind]
    if kind == "map":
        if not isinstance(value, Mapping) or not value:
            raise ValidationFailed(
                "map: give the values, e.g. {Switch: network_device}", field=field
            )
        return _map_step(
            value, spec.get("default"), "default" in spec, bool(spec.get("ignore_case", True))
        )
    if kind == "date":
        formats = [value] if isinstance(value, str) else value
        if (
            not isinstance(formats, list)
            or not formats
            or not all(isinstance(f, str) for f in formats)
        ):
            raise ValidationFailed(
                "date: a format such as '%d.%m.%Y' or a list of them", field=field
            )
        return _date_step(tuple(formats))
    if kind == "decimal":
        return _decimal_step(_separator(value, field))
    if kind == "unit":
        if not isinstance(value, Mapping) or not isinstance(value.get("to"), str):
            raise ValidationFailed("unit: {to: kg, factors: {g: 0.001, kg: 1}}", field=field)
        factors = value.get("factors") or {value["to"]: 1}
        if not isinstance(factors, Mapping) or not all(
            isinstance(f, int | float) for f in factors.values()
        ):
            raise ValidationFailed("unit.factors maps a unit to a number", field=f"{field}.factors")
        return _unit_step(value["to"], factors, _separator(spec.get("decimal", "point"), field))
    if kind == "split":
        if not isinstance(value, str) or not value:
            raise ValidationFailed("split: the separator, e.g. ';'", field=field)
        return _split_step(value)
    return _default_step(value)


def _separator(value: Any, field: str) -> str:
    if value not in ("comma", "point"):
        raise ValidationFailed("decimal: comma or point (the decimal mark)", field=field)
    return str(value)
