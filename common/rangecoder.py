"""Adaptive binary range coder (LZMA-style, integer-only, so decoding is bit-exact everywhere).

Used to entropy-code quantized weight deltas. Each signed integer is binarised as

    zero flag (2 contexts: previous value zero / non-zero)
    sign bit (1 context)
    magnitude-1 in unary over 16 adaptive contexts, escape to Exp-Golomb-0 in bypass bits

Probabilities are 11-bit, adapted with shift 5, one context set per tensor.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import BundleError

_TOP = 1 << 24
_BITS = 11
_ONE = 1 << _BITS
_MOVE = 5
_UNARY = 16
_MAX_EG = 40


class _Contexts:
    __slots__ = ("mag", "sign", "zero")

    def __init__(self) -> None:
        half = _ONE // 2
        self.zero = [half, half]
        self.sign = [half]
        self.mag = [half] * _UNARY


class RangeEncoder:
    def __init__(self) -> None:
        self.low = 0
        self.range = 0xFFFFFFFF
        self.cache = 0
        self.cache_size = 1
        self.out = bytearray()

    def _shift_low(self) -> None:
        if self.low < 0xFF000000 or self.low >= 1 << 32:
            carry = self.low >> 32
            temp = self.cache
            while True:
                self.out.append((temp + carry) & 0xFF)
                temp = 0xFF
                self.cache_size -= 1
                if self.cache_size == 0:
                    break
            self.cache = (self.low >> 24) & 0xFF
        self.cache_size += 1
        self.low = (self.low << 8) & 0xFFFFFFFF

    def bit(self, probs: list[int], i: int, b: int) -> None:
        p = probs[i]
        bound = (self.range >> _BITS) * p
        if b:
            self.low += bound
            self.range -= bound
            probs[i] = p - (p >> _MOVE)
        else:
            self.range = bound
            probs[i] = p + ((_ONE - p) >> _MOVE)
        while self.range < _TOP:
            self.range <<= 8
            self._shift_low()

    def direct(self, value: int, nbits: int) -> None:
        for k in range(nbits - 1, -1, -1):
            self.range >>= 1
            if (value >> k) & 1:
                self.low += self.range
            while self.range < _TOP:
                self.range <<= 8
                self._shift_low()

    def finish(self) -> bytes:
        for _ in range(5):
            self._shift_low()
        return bytes(self.out)


class RangeDecoder:
    def __init__(self, data: bytes) -> None:
        if len(data) < 5:
            raise BundleError(f"coded update is {len(data)} bytes; a range-coded stream has at least 5")
        self.data = data
        self.pos = 5
        self.range = 0xFFFFFFFF
        self.code = int.from_bytes(data[:5], "big")
        if self.code >= self.range:
            raise BundleError("coded update stream is corrupt (initial code out of range)")

    def _next(self) -> int:
        p = self.pos
        self.pos += 1
        if p < len(self.data):
            return self.data[p]
        if p >= len(self.data) + 4:
            raise BundleError("coded update stream ends early (truncated or corrupt)")
        return 0

    def bit(self, probs: list[int], i: int) -> int:
        p = probs[i]
        bound = (self.range >> _BITS) * p
        if self.code < bound:
            self.range = bound
            probs[i] = p + ((_ONE - p) >> _MOVE)
            b = 0
        else:
            self.code -= bound
            self.range -= bound
            probs[i] = p - (p >> _MOVE)
            b = 1
        while self.range < _TOP:
            self.range <<= 8
            self.code = (self.code << 8) | self._next()
        return b

    def direct(self, nbits: int) -> int:
        v = 0
        for _ in range(nbits):
            self.range >>= 1
            b = 0
            if self.code >= self.range:
                self.code -= self.range
                b = 1
            v = (v << 1) | b
            while self.range < _TOP:
                self.range <<= 8
                self.code = (self.code << 8) | self._next()
        return v


def encode_ints(tensors: Iterable[Iterable[int]]) -> bytes:
    """Code several integer sequences (one context set each) into one byte string."""
    enc = RangeEncoder()
    for seq in tensors:
        ctx = _Contexts()
        prev = 0
        for v in seq:
            nz = 1 if v else 0
            enc.bit(ctx.zero, prev, nz)
            prev = nz
            if not nz:
                continue
            enc.bit(ctx.sign, 0, 1 if v < 0 else 0)
            m = abs(v) - 1
            for j in range(min(m, _UNARY)):
                enc.bit(ctx.mag, j, 1)
            if m < _UNARY:
                enc.bit(ctx.mag, m, 0)
                continue
            r = m - _UNARY + 1
            n = r.bit_length() - 1
            enc.direct((1 << n) - 1, n)  # n ones …
            enc.direct(0, 1)  # … then a zero
            enc.direct(r - (1 << n), n)
    return enc.finish()


def decode_ints(data: bytes, counts: Iterable[int]) -> list[list[int]]:
    """Inverse of :func:`encode_ints`; ``counts`` gives the length of each sequence."""
    dec = RangeDecoder(data)
    out: list[list[int]] = []
    for count in counts:
        ctx = _Contexts()
        prev = 0
        seq = [0] * count
        for i in range(count):
            nz = dec.bit(ctx.zero, prev)
            prev = nz
            if not nz:
                continue
            neg = dec.bit(ctx.sign, 0)
            m = 0
            while m < _UNARY and dec.bit(ctx.mag, m):
                m += 1
            if m == _UNARY:
                n = 0
                while dec.direct(1):
                    n += 1
                    if n > _MAX_EG:
                        raise BundleError("coded update stream is corrupt (escape code too long)")
                m = _UNARY - 1 + (1 << n) + dec.direct(n)
            seq[i] = -(m + 1) if neg else m + 1
        out.append(seq)
    if dec.pos > len(data) + 4:
        raise BundleError("coded update stream ends early (truncated or corrupt)")
    return out
