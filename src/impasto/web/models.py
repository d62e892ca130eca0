"""Shapes of the API's JSON answers, for the OpenAPI schema and its clients."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """Every error answer: one sentence a person can act on."""

    detail: str = Field(examples=["size: this server allows at most 1024 pixels, got 4096"])


class JobStatus(BaseModel):
    id: str
    kind: str = Field(description="what the job makes: stylize (an image) or video")
    state: Literal["queued", "running", "done", "cancelled", "failed", "interrupted"] = Field(
        description="interrupted: stopped by a shutdown of the server (see resumable)"
    )
    position: int | None = Field(description="place in the queue (1 = next); null unless queued")
    iteration: int = Field(description="iteration of the run (of a video: of the current frame)")
    iterations: int
    frame: int | None = Field(
        description="a video job: the frame being painted, from 1 (frame k of frames)"
    )
    frames: int | None = Field(description="a video job: frames to paint")
    frames_done: int | None = Field(description="a video job: frames painted and kept")
    losses: dict[str, float | None] | None = Field(
        description="latest loss terms: content, style, tv and total"
    )
    best_total: float | None
    elapsed: float | None = Field(description="seconds spent optimising so far")
    eta: float | None = Field(description="estimated seconds until the last iteration")
    created: float = Field(description="Unix time")
    started: float | None
    finished: float | None
    error: str | None = Field(description="why a failed job failed")
    note: str | None = Field(description="something worth knowing about a finished job")
    scale: int | None = Field(description="current scale of a multi-scale run (0 = coarsest)")
    scales: int | None = Field(description="number of scales of the run")
    scale_size: list[int] | None = Field(description="[width, height] being optimised now")
    preview_version: int = Field(description="changes whenever a new preview image is ready")
    has_result: bool
    result_type: str = Field(description="media type of the result: image/png or video/mp4")
    resumable: bool = Field(description="interrupted with its state saved: POST .../resume")
    cancel_requested: bool
    settings: dict[str, Any] = Field(description="the settings the job runs with")


class JobList(BaseModel):
    jobs: list[JobStatus]


class SettingField(BaseModel):
    name: str
    type: Literal["integer", "number", "boolean", "string"]
    array: bool = Field(description="a list of values")
    nullable: bool = Field(description="null means: let impasto choose")
    default: Any
    help: str
    group: str
    choices: list[str] | None
    maximum: int | None = Field(description="the server's limit, where it has one")
    editable: bool = Field(description="false for settings the server decides")
    server_value: Any = Field(description="what the server uses for a setting it decides")


class Limits(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    max_request_pixels: int
    max_styles: int
    max_queue: int
    max_size: int
    max_iterations: int
    keep_seconds: float
    keep_jobs: int
    max_video_bytes: int
    max_video_seconds: float
    max_video_frames: int


class SettingsSchema(BaseModel):
    fields: list[SettingField]
    video_fields: list[SettingField] = Field(
        default=[], description="settings a video job takes besides those in fields"
    )
    limits: Limits
    version: str
