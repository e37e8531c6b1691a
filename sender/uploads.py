"""Turning a multipart upload into a durable, validated transfer (or a 4xx naming the problem).

Every image is decoded once here, so a transfer that gets a 202 will not fail on bad input
later. Files are written under ``tmp/`` and the folder is renamed into ``transfers/<id>`` only
when all of them are valid; the database row comes last. A rejected request leaves nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import Message

from common.errors import ImageError
from common.imageio import load_image

from .settings import SenderSettings, webhook_url
from .store import TransferStore, fsync_dir

if TYPE_CHECKING:
    from common.codec import EncodeOptions

log = logging.getLogger(__name__)

MODES = ("jpeg", "restore", "sr2", "sr4", "auto")  # for the OpenAPI text; validation asks the codec
UPDATES = ("auto", "none", "delta", "full")
OBJECTIVES = ("fidelity", "perceptual")
# The encode options a client may set. Server-side paths (vgg_weights) and base names are not among
# them: the VGG file comes from SENDER_VGG_WEIGHTS, the base from the mode and arch.
OPTION_FIELDS = ("match_jpeg", "quality", "mode", "update", "budget_seconds", "max_steps", "seed", "arch",
                 "channels", "blocks", "objective", "alpha", "max_update_share")
FORM_FIELDS = ("files", *OPTION_FIELDS, "receiver_url")
MAX_NAME = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def supported_modes() -> tuple[str, ...]:
    from common.codec import ENCODE_MODES

    return tuple(ENCODE_MODES)


def known_archs() -> tuple[str, ...]:
    from common.generator import archs

    return archs()


class TransferOptions(BaseModel):
    """Encode options from the form; strings are coerced (``"75"`` → 75)."""

    model_config = ConfigDict(extra="forbid")

    match_jpeg: int | None = Field(default=None, ge=1, le=100)
    quality: int | None = Field(default=None, ge=1, le=100)
    mode: str = "auto"
    update: str = "auto"
    budget_seconds: float | None = Field(default=None, ge=0)
    max_steps: int | None = Field(default=None, ge=0, le=1_000_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    arch: str = "srvgg"
    # Coarse bounds here; each architecture's own ranges are checked by check_plannable.
    channels: int | None = Field(default=None, ge=1, le=1024)
    blocks: int | None = Field(default=None, ge=0, le=256)
    objective: str = "fidelity"
    alpha: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    max_update_share: float = Field(default=0.05, gt=0, le=1, allow_inf_nan=False)

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        modes = supported_modes()
        if v not in modes:
            raise ValueError(f"must be one of {', '.join(modes)}")
        return v

    @field_validator("update")
    @classmethod
    def _update(cls, v: str) -> str:
        if v not in UPDATES:
            raise ValueError(f"must be one of {', '.join(UPDATES)}")
        return v

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str) -> str:
        names = known_archs()
        if v not in names:
            raise ValueError(f"unknown generator arch {v[:40]!r}; known: {', '.join(names)}")
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise ValueError(f"must be one of {', '.join(OBJECTIVES)}")
        return v


def sanitise_names(filenames: list[str]) -> list[str]:
    """Image names from upload file names: the stem, no path parts, safe characters, unique."""
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(filenames):
        base = PurePosixPath(raw.replace("\\", "/")).name
        stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
        name = _UNSAFE.sub("_", stem).strip("._-")[:MAX_NAME] or f"image-{i + 1}"
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name[: MAX_NAME - 1 - len(str(n))]}-{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def limited_receive(receive: Callable[[], Awaitable[Message]], limit: int) -> Callable[[], Awaitable[Message]]:
    total = 0

    async def wrapped() -> Message:
        nonlocal total
        message = await receive()
        total += len(message.get("body", b""))
        if total > limit:
            raise HTTPException(413, f"request body is over the limit of {limit} bytes")
        return message

    return wrapped


async def read_form(request: Request, settings: SenderSettings) -> FormData:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise HTTPException(415, f"send multipart/form-data with one or more 'files' fields, not {ctype or 'no body'!r}")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_request_bytes:
        raise HTTPException(413, f"request body is {length} bytes; the limit is {settings.max_request_bytes} bytes")
    limited = Request(request.scope, limited_receive(request.receive, settings.max_request_bytes))
    try:
        return await limited.form(max_files=settings.max_images, max_fields=32, max_part_size=4096)
    except HTTPException:  # ours (the streaming size limit): already says what is wrong
        raise
    except StarletteHTTPException as e:  # Starlette's multipart limits, reworded to name our settings
        detail = str(e.detail)
        if detail.startswith("Too many files"):
            raise HTTPException(413, f"more than {settings.max_images} images; the limit is "
                                     f"{settings.max_images} per transfer") from None
        if detail.startswith(("Too many fields", "Field exceeded", "Part exceeded")):
            raise HTTPException(422, f"form fields: {detail}") from None
        raise HTTPException(e.status_code, f"malformed multipart body: {detail}") from None


def parse_options(form: FormData, settings: SenderSettings) -> tuple[dict[str, Any], str]:
    """Validated encode options (JSON-able) and the receiver URL, or a 422 naming the field.

    The options returned are stored with the transfer, shown in its status and passed to
    ``common.codec.EncodeOptions`` as they are (the worker adds only ``device`` and, for the
    perceptual objective, the server's ``SENDER_VGG_WEIGHTS``).
    """
    for key in form:
        if key not in FORM_FIELDS:
            raise HTTPException(422, f"unknown form field {key!r}; expected one of {', '.join(FORM_FIELDS)}")
        if key != "files" and len(form.getlist(key)) > 1:
            raise HTTPException(422, f"form field {key!r} is given more than once")
    raw = {k: v for k, v in form.items() if k in OPTION_FIELDS and isinstance(v, str) and v != ""}
    try:
        opts = TransferOptions.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise HTTPException(422, f"invalid form field: {msg}") from None
    if opts.match_jpeg is not None and opts.quality is not None:
        raise HTTPException(422, "give either match_jpeg or quality, not both")
    if opts.quality is None and opts.match_jpeg is None:
        opts.match_jpeg = 75
    if opts.budget_seconds is None:
        opts.budget_seconds = settings.default_budget_seconds
    if opts.budget_seconds > settings.max_budget_seconds:
        raise HTTPException(
            422, f"budget_seconds {opts.budget_seconds:g} is over the limit of {settings.max_budget_seconds:g}"
        )
    if opts.alpha is not None and opts.objective != "perceptual":
        raise HTTPException(422, "alpha applies only to objective=perceptual")
    if opts.alpha is None:
        opts.alpha = 1.0
    from common.codec import EncodeOptions

    options = opts.model_dump()
    encode = EncodeOptions(**options)
    encode.check()  # the codec's own rules (OptionsError, UnknownArchError → 422)
    check_plannable(encode)
    url = form.get("receiver_url")
    if isinstance(url, str) and url:
        if not settings.allow_receiver_override:
            raise HTTPException(422, "receiver_url is fixed by the sender's configuration on this server")
        try:
            return options, webhook_url(url)
        except ValueError as e:
            raise HTTPException(422, f"receiver_url: {e}") from None
    return options, webhook_url(settings.receiver_url)


def check_plannable(opts: EncodeOptions) -> None:
    """422 now for arch/channels/blocks the codec would refuse only after the upload is queued:
    widths or depths outside the architecture's range, or a config with no shipped base weights
    without ``update=full``. ``auto`` needs one mode that works; ``jpeg`` uses no generator."""
    from common.errors import CodecError
    from common.planner import MODE_SCALE, resolve_base

    modes = [] if opts.mode == "jpeg" else list(MODE_SCALE) if opts.mode == "auto" else [opts.mode]
    problems = []
    for mode in modes:
        try:
            resolve_base(opts, mode)
            return
        except CodecError as e:
            problems.append(f"{mode}: {e}" if opts.mode == "auto" else str(e))
    if problems:
        raise HTTPException(422, ("no mode can run these options; " if opts.mode == "auto" else "")
                            + "; ".join(problems).replace("--update full", "update=full"))


def upload_files(form: FormData, settings: SenderSettings) -> list[UploadFile]:
    files = form.getlist("files")
    if not files:
        raise HTTPException(422, "no images: send one or more 'files' fields")
    bad = [i for i, f in enumerate(files) if not isinstance(f, UploadFile)]
    if bad:
        raise HTTPException(422, f"'files' field #{bad[0] + 1} is plain text, not a file upload")
    if len(files) > settings.max_images:
        raise HTTPException(413, f"{len(files)} images; the limit is {settings.max_images} per transfer")
    return [f for f in files if isinstance(f, UploadFile)]


def stage_transfer(
    store: TransferStore, transfer_id: str, files: list[UploadFile], settings: SenderSettings,
    options: dict[str, Any], receiver_url: str,
) -> list[dict[str, Any]]:
    """Validate and store the uploads, then record the transfer (blocking; run in a thread)."""
    names = sanitise_names([f.filename or "" for f in files])
    tmp = store.tmp_dir / transfer_id
    (tmp / "uploads").mkdir(parents=True)
    try:
        images = [_stage_one(tmp / "uploads", i, f, name, settings) for i, (f, name) in enumerate(zip(files, names, strict=True))]
        fsync_dir(tmp / "uploads")
        final = store.job_dir(transfer_id)
        tmp.rename(final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        store.insert(transfer_id, options, receiver_url, images)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return images


def _stage_one(folder: Path, index: int, upload: UploadFile, name: str, settings: SenderSettings) -> dict[str, Any]:
    upload.file.seek(0)
    data = upload.file.read()
    label = (upload.filename or f"file #{index + 1}")[:200]
    try:
        rgb = load_image(data, max_pixels=settings.max_pixels)
    except ImageError as e:
        raise type(e)(f"{label}: {e}") from None
    except MemoryError:
        raise
    except Exception as e:  # decoders raise assorted errors on hostile input; none of them is a 500
        log.warning("upload %r: decoder raised %s: %s", label, type(e).__name__, e)
        raise ImageError(f"{label}: not a decodable image ({type(e).__name__})") from None
    path = folder / f"{index:03d}.upload"
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    height, width = rgb.shape[:2]
    return {"name": name, "filename": label, "file": path.name, "bytes": len(data),
            "width": int(width), "height": int(height)}
