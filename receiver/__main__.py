"""``python -m receiver --host 127.0.0.1 --port 8001`` (defaults from RECEIVER_HOST / RECEIVER_PORT)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError

from .logs import setup_logging
from .settings import ReceiverSettings

log = logging.getLogger("receiver")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m receiver", description="gancodec receiver service")
    p.add_argument("--host", help="bind address (default: RECEIVER_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: RECEIVER_PORT or 8001)")
    args = p.parse_args(argv)
    try:
        settings = ReceiverSettings()
    except ValidationError as e:
        setup_logging("INFO", "text")
        msgs = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        log.error("refusing to start: %s", msgs)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    from .app import create_app

    uvicorn.run(create_app(settings), host=args.host or settings.host,
                port=settings.port if args.port is None else args.port, timeout_graceful_shutdown=10,
                log_config=None, access_log=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
