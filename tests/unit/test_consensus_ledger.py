"""The ledger: entries that verify, chains that can't be reordered, one book whatever the arrival order."""

from __future__ import annotations

import copy
import itertools
import json
import random
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from consensus import GENESIS, Added, BadEntry, Ledger, from_wire, make, verify
from core.identity import Identity
from core.statements import commitment_digest, sign
from reputation import Rules
from routing.datasets import challenge_bank

RULES = Rules().digest()
BANK = list(challenge_bank().items.values())


def identity() -> Identity:
    return Identity.generate()


GATEWAY, OTHER, ALICE, BOB, JUDGE, SYBIL, NOBODY = (identity() for _ in range(7))
# Right answers that earn a say in one challenge (the test's least number of items, all right).
PASS = int(Rules().say_min_items)


def answer(
    peer: Identity, round_id: str, model: str, text: str, by: Identity = GATEWAY
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The peer's commitment to `text` and its reveal, given to the gateway (or challenger) `by`."""
    digest = commitment_digest(round_id, model, "salt", text)
    asked = {"round": round_id, "model": model, "gateway": by.peer_id}
    commitment = sign(peer, "commitment", {**asked, "digest": digest})
    reveal = sign(peer, "reveal", {**asked, "answer": text, "salt": "salt"})
    return commitment.to_wire(), reveal.to_wire()


def challenge_record(
    peer: Identity, right: int, wrong: int, cid: str = "", by: Identity = GATEWAY
) -> dict[str, Any]:
    """A challenge of `peer` by `by` on questions of the bank, `right` of them answered right."""
    cid = cid or f"challenge-{random.random()}"
    answers = []
    for i, item in enumerate(BANK[: right + wrong]):
        commitment, reveal = answer(peer, f"{cid}-{i}", "m", item.answers[0] if i < right else "?", by)
        answers.append(
            {"item": f"civics/{item.id}", "correct": i < right, "commitment": commitment, "reveal": reveal}
        )
    return {"challenge": cid, "peer": peer.peer_id, "model": "m", "answers": answers}


def round_record(round_id: str, prefer_alice: bool = True, by: Identity = GATEWAY) -> dict[str, Any]:
    """A round of Alice's and Bob's answers, judged by the judge, that the gateway `by` asked for."""
    candidates = [
        {"cid": i, "model": m, "peer": p.peer_id, "commitment": answer(p, round_id, m, t, by)[0]}
        for i, (p, m, t) in enumerate([(ALICE, "a", "B"), (BOB, "b", "C")])
    ]
    vote = [0, 1, "A" if prefer_alice else "B"]
    verdicts = {"0": "GOOD", "1": "BAD"}
    ballot = sign(
        JUDGE, "ballot", {"round": round_id, "gateway": by.peer_id, "votes": [vote], "verdicts": verdicts}
    )
    return {
        "round": round_id,
        "mode": "consensus",
        "candidates": candidates,
        "ballots": [ballot.to_wire()],
        "winner": 0 if prefer_alice else 1,
        "domain": "general",
        "reported": {"chosen": {}, "missed": {}, "malformed": {}},
    }


def established(ledger: Ledger) -> None:
    """Bootstrap: while fewer than `min_holders` peers hold a say in a domain, a challenge there counts from
    anyone; from then on only from a peer holding one."""
    ledger.append(GATEWAY, "challenge", challenge_record(OTHER, PASS, 0))
    assert not ledger.book.bootstrapping(ledger.rules)
    ledger.append(OTHER, "challenge", challenge_record(GATEWAY, PASS, 0, by=OTHER))
    ledger.append(GATEWAY, "challenge", challenge_record(JUDGE, PASS, 0))  # three hold a say: closed
    ledger.append(
        NOBODY, "challenge", challenge_record(ALICE, PASS, 0, by=NOBODY)
    )  # from a writer with no say
    assert ledger.book.score(ALICE.peer_id) == 0
    for peer in (ALICE, BOB):
        ledger.append(GATEWAY, "challenge", challenge_record(peer, PASS, 0))


def test_an_established_network_settles_rounds_and_stakes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    established(ledger)
    rules = ledger.rules
    assert all(ledger.book.eligible(p.peer_id, "answer", rules) for p in (ALICE, BOB, JUDGE, GATEWAY))
    before = {p: ledger.book.score(p.peer_id) for p in (ALICE, BOB, JUDGE)}
    ledger.append(GATEWAY, "round", round_record("r1"))
    after = {p: ledger.book.score(p.peer_id) for p in (ALICE, BOB, JUDGE)}
    assert after[ALICE] > before[ALICE]  # top of the order, found GOOD
    assert after[BOB] < before[BOB]  # bottom, found BAD
    assert ledger.book.book("general").open_rounds() == set()  # staked and settled in one step
    assert len(ledger) == 7 and ledger.heads()[GATEWAY.peer_id] == 5


@pytest.mark.usefixtures("wide_umask")
def test_a_ledger_reopens_from_disk_as_it_was_in_owner_only_files(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    established(ledger)
    ledger.append(GATEWAY, "round", round_record("r1"))
    head, book = ledger.head, ledger.book.snapshot()
    files = {file.name: stat.S_IMODE(file.stat().st_mode) for file in tmp_path.iterdir()}
    assert files == dict.fromkeys(("ledger.db", "ledger.db-wal", "ledger.db-shm"), 0o600)
    ledger.close()
    again = Ledger(tmp_path / "ledger.db")
    assert (again.head, again.book.snapshot(), again.load_failures) == (head, book, [])


def test_arrival_order_changes_nothing() -> None:
    source = Ledger()
    established(source)
    for i in range(4):
        writer = random.choice([GATEWAY, OTHER])
        source.append(writer, "round", round_record(f"r{i}", prefer_alice=i % 2 == 0, by=writer))
    wires = [e.to_wire() for e in source.recent(len(source))]
    heads = set()
    for seed in range(5):
        shuffled = wires[:]
        random.Random(seed).shuffle(shuffled)
        replica = Ledger()
        results = replica.add_many(from_wire(w) for w in shuffled)
        assert Added.NEW in results
        heads.add((replica.head, json.dumps(replica.book.snapshot(), sort_keys=True)))
        assert replica.waiting() == []
    assert heads == {(source.head, json.dumps(source.book.snapshot(), sort_keys=True))}


def test_a_forged_entry_is_rejected() -> None:
    honest = make(GATEWAY, 0, GENESIS, time.time(), "challenge", challenge_record(ALICE, 3, 0), RULES)
    forged = honest.to_wire()
    forged["signer"] = OTHER.peer_id  # claims to be another gateway
    with pytest.raises(BadEntry, match="signature"):
        from_wire(forged)


def test_a_tampered_entry_or_ballot_is_rejected() -> None:
    entry = make(GATEWAY, 0, GENESIS, time.time(), "round", round_record("r1"), RULES).to_wire()
    tampered = copy.deepcopy(entry)
    tampered["body"]["record"]["reported"]["missed"] = {BOB.peer_id: 1}
    with pytest.raises(BadEntry, match="signature"):
        from_wire(tampered)
    # A gateway re-signing an entry with a changed vote: the judge's own signature gives it away.
    record = round_record("r2")
    record["ballots"][0]["body"]["votes"][0][2] = "B"
    with pytest.raises(BadEntry, match="ballot"):
        make(GATEWAY, 0, GENESIS, time.time(), "round", record, RULES)
    # A challenge answer graded right that is not what the peer committed to.
    record = challenge_record(ALICE, 1, 0)
    record["answers"][0]["reveal"] = answer(ALICE, record["challenge"] + "-0", "m", "something else")[1]
    with pytest.raises(BadEntry, match="commitment"):
        make(GATEWAY, 0, GENESIS, time.time(), "challenge", record, RULES)


def test_an_entry_made_under_other_rules_is_rejected() -> None:
    entry = make(
        GATEWAY, 0, GENESIS, time.time(), "challenge", challenge_record(ALICE, 1, 0), Rules(prior=20).digest()
    )
    with pytest.raises(BadEntry, match="other reputation rules"):
        Ledger().add(entry)


def test_a_challenge_graded_against_the_bank_otherwise_is_rejected() -> None:
    passed_wrong = challenge_record(ALICE, 0, 1)
    passed_wrong["answers"][0]["correct"] = True  # a friend vouching for a wrong answer
    failed_right = challenge_record(ALICE, 1, 0)
    failed_right["answers"][0]["correct"] = False  # a rival failing a right one
    for record, verdict in ((passed_wrong, "graded right"), (failed_right, "graded wrong")):
        with pytest.raises(BadEntry, match=verdict):
            Ledger().add(make(GATEWAY, 0, GENESIS, time.time(), "challenge", record, RULES))


def test_reordered_forked_and_time_travelling_entries_are_rejected() -> None:
    source = Ledger()
    entries = [source.append(GATEWAY, "challenge", challenge_record(p, 1, 0)) for p in (ALICE, BOB, JUDGE)]
    replica = Ledger()
    replica.add(entries[0])
    # Entry 2 re-signed to follow entry 0 directly, cutting entry 1 out of the chain.
    skipping = make(GATEWAY, 1, entries[0].digest, entries[2].at, "challenge", entries[2].record, RULES)
    replica.add(skipping)
    # The honest entry 1 and the re-signed one are two entries 1 of the gateway: the proof of a fork.
    assert replica.add(entries[1]) is Added.FORK
    assert replica.heads() == {GATEWAY.peer_id: 1} and replica.book.banned(GATEWAY.peer_id)
    other = Ledger()
    other.add(entries[0])
    with pytest.raises(BadEntry, match="chain is broken"):
        other.add(
            make(GATEWAY, 1, GENESIS.replace("0", "1"), time.time(), "challenge", entries[1].record, RULES)
        )
    with pytest.raises(BadEntry, match="dated before"):
        other.add(
            make(GATEWAY, 1, entries[0].digest, entries[0].at - 10, "challenge", entries[1].record, RULES)
        )
    with pytest.raises(BadEntry, match="future"):
        other.add(
            make(GATEWAY, 1, entries[0].digest, time.time() + 3600, "challenge", entries[1].record, RULES)
        )
    assert len(other) == 1 and other.book.score(BOB.peer_id) == 0


def test_an_entry_ahead_of_its_predecessor_waits_for_it() -> None:
    source = Ledger()
    entries = [source.append(GATEWAY, "challenge", challenge_record(p, 1, 0)) for p in (ALICE, BOB, JUDGE)]
    replica = Ledger()
    assert replica.add_many([entries[2], entries[1]]) == [Added.WAITING, Added.WAITING]
    assert len(replica) == 0 and replica.waiting() == [(GATEWAY.peer_id, 1), (GATEWAY.peer_id, 2)]
    assert replica.add(entries[0]) == Added.NEW
    assert replica.head == source.head and replica.waiting() == []
    assert replica.since({GATEWAY.peer_id: 1}, 10) == entries[1:]
    assert replica.since({}, 2) == entries[:2]


def test_a_sybil_gains_no_eligibility_without_passing_challenges() -> None:
    ledger = Ledger()
    established(ledger)
    rules: Rules = ledger.rules
    sybils = [identity() for _ in range(20)]
    # Sybils vouching for each other have no say; an established peer's challenges they fail.
    for a, b in itertools.pairwise(sybils):
        ledger.append(a, "challenge", challenge_record(b, PASS, 0, by=a))
    for s in sybils:
        ledger.append(GATEWAY, "challenge", challenge_record(s, 0, 3))
        ledger.append(s, "challenge", challenge_record(s, PASS, 0, by=s))  # nor on itself
    assert not any(ledger.book.eligible(s.peer_id, "answer", rules) for s in sybils)
    assert all(ledger.book.score(s.peer_id) == 0 for s in sybils)
    # Nor can a Sybil gateway's rounds move anyone's reputation.
    before = ledger.book.snapshot()["books"]["general"]["scores"]
    ledger.append(SYBIL, "round", round_record("sybil-round", by=SYBIL))
    assert ledger.book.snapshot()["books"]["general"]["scores"] == pytest.approx(before)  # decay aside
    # Passing an established peer's challenge is what it takes.
    ledger.append(GATEWAY, "challenge", challenge_record(sybils[0], PASS, 0))
    assert ledger.book.eligible(sybils[0].peer_id, "answer", rules)


def test_a_peer_that_fails_challenges_later_loses_eligibility() -> None:
    ledger = Ledger()
    established(ledger)
    assert ledger.book.eligible(BOB.peer_id, "answer", ledger.rules)
    challengers = [identity() for _ in range(20)]
    for challenger in challengers:
        ledger.append(GATEWAY, "challenge", challenge_record(challenger, PASS, 0))
    # Each challenger's answers count for at most say_per_writer: failing many of them is what costs Bob
    # its say.
    for challenger in challengers:
        ledger.append(challenger, "challenge", challenge_record(BOB, 0, 20, by=challenger))
    assert not ledger.book.eligible(BOB.peer_id, "answer", ledger.rules)


def test_a_failed_write_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    established(ledger)
    head, size = ledger.head, len(ledger)
    assert ledger._db is not None
    ledger._db.execute(
        "CREATE TRIGGER full BEFORE INSERT ON entries BEGIN SELECT RAISE(FAIL, 'disk full'); END"
    )
    with pytest.raises(sqlite3.Error, match="disk full"):
        ledger.append(GATEWAY, "round", round_record("r1"))
    assert (ledger.head, len(ledger)) == (head, size)
    ledger._db.execute("DROP TRIGGER full")
    ledger.append(GATEWAY, "round", round_record("r1"))  # the same seq again: nothing was burnt
    assert ledger.heads()[GATEWAY.peer_id] == 5


def test_verify_finds_an_entry_tampered_on_disk(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    established(ledger)
    ledger.append(GATEWAY, "round", round_record("r1"))
    checked, failures = verify(ledger.stored())
    assert failures == [] and checked.head == ledger.head
    db = sqlite3.connect(tmp_path / "ledger.db")
    (wire,) = db.execute(
        "SELECT wire FROM entries WHERE seq = 1 AND gateway = ?", (GATEWAY.peer_id,)
    ).fetchone()
    db.execute(
        "UPDATE entries SET wire = ? WHERE seq = 1 AND gateway = ?",
        (wire.replace('"correct":true', '"correct":false', 1), GATEWAY.peer_id),
    )
    db.commit()
    checked, failures = verify(ledger.stored())
    assert any("signature" in f for f in failures) and any("no entry 1 before it" in f for f in failures)
    assert checked.head != ledger.head
    reopened = Ledger(tmp_path / "ledger.db")
    # The gateway's chain stops where it was tampered with, the rest set aside; the other chain is whole.
    assert reopened.load_failures
    assert reopened.heads() == {GATEWAY.peer_id: 1, OTHER.peer_id: 1, NOBODY.peer_id: 1}
    assert reopened.waiting() == [] and verify(reopened.stored())[1] == []
    reopened.append(GATEWAY, "challenge", challenge_record(ALICE, 1, 0))  # its next entry can be written


WRITER = """
import sys, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from consensus import Ledger
from core.identity import Identity
from tests.unit.test_consensus_ledger import challenge_record
me, peer = Identity.generate(), Identity.generate()
ledger = Ledger(Path(sys.argv[1]))
print("ready", flush=True)
while True:
    ledger.append(me, "challenge", challenge_record(peer, 1, 1, by=me))
"""


def test_a_node_killed_mid_write_reopens_with_a_consistent_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    for delay in (0.3, 0.7, 1.1):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        writer.kill()
        writer.wait()
        ledger = Ledger(path)
        assert ledger.load_failures == [] and ledger.waiting() == []
        _, failures = verify(ledger.stored())
        assert failures == []
        assert len(ledger) > 0
        ledger.close()
