"""The coordinator's HTTP API as the node uses it (httpx), with errors a person can act on.

Every failure becomes a NodeError whose message names the coordinator URL and what to do:
an unreachable coordinator, a rejected upload (the coordinator's own 4xx ``detail``, which
already says what to fix), or an unexpected reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from mergenet.node.errors import NodeError

Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None) while a download runs."""


class CoordinatorClient:
    def __init__(self, url: str, *, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError:
            raise NodeError(
                f"cannot reach the coordinator at {self.url}: start it (`mergenet coordinator up`)"
                " or point MERGENET_COORDINATOR_URL (or --coordinator) at a running one"
            ) from None
        except httpx.TimeoutException:
            raise NodeError(
                f"the coordinator at {self.url} did not answer {what} in time"
            ) from None
        except httpx.HTTPError as exc:
            raise NodeError(f"{what} failed at {self.url}: {exc}") from None

    def _json(self, response: httpx.Response, what: str) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise NodeError(f"{what}: the coordinator said ({response.status_code}) {detail}")
        return response.json()

    def get(self, path: str, what: str) -> Any:
        with self._call(what):
            return self._json(self._http.get(path), what)

    def current_version(self) -> dict[str, Any]:
        return self.get("/api/versions/current", "asking for the current version")

    def contribution(self, sha256: str) -> dict[str, Any]:
        return self.get(f"/api/contributions/{sha256}", "asking for the contribution")

    def rewards(self, address: str) -> dict[str, Any]:
        return self.get(f"/api/rewards/{address}", "asking for rewards")

    def chain(self) -> dict[str, Any]:
        return self.get("/api/chain", "asking where the reward contracts are")

    def chain_or_none(self) -> dict[str, Any] | None:
        """``/api/chain``, or None when the coordinator runs without a chain (its 404)."""
        what = "asking where the reward contracts are"
        with self._call(what):
            response = self._http.get("/api/chain")
            if response.status_code == 404:
                return None
            return self._json(response, what)

    def download_weights(self, version_hash: str, out: BinaryIO, progress: Progress) -> None:
        what = f"downloading version {version_hash[:12]}"
        with (
            self._call(what),
            self._http.stream("GET", f"/api/versions/{version_hash}/weights") as response,
        ):
            if response.status_code >= 400:
                response.read()
                self._json(response, what)
            total = (
                int(response.headers["Content-Length"])
                if "Content-Length" in response.headers
                else None
            )
            done = 0
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                done += len(chunk)
                progress(done, total)

    def submit(
        self,
        file: Path,
        fields: dict[str, str],
        adapter_config: Path | None = None,
    ) -> dict[str, Any]:
        what = "uploading the contribution"
        with self._call(what), file.open("rb") as handle:
            files: dict[str, tuple[str, Any, str]] = {
                "file": (file.name, handle, "application/octet-stream")
            }
            if adapter_config is not None:
                files["adapter_config"] = (
                    "adapter_config.json",
                    adapter_config.read_bytes(),
                    "application/json",
                )
            return self._json(self._http.post("/api/contributions", data=fields, files=files), what)
