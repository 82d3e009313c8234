"""One ledger entry: a round's outcome, a challenge's, or a checkpoint of the past, signed by its writer.

An entry is a signed statement (`core.statements`) of kind `ledger-entry`
whose body is `{seq, prev, at, rules, type, record}`: `seq` counts the signer's
entries from 0, `prev` is the digest of its entry `seq - 1` (GENESIS for the
first), so each gateway's entries form a hash chain nobody can reorder or cut
without breaking a link, and `at` is the signer's clock, which never goes back
along a chain; `rules` is the digest of the reputation rules the entry is
meant to be applied under (a node under other rules refuses it). The record
carries the evidence beside the claim:

- a round: its candidates with each answerer's signed commitment, every
  judge's signed ballot (the judges' own signatures on their votes), each
  naming the entry's signer as the gateway that asked, so no other key can
  copy the evidence into an entry of its own (to count it twice, or to close
  the round's id before the real gateway's entry: ids close per writer), the winner,
  and what only the gateway's word stands for (who was chosen for which role,
  who missed a deadline or sent something malformed, and the question's domain,
  core.records.DOMAINS). Placings, GOOD shares and
  agreement are not written: every node computes them from the ballots
  (`LedgerEntry.round_evidence`);
- a challenge: for each question, its id in the network's bank of questions,
  the challenged peer's signed commitment and reveal (so the graded answer is
  provably its own, given to this challenger: both name it) and the grade.
  The question itself and what counts as right are not written: every node
  holds the bank and grades against its own copy (`grade_challenge`);
- a checkpoint: the end of an epoch and, per chain, how many entries its
  signer holds dated before it: what closes the past (`consensus.checkpoint`).

`check` verifies all of it that can be verified without the rest of the
ledger and the bank; the chain links are the ledger's to check.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.envelope import canonical
from core.identity import Identity
from core.statements import BadStatement, Statement, commitment_digest, sign
from core.statements import from_wire as statement_from_wire
from ranking import ballots
from ranking.bradley_terry import Vote
from reputation.outcome import ChallengeAnswer, ChallengeOutcome, RoundEvidence, Verdict
from reputation.rules import ROLES, Role
from routing.datasets import ChallengeBank, Item, domain_of
from routing.grading import grade

KIND = "ledger-entry"
GENESIS = "0" * 64
EntryType = Literal["round", "challenge", "checkpoint"]
# What an entry's evidence holds, which the reputation rules name (Rules.evidence): 2 since each statement
# in it names the gateway or challenger it was given to, and ids close per writer.
EVIDENCE_FORMAT = 2
# The epochs of checkpoints (`consensus.checkpoint`): a checkpoint's time is a multiple of this.
CHECKPOINT_EVERY_S = 60
_DIGEST = re.compile(r"[0-9a-f]{64}")


class BadEntry(ValueError):
    """An entry that is malformed, or whose signatures or evidence do not verify."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    statement: Statement
    # What the chain links by and the head digests, computed once: a ledger reads it many times an entry.
    digest: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(canonical(self.statement.to_wire())).hexdigest())

    @property
    def gateway(self) -> str:
        return self.statement.signer

    @property
    def seq(self) -> int:
        return int(self.statement.body["seq"])

    @property
    def prev(self) -> str:
        return str(self.statement.body["prev"])

    @property
    def at(self) -> float:
        return float(self.statement.body["at"])

    @property
    def rules(self) -> str:
        return str(self.statement.body["rules"])

    @property
    def type(self) -> EntryType:
        return self.statement.body["type"]

    @property
    def record(self) -> dict[str, Any]:
        return self.statement.body["record"]

    @property
    def key(self) -> tuple[float, str, int]:
        """Its place in the one order every node applies entries in; along a chain it follows `seq`."""
        return (self.at, self.gateway, self.seq)

    def to_wire(self) -> dict[str, Any]:
        return self.statement.to_wire()

    def round_evidence(self) -> RoundEvidence:
        """The round as its evidence shows it; the signatures are `check`'s to verify."""
        r = self.record
        authors = tuple(str(c["peer"]) for c in r["candidates"])
        votes: list[Vote] = []
        verdicts: list[Verdict] = []
        for ballot in r["ballots"]:
            judge = str(ballot["signer"])
            votes += _votes(judge, ballot["body"], authors)
            verdicts += _verdicts(judge, ballot["body"]["verdicts"], authors)
        reported = r["reported"]
        return RoundEvidence(
            str(r["round"]),
            authors,
            tuple(votes),
            tuple(verdicts),
            _counts(reported["missed"]),
            _counts(reported["malformed"]),
            _chosen(reported["chosen"]),
            r["domain"],
        )

    def challenge_outcome(self, bank: ChallengeBank) -> ChallengeOutcome:
        """The challenge as graded (`grade_challenge` checks the grades), each question in its domain with
        the odds of a peer with no skill on it (`ChallengeBank.chance`), as the bank says."""
        r = self.record
        answers = [
            ChallengeAnswer(
                a["item"], a["correct"], bank.chance(a["item"]), domain_of(_question(bank, a["item"]))
            )
            for a in r["answers"]
        ]
        return ChallengeOutcome(r["challenge"], self.gateway, r["peer"], tuple(answers))


