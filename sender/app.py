"""Sender app factory: ``create_app(settings)`` wires the store, the worker and the routes."""

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

from .progress import ProgressBoard
from .routes import SenderContext, router
from .settings import SenderSettings, get_settings
from .store import TransferStore
from .worker import TransferWorker

log = logging.getLogger(__name__)


def create_app(settings: SenderSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = TransferStore(settings.data_dir)
        removed = store.clean_orphans()
        if removed:
            log.info("removed %d half-written transfer folders", removed)
        timeout = httpx.Timeout(settings.request_timeout_seconds, connect=settings.connect_timeout_seconds)
        client = httpx.Client(timeout=timeout, headers={"user-agent": f"gancodec-sender/{__version__}"})
        board = ProgressBoard()
        worker = TransferWorker(store, settings, client, board)
        app.state.ctx = SenderContext(settings, store, board, worker)
        worker.start()
        if settings.secret is None:
            log.warning("SENDER_INSECURE_DEV: deliveries are NOT signed")
        log.info("sender ready data_dir=%s receiver=%s workers=%d", settings.data_dir, settings.receiver_url,
                 settings.workers)
        try:
            yield
        finally:
            worker.stop()
            client.close()
            store.close()
            log.info("sender stopped")

    app = FastAPI(title="gancodec sender", version=__version__, lifespan=lifespan,
                  description="Upload images; they are fine-tuned, bundled and delivered to the receiver.")
    app.include_router(router)
    install_error_handlers(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"detail": "<message>"}``; codec errors carry their own status."""

    async def codec_error(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "http_status", 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse({"detail": msg or str(exc)}, status_code=422)

    app.add_exception_handler(CodecError, codec_error)
    app.add_exception_handler(RequestValidationError, validation_error)
