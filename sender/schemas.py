"""Response schemas of the sender API (also the OpenAPI documentation)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["queued", "encoding", "training", "delivering", "delivered", "failed"]


class Accepted(BaseModel):
    id: str
    status: Status = "queued"
    status_url: str


class Progress(BaseModel):
    stage: str = Field(description="encoding | training | measuring | delivering")
    step: int = Field(description="steps done in this stage (delivery: attempts made)")
    total: int = Field(description="steps in this stage (0 when open-ended)")
    elapsed_seconds: float
    eta_seconds: float | None


class ImageIn(BaseModel):
    name: str = Field(description="image name in the bundle (sanitised upload file stem)")
    filename: str
    width: int
    height: int
    bytes: int


class Transfer(BaseModel):
    id: str
    status: Status
    created: float
    updated: float
    receiver_url: str
    options: dict[str, Any]
    images: list[ImageIn]
    progress: Progress | None = None
    result: dict[str, Any] | None = Field(
        None, description="the codec summary: bytes per part, bpp, PSNRs, saving vs JPEG, decision"
    )
    bundle_id: str | None = None
    delivery: dict[str, Any] = Field(default_factory=dict, description="attempts, last error, receiver answer")
    error: str | None = None
    links: dict[str, str]


class TransferList(BaseModel):
    total: int
    transfers: list[Transfer]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    service: str
    queued: int
