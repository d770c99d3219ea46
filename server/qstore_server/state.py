"""Typed keys for the state one app shares between handlers (no module globals)."""
from __future__ import annotations

from aiohttp import web

from qstore import Database

from .auth import KeyRing
from .config import ServerConfig
from .jobs import JobRegistry
from .metrics import Metrics

CONFIG = web.AppKey("config", ServerConfig)
DB = web.AppKey("db", Database)
JOBS = web.AppKey("jobs", JobRegistry)
METRICS = web.AppKey("metrics", Metrics)
KEYS = web.AppKey("keys", KeyRing)

# Per request: the scopes of the caller's key (every scope when auth is off).
ACCESS = web.RequestKey("access", frozenset)
