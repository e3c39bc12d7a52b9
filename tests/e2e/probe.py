"""What a probe sees of one service on its own port (`/healthz`, `/readyz`)."""

from __future__ import annotations

import httpx


def probe(port: int, path: str) -> tuple[int | None, dict | None]:
    """(status, JSON body) of GET `path` on a service's own port; (None, None) if nothing answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.TransportError:
        return None, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None
