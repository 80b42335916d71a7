"""Notification templates: Jinja2 texts per language and event, checked whole at load.

Layout, shipped in the package (``ticketing/templates/notifications``) and overridable
file by file from a configured directory of the same shape::

    <language>/<event>.txt.j2     one message: the first line "Subject: ...", then the body
    <language>/_<name>.txt.j2     a partial: {% include "en/_footer.txt.j2" %} in another

A directory's file replaces the shipped one of the same language and name; a language
only the directory has is added. An event a language lacks is sent in the default
language, which must have all of them.

Why check at load: a template that fails is found when the desk starts, named
(``notifications.templates.<language>.<event>``), not at the first ticket that would
have been notified, where a failure must not (and does not) stop ticket work. So every
template is compiled and rendered against each sample context the caller gives (a full
ticket and a bare one), and a subject line must come out; nothing is used unless all
pass.

Rendering: a sandboxed environment (templates read what the context gives them and call
nothing else), ``StrictUndefined`` (a misspelt name is an error, not an empty string) and
no autoescaping, since these are text mails. Filters: ``when`` (a time in the configured
time zone), ``duration`` (a timedelta as "2 h 15 min").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed

SUFFIX = ".txt.j2"
FIELD = "notifications.templates"
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
NAME_PATTERN = re.compile(r"^_?[a-z][a-z0-9_]*$")
SUBJECT = re.compile(r"^Subject:[ \t]*(?P<subject>.*?)\s*$")
MAX_SUBJECT = 250


@dataclass(frozen=True, slots=True)
class Rendered:
    language: str  # the language the message is in (the default one when it fell back)
    subject: str
    body: str


def shipped() -> Traversable:
    """The package's own templates."""
    return resources.files("servicegraph.ticketing").joinpath("templates", "notifications")


def _sources(root: Traversable | Path, where: str) -> dict[tuple[str, str], str]:
    """(language, name) -> source of every template under ``root``; a file or folder
    that does not fit the layout is refused naming it."""
    found: dict[tuple[str, str], str] = {}
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        if not folder.is_dir():
            raise ValidationFailed(
                f"'{folder.name}' in {where} is not a language folder (e.g. en/, de/)",
                field=FIELD,
            )
        if not LANGUAGE_PATTERN.match(folder.name):
            raise ValidationFailed(
                f"'{folder.name}' in {where} is not a language code (en, de, pt-BR ...)",
                field=f"{FIELD}.{folder.name}",
            )
        for file in sorted(folder.iterdir(), key=lambda p: p.name):
            name = file.name.removesuffix(SUFFIX)
            if not file.is_file() or not file.name.endswith(SUFFIX) or not NAME_PATTERN.match(name):
                raise ValidationFailed(
                    f"'{folder.name}/{file.name}' in {where} is not a template "
                    f"(<event>{SUFFIX}, or _<partial>{SUFFIX})",
                    field=f"{FIELD}.{folder.name}",
                )
            try:
                found[(folder.name, name)] = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValidationFailed(
                    f"cannot read {folder.name}/{file.name}: {exc}",
                    field=f"{FIELD}.{folder.name}.{name}",
                ) from exc
    return found


