"""Sender service: upload API, durable transfer jobs, codec worker, signed delivery to the receiver."""
