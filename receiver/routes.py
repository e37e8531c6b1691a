"""Receiver HTTP API: the bundle webhook and the read API. Work lives in ``intake`` and ``worker``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from .intake import Intake
from .schemas import Accepted, BundleList, BundleOut, Health
from .settings import ReceiverSettings
from .store import BundleStore
from .worker import ReconstructWorker

router = APIRouter()


@dataclass
class ReceiverContext:
    settings: ReceiverSettings
    store: BundleStore
    intake: Intake
    worker: ReconstructWorker


def get_ctx(request: Request) -> ReceiverContext:
    ctx: ReceiverContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ReceiverContext, Depends(get_ctx)]
BundleId = Annotated[str, Path(max_length=64, description="bundle id (the sender's transfer bundle_id)")]


def existing(bundle_id: BundleId, ctx: Ctx) -> dict[str, Any]:
    row = ctx.store.get(bundle_id)
    if row is None:
        raise HTTPException(404, f"no bundle with id {bundle_id!r}")
    return row


Row = Annotated[dict[str, Any], Depends(existing)]


def bundle_view(row: dict[str, Any], worker: ReconstructWorker) -> dict[str, Any]:
    base = f"/v1/bundles/{row['id']}"
    images = []
    for im in row["images"]:
        url = f"{base}/images/{quote(im['name'], safe='')}"
        images.append({**{k: im[k] for k in ("name", "width", "height", "jpeg_bytes", "png_bytes", "sender")},
                       **{k: im.get(k) for k in ("jpeg_width", "jpeg_height", "scale")},  # None in older rows
                       "url": url, "jpeg_url": f"{url}?variant=jpeg"})
    return {
        **{k: row[k] for k in ("id", "status", "created", "updated", "size", "mode", "error")},
        "decision": row["info"].get("decision", {}),
        "metrics": row["info"].get("metrics", {}),
        "update": row["info"].get("update", {}),
        "progress": worker.progress(row["id"]),
        "images": images,
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` (before any parsing)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"bundle is {length} bytes; the limit is {limit} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, f"bundle is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_BODY_DOC = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/v1/bundles", status_code=202, response_model=Accepted, openapi_extra=_BODY_DOC,
             responses={400: {"description": "malformed bundle"}, 401: {"description": "bad signature"},
                        413: {"description": "too large"}, 422: {"description": "unknown base weights"}})
async def receive_bundle(request: Request, ctx: Ctx) -> JSONResponse:
    """The webhook: a signed raw bundle. Replays and re-deliveries get the first answer."""
    body = await read_body(request, ctx.settings.max_bundle_bytes)
    result = await run_in_threadpool(ctx.intake.accept, body, dict(request.headers))
    if not result.duplicate:
        ctx.worker.enqueue(result.bundle_id)
    url = f"/v1/bundles/{result.bundle_id}"
    return JSONResponse({"id": result.bundle_id}, status_code=202, headers={"Location": url})


@router.get("/v1/bundles", response_model=BundleList)
def list_bundles(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    total, rows = ctx.store.page(limit, offset)
    return {"total": total, "bundles": [bundle_view(r, ctx.worker) for r in rows]}


@router.get("/v1/bundles/{bundle_id}", response_model=BundleOut)
def get_bundle(row: Row, ctx: Ctx) -> dict[str, Any]:
    return bundle_view(row, ctx.worker)


@router.get("/v1/bundles/{bundle_id}/images/{name}", response_class=FileResponse,
            responses={404: {"description": "unknown image"}, 409: {"description": "not reconstructed yet"}})
def get_image(row: Row, ctx: Ctx, name: Annotated[str, Path(max_length=256)],
              variant: Literal["png", "jpeg"] = "png") -> FileResponse:
    """The reconstruction as PNG (``width x height``), or with ``?variant=jpeg`` the JPEG payload exactly
    as received (``jpeg_width x jpeg_height``: in sr2/sr4 bundles smaller than the image)."""
    match = [im for im in row["images"] if im["name"] == name]
    if not match:
        names = ", ".join(repr(im["name"]) for im in row["images"][:20])
        raise HTTPException(404, f"bundle {row['id']} has no image {name!r}; it has {names}")
    index = match[0]["index"]
    folder = ctx.store.bundle_dir(row["id"])
    if variant == "jpeg":
        return FileResponse(folder / f"{index:03d}.jpg", media_type="image/jpeg", filename=f"{name}.jpg")
    path = folder / f"{index:03d}.png"
    if row["status"] != "reconstructed" or not path.exists():
        why = f"reconstruction failed: {row['error']}" if row["status"] == "failed" else f"it is {row['status']}"
        raise HTTPException(409, f"no reconstruction of {name!r} yet ({why}); ?variant=jpeg gives the received JPEG")
    return FileResponse(path, media_type="image/png", filename=f"{name}.png")


@router.get("/healthz", response_model=Health)
def healthz(ctx: Ctx) -> dict[str, Any]:
    return {"status": "ok", "service": "receiver", "bundles": ctx.store.counts()}