def _when(zone: dt.tzinfo) -> Any:
    def when(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
        if value is None:
            return ""
        return value.astimezone(zone).strftime(fmt)

    return when


def duration(value: dt.timedelta | None) -> str:
    """A duration as people read it: "45 min", "2 h 15 min", "3 d 4 h"."""
    if value is None:
        return ""
    minutes = int(abs(value.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    shown = " ".join(parts) or "0 min"
    return f"-{shown}" if value < dt.timedelta(0) else shown


class Templates:
    """The checked templates of every language; build with ``load``."""

    def __init__(
        self,
        env: jinja2.Environment,
        names: Mapping[tuple[str, str], str],
        default_language: str,
    ) -> None:
        self._env = env
        self._names = dict(names)  # (language, event) -> template name
        self.default_language = default_language
        self.languages = frozenset(lang for lang, _ in names)

    @classmethod
    def load(
        cls,
        events: Sequence[str],
        samples: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        default_language: str = "en",
        directory: Path | None = None,
        timezone: dt.tzinfo = dt.UTC,
    ) -> Templates:
        """The shipped templates overlaid with ``directory``'s, each compiled and rendered
        with every context of ``samples[event]``. Raises ValidationFailed (or
        ValidationErrors, one per failing template) naming
        ``notifications.templates.<language>.<event>``."""
        sources = _sources(shipped(), "the shipped templates")
        if directory is not None:
            if not directory.is_dir():
                raise ValidationFailed(
                    f"{directory} is not a directory", field="notifications.templates_dir"
                )
            sources.update(_sources(directory, str(directory)))
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.DictLoader(
                {f"{lang}/{name}{SUFFIX}": s for (lang, name), s in sources.items()}
            ),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["when"] = _when(timezone)
        env.filters["duration"] = duration
        known = set(events)
        errors: list[ValidationFailed] = []
        names: dict[tuple[str, str], str] = {}
        for lang, name in sorted(sources):
            field = f"{FIELD}.{lang}.{name}"
            if name.startswith("_"):
                _compile(env, lang, name, field, errors)  # checked when included, too
                continue
            if name not in known:
                errors.append(
                    ValidationFailed(
                        f"'{name}' is not an event; events: {', '.join(events)}", field=field
                    )
                )
                continue
            if _compile(env, lang, name, field, errors):
                names[(lang, name)] = f"{lang}/{name}{SUFFIX}"
        for event in events:
            if (default_language, event) not in names and not any(
                e.field == f"{FIELD}.{default_language}.{event}" for e in errors
            ):
                errors.append(
                    ValidationFailed(
                        f"the default language '{default_language}' has no template for "
                        f"'{event}' (every event falls back to it)",
                        field=f"{FIELD}.{default_language}.{event}",
                    )
                )
        templates = cls(env, names, default_language)
        for (lang, event), _ in sorted(names.items()):
            for sample in samples.get(event, ()):
                try:
                    templates.render(lang, event, sample)
                except ValidationFailed as exc:
                    # a partial's syntax error is named once, where it is, not by each includer
                    if not isinstance(exc.__cause__, jinja2.TemplateSyntaxError):
                        errors.append(exc)
                    break
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ValidationErrors(errors)
        return templates

    def has(self, language: str) -> bool:
        return language in self.languages

    def render(self, language: str, event: str, context: Mapping[str, Any]) -> Rendered:
        """The message of ``event`` in ``language`` (or in the default language when that
        one has no template for it). Raises ValidationFailed naming the template."""
        if (language, event) not in self._names:
            language = self.default_language
        name = self._names.get((language, event))
        field = f"{FIELD}.{language}.{event}"
        if name is None:
            raise ValidationFailed(f"no template for '{event}'", field=field)
        try:
            text = self._env.get_template(name).render(context)
        except jinja2.TemplateError as exc:
            raise ValidationFailed(f"does not render: {_said(exc)}", field=field) from exc
        except (TypeError, ValueError, ArithmeticError, AttributeError, LookupError) as exc:
            raise ValidationFailed(
                f"does not render: {type(exc).__name__}: {exc}", field=field
            ) from exc
        first, _, rest = text.partition("\n")
        match = SUBJECT.match(first)
        if match is None:
            raise ValidationFailed("the first line it renders must be 'Subject: ...'", field=field)
        subject = " ".join(match["subject"].split())  # never a line break in a header
        if not subject:
            raise ValidationFailed("renders an empty subject", field=field)
        if len(subject) > MAX_SUBJECT:
            subject = subject[: MAX_SUBJECT - 1] + "…"
        return Rendered(language, subject, rest.lstrip("\n"))


def _compile(
    env: jinja2.Environment, lang: str, name: str, field: str, errors: list[ValidationFailed]
) -> bool:
    try:
        env.get_template(f"{lang}/{name}{SUFFIX}")
    except jinja2.TemplateError as exc:
        errors.append(ValidationFailed(f"does not compile: {_said(exc)}", field=field))
        return False
    return True


def _said(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.name or ''} line {exc.lineno}".strip()
        return f"{where}: {exc.message}"
    return str(exc.message if exc.message else exc)
