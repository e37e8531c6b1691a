"""Sender HTTP API. Routes stay thin: validation in ``uploads``, work in ``worker``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from .progress import ProgressBoard
from .schemas import Accepted, Health, Transfer, TransferList
from .settings import SenderSettings
from .store import TERMINAL, TransferStore
from .uploads import MODES, OBJECTIVES, UPDATES, parse_options, read_form, stage_transfer, upload_files
from .worker import TransferWorker

log = logging.getLogger(__name__)
router = APIRouter()
EVENT_REFRESH_SECONDS = 5.0
TransferId = Annotated[str, Path(max_length=64, description="transfer id")]


@dataclass
class SenderContext:
    settings: SenderSettings
    store: TransferStore
    board: ProgressBoard
    worker: TransferWorker


def get_ctx(request: Request) -> SenderContext:
    ctx: SenderContext = request.app.state.ctx
    return ctx


Ctx = Annotated[SenderContext, Depends(get_ctx)]


def transfer_view(job: dict[str, Any], board: ProgressBoard) -> dict[str, Any]:
    base = f"/v1/transfers/{job['id']}"
    progress = None if job["status"] in TERMINAL else board.get(job["id"])
    return {
        **{k: job[k] for k in ("id", "status", "created", "updated", "receiver_url", "options", "images",
                               "bundle_id", "error")},
        "progress": progress,
        "result": job["summary"],
        "delivery": {**(job["delivery"] or {}), **({"webhook_id": job["webhook_id"]} if job["webhook_id"] else {})},
        "links": {"self": base, "events": f"{base}/events", "bundle": f"{base}/bundle"},
    }


def existing(transfer_id: TransferId, ctx: Ctx) -> dict[str, Any]:
    job = ctx.store.get(transfer_id)
    if job is None:
        raise HTTPException(404, f"no transfer with id {transfer_id!r}")
    return job


Job = Annotated[dict[str, Any], Depends(existing)]

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "match_jpeg": {"type": "integer", "minimum": 1, "maximum": 100, "default": 75},
                "quality": {"type": "integer", "minimum": 1, "maximum": 100},
                "mode": {"type": "string", "enum": list(MODES), "default": "auto",
                         "description": "sr2/sr4: the JPEG is downsampled 2x/4x and the generator upsamples it; "
                                        "auto: the cheapest mode for the set"},
                "update": {"type": "string", "enum": list(UPDATES), "default": "auto"},
                "budget_seconds": {"type": "number", "minimum": 0},
                "max_steps": {"type": "integer", "minimum": 0},
                "seed": {"type": "integer", "minimum": 0},
                "arch": {"type": "string", "default": "srvgg",
                         "description": "generator architecture (common.generator.archs()); "
                                        "an unknown name gets a 422 listing the known ones"},
                "channels": {"type": "integer", "minimum": 1,
                             "description": "generator width override; without a shipped base needs update=full"},
                "blocks": {"type": "integer", "minimum": 0,
                           "description": "generator depth override; without a shipped base needs update=full"},
                "objective": {"type": "string", "enum": list(OBJECTIVES), "default": "fidelity"},
                "alpha": {"type": "number", "minimum": 0, "maximum": 1, "default": 1,
                          "description": "perceptual only: 0 = base generator, 1 = fully perceptual"},
                "max_update_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.05,
                                     "description": "the coded weight update may take at most this share "
                                                    "of the bundle (1 = no cap)"},
                "receiver_url": {"type": "string", "format": "uri"},
            },
        }}},
    }
}


@router.post("/v1/transfers", status_code=202, response_model=Accepted, openapi_extra=_UPLOAD_DOC,
             responses={413: {"description": "too large"}, 415: {"description": "not an image"},
                        422: {"description": "bad form field"}})
async def create_transfer(request: Request, ctx: Ctx) -> JSONResponse:
    """Upload images (repeated ``files`` fields) and options; the transfer runs in the background."""
    form = await read_form(request, ctx.settings)
    try:
        options, receiver_url = parse_options(form, ctx.settings)
        files = upload_files(form, ctx.settings)
        tid = uuid.uuid4().hex
        images = await run_in_threadpool(stage_transfer, ctx.store, tid, files, ctx.settings, options, receiver_url)
    finally:
        await form.close()
    ctx.worker.enqueue(tid)
    log.info("transfer accepted id=%s images=%d bytes=%d", tid, len(images), sum(i["bytes"] for i in images))
    url = f"/v1/transfers/{tid}"
    return JSONResponse({"id": tid, "status": "queued", "status_url": url}, status_code=202, headers={"Location": url})


@router.get("/v1/transfers", response_model=TransferList)
def list_transfers(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    total, jobs = ctx.store.page(limit, offset)
    return {"total": total, "transfers": [transfer_view(j, ctx.board) for j in jobs]}


@router.get("/v1/transfers/{transfer_id}", response_model=Transfer)
def get_transfer(job: Job, ctx: Ctx) -> dict[str, Any]:
    """Status, live progress (step, total, eta) and, once known, the result and the receiver's answer."""
    return transfer_view(job, ctx.board)