def make(
    identity: Identity, seq: int, prev: str, at: float, type: EntryType, record: dict[str, Any], rules: str
) -> LedgerEntry:
    """A signed entry; `rules` is the digest of the reputation rules it is to be applied under."""
    body = {"seq": seq, "prev": prev, "at": at, "rules": rules, "type": type, "record": record}
    entry = LedgerEntry(sign(identity, KIND, body))
    check(entry)  # a node never signs an entry its peers would reject
    return entry


def from_wire(data: Any) -> LedgerEntry:
    """An entry received from a peer, checked (`check`); BadEntry if it is not one."""
    try:
        entry = LedgerEntry(statement_from_wire(data, kind=KIND))
    except BadStatement as exc:
        raise BadEntry(str(exc)) from None
    check(entry)
    return entry


def check(entry: LedgerEntry) -> None:
    """Everything about one entry that can be checked on its own; BadEntry saying what is wrong."""
    if not entry.statement.verified():
        raise BadEntry(f"the signature of an entry from {entry.gateway} does not verify")
    try:
        body = entry.statement.body
        seq, prev, at = body["seq"], body["prev"], body["at"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadEntry(f"seq must be a non-negative integer, got {seq!r}")
        if not isinstance(prev, str) or not _DIGEST.fullmatch(prev) or (seq == 0) != (prev == GENESIS):
            raise BadEntry(f"prev {prev!r} is not a digest, or is GENESIS off the first entry")
        if not isinstance(at, int | float) or not math.isfinite(at) or at < 0:
            raise BadEntry(f"at must be a time, got {at!r}")
        if not isinstance(body["rules"], str) or not _DIGEST.fullmatch(body["rules"]):
            raise BadEntry("rules must be the digest of the reputation rules")
        if body["type"] == "round":
            _check_round(entry.record, entry.gateway)
            entry.round_evidence()
        elif body["type"] == "challenge":
            _check_challenge(entry.record, entry.gateway)
        elif body["type"] == "checkpoint":
            _check_checkpoint(entry.record, at)
        else:
            raise BadEntry(f"unknown entry type {body['type']!r}")
    except BadEntry:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadEntry(f"malformed {body.get('type', 'entry')} entry: {exc!r}") from None


def _check_checkpoint(record: dict[str, Any], at: float) -> None:
    """An epoch's end, not after the entry that signs it, and a count of covered entries per chain."""
    time, heads = record["checkpoint"], record["heads"]
    if set(record) != {"checkpoint", "heads"}:
        raise BadEntry(f"a checkpoint holds its time and heads only, not {sorted(record)}")
    if not isinstance(time, int) or isinstance(time, bool) or time < 0 or time % CHECKPOINT_EVERY_S:
        raise BadEntry(f"a checkpoint's time must be a multiple of {CHECKPOINT_EVERY_S} s, got {time!r}")
    if time > at:
        raise BadEntry("a checkpoint is signed before its own time")
    if not isinstance(heads, dict) or any(
        not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in heads.values()
    ):
        raise BadEntry("a checkpoint's heads count each chain's covered entries, at least one")


def _statement(data: Any, kind: str, signer: str | None = None) -> Statement:
    try:
        return statement_from_wire(data, kind=kind, signer=signer)
    except BadStatement as exc:
        raise BadEntry(str(exc)) from None


def _asked_by(statement: Statement, gateway: str) -> None:
    """A statement of a round or challenge names the gateway (or challenger) it was given to; BadEntry
    if that is not the entry's signer: evidence copied from another's entry."""
    if statement.body.get("gateway") != gateway:
        raise BadEntry(
            f"a {statement.kind} of {statement.signer} was given to another gateway than this entry's signer"
        )


def _check_round(record: dict[str, Any], gateway: str) -> None:
    """Every commitment and ballot is signed by its peer for this round and given to `gateway`, the
    entry's signer; the ballots' contents are `round_evidence`'s to read."""
    rid = str(record["round"])
    if record["mode"] not in ("consensus", "vote"):
        raise BadEntry(f"unknown round mode {record['mode']!r}")
    for cid, c in enumerate(record["candidates"]):
        if c["cid"] != cid:
            raise BadEntry(f"candidate {cid} is listed as {c['cid']!r}")
        commitment = _statement(c["commitment"], "commitment", str(c["peer"]))
        if commitment.body.get("round") != rid or commitment.body.get("model") != c["model"]:
            raise BadEntry(f"a commitment of {c['peer']} is not for round {rid} and model {c['model']!r}")
        _asked_by(commitment, gateway)
    judges = set()
    for raw in record["ballots"]:
        ballot = _statement(raw, "ballot")
        if ballot.body.get("round") != rid:
            raise BadEntry(f"a ballot of {ballot.signer} is for another round")
        _asked_by(ballot, gateway)
        if ballot.signer in judges:
            raise BadEntry(f"two ballots of {ballot.signer}")
        judges.add(ballot.signer)
    if record["mode"] == "vote" and judges:
        raise BadEntry("a round decided by vote has no judges")
    winner = record["winner"]
    if winner is not None and not 0 <= int(winner) < len(record["candidates"]):
        raise BadEntry(f"the winner {winner!r} is not a candidate")


def _candidate(cid: Any, judge: str, authors: tuple[str, ...]) -> int:
    """A candidate id from a ballot: one of the round's, and not written by the judge, who is never
    asked about its own answer."""
    if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid < len(authors):
        raise BadEntry(f"a ballot of {judge} names {cid!r}, not a candidate")
    if authors[cid] == judge:
        raise BadEntry(f"a ballot of {judge} judges its own answer")
    return cid


def _votes(judge: str, body: Mapping[str, Any], authors: tuple[str, ...]) -> list[Vote]:
    """A ballot's votes: A, B or U on a pair of candidates, or null (no vote); a probability ballot's are
    its probabilities, and its likelihoods as votes on the same pairs (`ranking.ballots`)."""
    votes, pairs = [], []
    for vote in body["votes"]:
        first, second, preference = vote
        a, b = _candidate(first, judge, authors), _candidate(second, judge, authors)
        if a == b or preference not in ("A", "B", "U", None):
            raise BadEntry(f"a ballot of {judge} holds the vote {vote!r}")
        pairs.append((a, b))
        if preference is not None:
            votes.append(Vote.from_preference(judge, a, b, preference))
    letters = [vote[2] for vote in body["votes"]]
    try:
        verdicts = {int(k): v for k, v in body["verdicts"].items()}
        read = ballots.read(body, letters, verdicts, pairs)
    except ValueError as exc:
        raise BadEntry(f"a ballot of {judge}: {exc}") from None
    if read.shares is None:
        return votes
    soft = [Vote.soft(judge, a, b, p) for (a, b), p in zip(pairs, read.shares, strict=True)]
    return soft + ballots.likelihood_votes(judge, pairs, read.likelihoods)


def _verdicts(judge: str, raw: Mapping[str, Any], authors: tuple[str, ...]) -> list[Verdict]:
    """A ballot's checks: GOOD, BAD or null (no check) per candidate."""
    verdicts = []
    for key, verdict in raw.items():
        if verdict not in ("GOOD", "BAD", None):
            raise BadEntry(f"a ballot of {judge} holds the verdict {verdict!r}")
        cid = _candidate(int(key) if key.isascii() and key.isdigit() else key, judge, authors)
        if verdict is not None:
            verdicts.append(Verdict(judge, cid, verdict == "GOOD"))
    return verdicts


def _counts(raw: Mapping[str, Any]) -> dict[str, int]:
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in raw.values()):
        raise BadEntry("fault counts must be non-negative integers")
    return {str(p): n for p, n in raw.items()}


