"""One ledger entry: a round's outcome or a challenge's, signed by the node that ran it.

An entry is a signed statement (`core.statements`) of kind `ledger-entry`
whose body is `{seq, prev, at, rules, type, record}`: `seq` counts the signer's
entries from 0, `prev` is the digest of its entry `seq - 1` (GENESIS for the
first), so each gateway's entries form a hash chain nobody can reorder or cut
without breaking a link, and `at` is the signer's clock, which never goes back
along a chain; `rules` is the digest of the reputation rules the entry is
meant to be applied under (a node under other rules refuses it). The record
carries the evidence beside the claim:

- a round: its candidates with each answerer's signed commitment, every
  judge's signed ballot (the judges' own signatures on their votes), the winner
  and the outcome the reputation rules settle;
- a challenge: the challenged peer's signed commitment and reveal for each
  question (so the graded answer is provably its own) and the grades.

`check` verifies all of it that can be verified without the rest of the
ledger; the chain links are the ledger's to check.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.envelope import canonical
from core.identity import Identity
from core.statements import BadStatement, Statement, commitment_digest, sign
from core.statements import from_wire as statement_from_wire
from reputation.outcome import AnswerOutcome, ChallengeAnswer, ChallengeOutcome, JudgeOutcome, RoundOutcome
from reputation.rules import ROLES
from routing.datasets import LETTERS, Item
from routing.grading import grade

KIND = "ledger-entry"
GENESIS = "0" * 64
EntryType = Literal["round", "challenge"]
_DIGEST = re.compile(r"[0-9a-f]{64}")


class BadEntry(ValueError):
    """An entry that is malformed, or whose signatures or evidence do not verify."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    statement: Statement

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
    def digest(self) -> str:
        return hashlib.sha256(canonical(self.statement.to_wire())).hexdigest()

    @property
    def key(self) -> tuple[float, str, int]:
        """Its place in the one order every node applies entries in; along a chain it follows `seq`."""
        return (self.at, self.gateway, self.seq)

    def to_wire(self) -> dict[str, Any]:
        return self.statement.to_wire()

    def round_outcome(self) -> RoundOutcome:
        return outcome_from_wire(self.record["round"], self.record["outcome"])

    def challenge_outcome(self) -> ChallengeOutcome:
        r = self.record
        return ChallengeOutcome(
            r["challenge"],
            self.gateway,
            r["peer"],
            tuple(ChallengeAnswer(a["item"], a["correct"], a["chance"]) for a in r["answers"]),
        )


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
            _check_round(entry.record)
            entry.round_outcome()
        elif body["type"] == "challenge":
            _check_challenge(entry.record)
            entry.challenge_outcome()
        else:
            raise BadEntry(f"unknown entry type {body['type']!r}")
    except BadEntry:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadEntry(f"malformed {body.get('type', 'entry')} entry: {exc!r}") from None


def _statement(data: Any, kind: str, signer: str | None = None) -> Statement:
    try:
        return statement_from_wire(data, kind=kind, signer=signer)
    except BadStatement as exc:
        raise BadEntry(str(exc)) from None


def _check_round(record: dict[str, Any]) -> None:
    rid = str(record["round"])
    authors = set()
    for c in record["candidates"]:
        commitment = _statement(c["commitment"], "commitment", str(c["peer"]))
        if commitment.body.get("round") != rid or commitment.body.get("model") != c["model"]:
            raise BadEntry(f"a commitment of {c['peer']} is not for round {rid} and model {c['model']!r}")
        authors.add(str(c["peer"]))
    voters = set()
    for raw in record["ballots"]:
        ballot = _statement(raw, "ballot")
        if ballot.body.get("round") != rid:
            raise BadEntry(f"a ballot of {ballot.signer} is for another round")
        voters.add(ballot.signer)
    winner = record["winner"]
    if winner is not None and not 0 <= int(winner) < len(record["candidates"]):
        raise BadEntry(f"the winner {winner!r} is not a candidate")
    outcome = record["outcome"]
    if set(outcome["answerers"]) - authors:
        raise BadEntry("an answerer in the outcome has no commitment in the round")
    if set(outcome["judges"]) - voters:
        raise BadEntry("a judge in the outcome has no ballot in the round")


def _check_challenge(record: dict[str, Any]) -> None:
    """The peer's answers are its own (signed, matching their commitments) and graded as the question's
    accepted answers say: a challenger can't pass a peer that answered wrong, nor fail one that answered
    right."""
    peer = str(record["peer"])
    for a in record["answers"]:
        if not isinstance(a["correct"], bool):
            raise BadEntry("correct must be true or false")
        kind, chance = a["kind"], a["chance"]
        if (kind, chance) not in (("qa", 0.0), ("mc", 1 / len(LETTERS))):
            raise BadEntry(f"a {kind!r} question with chance {chance!r}: challenges ask free answers or A-D")
        if a.get("commitment") is None:
            if a["correct"]:
                raise BadEntry("an answer graded correct with no commitment behind it")
            continue  # the peer never answered: wrong by default
        commitment = _statement(a["commitment"], "commitment", peer)
        reveal = _statement(a["reveal"], "reveal", peer)
        c, r = commitment.body, reveal.body
        if (c.get("round"), c.get("model")) != (r.get("round"), r.get("model")):
            raise BadEntry("a reveal for another commitment")
        if commitment_digest(str(r["round"]), str(r["model"]), str(r["salt"]), str(r["answer"])) != c.get(
            "digest"
        ):
            raise BadEntry("a revealed answer that does not match its commitment")
        dataset, _, item_id = str(a["item"]).partition("/")
        question = Item(dataset, item_id, kind, str(a["question"]), (), tuple(str(x) for x in a["accepted"]))
        if grade(question, str(r["answer"])) != a["correct"]:
            raise BadEntry(
                f"answer to {a['item']} graded {'right' if a['correct'] else 'wrong'}, but it is not"
            )


def outcome_to_wire(outcome: RoundOutcome) -> dict[str, Any]:
    return {
        "answerers": {
            p: {"position": a.position, "of": a.of, "good_ratio": a.good_ratio}
            for p, a in outcome.answerers.items()
        },
        "judges": {p: {"agreement": j.agreement} for p, j in outcome.judges.items()},
        "missed": dict(outcome.missed),
        "malformed": dict(outcome.malformed),
        "chosen": {p: list(roles) for p, roles in outcome.chosen.items()},
    }


def outcome_from_wire(round_id: str, data: Mapping[str, Any]) -> RoundOutcome:
    def counts(raw: Mapping[str, Any]) -> dict[str, int]:
        if any(not isinstance(n, int) or isinstance(n, bool) for n in raw.values()):
            raise BadEntry("fault counts must be integers")
        return {str(p): n for p, n in raw.items()}

    chosen = {str(p): tuple(roles) for p, roles in data["chosen"].items()}
    if any(role not in ROLES for roles in chosen.values() for role in roles):
        raise BadEntry(f"roles must be among {ROLES}")
    return RoundOutcome(
        str(round_id),
        {
            str(p): AnswerOutcome(int(a["position"]), int(a["of"]), a["good_ratio"])
            for p, a in data["answerers"].items()
        },
        {str(p): JudgeOutcome(j["agreement"]) for p, j in data["judges"].items()},
        counts(data["missed"]),
        counts(data["malformed"]),
        chosen,
    )
