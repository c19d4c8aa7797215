"""A small real HTTP client for the apps, their tests, the demo and the benchmark (stdlib only).

Every request (and, with :func:`grpc_metadata`, every gRPC call) carries ``Authorization: Bearer <token>``: ``$YR_TOKEN`` when set, else a token of the
default tenant minted from this machine's cluster token file (as `yr token` prints), so the apps
and the demo keep working against endpoints that require tokens.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from yuanrong import auth


def _token() -> str | None:
    import os

    if os.environ.get("YR_TOKEN"):
        return os.environ["YR_TOKEN"]
    try:
        return auth.token(auth.DEFAULT_TENANT)
    except Exception:  # no cluster token on this machine: send none, the server says 401 and why
        return None


def headers(extra: dict[str, str] | None = None, *, token: str | None = None) -> dict[str, str]:
    """Request headers with the bearer token (``token``, else :func:`_token`'s)."""
    out = {"Content-Type": "application/json", **(extra or {})}
    token = token or _token()
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def grpc_metadata(*pairs: tuple[str, str], token: str | None = None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata: ``pairs`` and the bearer token (``token``, else :func:`_token`'s)."""
    token = token or _token()
    return (*pairs, ("authorization", f"Bearer {token}")) if token else pairs


def request(method: str, url: str, body: Any = None, *, raw: bytes | None = None,
            timeout: float = 120, token: str | None = None, anonymous: bool = False,
            extra_headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Send one HTTP request; returns ``(status, JSON value or text)``. 4xx/5xx are returned, not raised.

    ``token`` replaces the default bearer token; ``anonymous`` sends none; ``extra_headers`` are
    sent too (a W3C ``traceparent``, say).
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if anonymous else headers(token=token)
    sent.update(extra_headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    text = payload.decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def stream(url: str, *, timeout: float = 120) -> Iterator[str]:
    """GET ``url`` and yield the response body chunk by chunk as it arrives (decoded)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers())
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {url} answered {resp.status}: {resp.read().decode()[:500]}")
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                return
            yield chunk.decode()
    finally:
        conn.close()


class KeepAlive:
    """One persistent HTTP/1.1 connection, for load generators that should not pay a TCP set-up per request."""

    def __init__(self, base_url: str, *, timeout: float = 60) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._headers = headers()

    def post(self, path: str, body: Any) -> tuple[int, bytes]:
        self._conn.request("POST", path, body=json.dumps(body).encode(), headers=self._headers)
        resp = self._conn.getresponse()
        return resp.status, resp.read()

    def get(self, path: str) -> tuple[int, bytes]:
        self._conn.request("GET", path, headers=self._headers)
        resp = self._conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self._conn.close()


def wait_for(predicate: Callable[[], bool], *, timeout: float = 90, interval: float = 0.5,
             what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; raise :class:`TimeoutError` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
