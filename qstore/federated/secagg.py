"""Secure aggregation (Bonawitz et al., 2017): the coordinator learns only the sum of the updates.

Four stages per round, each one message from the coordinator to every participant still in:

1. ``train``: the participant trains, turns its update into the vector the strategy sums
   (``summands``), quantises it to the ring Z_{2^64} as fixed point (stochastic rounding,
   ``frac_bits`` fractional bits) and answers with two X25519 public keys: c (to encrypt
   shares to the others) and s (to agree pairwise masks).
2. ``share_keys``: given everyone's public keys (U1, at least t), it draws a self-mask
   seed b, splits b and its s private key t-of-|U1| with Shamir, and sends each other
   participant its two shares, AES-GCM encrypted under HKDF(X25519(c_i, c_j)).
3. ``masked_input``: given the encrypted shares addressed to it (from U2 ⊆ U1), it sends
   y_i = x_i + PRG(b_i) + Σ_{j∈U2, j>i} PRG(s_ij) − Σ_{j∈U2, j<i} PRG(s_ij)  (mod 2^64),
   PRG being AES-CTR keyed by HKDF(X25519(s_i, s_j)). y_i alone is uniform on the ring.
4. ``unmask``: given the survivors U3 ⊆ U2 (those whose y arrived, at least t), it
   decrypts its shares and returns, for each j in U2, b_j's share if j survived and s_j's
   share if j dropped, never both.

The coordinator (``unmask_sum``) reconstructs b_j of survivors and s_j of the dropped from
any t answers, removes the masks and holds Σ_{i∈U3} x_i. Participants that drop after
stage 3 still count (their b is rebuilt); those that drop before it do not (the pairwise
masks others added for them are rebuilt from their s). The threat model is an honest but
curious coordinator and fewer than t colluding participants; the coordinator relays and
could drop messages, but cannot learn a single update from what it receives.
"""
from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qstore.errors import error

from . import shamir
from .messages import Update
from .privacy import clip

log = logging.getLogger(__name__)

STAGES = ("train", "share_keys", "masked_input", "unmask")
WEIGHTINGS = ("samples", "unit", "fednova")
SESSION_TTL_S = 900.0
NONCE_BYTES = 12


# -- what is summed -------------------------------------------------------------------
def summands(update: Update, weighting: str, bound: float | None = None) -> np.ndarray:
    """The vector a participant contributes, so that sums of them give the strategy's step.

    ``samples`` (FedAvg): [n·Δ, n]; ``unit`` (central DP): clip(Δ, bound), no count (the
    noise is calibrated to one clipped delta per participant); ``fednova``: [n·Δ/τ, n·τ, n].
    """
    if weighting == "samples":
        return np.concatenate([update.n * update.delta, [update.n]])
    if weighting == "unit":
        assert bound is not None
        return clip(update.delta, bound)
    if weighting == "fednova":
        steps = max(update.steps, 1)
        return np.concatenate([update.n * update.delta / steps, [update.n * steps, update.n]])
    raise error("invalid_argument", f"secure aggregation: unknown weighting {weighting!r}")


def extra_slots(weighting: str) -> int:
    return {"samples": 1, "unit": 0, "fednova": 2}[weighting]


