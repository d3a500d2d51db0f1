"""Issue 19 item 3 (first part): a signature has one accepted encoding. The high-s twin of a
valid signature — ``(r, n − s, v ^ 1)``, which recovers the same address — was accepted; it
is now refused with an ``Unauthorized`` that says why, and what is stored is canonical."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from mergenet.errors import Unauthorized
from mergenet.protocol.signing import (
    SECP256K1_N,
    ZERO_ADDRESS,
    SignatureError,
    SigningDomain,
    canonical_signature,
    sign_submission,
    submission_typed_data,
    verify_submission,
)

SHA, PARENT = "ab" * 32, "cd" * 32
DOMAIN = SigningDomain(31337, ZERO_ADDRESS, "4e" * 32)


def high_s_twin(signature: str) -> str:
    """The malleated twin of a low-s signature (same signer, different bytes)."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    s = int.from_bytes(raw[32:64], "big")
    v = raw[64]
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    return "0x" + twin.hex()


def test_high_s_twin_is_refused_with_a_clear_401_kind() -> None:
    acct = Account.from_key(b"\x03" * 32)
    sig = sign_submission(acct, SHA, PARENT, 1, DOMAIN)
    twin = high_s_twin(sig)
    message = encode_typed_data(full_message=submission_typed_data(SHA, PARENT, 1, DOMAIN))
    assert Account.recover_message(message, signature=bytes.fromhex(twin[2:])) == acct.address
    verify_submission(acct.address, sig, SHA, PARENT, 1, DOMAIN)  # the low-s original passes
    with pytest.raises(SignatureError, match="high s value") as info:
        verify_submission(acct.address, twin, SHA, PARENT, 1, DOMAIN)
    assert isinstance(info.value, Unauthorized)


def test_canonical_form_is_lowercase_0x_with_v_27_or_28() -> None:
    acct = Account.from_key(b"\x04" * 32)
    sig = sign_submission(acct, SHA, PARENT, 2, DOMAIN)
    raw = sig.removeprefix("0x")
    as_v01 = raw[:128] + f"{int(raw[128:], 16) - 27:02x}"
    assert canonical_signature(raw.upper()) == canonical_signature(as_v01) == sig.lower()
    verify_submission(acct.address, as_v01, SHA, PARENT, 2, DOMAIN)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw[:128] + "1d", "v must be 27 or 28"),
        (lambda raw: "00" * 32 + raw[64:], r"r and s must lie in \(0, n\)"),
        (lambda raw: raw[:64] + f"{SECP256K1_N:064x}" + raw[128:], r"r and s must lie"),
        (lambda raw: raw[:-2], "65 bytes as hex"),
    ],
)
def test_malformed_signatures_are_unauthorized(mutate, message) -> None:  # type: ignore[no-untyped-def]
    acct = Account.from_key(b"\x05" * 32)
    raw = sign_submission(acct, SHA, PARENT, 3, DOMAIN).removeprefix("0x")
    with pytest.raises(SignatureError, match=message):
        verify_submission(acct.address, "0x" + mutate(raw), SHA, PARENT, 3, DOMAIN)
