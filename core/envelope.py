"""Versioned, signed envelopes: every message a node sends to a peer travels in one.

Wire form: one canonical JSON object (sorted keys, compact separators)

    {"body": {...}, "kind": "...", "nonce": "<32 hex>", "sender": "<peer id>",
     "sig": "<base64>", "ts": <unix ms>, "v": 1}

The signature covers the canonical JSON of every field but "sig", behind a
domain prefix so a signature made here can't be passed off as one of the
libp2p signatures made with the same key. The sender is a peer id, which
embeds the public key, so an envelope verifies without any key exchange.
Pure: no network, no clock but the one given to the Opener.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.identity import Identity, verify

VERSION = 1
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one envelope, on the wire, at most
DEFAULT_MAX_SKEW_S = 60.0
REPLAY_CACHE_ENTRIES = 262_144  # nonces remembered; about 2,000 messages/s over the two-minute window
REASONS = ("oversized", "malformed", "bad_signature", "stale", "replayed", "wrong_sender", "version")

_DOMAIN = b"swarm-envelope-v1\n"
_FIELDS = {"v", "sender", "kind", "ts", "nonce", "body", "sig"}


class EnvelopeRejected(Exception):
    """An envelope that must be dropped; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class MessageTooLarge(ValueError):
    """A message that would be over MAX_MESSAGE_BYTES once sealed: refused before it is sent."""


@dataclass(frozen=True, slots=True)
class Envelope:
    version: int
    sender: str
    kind: str
    timestamp: float  # unix seconds, as the sender's clock said
    nonce: str
    body: dict[str, Any]


def canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def seal(identity: Identity, kind: str, body: dict[str, Any]) -> bytes:
    """`body` signed by `identity`, ready to send. Raises MessageTooLarge past MAX_MESSAGE_BYTES."""
    fields: dict[str, Any] = {
        "v": VERSION,
        "sender": identity.peer_id,
        "kind": kind,
        "ts": int(time.time() * 1000),
        "nonce": secrets.token_hex(16),
        "body": body,
    }
    fields["sig"] = base64.b64encode(identity.sign(_DOMAIN + canonical(fields))).decode()
    data = canonical(fields)
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"a {kind!r} message of {len(data)} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes"
        )
    return data


class Opener:
    """Checks envelopes and remembers their nonces; counts what it drops, by reason, in `dropped`."""

    def __init__(
        self, *, max_skew: float = DEFAULT_MAX_SKEW_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_skew = max_skew
        self.dropped: Counter[str] = Counter()
        self._clock = clock
        # nonce -> when it may be forgotten; insertion order is expiry order, so expired ones sit in front.
        self._seen: OrderedDict[str, float] = OrderedDict()

    def open(self, data: bytes, *, expected_sender: str | None = None) -> Envelope:
        try:
            return self._open(data, expected_sender)
        except EnvelopeRejected as rejected:
            self.dropped[rejected.reason] += 1
            raise

    def _open(self, data: bytes, expected_sender: str | None) -> Envelope:
        if len(data) > MAX_MESSAGE_BYTES:
            raise EnvelopeRejected("oversized", f"{len(data)} bytes, over the limit of {MAX_MESSAGE_BYTES}")
        fields = _parse(data)
        sender = fields["sender"]
        if expected_sender is not None and sender != expected_sender:
            raise EnvelopeRejected("wrong_sender", f"signed as {sender}, sent by {expected_sender}")
        try:
            signature = base64.b64decode(fields.pop("sig"), validate=True)
        except binascii.Error:
            raise EnvelopeRejected("malformed", "the signature is not base64") from None
        now = self._clock()
        timestamp = fields["ts"] / 1000
        if abs(now - timestamp) > self.max_skew:  # checked before the signature, which costs more
            raise EnvelopeRejected("stale", f"sent at {timestamp:.3f}, {now - timestamp:+.1f} s from now")
        if not verify(sender, _DOMAIN + canonical(fields), signature):
            raise EnvelopeRejected("bad_signature", f"the signature does not match sender {sender}")
        self._remember(fields["nonce"], now)
        return Envelope(VERSION, sender, fields["kind"], timestamp, fields["nonce"], fields["body"])

    def _remember(self, nonce: str, now: float) -> None:
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            raise EnvelopeRejected("replayed", f"nonce {nonce} was seen in the last {2 * self.max_skew:g} s")
        if len(self._seen) >= REPLAY_CACHE_ENTRIES:
            self._seen.popitem(last=False)
        # A copy is only accepted within max_skew of its timestamp, and so within 2 * max_skew of
        # the first copy's arrival: past that it is refused as stale and the nonce can go.
        self._seen[nonce] = now + 2 * self.max_skew


def _parse(data: bytes) -> dict[str, Any]:
    try:
        # NaN and Infinity are not JSON and could not be re-encoded to check the signature.
        fields = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        raise EnvelopeRejected("malformed", f"not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise EnvelopeRejected("malformed", "not a JSON object")
    if "v" in fields and fields["v"] != VERSION:  # a newer format may have other fields
        raise EnvelopeRejected("version", f"version {fields['v']!r}, this node speaks {VERSION}")
    if set(fields) != _FIELDS:
        raise EnvelopeRejected("malformed", f"fields {sorted(fields)}, expected {sorted(_FIELDS)}")
    types = {"sender": str, "kind": str, "nonce": str, "sig": str, "body": dict, "ts": int}
    for name, expected in types.items():
        if not isinstance(fields[name], expected) or isinstance(fields[name], bool):
            raise EnvelopeRejected("malformed", f"field {name!r} is not a {expected.__name__}")
    return fields


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