# -- fixed point on Z_{2^64} ----------------------------------------------------------
def encode(x: np.ndarray, frac_bits: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Fixed point with stochastic (unbiased) rounding, as uint64 (two's complement)."""
    scaled = np.asarray(x, dtype=np.float64) * float(1 << frac_bits)
    limit = float(1 << 62)
    if not np.isfinite(scaled).all() or np.abs(scaled).max(initial=0.0) >= limit:
        raise error("invalid_argument", f"secure aggregation: a value does not fit the fixed-point ring "
                                        f"(|x| must stay below 2^{62 - frac_bits})")
    rng = rng or np.random.default_rng()
    floor = np.floor(scaled)
    rounded = floor + (rng.random(scaled.shape) < scaled - floor)
    return rounded.astype(np.int64).view(np.uint64)


def decode(total: np.ndarray, frac_bits: int) -> np.ndarray:
    return total.view(np.int64).astype(np.float64) / float(1 << frac_bits)


def prg(key: bytes, length: int) -> np.ndarray:
    """`length` uniform uint64 words: the AES-256-CTR keystream of a 32-byte seed."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(b"\x00" * 16)).encryptor()
    return np.frombuffer(encryptor.update(b"\x00" * (8 * length)), dtype="<u8").astype(np.uint64)


def _derive(private: X25519PrivateKey, public: bytes, purpose: str, session: str, i: int, j: int) -> bytes:
    lo, hi = min(i, j), max(i, j)
    info = f"qstore-secagg/{purpose}/{session}/{lo}/{hi}".encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(
        private.exchange(X25519PublicKey.from_public_bytes(public)))


def _raw(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pair_mask(private: X25519PrivateKey, public: bytes, session: str, i: int, j: int, length: int) -> np.ndarray:
    """+PRG(s_ij) for i < j, −PRG(s_ij) for i > j: what participant i adds for partner j."""
    mask = prg(_derive(private, public, "mask", session, i, j), length)
    return mask if i < j else (~mask + np.uint64(1))  # two's complement negation mod 2^64


def _indexed(doc: Any, what: str) -> dict[int, Any]:
    if not isinstance(doc, dict):
        raise error("invalid_argument", f"secure aggregation: {what} must be a map")
    try:
        return {int(k): v for k, v in doc.items()}
    except ValueError:
        raise error("invalid_argument", f"secure aggregation: {what} keys must be participant indices") from None


def _bytes(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise error("invalid_argument", f"secure aggregation: {what} must be {size or 'some'} bytes")
    return value


# -- the participant's side -------------------------------------------------------------
class SecAggClient:
    """One participant's state for one session; each stage may run once, in order."""

    def __init__(self, session: str, index: int, threshold: int, vector: np.ndarray, frac_bits: int):
        if not 1 <= threshold or index < 1:
            raise error("invalid_argument", f"secure aggregation: bad index {index} or threshold {threshold}")
        self.session, self.index, self.threshold = session, index, threshold
        self.x = encode(vector, frac_bits)
        self.c_key, self.s_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        self.stage = "train"
        self.created = time.monotonic()
        self.keys: dict[int, tuple[bytes, bytes]] = {}
        self.own_shares: tuple[bytes, bytes] = (b"", b"")
        self.b_seed = b""
        self.inbox: dict[int, bytes] = {}
        self.u2: set[int] = set()

    def _advance(self, expected: str, stage: str) -> None:
        if self.stage != expected:
            raise error("conflict", f"secure aggregation: stage {stage!r} after {self.stage!r}")
        self.stage = stage

    def advertise(self) -> dict[str, Any]:
        return {"index": self.index, "c_pk": _public(self.c_key), "s_pk": _public(self.s_key),
                "length": int(self.x.shape[0])}

    def share_keys(self, keys: Any) -> dict[str, Any]:
        self._advance("train", "share_keys")
        table = {j: (_bytes(k.get("c_pk"), "c_pk", 32), _bytes(k.get("s_pk"), "s_pk", 32))
                 for j, k in _indexed(keys, "keys").items() if isinstance(k, dict)}
        if len(table) != len(keys):
            raise error("invalid_argument", "secure aggregation: every key entry must be a map")
        if table.get(self.index) != (_public(self.c_key), _public(self.s_key)):
            raise error("invalid_argument", "secure aggregation: the key list does not hold this participant's keys")
        if len(table) < self.threshold:
            raise error("unavailable", f"secure aggregation: {len(table)} participants, threshold {self.threshold}")
        if len({k for pair in table.values() for k in pair}) != 2 * len(table):
            raise error("invalid_argument", "secure aggregation: repeated public keys")
        self.keys = table
        self.b_seed = secrets.token_bytes(shamir.SECRET_BYTES)
        xs = sorted(table)
        b_shares = dict(zip(xs, shamir.split(self.b_seed, xs, self.threshold)))
        s_shares = dict(zip(xs, shamir.split(_raw(self.s_key), xs, self.threshold)))
        out: dict[str, bytes] = {}
        for j in xs:
            plain = shamir.encode_share(b_shares[j]) + shamir.encode_share(s_shares[j])
            if j == self.index:
                self.own_shares = (shamir.encode_share(b_shares[j]), shamir.encode_share(s_shares[j]))
                continue
            nonce = secrets.token_bytes(NONCE_BYTES)
            key = _derive(self.c_key, table[j][0], "share", self.session, self.index, j)
            out[str(j)] = nonce + AESGCM(key).encrypt(nonce, plain, self._aad(self.index, j))
        return {"shares": out}

    def _aad(self, sender: int, receiver: int) -> bytes:
        return f"{self.session}/{sender}->{receiver}".encode()

    def masked_input(self, shares: Any) -> dict[str, Any]:
        self._advance("share_keys", "masked_input")
        inbox = {j: _bytes(v, f"share from {j}") for j, v in _indexed(shares, "shares").items()}
        u2 = set(inbox) | {self.index}
        if not u2 <= set(self.keys) or self.index in inbox:
            raise error("invalid_argument", "secure aggregation: shares from participants outside the key list")
        if len(u2) < self.threshold:
            raise error("unavailable", f"secure aggregation: {len(u2)} participants shared keys, threshold "
                                       f"{self.threshold}")
        self.inbox, self.u2 = inbox, u2
        n = self.x.shape[0]
        y = self.x + prg(self.b_seed, n)
        for j in sorted(u2 - {self.index}):
            y += pair_mask(self.s_key, self.keys[j][1], self.session, self.index, j, n)
        return {"y": y}

    def unmask(self, survivors: Any) -> dict[str, Any]:
        self._advance("masked_input", "unmask")
        if not isinstance(survivors, list) or not all(isinstance(j, int) for j in survivors):
            raise error("invalid_argument", "secure aggregation: survivors must be a list of indices")
        u3 = set(survivors)
        if not u3 <= self.u2 or self.index not in u3:
            raise error("invalid_argument", "secure aggregation: survivors outside those who shared keys")
        if len(u3) < self.threshold:
            raise error("unavailable", f"secure aggregation: {len(u3)} survivors, threshold {self.threshold}")
        b_out: dict[str, bytes] = {}
        s_out: dict[str, bytes] = {}
        for j in sorted(self.u2):
            if j == self.index:
                b_share, s_share = self.own_shares
            else:
                raw = self.inbox[j]
                key = _derive(self.c_key, self.keys[j][0], "share", self.session, self.index, j)
                try:
                    plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(j, self.index))
                except InvalidTag:
                    raise error("invalid_argument", f"secure aggregation: the share from {j} fails "
                                                    "authentication") from None
                half = len(plain) // 2
                b_share, s_share = plain[:half], plain[half:]
            # One of the two, never both: b of a survivor and s of the same would unmask it.
            if j in u3:
                b_out[str(j)] = b_share
            else:
                s_out[str(j)] = s_share
        return {"b": b_out, "s": s_out}


class SessionStore:
    """Participant-side sessions by id (a server keeps one store per process); stale ones expire."""

    def __init__(self, ttl_s: float = SESSION_TTL_S):
        self.ttl_s = ttl_s
        self._sessions: dict[str, SecAggClient] = {}
        self._lock = threading.Lock()  # server jobs run stages on worker threads

    def start(self, client: SecAggClient) -> dict[str, Any]:
        with self._lock:
            self._expire()
            if client.session in self._sessions:
                raise error("conflict", f"secure aggregation: session {client.session} already exists")
            self._sessions[client.session] = client
        return client.advertise()

    def _take(self, session: Any) -> SecAggClient:
        """The session, removed from the store while its stage runs (a session's stages are sequential)."""
        with self._lock:
            self._expire()
            client = self._sessions.pop(session, None) if isinstance(session, str) else None
        if client is None:
            raise error("not_found", f"secure aggregation: no session {session!r} here")
        return client

    def step(self, message: Any) -> dict[str, Any]:
        """Run stage ``message["stage"]`` (share_keys, masked_input, unmask) of its session."""
        if not isinstance(message, dict):
            raise error("invalid_argument", "secure aggregation: a stage message is a map")
        stage = message.get("stage")
        if stage not in STAGES[1:]:
            raise error("invalid_argument", f"secure aggregation: unknown stage {stage!r}; one of {STAGES[1:]}")
        # A protocol error ends this participant's part in the round: the session is not put back.
        client = self._take(message.get("session"))
        if stage == "unmask":  # answered once only: asked twice, it could reveal both shares of someone
            return client.unmask(message.get("survivors"))
        answer = client.share_keys(message.get("keys")) if stage == "share_keys" \
            else client.masked_input(message.get("shares"))
        with self._lock:
            self._sessions[client.session] = client
        return answer

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, c in self._sessions.items() if now - c.created > self.ttl_s]:
            del self._sessions[sid]


