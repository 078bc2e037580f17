"""A lean JSON-RPC client and ABI helpers.

The hot paths (quotes, swaps) talk JSON-RPC directly over one keep-alive session: web3.py's middleware and
formatter stack cost more than anvil itself (a lean loop did ~90 swaps/s, the full stack far fewer).
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import urlsplit

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from trader_core.errors import ChainError, ChainUnavailable

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def mask_url(url: str) -> str:
    """Scheme, host and port only: the path or query of a hosted RPC URL usually holds an API key."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not parts.hostname:
        return "<invalid url>"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{hidden}"


class RpcError(ChainError):
    """The node answered with a JSON-RPC error (a revert carries its reason in `message` / `data`)."""

    def __init__(self, method: str, message: str, data: Any = None):
        self.method = method
        self.rpc_message = message
        self.data = data
        super().__init__(f"{method}: {message}")

    @property
    def revert_reason(self) -> str:
        return decode_revert(self.data) or self.rpc_message.replace("execution reverted: ", "")


class Rpc:
    """Synchronous JSON-RPC over one persistent http.client connection, with batch support.

    http.client rather than requests: requests' per-call environment/proxy merging cost ~0.7 ms, as much as
    anvil's own work for a quote.
    """

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        self.url = url
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn = None
        self._ids = itertools.count(1)

    def _connect(self):
        import http.client

        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout)
        conn.connect()
        import socket

        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _post(self, payload: Any) -> Any:
        import http.client
        import json

        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in (0, 1):  # one silent retry: a keep-alive connection the server closed while idle
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.request("POST", self._path, body, headers)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt:
                    raise ChainUnavailable(
                        f"the chain at {mask_url(self.url)} does not answer ({type(exc).__name__}); "
                        "run `trader chain up` or check --rpc-url"
                    ) from None
        if response.status != 200:
            raise ChainUnavailable(f"the chain at {mask_url(self.url)} answered HTTP {response.status}")
        return json.loads(data)

    def __call__(self, method: str, *params: Any) -> Any:
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        if "error" in reply:
            err = reply["error"]
            raise RpcError(method, str(err.get("message", err)), err.get("data"))
        return reply["result"]

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Several requests in one HTTP round trip; results in call order, the first error raised."""
        if not calls:
            return []
        first = next(self._ids)
        payload = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        for _ in range(len(calls) - 1):
            next(self._ids)
        replies = {r["id"]: r for r in self._post(payload)}
        out = []
        for i, (method, _) in enumerate(calls):
            reply = replies[first + i]
            if "error" in reply:
                err = reply["error"]
                raise RpcError(method, str(err.get("message", err)), err.get("data"))
            out.append(reply["result"])
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- ABI helpers: signatures in, calldata out (no contract objects on the hot path) --------------------------

def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _arg_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1 : signature.rindex(")")]
    # split on top-level commas only (tuples nest)
    depth, cur, out = 0, "", []
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def calldata(signature: str, *args: Any) -> str:
    """'transfer(address,uint256)', to, 5 -> '0xa9059cbb...'."""
    return "0x" + (selector(signature) + abi_encode(_arg_types(signature), list(args))).hex()


def decode(types: list[str], data: str | bytes) -> tuple:
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
    return abi_decode(types, raw)


def word(value: int | str) -> str:
    """32-byte hex word (for storage writes and topics)."""
    if isinstance(value, str):
        value = int(value, 16)
    return "0x" + value.to_bytes(32, "big").hex()


def mapping_slot(key_address: str, slot: int) -> str:
    """Storage slot of `mapping(address => ...)` at `slot` for `key_address` (Solidity layout)."""
    key = bytes.fromhex(key_address[2:].rjust(64, "0")) + slot.to_bytes(32, "big")
    return "0x" + keccak(key).hex()


# Custom errors of the Universal Router, V4 and Permit2 a swap can hit (they carry no string: name them).
CUSTOM_ERRORS = {
    "0x" + keccak(text=sig).hex()[:8]: sig for sig in (
        "TransactionDeadlinePassed()", "V4TooLittleReceived(uint256,uint256)", "V4TooMuchRequested(uint256,uint256)",
        "AllowanceExpired(uint256)", "InsufficientAllowance(uint256)", "SignatureExpired(uint256)", "InvalidNonce()",
        "InvalidSigner()", "ExecutionFailed(uint256,bytes)", "PoolNotInitialized()", "DeadlinePassed(uint256)",
    )
}


def decode_revert(data: Any) -> str | None:
    """Error(string) / Panic(uint256) / known custom-error payloads -> text; anything else -> None."""
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return None
    try:
        if data[:10] == "0x08c379a0":
            return abi_decode(["string"], bytes.fromhex(data[10:]))[0]
        if data[:10] == "0x4e487b71":
            return f"panic 0x{abi_decode(['uint256'], bytes.fromhex(data[10:]))[0]:02x}"
        sig = CUSTOM_ERRORS.get(data[:10].lower())
        if sig:
            args = abi_decode(_arg_types(sig), bytes.fromhex(data[10:]))
            return sig.split("(")[0] + "(" + ", ".join(a.hex() if isinstance(a, bytes) else str(a) for a in args) + ")"
    except Exception:  # malformed payloads are reported raw by the caller
        return None
    return None


def checksum(address: str) -> str:
    """A validated EIP-55 address (web3.py's rules): `0x` + 40 hex digits; a mixed-case address must carry a
    correct checksum (all-lowercase or all-uppercase hex carries none and is accepted)."""
    from trader_core.errors import ConfigError

    text = address.strip() if isinstance(address, str) else ""
    if not text.startswith("0x"):
        raise ConfigError(f"{address!r} is not an Ethereum address: it must start with 0x followed by 40 hex "
                          "digits")
    digits = text[2:]
    if len(digits) != 40 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(f"{address!r} is not an Ethereum address; pass 0x followed by 40 hex digits")
    good = to_checksum_address(text)
    if digits != digits.lower() and digits != digits.upper() and text != good:
        raise ConfigError(f"{address!r} has a wrong EIP-55 checksum (its upper/lower case letters do not match): "
                          "it has a typo or was altered; copy the address again")
    return good
