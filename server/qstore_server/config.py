"""Server configuration: where data lives, how to bind, who may call, and request limits."""
from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qstore import runtime
from qstore_client.protocol import Limits

from .auth import expand
from .jobs import JobKind

DEFAULT_PORT = 8470


def parse_keys(text: str) -> frozenset[str]:
    """Keys separated by commas or newlines; blanks and '#' comment lines are ignored."""
    keys = (k.strip() for line in text.splitlines() if not line.lstrip().startswith("#") for k in line.split(","))
    return frozenset(k for k in keys if k)


def parse_scoped_keys(text: str) -> dict[str, frozenset[str]]:
    """`KEY SCOPE[,SCOPE...]` entries, one a line (or separated by ';' in QSTORE_KEYS); '#' comments."""
    keys: dict[str, frozenset[str]] = {}
    for entry in (e.strip() for line in text.splitlines() for e in line.split(";")):
        if not entry or entry.startswith("#"):
            continue
        key, _, scopes = entry.partition(" ")
        names = frozenset(s.strip() for s in scopes.split(",") if s.strip())
        if not names:
            raise ValueError("each scoped key is 'KEY SCOPE[,SCOPE...]'; an entry has no scope")
        expand(names)  # ValueError on an unknown scope
        keys[key] = keys.get(key, frozenset()) | names
    return keys


@functools.lru_cache(maxsize=256)  # asked on every request of a keyless server
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)  # key -> scopes
    allow_unauthenticated_remote: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # Host names a keyless server accepts besides loopback
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: Limits = Limits()
    job_workers: int = field(default_factory=lambda: runtime.config().job_workers)
    job_kinds: tuple[JobKind, ...] | None = None  # None: job_kinds.builtin_kinds()
    access_log: bool = False
    shutdown_timeout: float = 30.0
    # Where new collections keep their records, and the Qdrant deployment (docs/STORES.md);
    # the Qdrant API key comes from QSTORE_QDRANT_API_KEY.
    store: str = "lmdb"
    qdrant_url: str | None = None
    qdrant_options: Mapping[str, int] = field(default_factory=dict)  # shard_number, replication_factor, ...

    @property
    def auth_enabled(self) -> bool:
        return bool(self.keys)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def check(self) -> None:
        """Refuse unsafe or incomplete settings before anything binds (ValueError says why)."""
        if not self.auth_enabled and not is_loopback(self.host) and not self.allow_unauthenticated_remote:
            raise ValueError(
                f"refusing to serve {self.host} without an API key: set QSTORE_API_KEY or --api-key-file, "
                "bind 127.0.0.1, or pass --allow-unauthenticated-remote")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        return context

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> ServerConfig:
        """Build from `qstore serve` arguments. Keys come from the environment and/or key files:
        QSTORE_API_KEY (and --api-key-file) keys have every scope but federated, as before scopes
        existed; QSTORE_READONLY_API_KEY (--readonly-key-file) keys are read; QSTORE_KEYS
        (--keys-file) names each key's scopes."""
        sources = [(environ.get("QSTORE_API_KEY", ""), "admin"), (environ.get("QSTORE_READONLY_API_KEY", ""), "read"),
                   (environ.get("QSTORE_KEYS", ""), None)]
        for path, scope in ((args.api_key_file, "admin"), (args.readonly_key_file, "read"), (args.keys_file, None)):
            if path:
                sources.append((Path(path).read_text(), scope))
        keys: dict[str, set[str]] = {}
        for text, scope in sources:  # plain key lists have one scope; scoped lists name theirs
            found = parse_scoped_keys(text) if scope is None else dict.fromkeys(parse_keys(text), {scope})
            for key, scopes in found.items():
                keys.setdefault(key, set()).update(scopes)
        limits = Limits(**{name: getattr(args, name) for name in Limits.__dataclass_fields__})
        return cls(
            data_dir=Path(args.data_dir), host=args.host, port=args.port,
            keys={k: frozenset(v) for k, v in keys.items()},
            allow_unauthenticated_remote=args.allow_unauthenticated_remote,
            allowed_hosts=frozenset(h.lower() for h in args.allowed_host or ()),
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
            limits=limits, job_workers=args.job_workers or runtime.config().job_workers,
            access_log=args.access_log,
            shutdown_timeout=args.shutdown_timeout,
            store=args.store, qdrant_url=args.qdrant_url,
            qdrant_options={k: v for k, v in (("shard_number", args.qdrant_shards),
                                              ("replication_factor", args.qdrant_replicas),
                                              ("write_consistency_factor", args.qdrant_write_consistency))
                            if v is not None},
        )
