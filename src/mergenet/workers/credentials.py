"""A worker's credential and the signing of its results (worker side of ``protocol.worker_auth``).

The operator issues each worker an id and a secret (``mergenet.protocol.worker_auth.worker_secret``
of the id under the coordinator's master key). The worker reads them from
``MERGENET_WORKER_ID`` and ``MERGENET_WORKER_SECRET`` or ``MERGENET_WORKER_SECRET_FILE``
(``mergenet worker --worker-id --secret-file`` sets these for its Celery process). The secret
is held as a ``SecretStr``: its repr is masked, so it never reaches a log line. A worker
without a credential returns plain outcomes, which a coordinator with a keyring refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mergenet.protocol.worker_auth import sign_result


class WorkerCredential(BaseSettings):
    """``MERGENET_WORKER_ID`` and ``MERGENET_WORKER_SECRET`` (or ``…_SECRET_FILE``)."""

    model_config = SettingsConfigDict(env_prefix="MERGENET_WORKER_", extra="ignore")

    id: str = ""
    secret: SecretStr | None = None
    secret_file: Path | None = None

    def resolved_secret(self) -> str | None:
        if self.secret is not None:
            return self.secret.get_secret_value()
        if self.secret_file is not None:
            return self.secret_file.read_text().strip()
        return None


def result_for(key: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """What the worker sends back for the task dispatched under ``key``: signed when it has
    a credential, else the plain outcome (refused by a coordinator that checks)."""
    cred = WorkerCredential()
    secret = cred.resolved_secret()
    if not cred.id or not secret:
        return outcome
    return sign_result(secret, cred.id, key, outcome)
