"""Signed statements: what a peer says in a round (a commitment, a reveal, a ballot), checkable by anyone.

An envelope's signature proves who sent a message on the wire and dies with
it; a statement's signature stays with the content, so the gateway can hand
it on (in a response's provenance, later in the ledger) and anyone holding
it can check who said what, without trusting the gateway. The signature
covers the canonical JSON of kind, signer and body, behind a domain prefix
of its own so it can't be passed off as an envelope signature or vice versa.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from core.envelope import canonical
from core.identity import Identity, verify

_DOMAIN = b"swarm-statement-v1\n"


class BadStatement(ValueError):
    """A statement that is malformed, or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class Statement:
    kind: str
    signer: str  # a peer id, which embeds the public key
    body: dict[str, Any]
    signature: str  # base64

    def signed_bytes(self) -> bytes:
        return _DOMAIN + canonical({"kind": self.kind, "signer": self.signer, "body": self.body})

    def verified(self) -> bool:
        try:
            signature = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return verify(self.signer, self.signed_bytes(), signature)

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "signer": self.signer, "body": self.body, "signature": self.signature}


def sign(identity: Identity, kind: str, body: dict[str, Any]) -> Statement:
    unsigned = Statement(kind, identity.peer_id, body, "")
    signature = base64.b64encode(identity.sign(unsigned.signed_bytes())).decode()
    return Statement(kind, identity.peer_id, body, signature)


def from_wire(data: Any, *, kind: str, signer: str | None = None) -> Statement:
    """A statement received from a peer: well formed, of the expected kind (and signer), and verified."""
    try:
        statement = Statement(
            str(data["kind"]), str(data["signer"]), dict(data["body"]), str(data["signature"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadStatement(f"malformed {kind} statement: {exc!r}") from None
    if statement.kind != kind:
        raise BadStatement(f"expected a {kind} statement, got {statement.kind!r}")
    if signer is not None and statement.signer != signer:
        raise BadStatement(f"a {kind} statement signed by {statement.signer}, expected {signer}")
    if not statement.verified():
        raise BadStatement(f"the signature of a {kind} statement from {statement.signer} does not verify")
    return statement


def commitment_digest(round_id: str, model: str, salt: str, answer: str) -> str:
    """What a commitment commits to: the answer, hidden behind a salt until it is revealed."""
    return hashlib.sha256(
        canonical({"round": round_id, "model": model, "salt": salt, "answer": answer})
    ).hexdigest()
