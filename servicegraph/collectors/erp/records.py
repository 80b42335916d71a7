"""What every ERP feed yields: records of named fields, each with where it came from, and
the per-row errors of those that cannot be read or mapped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One asset as the feed gives it: field name -> raw value (text from a file, JSON
    values from HTTP and RPC)."""

    origin: str  # "file:line", "url#index" or "account.asset/42": what an error names
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one record was refused; nothing of it is written."""

    origin: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}: field '{self.field}'" if self.field else self.origin
        return f"{where}: {self.message}"


class FeedError(Exception):
    """The feed as a whole cannot be read (an unreachable ERP, a wrong password, a file
    that is not there): one line saying what to do; nothing is written."""


@dataclass(frozen=True)
class FeedRead:
    """Everything one read of a feed gave."""

    records: list[SourceRecord]
    errors: list[RowError]
    # the feed listed every asset it has (False when it was cut short or paged partially)
    complete: bool = True
    # what the reader decided that a user should know ("read as windows-1251 (detected)")
    notes: tuple[str, ...] = ()


def json_type(value: Any) -> str:
    """What a JSON value is, for a message: "a string", "a list", "null" ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def list_at(document: Any, path: str, *, top: str) -> list[Any]:
    """The list at the dotted ``path`` (``data.items``) of a JSON document; raises
    ValueError saying where the path ends or what it found instead (``top`` names the
    document in the message: "the document", "the body")."""
    value = document
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            at = ".".join(walked) or top
            keys = (
                f"; its keys are {', '.join(sorted(map(str, value)))}"
                if isinstance(value, Mapping)
                else f" ({json_type(value)})"
            )
            raise ValueError(f"{at} has no '{part}'{keys}")
        value = value[part]
        walked.append(part)
    if not isinstance(value, list):
        raise ValueError(f"is {json_type(value)}, not a list")
    return value
