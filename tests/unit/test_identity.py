"""A node's key: created private, reused, refused when others can read it; verified by peer id alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from libp2p.peer.id import ID

from core.identity import KEY_FILE, Identity, IdentityError, verify
from node.transport import libp2p_key_pair


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Files get exactly the mode they are created with, so a key written world-readable would show."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_created_readable_by_its_owner_only(tmp_path: Path, open_umask: None) -> None:
    identity = Identity.load_or_create(tmp_path / "node")
    key = tmp_path / "node" / KEY_FILE
    assert _mode(key) == 0o600
    assert _mode(tmp_path / "node") == 0o700
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in (tmp_path / "node").iterdir()] == [KEY_FILE]  # no partial file left behind
    assert identity.peer_id.startswith("12D3KooW")  # an Ed25519 key inlined in the id


def test_the_key_is_reused_on_the_next_start(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path)
    content = (tmp_path / KEY_FILE).read_bytes()
    second = Identity.load_or_create(tmp_path)
    assert second.peer_id == first.peer_id
    assert (tmp_path / KEY_FILE).read_bytes() == content
    assert ID.from_pubkey(libp2p_key_pair(second).public_key).to_base58() == first.peer_id  # libp2p agrees


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    Identity.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(IdentityError, match=r"can be read by other users \(mode 0644\)"):
        Identity.load_or_create(tmp_path)


def test_a_malformed_key_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    key = tmp_path / KEY_FILE
    key.write_bytes(b"not a key")
    key.chmod(0o600)
    with pytest.raises(IdentityError, match="not a PEM private key"):
        Identity.load_or_create(tmp_path)
    assert key.read_bytes() == b"not a key"


def test_a_signature_verifies_against_the_peer_id_alone(tmp_path: Path) -> None:
    alice = Identity.load_or_create(tmp_path / "alice")
    bob = Identity.load_or_create(tmp_path / "bob")
    signature = alice.sign(b"hello")
    assert verify(alice.peer_id, b"hello", signature)
    assert not verify(alice.peer_id, b"hellO", signature)
    assert not verify(bob.peer_id, b"hello", signature)
    assert not verify(alice.peer_id, b"hello", signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not verify("not-a-peer-id", b"hello", signature)
    assert not verify("", b"hello", signature)


def test_the_libp2p_key_pair_signs_for_the_same_peer_id(tmp_path: Path) -> None:
    identity = Identity.load_or_create(tmp_path)
    signature = libp2p_key_pair(identity).private_key.sign(b"payload")
    assert verify(identity.peer_id, b"payload", signature)


def test_peer_ids_are_derived_as_libp2p_derives_them() -> None:
    for _ in range(20):
        identity = Identity.generate()
        assert ID.from_pubkey(libp2p_key_pair(identity).public_key).to_base58() == identity.peer_id
        assert ID.from_base58(identity.peer_id).extract_public_key() == libp2p_key_pair(identity).public_key


def test_a_peer_id_that_embeds_no_ed25519_key_verifies_nothing() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"x")
    sha256_id = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"  # an RSA-style id: a hash, no key
    assert not verify(sha256_id, b"x", signature)
    assert not verify(identity.peer_id[:-1], b"x", signature)