def start_message(session: str, index: int, threshold: int, frac_bits: int, weighting: str,
                  bound: float | None) -> dict[str, Any]:
    return {"session": session, "index": index, "threshold": threshold, "frac_bits": frac_bits,
            "weighting": weighting, "bound": bound}


def client_for(message: Any, update: Update) -> SecAggClient:
    """The participant's session for a ``train`` message, once its update is trained."""
    if not isinstance(message, dict) or set(message) != {"session", "index", "threshold", "frac_bits", "weighting",
                                                        "bound"}:
        raise error("invalid_argument", "secure aggregation: a train message has session, index, threshold, "
                                        "frac_bits, weighting and bound")
    if message["weighting"] not in WEIGHTINGS or not isinstance(message["session"], str):
        raise error("invalid_argument", f"secure aggregation: weighting must be one of {WEIGHTINGS}")
    for name in ("index", "threshold", "frac_bits"):
        if isinstance(message[name], bool) or not isinstance(message[name], int):
            raise error("invalid_argument", f"secure aggregation: {name} must be an integer")
    if not 0 <= message["frac_bits"] <= 40:
        raise error("invalid_argument", "secure aggregation: frac_bits must be in 0..40")
    bound = message["bound"]
    if message["weighting"] == "unit" and not (isinstance(bound, (int, float)) and bound > 0):
        raise error("invalid_argument", "secure aggregation: unit weighting needs a positive bound")
    vector = summands(update, message["weighting"], bound)
    return SecAggClient(message["session"], message["index"], message["threshold"], vector, message["frac_bits"])


