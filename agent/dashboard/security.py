"""Who may talk to the dashboard: a per-launch token and a same-origin check, for a server that can trade.

- Every request must name this server in its Host header: `localhost` or an IP literal (or the host it was told
  to bind). A web page on another domain that re-points its DNS at 127.0.0.1 (DNS rebinding) sends its own
  domain as Host and is refused before it can read the page, and with it the token.
- Every state-changing request (a chat turn, confirm, decline, the model's explanation) must carry the launch
  token in the `X-Trader-Token` header, and if it has an `Origin` (browsers always send one on POST) that origin
  must be this server's. The token is printed at start and put into the served page, never in a URL.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

TOKEN_HEADER = "X-Trader-Token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _hostname(host_header: str) -> str:
    """'127.0.0.1:8050' -> '127.0.0.1', '[::1]:8050' -> '::1', 'Example.COM' -> 'example.com'."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """The checks of one launch; `refuse(...)` returns why a request is refused, or None."""

    def __init__(self, bind_host: str, token: str | None = None):
        self.bind_host = bind_host.lower()
        self.token = token or new_token()

    def host_ok(self, host_header: str | None) -> bool:
        name = _hostname(host_header or "")
        if not name:
            return False
        if name == "localhost" or name == self.bind_host:
            return True
        try:  # an IP literal cannot be re-pointed by DNS
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False

    def refuse(self, method: str, host: str | None, origin: str | None, token: str | None) -> str | None:
        if not self.host_ok(host):
            return f"refused: unexpected Host header {host!r} (open the dashboard by the address it printed)"
        if method in ("GET", "HEAD", "OPTIONS"):
            return None
        if origin is not None:
            o = urlsplit(origin)
            if origin == "null" or o.scheme not in ("http", "https") or o.netloc.lower() != (host or "").lower():
                return f"refused: cross-origin request from {origin!r}"
        if not token or not hmac.compare_digest(token.encode(), self.token.encode()):
            return f"refused: missing or wrong {TOKEN_HEADER} (the token the dashboard printed at start)"
        return None
