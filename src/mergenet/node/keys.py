"""The contributor's key: an encrypted eth-account keystore (scrypt), never printed.

The password comes from ``MERGENET_KEYSTORE_PASSWORD`` or, on a terminal, a hidden prompt;
the key itself is only ever in the keystore file (mode 0600) and in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mergenet.node.errors import NodeError
from mergenet.rewards.keystore import (
    KeystoreError,
    create_keystore,
    keystore_address,
    load_keystore,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from mergenet.config import Settings

PasswordPrompt = Callable[[bool], str]
"""Asks for a password; the flag says whether to ask twice (a new keystore)."""


def password(settings: Settings, prompt: PasswordPrompt | None, *, confirm: bool) -> str:
    """The keystore password: the environment variable first, then the prompt if any."""
    if settings.keystore_password is not None:
        value = settings.keystore_password.get_secret_value()
        if not value:
            raise NodeError("MERGENET_KEYSTORE_PASSWORD is empty: choose a non-empty password")
        return value
    if prompt is None:
        raise NodeError(
            "no keystore password: set MERGENET_KEYSTORE_PASSWORD or run in a terminal to be asked"
        )
    value = prompt(confirm)
    if not value:
        raise NodeError("the password must not be empty")
    return value


def new_key(path: Path, secret: str, *, iterations: int | None = None) -> str:
    """Create a fresh key in ``path``; returns its address."""
    try:
        return create_keystore(path, secret, iterations=iterations)
    except KeystoreError as exc:
        raise NodeError(f"{exc} (use --keystore to write elsewhere)") from None


def import_key(
    path: Path, private_key_hex: str, secret: str, *, iterations: int | None = None
) -> str:
    """Encrypt an existing private key (64 hex digits) into ``path``; returns its address."""
    raw = private_key_hex.strip().removeprefix("0x")
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise NodeError("a private key is 32 bytes: 64 hex digits, with or without 0x")
    try:
        return create_keystore(path, secret, private_key=key, iterations=iterations)
    except (KeystoreError, ValueError) as exc:
        raise NodeError(str(exc)) from None


def show_address(path: Path) -> str:
    """The keystore's address, read without the password."""
    address = keystore_address(path)
    if address is None:
        raise NodeError(f"no keystore at {path}: create one with `mergenet node keys new`")
    return address


def unlock(path: Path, secret: str) -> LocalAccount:
    if not path.exists():
        raise NodeError(f"no keystore at {path}: create one with `mergenet node keys new`")
    try:
        return load_keystore(path, secret)
    except KeystoreError as exc:
        raise NodeError(str(exc)) from None
