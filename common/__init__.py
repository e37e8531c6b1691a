"""gancodec: a JPEG-compatible learned image transport (codec library, no web framework)."""

__version__ = "0.1.0"