@router.get("/v1/transfers/{transfer_id}/events", response_class=EventSourceResponse)
async def transfer_events(job: Job, ctx: Ctx, request: Request) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: a ``transfer`` event (the status JSON) when the status or the step changes
    (and every few seconds while running, to refresh the ETA); a ``done`` event at the end."""
    tid, last, sent_at = job["id"], "", 0.0
    while True:
        current = await run_in_threadpool(ctx.store.get, tid)
        if current is None:
            return
        view = transfer_view(current, ctx.board)
        progress = {k: v for k, v in (view["progress"] or {}).items() if k not in ("elapsed_seconds", "eta_seconds")}
        key = json.dumps({**view, "progress": progress}, sort_keys=True)
        now = time.monotonic()
        if key != last or (view["progress"] and now - sent_at > EVENT_REFRESH_SECONDS):
            last, sent_at = key, now
            yield ServerSentEvent(data=view, event="transfer")
        if current["status"] in TERMINAL:
            yield ServerSentEvent(data=view, event="done")
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.25)


@router.get("/v1/transfers/{transfer_id}/bundle", response_class=FileResponse,
            responses={409: {"description": "bundle not built yet"}})
def get_bundle(job: Job, ctx: Ctx) -> FileResponse:
    """The bundle file (application/octet-stream), once encoding has finished."""
    path = ctx.store.bundle_path(job["id"])
    if job["summary"] is None or not path.exists():
        raise HTTPException(409, f"the bundle is not built yet; the transfer is {job['status']}")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job['bundle_id']}.gcb")


@router.post("/v1/transfers/{transfer_id}/retry", status_code=202, response_model=Accepted,
             responses={409: {"description": "transfer has not failed"}})
def retry_transfer(job: Job, ctx: Ctx) -> JSONResponse:
    """Try a failed transfer again: re-deliver its bundle, or re-encode when there is none."""
    if job["status"] != "failed":
        raise HTTPException(409, f"only a failed transfer can be retried; this one is {job['status']}")
    tid = job["id"]
    if job["summary"] is not None and ctx.store.bundle_path(tid).exists():
        ctx.store.update(tid, status="delivering", error=None, delivery={"attempts": 0})
        ctx.worker.enqueue_delivery(tid)
        status = "delivering"
    else:
        ctx.store.update(tid, status="queued", error=None)
        ctx.worker.enqueue(tid)
        status = "queued"
    url = f"/v1/transfers/{tid}"
    return JSONResponse({"id": tid, "status": status, "status_url": url}, status_code=202, headers={"Location": url})


@router.get("/healthz", response_model=Health)
def healthz(ctx: Ctx) -> dict[str, Any]:
    return {"status": "ok", "service": "sender", "queued": len(ctx.store.unfinished())}
