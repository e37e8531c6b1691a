"""One error hierarchy for the codec. Services map these to HTTP status codes."""

from __future__ import annotations


class CodecError(Exception):
    """Base class of every error the codec raises on bad input.

    ``http_status`` is the status a service should answer with.
    """

    http_status = 400


class ImageError(CodecError):
    """An input image cannot be decoded or breaks a limit (format, pixels, mode)."""

    http_status = 415


class ImageTooLargeError(ImageError):
    """An image has more pixels than allowed (decompression-bomb guard)."""

    http_status = 413


class BundleError(CodecError):
    """A bundle is malformed: bad magic, lengths, offsets, JSON, shapes or checksums."""

    http_status = 400


class UnknownBaseError(BundleError):
    """A bundle names base weights (by SHA-256) that this side does not hold."""

    http_status = 422


class UnknownArchError(BundleError):
    """A bundle names a generator architecture this side does not know."""

    http_status = 422
