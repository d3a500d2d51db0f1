"""The submission signature: the node's helper and the coordinator's check agree."""

from __future__ import annotations

import pytest
from eth_account import Account

from mergenet.protocol.signing import (
    SignatureError,
    recover_submitter,
    sign_submission,
    submission_message,
    verify_submission,
)

SHA = "ab" * 32
PARENT = "cd" * 32


def test_round_trip_recovers_the_signer() -> None:
    acct = Account.from_key(b"\x01" * 32)
    sig = sign_submission(acct, SHA, PARENT, 7, 31337)
    assert recover_submitter(sig, SHA, PARENT, 7, 31337) == acct.address
    verify_submission(acct.address, sig, "0x" + SHA.upper(), PARENT, 7, 31337)


@pytest.mark.parametrize(
    "field",
    [
        {"sha256": "ef" * 32},
        {"parent_hash": "01" * 32},
        {"nonce": 8},
        {"chain_id": 1},
    ],
)
def test_any_changed_field_breaks_the_signature(field: dict) -> None:
    acct = Account.from_key(b"\x02" * 32)
    sig = sign_submission(acct, SHA, PARENT, 7, 31337)
    args = {"sha256": SHA, "parent_hash": PARENT, "nonce": 7, "chain_id": 31337} | field
    with pytest.raises(SignatureError, match="not"):
        verify_submission(acct.address, sig, **args)


def test_message_is_canonical_and_rejects_bad_fields() -> None:
    text = submission_message("0x" + SHA.upper(), PARENT, 3, 5)
    assert text == f"mergenet contribution\nsha256: {SHA}\nparent: {PARENT}\nnonce: 3\nchain_id: 5"
    with pytest.raises(SignatureError):
        submission_message("xyz", PARENT, 3, 5)
    with pytest.raises(SignatureError):
        submission_message(SHA, PARENT, -1, 5)
    with pytest.raises(SignatureError):
        recover_submitter("0x1234", SHA, PARENT, 3, 5)
