"""Response schemas of the receiver API (also the OpenAPI documentation)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["received", "reconstructing", "reconstructed", "failed"]


class Accepted(BaseModel):
    id: str = Field(description="the bundle id (also the transfer's bundle_id on the sender)")


class ImageOut(BaseModel):
    name: str
    width: int = Field(description="the image (and reconstruction) size")
    height: int
    jpeg_width: int | None = Field(None, description="the received JPEG's size: smaller than the image "
                                   "where an sr2/sr4 generator upsamples it (null for bundles stored before)")
    jpeg_height: int | None = None
    scale: int | None = Field(None, description="upsampling factor applied to this image's JPEG "
                              "(1: restore, or no generator; 2/4: sr2/sr4)")
    jpeg_bytes: int
    png_bytes: int | None = Field(description="size of the stored reconstruction; null until reconstructed")
    sender: dict[str, Any] = Field(description="the sender's figures: quality, psnr, psnr_payload, ...")
    url: str = Field(description="the reconstruction (PNG)")
    jpeg_url: str = Field(description="the JPEG payload exactly as received")


class BundleOut(BaseModel):
    id: str
    status: Status
    created: float
    updated: float
    size: int
    mode: str
    error: str | None
    decision: dict[str, Any]
    metrics: dict[str, Any]
    update: dict[str, Any]
    progress: dict[str, Any] | None
    images: list[ImageOut]


class BundleList(BaseModel):
    total: int
    bundles: list[BundleOut]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    service: str
    bundles: dict[str, int]
