"""The submission signature: the node's helper and the coordinator's check agree, and the
EIP-712 domain (chain id, distributor contract, network id) binds it to one coordinator."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from mergenet.protocol.signing import (
    ZERO_ADDRESS,
    SignatureError,
    SigningDomain,
    recover_submitter,
    sign_submission,
    submission_typed_data,
    verify_submission,
)

SHA = "ab" * 32
PARENT = "cd" * 32
DOMAIN = SigningDomain(31337, ZERO_ADDRESS, "4e" * 32)


def test_round_trip_recovers_the_signer() -> None:
    acct = Account.from_key(b"\x01" * 32)
    sig = sign_submission(acct, SHA, PARENT, 7, DOMAIN)
    assert recover_submitter(sig, SHA, PARENT, 7, DOMAIN) == acct.address
    verify_submission(acct.address, sig, "0x" + SHA.upper(), PARENT, 7, DOMAIN)


def test_signature_is_eth_sign_typed_data_v4() -> None:
    """The same bytes as ``Account.sign_typed_data`` (what a wallet's eth_signTypedData_v4
    signs) over the documented types, so any EIP-712 wallet can sign an upload."""
    acct = Account.from_key(b"\x06" * 32)
    doc = submission_typed_data(SHA, PARENT, 9, DOMAIN)
    assert doc["primaryType"] == "Contribution"
    assert doc["domain"]["salt"] == "0x" + "4e" * 32
    assert doc["domain"]["verifyingContract"] == ZERO_ADDRESS
    wallet = acct.sign_typed_data(full_message=doc).signature.hex().removeprefix("0x")
    assert sign_submission(acct, SHA, PARENT, 9, DOMAIN) == "0x" + wallet
    assert (
        Account.recover_message(
            encode_typed_data(full_message=doc), signature=bytes.fromhex(wallet)
        )
        == acct.address
    )


@pytest.mark.parametrize(
    "field",
    [
        {"sha256": "ef" * 32},
        {"parent_hash": "01" * 32},
        {"nonce": 8},
        {"domain": dataclasses.replace(DOMAIN, chain_id=1)},
        {"domain": dataclasses.replace(DOMAIN, network_id="5a" * 32)},
        {"domain": dataclasses.replace(DOMAIN, verifying_contract="0x" + "11" * 20)},
    ],
)
def test_any_changed_field_or_domain_breaks_the_signature(field: dict) -> None:
    acct = Account.from_key(b"\x02" * 32)
    sig = sign_submission(acct, SHA, PARENT, 7, DOMAIN)
    args = {"sha256": SHA, "parent_hash": PARENT, "nonce": 7, "domain": DOMAIN} | field
    with pytest.raises(SignatureError, match="for another coordinator or chain"):
        verify_submission(acct.address, sig, **args)


def test_domain_round_trips_and_rejects_bad_fields() -> None:
    assert SigningDomain.from_json(DOMAIN.to_json()) == DOMAIN
    assert SigningDomain(5, ZERO_ADDRESS, "0x" + "4E" * 32).network_id == "4e" * 32
    with pytest.raises(SignatureError, match="network id"):
        SigningDomain(5, ZERO_ADDRESS, "xyz")
    with pytest.raises(SignatureError, match="not an address"):
        SigningDomain(5, "0x1234", "4e" * 32)
    with pytest.raises(SignatureError, match="signing domain"):
        SigningDomain.from_json(DOMAIN.to_json() | {"name": "other"})


def test_message_rejects_bad_fields() -> None:
    with pytest.raises(SignatureError):
        submission_typed_data("xyz", PARENT, 3, DOMAIN)
    with pytest.raises(SignatureError):
        submission_typed_data(SHA, PARENT, -1, DOMAIN)
    with pytest.raises(SignatureError):
        recover_submitter("0x1234", SHA, PARENT, 3, DOMAIN)
