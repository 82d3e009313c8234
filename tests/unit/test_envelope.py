"""Sealed envelopes: what opens, and every reason an envelope is dropped (each counted)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from core.envelope import (
    MAX_MESSAGE_BYTES,
    EnvelopeRejected,
    MessageTooLarge,
    Opener,
    seal,
)
from core.identity import Identity


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return Identity.load_or_create(tmp_path_factory.mktemp("alice"))


@pytest.fixture(scope="module")
def bob(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return Identity.load_or_create(tmp_path_factory.mktemp("bob"))


def _edit(data: bytes, **changes: Any) -> bytes:
    fields = json.loads(data)
    fields.update(changes)
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _rejected(opener: Opener, data: bytes, **kwargs: Any) -> str:
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(data, **kwargs)
    return caught.value.reason


def test_a_sealed_envelope_opens_with_everything_it_carried(alice: Identity) -> None:
    body = {"text": "héllo", "n": 3, "nested": {"b": [1, 2.5, None], "a": True}}
    data = seal(alice, "reply", body)
    envelope = Opener().open(data, expected_sender=alice.peer_id)
    assert (envelope.version, envelope.sender, envelope.kind) == (1, alice.peer_id, "reply")
    assert envelope.body == body
    assert abs(envelope.timestamp - time.time()) < 5
    assert len(envelope.nonce) == 32
    # Canonical JSON: sorted keys, compact separators, so both ends sign and check the same bytes.
    canonical = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data == canonical.encode()


def test_two_seals_of_one_body_differ_in_nonce(alice: Identity) -> None:
    opener = Opener()
    first, second = (opener.open(seal(alice, "publish", {"x": 1})) for _ in range(2))
    assert first.nonce != second.nonce


def test_a_tampered_body_is_a_bad_signature(alice: Identity) -> None:
    opener = Opener()
    data = seal(alice, "request", {"amount": 1})
    assert _rejected(opener, _edit(data, body={"amount": 1000})) == "bad_signature"
    assert _rejected(opener, _edit(data, kind="reply")) == "bad_signature"
    assert opener.dropped == {"bad_signature": 2}


def test_a_tampered_signature_is_a_bad_signature(alice: Identity) -> None:
    data = seal(alice, "request", {})
    signature = json.loads(data)["sig"]
    forged = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert _rejected(Opener(), _edit(data, sig=forged)) == "bad_signature"
    assert _rejected(Opener(), _edit(data, sig="%%%")) == "malformed"


def test_a_replay_is_dropped(alice: Identity) -> None:
    opener = Opener()
    data = seal(alice, "request", {"pay": 5})
    opener.open(data)
    assert _rejected(opener, data) == "replayed"
    assert opener.dropped == {"replayed": 1}


def test_a_stale_or_future_timestamp_is_dropped(alice: Identity) -> None:
    data = seal(alice, "request", {})
    assert _rejected(Opener(clock=lambda: time.time() + 61), data) == "stale"
    assert _rejected(Opener(clock=lambda: time.time() - 61), data) == "stale"
    assert Opener(clock=lambda: time.time() + 55).open(data).body == {}
    assert _rejected(Opener(max_skew=5, clock=lambda: time.time() + 10), data) == "stale"


def test_an_oversized_message_is_refused_on_both_sides(alice: Identity) -> None:
    with pytest.raises(MessageTooLarge, match="over the limit"):
        seal(alice, "request", {"blob": "x" * MAX_MESSAGE_BYTES})
    opener = Opener()
    assert _rejected(opener, b"{" + b" " * MAX_MESSAGE_BYTES + b"}") == "oversized"
    assert opener.dropped == {"oversized": 1}


def test_a_forged_sender_is_dropped(alice: Identity, bob: Identity) -> None:
    data = seal(alice, "request", {})
    # Delivered by bob's connection but signed by alice: not bob's message.
    assert _rejected(Opener(), data, expected_sender=bob.peer_id) == "wrong_sender"
    # Claiming to be bob without bob's key.
    assert _rejected(Opener(), _edit(data, sender=bob.peer_id)) == "bad_signature"
    assert _rejected(Opener(), _edit(data, sender="not-a-peer-id")) == "bad_signature"


def test_another_version_is_dropped(alice: Identity) -> None:
    data = seal(alice, "request", {})
    assert _rejected(Opener(), _edit(data, v=2)) == "version"
    assert _rejected(Opener(), json.dumps({"v": 2, "payload": "new format"}).encode()) == "version"


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe", b"not json", b"[1, 2]", b'{"v": 1}', b"NaN", b"[" * 100_000],
)
def test_malformed_data_is_dropped(data: bytes) -> None:
    assert _rejected(Opener(), data) == "malformed"


def test_a_body_with_a_non_json_number_is_malformed(alice: Identity) -> None:
    data = seal(alice, "request", {"x": 1}).replace(b'"x":1', b'"x":NaN')
    assert _rejected(Opener(), data) == "malformed"


def test_a_field_of_the_wrong_type_is_malformed(alice: Identity) -> None:
    data = seal(alice, "request", {})
    for field, value in [("body", [1]), ("ts", "now"), ("ts", True), ("sender", 7), ("nonce", None)]:
        assert _rejected(Opener(), _edit(data, **{field: value})) == "malformed", field


def test_every_drop_is_counted_by_reason(alice: Identity, bob: Identity) -> None:
    opener = Opener()
    data = seal(alice, "request", {})
    opener.open(data)
    for bad, kwargs in [
        (data, {}),
        (data + b"x", {}),
        (seal(alice, "request", {}), {"expected_sender": bob.peer_id}),
        (_edit(seal(alice, "request", {}), body={"x": 1}), {}),
    ]:
        _rejected(opener, bad, **kwargs)
    assert opener.dropped == {"replayed": 1, "malformed": 1, "wrong_sender": 1, "bad_signature": 1}
