"""Deployment settings, read once at cold start from the environment the template sets.

A missing setting fails here, loudly, not on the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # a zipped DICOM series of a few hundred slices
DEFAULT_RESULT_TTL_DAYS = 7
UPLOAD_URL_SECONDS = 300  # the presigned POST's lifetime: 5 minutes
SHEET_URL_SECONDS = 300  # a slice sheet's presigned GET: the page loads the sheets at once


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    result_ttl_days: int = DEFAULT_RESULT_TTL_DAYS
    upload_url_seconds: int = UPLOAD_URL_SECONDS
    sheet_url_seconds: int = SHEET_URL_SECONDS
    # how long a claim on a scan holds: the inference function's timeout (a claimer older than
    # that has died, and a retry may take the scan over)
    processing_lease_seconds: int = 60
    # "off": the public flow with per-scan tokens; "jwt": hospital clients behind the JWT authorizer
    auth_mode: str = "off"
    token_url: str = ""  # the client-credentials token endpoint (jwt), for the OpenAPI document
    research_table: str = ""  # de-identified results kept for research; empty = off
    research_retention_days: int = 0

    @property
    def result_ttl_seconds(self) -> int:
        return self.result_ttl_days * 86400

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        missing = [name for name in ("BUCKET_NAME", "TABLE_NAME") if not env.get(name)]
        if missing:
            raise RuntimeError(f"missing setting(s): {', '.join(missing)}")
        return cls(
            bucket=env["BUCKET_NAME"],
            table=env["TABLE_NAME"],
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)),
            result_ttl_days=int(env.get("RESULT_TTL_DAYS", DEFAULT_RESULT_TTL_DAYS)),
            processing_lease_seconds=int(env.get("PROCESSING_LEASE_SECONDS", 60)),
            auth_mode=env.get("AUTH_MODE") or "off",
            token_url=env.get("TOKEN_URL", ""),
            research_table=env.get("RESEARCH_TABLE_NAME", ""),
            research_retention_days=int(env.get("RESEARCH_RETENTION_DAYS") or 0),
        )

    def __post_init__(self):
        if self.auth_mode not in ("off", "jwt"):
            raise RuntimeError(f"AUTH_MODE must be off or jwt, not {self.auth_mode!r}")
        if self.research_table and self.research_retention_days < 1:
            raise RuntimeError("RESEARCH_RETENTION_DAYS must be at least 1 when RESEARCH_TABLE_NAME is set")

    @property
    def auth_required(self) -> bool:
        return self.auth_mode == "jwt"

