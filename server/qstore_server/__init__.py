"""Q-Store server: the embedded engine behind the msgpack-over-HTTP protocol (docs/PROTOCOL.md)."""
__version__ = "0.1.0"

from .app import create_app  # noqa: E402
from .config import ServerConfig  # noqa: E402

__all__ = ["create_app", "ServerConfig", "__version__"]
