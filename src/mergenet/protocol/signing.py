"""Signing a submission (node side) and checking it (coordinator side), one message for both.

The contributor signs **EIP-712** typed data, so a wallet shows the fields it authorises and
the signature is bound to one network::

    Contribution(bytes32 sha256, bytes32 parent, uint256 nonce)

under the domain ``EIP712Domain(string name, string version, uint256 chainId,
address verifyingContract, bytes32 salt)`` = ("mergenet", "1", the chain id, the distributor
contract — the zero address when the coordinator runs without a chain — and the coordinator's
**network id** as ``salt``: 32 random bytes made on its first open and kept in its data dir,
see :mod:`mergenet.coordinator.network`). The coordinator serves this domain in
``GET /api/info``; a node fetches it and signs with it. So a signed upload replayed to a second
coordinator (same chain id, other network id) or over another chain recovers a different
address and is refused (401).

For a PEFT LoRA adapter the signed "sha256" is :func:`adapter_sha256`: the sha256 of
``b"mergenet-lora/1\0" + sha256(adapter_model.safetensors) + b"\0" + adapter_config.json``,
so the config (rank, alpha, targets — it sets the scale of the update) is signed too.

The nonce (single-use per address, enforced by the coordinator) stops replays of the same
upload to the same coordinator. Signatures are accepted only in the canonical form of EIP-2 —
``r ‖ s ‖ v`` with ``0 < r, s < n``, **low s** (``s ≤ n/2``) and ``v`` 27 or 28 (0 or 1 is
read as 27 or 28) — so a signature has exactly one accepted encoding: its high-s twin
``(r, n − s, v ^ 1)``, which recovers the same address, is refused, and
:func:`canonical_signature` is what the coordinator stores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_typing import HexStr
from eth_utils import is_address, is_hexstr, remove_0x_prefix, to_checksum_address, to_hex

from mergenet.errors import Unauthorized
from mergenet.protocol.hashes import sha256_file, sha256_hex

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


class SignatureError(Unauthorized):
    """A signature that is malformed or not made by the claimed address."""


ZERO_ADDRESS = "0x" + "00" * 20
"""The domain's ``verifyingContract`` when the coordinator runs without a chain."""

DOMAIN_NAME = "mergenet"
DOMAIN_VERSION = "1"


def _hex64(value: str, name: str) -> str:
    return sha256_hex(value, name, SignatureError)


@dataclass(frozen=True)
class SigningDomain:
    """What binds a signature to one coordinator: chain id, distributor, network id.

    Invariants (checked on construction): ``verifying_contract`` is a checksummed address,
    ``network_id`` is 64 lower-case hex digits without ``0x``.
    """

    chain_id: int
    verifying_contract: str
    network_id: str

    def __post_init__(self) -> None:
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int):
            raise SignatureError(f"chain id must be an integer, got {self.chain_id!r}")
        if not is_address(self.verifying_contract):
            raise SignatureError(f"not an address: {self.verifying_contract!r}")
        object.__setattr__(self, "verifying_contract", to_checksum_address(self.verifying_contract))
        object.__setattr__(self, "network_id", _hex64(self.network_id, "network id"))

    def to_json(self) -> dict[str, Any]:
        """The domain as ``GET /api/info`` serves it (EIP-712 field names)."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
            "salt": "0x" + self.network_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SigningDomain:
        """Read what :meth:`to_json` wrote (raises SignatureError on a foreign domain)."""
        if data.get("name") != DOMAIN_NAME or str(data.get("version")) != DOMAIN_VERSION:
            raise SignatureError(f"not a {DOMAIN_NAME} v{DOMAIN_VERSION} signing domain: {data}")
        return cls(int(data["chainId"]), str(data["verifyingContract"]), str(data["salt"]))


def adapter_sha256(config: bytes, weights_sha256: str) -> str:
    """The content hash of a LoRA adapter: its weights' sha256 and its exact config bytes."""
    blob = b"mergenet-lora/1\0" + _hex64(weights_sha256, "weights sha256").encode() + b"\0"
    return hashlib.sha256(blob + config).hexdigest()


def adapter_folder_sha256(folder: str | Path) -> str:
    """:func:`adapter_sha256` of a PEFT adapter folder (what a node signs for an adapter)."""
    root = Path(folder)
    config = (root / "adapter_config.json").read_bytes()
    return adapter_sha256(config, sha256_file(root / "adapter_model.safetensors"))


_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
        {"name": "salt", "type": "bytes32"},
    ],
    "Contribution": [
        {"name": "sha256", "type": "bytes32"},
        {"name": "parent", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
}


def submission_typed_data(
    sha256: str, parent_hash: str, nonce: int, domain: SigningDomain
) -> dict[str, Any]:
    """The EIP-712 document signed for a submission (``eth_signTypedData_v4`` input)."""
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce < 2**63:
        raise SignatureError(f"nonce must be an integer in [0, 2**63), got {nonce!r}")
    return {
        "types": _TYPES,
        "primaryType": "Contribution",
        "domain": domain.to_json(),
        "message": {
            "sha256": "0x" + _hex64(sha256, "sha256"),
            "parent": "0x" + _hex64(parent_hash, "parent hash"),
            "nonce": nonce,
        },
    }


def _signable(sha256: str, parent_hash: str, nonce: int, domain: SigningDomain) -> SignableMessage:
    return encode_typed_data(full_message=submission_typed_data(sha256, parent_hash, nonce, domain))


def sign_submission(
    account: LocalAccount, sha256: str, parent_hash: str, nonce: int, domain: SigningDomain
) -> str:
    """The 0x-prefixed 65-byte EIP-712 signature a node sends with its upload (low s)."""
    signed = account.sign_message(_signable(sha256, parent_hash, nonce, domain))
    return to_hex(signed.signature)


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
    signature: str, sha256: str, parent_hash: str, nonce: int, domain: SigningDomain
) -> str:
    """The checksummed address that signed this submission (raises SignatureError)."""
    message = _signable(sha256, parent_hash, nonce, domain)
    sig = _canonical_bytes(signature)
    try:
        return Account.recover_message(message, signature=sig)
    except Exception as exc:  # eth_keys raises several types for invalid points/v
        raise SignatureError(f"signature cannot be recovered: {exc}") from None


def verify_submission(
    address: str,
    signature: str,
    sha256: str,
    parent_hash: str,
    nonce: int,
    domain: SigningDomain,
) -> None:
    """Raise SignatureError unless ``address`` signed exactly this submission for ``domain``."""
    signer = recover_submitter(signature, sha256, parent_hash, nonce, domain)
    if signer.lower() != address.lower():
        raise SignatureError(
            f"signature recovers to {signer}, not {address}: sign the EIP-712 Contribution "
            f"(sha256, parent, nonce) with the key of the address you submit as, under this "
            f"coordinator's domain from GET /api/info (chain id {domain.chain_id}, contract "
            f"{domain.verifying_contract}, network id 0x{domain.network_id}); a signature made "
            f"for another coordinator or chain is not valid here"
        )
