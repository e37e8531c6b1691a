"""Receiver app factory: ``create_app(settings)`` wires the store, intake, worker and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from common import __version__
from common.errors import CodecError

from .intake import Intake
from .routes import ReceiverContext, router
from .settings import ReceiverSettings, get_settings
from .store import BundleStore
from .worker import ReconstructWorker

log = logging.getLogger(__name__)


def create_app(settings: ReceiverSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = BundleStore(settings.data_dir)
        removed = store.clean_orphans()
        if removed:
            log.info("removed %d half-written bundle folders", removed)
        client = httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0),
                              headers={"user-agent": f"gancodec-receiver/{__version__}"})
        worker = ReconstructWorker(store, settings, client)
        app.state.ctx = ReceiverContext(settings, store, Intake(store, settings), worker)
        worker.start()
        if not settings.secrets():
            log.warning("RECEIVER_INSECURE_DEV: accepting UNSIGNED bundles")
        log.info("receiver ready data_dir=%s workers=%d", settings.data_dir, settings.workers)
        try:
            yield
        finally:
            worker.stop()
            client.close()
            store.close()
            log.info("receiver stopped")

    app = FastAPI(title="gancodec receiver", version=__version__, lifespan=lifespan,
                  description="Takes signed bundles, reconstructs the images, serves PNGs and the received JPEGs.")
    app.include_router(router)
    install_error_handlers(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"detail": "<message>"}``; codec errors carry their own status."""

    async def codec_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=getattr(exc, "http_status", 400))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse({"detail": msg or str(exc)}, status_code=422)

    app.add_exception_handler(CodecError, codec_error)
    app.add_exception_handler(RequestValidationError, validation_error)
