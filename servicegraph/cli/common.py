"""What every command of the CLI shares: the consoles, exit codes and common options,
opening the services, one-line failures and JSON output."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import Annotated, Any, NoReturn

import pydantic
import typer
from rich.console import Console

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.errors import CmdbError
from servicegraph.config import Settings

# emoji off: values such as the IPv6 address 2001:db8:100::1 hold emoji codes (:100:)
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFLICTS = 3

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DepthOption = Annotated[
    int | None, typer.Option("--depth", min=1, help="Follow at most this many relationships.")
]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one error line on stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def open_services(*, read_only: bool = False) -> Iterator[Services]:
    """The services, or exit 1 with one line. ``read_only`` for commands that only read:
    they then work on a data directory the user may read but not write."""
    try:
        services = bootstrap(Settings(), read_only=read_only)
    except CmdbError as exc:
        fail(str(exc))
    except pydantic.ValidationError as exc:  # one line per problem, not pydantic's report
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")
    except (ValueError, FileNotFoundError) as exc:  # invalid settings or config file
        fail(f"invalid settings: {exc}")
    try:
        yield services
    except CmdbError as exc:  # a domain error (invalid input, unknown CI, the store): one line
        fail(str(exc))
    finally:
        services.close()


def jsonable(value: Any) -> Any:
    """``value`` with dataclasses, times, durations, enums and sets made plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()  # durations in seconds (SLA clocks' targets, elapsed)
    if isinstance(value, Enum):
        return value.value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2, ensure_ascii=False) + "\n")


def parse_time(value: str | None, option: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or exit 1 naming ``option``."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: '{value}' is not an ISO 8601 time such as 2026-11-01T12:00:00Z")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def resolve(services: Services, refs: Sequence[str]) -> list[str]:
    """The CI ids that ``refs`` (ids, keys or ``kind:value``) name; an unknown one exits 1."""
    return [services.catalog.resolve(ref) for ref in refs]


def names(services: Services, ids: Iterable[str]) -> dict[str, str]:
    """CI id -> name, for the ids that name a CI."""
    return {ci_id: ci.name for ci_id, ci in services.catalog.get(ids).items()}
