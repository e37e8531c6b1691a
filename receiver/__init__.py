"""Receiver service: signed bundle intake, validation, reconstruction worker, read API."""
