"""Settings, from environment variables (``SERVICEGRAPH_*``) and an optional YAML file.

Precedence, strongest first: environment variables, the YAML file named by
``SERVICEGRAPH_CONFIG``, defaults. Nested values in the environment use ``__``, e.g.
``SERVICEGRAPH_PRECEDENCE__OWNER='["erp","manual"]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from servicegraph.cmdb.identifiers import DEFAULT_MATCH_ORDER
from servicegraph.cmdb.precedence import DEFAULT_PRECEDENCE

CONFIG_ENV = "SERVICEGRAPH_CONFIG"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SERVICEGRAPH_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(
        default=Path("data"), description="Where the embedded store and job state live."
    )
    store: Literal["sqlite", "neo4j"] = "sqlite"
    sqlite_path: Path | None = Field(
        default=None, description="The SQLite file; default DATA_DIR/servicegraph.sqlite3."
    )
    sqlite_lock_timeout: float = Field(
        default=120.0, gt=0, description="Seconds a writer waits for another before failing."
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    stale_after_runs: int = Field(
        default=3, ge=1, description="Complete runs a source may miss before an item is stale."
    )
    impact_max_depth: int = Field(default=32, ge=1, le=1000)
    identifier_match_order: list[str] = Field(default_factory=lambda: list(DEFAULT_MATCH_ORDER))
    precedence: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_PRECEDENCE.items()}
    )
    classes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    relationship_rules: dict[str, list[list[str]]] = Field(default_factory=dict)

    @field_validator("data_dir", "sqlite_path")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def sqlite_file(self) -> Path:
        return self.sqlite_path or self.data_dir / "servicegraph.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            path = Path(config_file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_ENV} names {path}, which is not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)
