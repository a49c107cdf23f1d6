"""The server's own knobs (allowed folders, URLs, transport, ...), added to the core `ser_tool.Settings`.

Read once, in the entry point (`ServerSettings.from_args`: flags + SER_* environment), and turned into
the explicit objects the server is built from: backend specs, analysis options (the core's) and a
sandbox policy.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from ser_tool import AnalysisOptions, BackendSpec, ConfigError
from ser_tool.settings import BACKENDS, MiB, Settings

from mcp_server.sandbox import SandboxPolicy


class ServerSettings(Settings):
    """`ser` settings plus the MCP server's, all with the SER_ prefix (e.g. SER_ALLOWED_DIRS)."""

    allowed_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=f"Folders whose files the tools may read, separated by '{os.pathsep}'. None: reading files is off.",
    )
    allow_hardlinks: bool = Field(
        False, description="Let the tools read files that have more than one name (hard links): another name may lie "
                           "outside the allowed folders. Off: such files are refused.")
    allow_urls: bool = Field(False, description="Let the tools download audio from http(s) URLs.")
    url_allow_private: bool = Field(False, description="Let URLs point at loopback, private or link-local addresses.")
    url_timeout: float = Field(30.0, gt=0, description="Seconds one URL download may take in all.")
    max_download_mb: float = Field(100.0, gt=0, description="Largest download accepted, MiB.")
    max_inline_mb: float = Field(10.0, gt=0, description="Largest audio_base64 payload accepted (decoded), MiB.")
    max_batch_files: int = Field(50, ge=1, description="Most files one batch call analyses.")
    max_concurrent: int = Field(4, ge=1, description="Analyses that run at once; further calls wait their turn.")
    call_timeout: float = Field(
        600.0, ge=0, description="Seconds one tool call's analysis may take (a batch: all its files); 0: no limit.",
    )
    extra_backends: str | None = Field(
        None, description="More backends a caller may pick, comma-separated NAME or NAME=MODEL (e.g. 'meralion,hf=/models/x')."
    )
    warm_up: bool = Field(True, description="Load the model in the background right after start (else on the first call).")
    transport: Literal["stdio", "http"] = Field("stdio", description="stdio (for desktop clients) or streamable HTTP.")
    host: str = Field("127.0.0.1", description="HTTP transport: address to bind.")
    port: int = Field(8765, ge=1, le=65535, description="HTTP transport: port.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level (stderr).")

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, v):
        if isinstance(v, str):
            return [p.strip() for p in v.split(os.pathsep) if p.strip()]
        return v

    @field_validator("allowed_dirs")
    @classmethod
    def _absolute_dirs(cls, v: list[Path]) -> list[Path]:
        return [Path(os.path.abspath(p.expanduser())) for p in v]

    def backend_specs(self) -> dict[str, BackendSpec]:
        """The configured backends by name; the first is the default. Extra backends share the main
        one's device, offline, label-map, remote-code and thread settings."""
        main = self.backend_spec()
        specs = {main.name: main}
        for item in filter(None, (x.strip() for x in (self.extra_backends or "").split(","))):
            name, _, model = (s.strip() for s in item.partition("="))
            if name not in BACKENDS:
                raise ConfigError(f"extra backend {item!r}: unknown backend {name!r}; use {', '.join(BACKENDS)} (NAME or NAME=MODEL)")
            if name in specs:
                raise ConfigError(f"backend {name!r} is configured twice; one model per backend name")
            specs[name] = dataclasses.replace(main, name=name, model=model or None)
        return specs

    def analysis_options(self) -> AnalysisOptions:
        """The core options plus this server's per-call time limit."""
        return dataclasses.replace(super().analysis_options(), time_limit=self.call_timeout or None)

    def sandbox_policy(self) -> SandboxPolicy:
        return SandboxPolicy(
            allowed_dirs=tuple(self.allowed_dirs),
            max_file_bytes=int(self.max_file_mb * MiB),
            max_inline_bytes=int(self.max_inline_mb * MiB),
            allow_urls=self.allow_urls,
            url_allow_private=self.url_allow_private,
            url_timeout=self.url_timeout,
            max_download_bytes=int(self.max_download_mb * MiB),
            max_batch_files=self.max_batch_files,
            allow_hardlinks=self.allow_hardlinks,
        )
