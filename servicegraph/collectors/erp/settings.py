"""ERP settings (the ``erp:`` section of the settings file): the feeds and how the
reconciliation reports read the estate. Sources are checked by ``spec.build_sources``
when the settings load, naming the field of any error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.collectors.erp.spec import ErpSource, build_sources


class ErpSettings(BaseModel):
    # errors must not echo the input: sources may hold passwords
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Feed name -> its declaration (README: ERP sync)."
    )
    # classes discovery can see: only their CIs count as ghost assets or unregistered
    discoverable_classes: list[str] = Field(default_factory=lambda: ["network_device", "server"])
    ghost_after_days: float = Field(
        default=30, gt=0, description="An ERP asset discovery has not seen for this long."
    )

    @model_validator(mode="after")
    def _sources_valid(self) -> ErpSettings:
        try:
            build_sources(self.sources)
        except ValidationFailed as exc:
            raise ValueError(str(exc)) from None
        return self

    def built_sources(self) -> dict[str, ErpSource]:
        return build_sources(self.sources)
