"""Which camera sources the API accepts (enforced by `crowdsight.sources.policy.check_source`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class SourcePolicy(BaseModel):
    """Camera sources the API accepts (``server.sources`` in the serve config).

    Cameras listed in the serve config file itself are trusted (the file is the admin's);
    the policy applies to cameras created or changed through the API.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schemes: list[str] = Field(
        default_factory=lambda: ["rtsp", "rtsps", "http", "https"],
        description="URL schemes a camera source may use.",
    )
    media_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose files and sub-folders may be camera sources (none by "
        "default: local files are refused).",
    )
    webcams: bool = Field(default=True, description="Allow webcam indices ('0', '1', ...).")
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Host names, IP addresses or networks (CIDR) allowed even when they are "
        "loopback or link-local, e.g. '127.0.0.1' for a local RTSP relay.",
    )
    deny_hosts: list[str] = Field(
        default_factory=list,
        description="Host names, IP addresses or networks (CIDR) always refused.",
    )