# -- the coordinator's side -------------------------------------------------------------
@dataclass
class SecAggConfig:
    """``secure_aggregation=True`` or a dict: ``threshold`` (t: an int, or a fraction of the
    round's participants; default a majority, ⌊n/2⌋ + 1) and ``frac_bits`` (fixed-point
    precision, default 24: rounding error 2^-24 per participant per coordinate)."""

    threshold: float | int | None = None
    frac_bits: int = 24

    @classmethod
    def of(cls, value: Any) -> SecAggConfig | None:
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, dict) or set(value) - {"threshold", "frac_bits"}:
            raise error("invalid_argument", "secure_aggregation must be True, False or a dict with threshold, "
                                            "frac_bits")
        config = cls(**value)
        t = config.threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or (isinstance(t, float) and not 0 < t <= 1) or (isinstance(t, int) and t < 2)):
            raise error("invalid_argument", f"secure_aggregation.threshold must be an integer >= 2 or a fraction "
                                            f"in (0, 1], got {t!r}")
        if isinstance(config.frac_bits, bool) or not isinstance(config.frac_bits, int) \
                or not 0 <= config.frac_bits <= 40:
            raise error("invalid_argument", f"secure_aggregation.frac_bits must be in 0..40, got {config.frac_bits!r}")
        return config

    def t(self, n: int) -> int:
        if self.threshold is None:
            return n // 2 + 1
        if isinstance(self.threshold, float):
            return max(2, math.ceil(self.threshold * n))
        return int(self.threshold)


def unmask_sum(session: str, threshold: int, length: int, keys: dict[int, tuple[bytes, bytes]],
               u2: set[int], masked: dict[int, np.ndarray], answers: dict[int, dict[str, Any]]) -> np.ndarray:
    """Σ x_i over the survivors (the keys of `masked`), from any `threshold` unmask answers."""
    u3 = set(masked)
    if len(answers) < threshold:
        raise error("unavailable", f"secure aggregation: {len(answers)} unmask answers, threshold {threshold}")
    b_shares: dict[int, list[tuple[int, int]]] = {j: [] for j in u3}
    s_shares: dict[int, list[tuple[int, int]]] = {j: [] for j in u2 - u3}
    for answer in answers.values():
        for field, table in (("b", b_shares), ("s", s_shares)):
            got = _indexed(answer.get(field, {}), field)
            for j, raw in got.items():
                if j not in table:
                    raise error("invalid_argument", f"secure aggregation: an unexpected {field} share for {j}")
                table[j].append(shamir.decode_share(_bytes(raw, f"{field} share")))
    total = np.zeros(length, dtype=np.uint64)
    for j in sorted(u3):
        total += masked[j]
        total -= prg(shamir.combine(b_shares[j], threshold), length)
    for d in sorted(u2 - u3):
        s_key = X25519PrivateKey.from_private_bytes(shamir.combine(s_shares[d], threshold))
        for j in sorted(u3):
            # j added pair_mask(s_j, s_pk_d, j, d); the same key from d's side is pair_mask(s_d, s_pk_j, d, j) negated
            total += pair_mask(s_key, keys[j][1], session, d, j, length)
    return total
