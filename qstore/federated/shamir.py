"""Shamir t-of-n secret sharing over the prime field GF(2^521 − 1), for 32-byte secrets.

A secret s becomes the constant term of a random polynomial f of degree t − 1; share i
is (x_i, f(x_i)) at a distinct nonzero point x_i (the participants' indices). Any t
shares give s back by Lagrange interpolation at 0; t − 1 shares are uniformly
distributed whatever s is. The Mersenne prime 2^521 − 1 exceeds
every 32-byte secret, so secrets are field elements as they are.
"""
from __future__ import annotations

import secrets as _secrets

from qstore.errors import error

PRIME = (1 << 521) - 1
SECRET_BYTES = 32
SHARE_BYTES = 66  # ceil(521 / 8)


def split(secret: bytes, xs: list[int], t: int) -> list[tuple[int, int]]:
    """Shares (x, f(x)) of `secret` at the distinct nonzero points `xs`, any t of which reconstruct it."""
    if len(secret) != SECRET_BYTES:
        raise error("invalid_argument", f"shamir: secrets are {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= t <= len(xs) or len(set(xs)) != len(xs) or not all(0 < x < 1 << 16 for x in xs):
        raise error("invalid_argument", f"shamir: need 1 <= t <= n distinct points in 1..65535, got t={t}, {xs}")
    coefficients = [int.from_bytes(secret, "big")] + [_secrets.randbelow(PRIME) for _ in range(t - 1)]
    shares = []
    for x in xs:
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares.append((x, y))
    return shares


def combine(shares: list[tuple[int, int]], t: int) -> bytes:
    """The secret from at least t shares with distinct x (only the first t are used)."""
    points = dict(shares)
    if len(points) < t or len(points) != len(shares):
        raise error("unavailable", f"shamir: {len(points)} distinct share(s), {t} needed")
    chosen = list(points.items())[:t]
    secret = 0
    for j, (xj, yj) in enumerate(chosen):
        num = den = 1
        for m, (xm, _) in enumerate(chosen):
            if m != j:
                num = num * -xm % PRIME
                den = den * (xj - xm) % PRIME
        secret = (secret + yj * num * pow(den, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * SECRET_BYTES):
        raise error("invalid_argument", "shamir: the shares do not belong to one 32-byte secret")
    return secret.to_bytes(SECRET_BYTES, "big")


def encode_share(share: tuple[int, int]) -> bytes:
    x, y = share
    return x.to_bytes(2, "big") + y.to_bytes(SHARE_BYTES, "big")


def decode_share(raw: bytes) -> tuple[int, int]:
    if len(raw) != 2 + SHARE_BYTES:
        raise error("invalid_argument", f"shamir: a share is {2 + SHARE_BYTES} bytes, got {len(raw)}")
    y = int.from_bytes(raw[2:], "big")
    if y >= PRIME:
        raise error("invalid_argument", "shamir: share value outside the field")
    return int.from_bytes(raw[:2], "big"), y
