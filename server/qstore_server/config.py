"""Server configuration: where data lives, how to bind, who may call, and request limits."""
from __future__ import annotations

import argparse
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from qstore import runtime
from qstore_client.protocol import Limits

from .jobs import JobKind

DEFAULT_PORT = 8470


def parse_keys(text: str) -> frozenset[str]:
    """Keys separated by commas or newlines; blanks and '#' comment lines are ignored."""
    keys = (k.strip() for line in text.splitlines() if not line.lstrip().startswith("#") for k in line.split(","))
    return frozenset(k for k in keys if k)


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
    api_keys: frozenset[str] = frozenset()
    readonly_keys: frozenset[str] = frozenset()
    allow_unauthenticated_remote: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: Limits = Limits()
    job_workers: int = field(default_factory=lambda: runtime.config().job_workers)
    job_kinds: tuple[JobKind, ...] | None = None  # None: job_kinds.builtin_kinds()
    access_log: bool = False
    shutdown_timeout: float = 30.0

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.readonly_keys)

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
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> "ServerConfig":
        """Build from `qstore serve` arguments; keys come from the environment and/or key files."""
        api_keys = parse_keys(environ.get("QSTORE_API_KEY", ""))
        readonly = parse_keys(environ.get("QSTORE_READONLY_API_KEY", ""))
        if args.api_key_file:
            api_keys |= parse_keys(Path(args.api_key_file).read_text())
        if args.readonly_key_file:
            readonly |= parse_keys(Path(args.readonly_key_file).read_text())
        return cls(
            data_dir=Path(args.data_dir), host=args.host, port=args.port,
            api_keys=api_keys, readonly_keys=readonly - api_keys,
            allow_unauthenticated_remote=args.allow_unauthenticated_remote,
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
            limits=Limits(max_body_bytes=args.max_body_bytes, max_batch=args.max_batch,
                          max_dim=args.max_dim, max_top_k=args.max_top_k),
            job_workers=args.job_workers or runtime.config().job_workers, access_log=args.access_log,
            shutdown_timeout=args.shutdown_timeout,
        )
