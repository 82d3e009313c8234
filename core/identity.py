"""A node's Ed25519 identity: one key per data dir, and the peer id that carries its public key.

The key file is created with mode 0600 and never chmod'ed after it is written,
so there is no moment when another user could read it. A key file that others
can read is refused rather than used: the key may already have leaked.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "identity.key"

# A libp2p peer id of an Ed25519 key is the base58 of an identity multihash (code 0, length 36) of
# the key's protobuf encoding (field 1, type Ed25519 = 1; field 2, 32 bytes of key). Written out
# here so that signatures can be checked without the network library.
_PEER_ID_PREFIX = bytes([0x00, 36, 0x08, 0x01, 0x12, 32])


class IdentityError(Exception):
    """The key file can't be used; the message says why and what to do."""


class Identity:
    """The node's signing key and its peer id (which embeds the public key)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.peer_id: str = base58.b58encode(_PEER_ID_PREFIX + public).decode()

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity held only in memory."""
        return cls(Ed25519PrivateKey.generate())

    def seed(self) -> bytes:
        """The 32 raw bytes of the private key, from which the transport derives its libp2p key pair."""
        return self._private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Identity:
        """The identity kept in `data_dir`, created on first use."""
        path = data_dir / KEY_FILE
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Written beside the final name and renamed into place, so a crash never leaves half a key behind.
        partial = path.with_name(KEY_FILE + ".partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.rename(path)
        return cls(key)

    @classmethod
    def _load(cls, path: Path) -> Identity:
        fd = os.open(path, os.O_RDONLY)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise IdentityError(f"key file {path} is not a regular file")
            if mode & 0o077:
                raise IdentityError(
                    f"key file {path} can be read by other users (mode {stat.S_IMODE(mode):04o}): "
                    f"the key may have leaked; make a new one (delete the file) or `chmod 600 {path}`"
                )
            pem = os.read(fd, 64 * 1024)
        finally:
            os.close(fd)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise IdentityError(
                f"key file {path} is not a PEM private key ({exc}): restore it or delete it"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign(data)


def verify(peer_id: str, data: bytes, signature: bytes) -> bool:
    """Whether `signature` over `data` was made by the key inside `peer_id`."""
    key = _public_key(peer_id)
    if key is None:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _public_key(peer_id: str) -> Ed25519PublicKey | None:
    # Cached: a stream of frames from one peer would otherwise decode the same id for every frame.
    try:
        raw = base58.b58decode(peer_id)
    except ValueError:
        return None
    if len(raw) != len(_PEER_ID_PREFIX) + 32 or not raw.startswith(_PEER_ID_PREFIX):
        return None
    return Ed25519PublicKey.from_public_bytes(raw[len(_PEER_ID_PREFIX) :])
