"""Signing a submission (node side) and checking it (coordinator side), one message for both.

The contributor signs the tuple (sha256 of the uploaded file, parent version hash, nonce,
chain id) with **EIP-191** ``personal_sign`` (version ``0x45``, "Ethereum Signed Message"):
the signed text is human-readable, so a wallet shows exactly what is being authorised, and
eth-account needs no typed-data schema. The message is canonical — lower-case hex without
``0x``, decimal nonce and chain id, fixed line order — so both sides build identical bytes::

    mergenet contribution
    sha256: <64 hex>
    parent: <64 hex>
    nonce: <decimal>
    chain_id: <decimal>

For a PEFT LoRA adapter the signed "sha256" is :func:`adapter_sha256`: the sha256 of
``b"mergenet-lora/1\0" + sha256(adapter_model.safetensors) + b"\0" + adapter_config.json``,
so the config (rank, alpha, targets — it sets the scale of the update) is signed too.

The chain id binds a signature to one chain; the nonce (single-use per address, enforced
by the coordinator) stops replays of the same upload. Signatures are accepted only in the
canonical form of EIP-2 — ``r ‖ s ‖ v`` with ``0 < r, s < n``, **low s** (``s ≤ n/2``) and
``v`` 27 or 28 (0 or 1 is read as 27 or 28) — so a signature has exactly one accepted
encoding: its high-s twin ``(r, n − s, v ^ 1)``, which recovers the same address, is refused,
and :func:`canonical_signature` is what the coordinator stores. Not yet bound: a second
coordinator on the same chain id accepts the same signed upload (EIP-712 typed data with a
domain naming the chain id, the distributor contract and a network id is the planned fix).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_typing import HexStr
from eth_utils import is_hexstr, remove_0x_prefix, to_hex

from mergenet.errors import Unauthorized
from mergenet.protocol.hashes import sha256_file, sha256_hex

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


class SignatureError(Unauthorized):
    """A signature that is malformed or not made by the claimed address."""


def _hex64(value: str, name: str) -> str:
    return sha256_hex(value, name, SignatureError)


def adapter_sha256(config: bytes, weights_sha256: str) -> str:
    """The content hash of a LoRA adapter: its weights' sha256 and its exact config bytes."""
    blob = b"mergenet-lora/1\0" + _hex64(weights_sha256, "weights sha256").encode() + b"\0"
    return hashlib.sha256(blob + config).hexdigest()


def adapter_folder_sha256(folder: str | Path) -> str:
    """:func:`adapter_sha256` of a PEFT adapter folder (what a node signs for an adapter)."""
    root = Path(folder)
    config = (root / "adapter_config.json").read_bytes()
    return adapter_sha256(config, sha256_file(root / "adapter_model.safetensors"))


def submission_message(sha256: str, parent_hash: str, nonce: int, chain_id: int) -> str:
    """The exact text signed for a submission (see module docstring)."""
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce < 2**63:
        raise SignatureError(f"nonce must be an integer in [0, 2**63), got {nonce!r}")
    return (
        "mergenet contribution\n"
        f"sha256: {_hex64(sha256, 'sha256')}\n"
        f"parent: {_hex64(parent_hash, 'parent hash')}\n"
        f"nonce: {nonce}\n"
        f"chain_id: {int(chain_id)}"
    )


def sign_submission(
    account: LocalAccount, sha256: str, parent_hash: str, nonce: int, chain_id: int
) -> str:
    """The 0x-prefixed 65-byte EIP-191 signature a node sends with its upload."""
    message = encode_defunct(text=submission_message(sha256, parent_hash, nonce, chain_id))
    return to_hex(account.sign_message(message).signature)


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1; EIP-2 accepts ``s`` only up to ``SECP256K1_N // 2``."""


def _canonical_bytes(signature: str) -> bytes:
    raw = remove_0x_prefix(HexStr(signature)) if isinstance(signature, str) else ""
    if len(raw) != 130 or not is_hexstr(raw):
        raise SignatureError("signature must be 65 bytes as hex (0x + 130 hex digits)")
    sig = bytes.fromhex(raw)
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    v = v + 27 if v in (0, 1) else v
    if v not in (27, 28):
        raise SignatureError(f"signature v must be 27 or 28 (or 0 or 1), got {sig[64]}")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise SignatureError("signature r and s must lie in (0, n) of secp256k1")
    if s > SECP256K1_N // 2:
        raise SignatureError(
            "signature has a high s value; only low-s signatures (EIP-2, s ≤ n/2) are "
            "accepted: sign again with eth-account or a current wallet"
        )
    return sig[:64] + bytes([v])


def canonical_signature(signature: str) -> str:
    """The one accepted encoding: ``0x`` + lower-case hex of r ‖ s ‖ v (v 27/28, low s)."""
    return to_hex(_canonical_bytes(signature))


def recover_submitter(
    signature: str, sha256: str, parent_hash: str, nonce: int, chain_id: int
) -> str:
    """The checksummed address that signed this submission (raises SignatureError)."""
    message = encode_defunct(text=submission_message(sha256, parent_hash, nonce, chain_id))
    sig = _canonical_bytes(signature)
    try:
        return Account.recover_message(message, signature=sig)
    except Exception as exc:  # eth_keys raises several types for invalid points/v
        raise SignatureError(f"signature cannot be recovered: {exc}") from None


def verify_submission(
    address: str, signature: str, sha256: str, parent_hash: str, nonce: int, chain_id: int
) -> None:
    """Raise SignatureError unless ``address`` signed exactly this submission."""
    signer = recover_submitter(signature, sha256, parent_hash, nonce, chain_id)
    if signer.lower() != address.lower():
        raise SignatureError(
            f"signature was made by {signer}, not {address}; sign (sha256, parent, nonce, "
            f"chain id {chain_id}) with the key of the address you submit as"
        )
