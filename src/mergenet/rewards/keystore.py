"""Encrypted eth-account keystores (Web3 Secret Storage, scrypt) for the coordinator and nodes.

Private keys live only in these files (mode 0600) and in memory; the password comes from
``MERGENET_KEYSTORE_PASSWORD`` (a ``SecretStr``, so it never prints). Nothing here logs keys
or passwords.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from eth_utils import to_checksum_address

from mergenet.errors import Unauthorized

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from mergenet.config import Settings


class KeystoreError(Unauthorized):
    """Missing keystore or password, or a password that does not open the keystore."""


def coordinator_keystore_path(data_dir: Path) -> Path:
    return data_dir / "keystores" / "coordinator.json"


def keystore_password(settings: Settings) -> str:
    if settings.keystore_password is None:
        raise KeystoreError(
            "MERGENET_KEYSTORE_PASSWORD is not set: set it to the password that encrypts "
            "the keystore (a new keystore is created with it)"
        )
    password = settings.keystore_password.get_secret_value()
    if not password:
        raise KeystoreError("MERGENET_KEYSTORE_PASSWORD is empty: choose a non-empty password")
    return password


def create_keystore(
    path: Path,
    password: str,
    *,
    private_key: bytes | None = None,
    iterations: int | None = None,
    overwrite: bool = False,
) -> str:
    """Write an encrypted keystore for ``private_key`` (a new random key if None); returns
    its address. ``iterations`` is scrypt's n (default 2**18, ~0.5 s); tests pass less."""
    from eth_account import Account

    if path.exists() and not overwrite:
        raise KeystoreError(f"{path} already exists; refusing to overwrite a key")
    if not password:
        raise KeystoreError("a keystore password must not be empty")
    account = Account.from_key(private_key) if private_key is not None else Account.create()
    data = Account.encrypt(account.key, password, iterations=iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    tmp.replace(path)
    return str(account.address)


def load_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypt ``path``; a wrong password or a damaged file is a KeystoreError naming the file."""
    from eth_account import Account

    if not path.exists():
        raise KeystoreError(
            f"no keystore at {path}: create one with `mergenet node keys new --keystore PATH`"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KeystoreError(f"{path} is not a keystore JSON file ({exc.msg})") from exc
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        raise KeystoreError(
            f"could not decrypt {path}: wrong password (MERGENET_KEYSTORE_PASSWORD) or a damaged "
            "keystore"
        ) from exc
    return Account.from_key(key)


def keystore_address(path: Path) -> str | None:
    """The address recorded in a keystore, read without decrypting (None if absent)."""

    try:
        address = json.loads(path.read_text()).get("address")
    except (OSError, json.JSONDecodeError):
        return None
    return to_checksum_address(address) if address else None