def _chosen(raw: Mapping[str, Any]) -> dict[str, tuple[Role, ...]]:
    chosen = {str(p): tuple(roles) for p, roles in raw.items()}
    if any(role not in ROLES for roles in chosen.values() for role in roles):
        raise BadEntry(f"roles must be among {ROLES}")
    return chosen


def _check_challenge(record: dict[str, Any], challenger: str) -> None:
    """The peer's answers are its own: signed by it, for the model challenged, given to `challenger`
    (the entry's signer), matching their commitments. Whether they are right is `grade_challenge`'s to
    say, with the bank."""
    peer, model = str(record["peer"]), str(record["model"])
    for a in record["answers"]:
        if not isinstance(a["item"], str) or not isinstance(a["correct"], bool):
            raise BadEntry("a challenge answer names its question by id and is graded true or false")
        if a["commitment"] is None:
            if a["correct"] or a["reveal"] is not None:
                raise BadEntry("an answer with no commitment behind it: the peer never answered, so wrong")
            continue
        commitment = _statement(a["commitment"], "commitment", peer)
        reveal = _statement(a["reveal"], "reveal", peer)
        _asked_by(commitment, challenger)
        _asked_by(reveal, challenger)
        c, r = commitment.body, reveal.body
        if (c.get("round"), c.get("model")) != (r.get("round"), r.get("model")) or c.get("model") != model:
            raise BadEntry(f"a reveal for another commitment, or an answer of another model than {model!r}")
        if commitment_digest(str(r["round"]), str(r["model"]), str(r["salt"]), str(r["answer"])) != c.get(
            "digest"
        ):
            raise BadEntry("a revealed answer that does not match its commitment")


def grade_challenge(entry: LedgerEntry, bank: ChallengeBank) -> None:
    """Every question of a challenge entry is in the bank, and every answer is graded as this node's copy
    of the question says: a challenger writes no question of its own, and can't pass a wrong answer nor
    fail a right one. BadEntry if not."""
    for a in entry.record["answers"]:
        question = _question(bank, a["item"])
        if a["reveal"] is not None and grade(question, str(a["reveal"]["body"]["answer"])) != a["correct"]:
            raise BadEntry(
                f"answer to {a['item']} graded {'right' if a['correct'] else 'wrong'}, but it is not"
            )


def _question(bank: ChallengeBank, item: str) -> Item:
    if item not in bank.items:
        raise BadEntry(f"a challenge asked {item!r}, which is not in the bank of questions")
    return bank.items[item]
