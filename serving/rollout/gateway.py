"""The gateway's canary split: ``PUT /v1/backends/{backend}/canary`` with ``{"version", "percent"}``
(sticky per client) and ``DELETE`` to end it (gateway/app/api/routes/backends.py)."""

from __future__ import annotations

import time

import httpx

from serving.rollout.servers import ServerError

# The gateway accepts a canary only for a version its last status read lists (it re-reads every
# GATEWAY_VERSION_REFRESH_S): a version loaded a moment ago may need a few reads.
ACCEPT_WITHIN_S = 5.0


class Gateway:
    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 10.0):
        self.url = url
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def set_canary(self, backend: str, version: int, percent: float) -> None:
        deadline = time.monotonic() + ACCEPT_WITHIN_S
        while True:
            r = self._call("PUT", backend, {"version": str(version), "percent": percent})
            if r.status_code == 200:
                return
            if r.status_code != 404 or time.monotonic() > deadline:
                raise ServerError(
                    f"gateway: canary {backend} -> {version} refused: HTTP {r.status_code}: {r.text[:300]}"
                )
            time.sleep(0.2)

    def clear_canary(self, backend: str) -> None:
        r = self._call("DELETE", backend)
        if r.status_code != 200:
            raise ServerError(f"gateway: ending {backend}'s canary refused: HTTP {r.status_code}: {r.text[:300]}")

    def _call(self, method: str, backend: str, body: dict[str, object] | None = None) -> httpx.Response:
        try:
            return self._http.request(method, f"/v1/backends/{backend}/canary", json=body)
        except httpx.HTTPError as exc:
            raise ServerError(f"gateway at {self.url} did not answer: {exc}") from exc
