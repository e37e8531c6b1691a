"""Registered generator architectures, one module each (see :mod:`common.generator`)."""

from . import fsrcnn, rrdb, srcnn, srresnet, srvgg, unet  # noqa: F401
