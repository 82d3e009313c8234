"""The ledger on the network: write this node's entries, spread them, take and fetch everyone else's.

A new entry goes out on GossipSub at once. Pubsub can drop messages
silently, so nothing depends on it: every announcement carries the sender's
ledger head, and a node whose head differs asks that peer, over
`/swarm/ledger/1.0.0`, for every entry it lacks (by how many entries of each
chain it holds, and the digest of the last); a gossiped entry that arrives
ahead of its predecessor makes it ask the sender too. What does not verify is
dropped and counted.

Two entries of one gateway with one seq are a fork: the node that sees both
keeps them as the proof and gossips it at once (`{"fork": [entry, entry]}`),
and every pull hands over the proofs the puller lacks, so every node ends
holding it and the forker has no say anywhere. A peer whose last entry of a
chain differs from this node's at the same seq is sent this node's, so the
fork shows even where nobody saw both. A node that has no final checkpoint
yet (a new one) takes those of the first peer it pulls from, before the
entries: from the entries alone a backdated past can't be told from the real
one (`consensus.checkpoint`).

Every node with a say signs a checkpoint of each epoch `CHECKPOINT_DELAY_S`
after its end, as an entry of its own chain: what it holds dated before then.

The book the ledger computes decides who has a say here: who may answer and
judge (`may`), and how much a judge's vote weighs (`weight`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

import trio

from consensus import Added, BadEntry, Checkpoint, Fork, Ledger, LedgerEntry, fork_from_wire, from_wire
from core.identity import Identity
from core.records import DOMAINS, Domain
from reputation import Role, has_say, judge_weight, speaks

from .rounds import RoundResult
from .transport import PeerUnavailable, RemoteError, RequestTimeout, Transport

log = logging.getLogger("swarm.ledger")

LEDGER_TOPIC = "swarm/ledger/1"
LEDGER_PROTOCOL = "/swarm/ledger/1.0.0"
PULL_BATCH = 200  # entries per reply frame: a few KB each, well under the frame limit
PULL_LIMIT = 2000  # entries per pull request; the puller asks again while there are more
# A peer may answer `more` forever: a pull asks again only while a reply brings new entries, at most
# this many times (PULL_LIMIT entries each); the peer's next announcement starts another.
PULL_ROUNDS = 50
PULL_TIMEOUT_S = 60.0
# After an epoch's end, the time its last entries take to reach every node (gossip, or the pull an
# announcement starts) before this node signs what it holds of it; nodes that hold the same sign the same.
CHECKPOINT_DELAY_S = 10.0
CHECKPOINT_BEAT_S = 2.0  # how often a node looks for an epoch to sign


def round_record(result: RoundResult) -> dict[str, Any]:
    """A round as the ledger keeps it: what the candidates committed to and the judges signed, from
    which every node computes the outcome, and what only this gateway can tell: who was chosen for
    which role, and who missed a deadline or sent something malformed."""
    missed: dict[str, int] = {}
    malformed: dict[str, int] = {}
    for miss in result.misses:
        counts = malformed if miss.malformed else missed
        counts[miss.peer_id] = counts.get(miss.peer_id, 0) + 1
    return {
        "round": result.round_id,
        "mode": result.mode,
        "candidates": [
            {"cid": c.cid, "model": c.model, "peer": c.peer_id, "commitment": c.commitment.to_wire()}
            for c in result.candidates
        ],
        "ballots": [b.to_wire() for b in result.ballots],
        "winner": result.winner,
        "domain": result.domain,
        "reported": {
            "chosen": {peer: sorted(roles) for peer, roles in sorted(result.chosen.items())},
            "missed": missed,
            "malformed": malformed,
        },
    }


class LedgerService:
    def __init__(self, identity: Identity, transport: Transport | None, ledger: Ledger) -> None:
        self.identity = identity
        self.transport = transport
        self.ledger = ledger
        self.rejected = 0  # entries that failed to verify, from peers
        self._pulling: set[str] = set()
        self._nursery: trio.Nursery | None = None
        if transport is not None:
            transport.handle(LEDGER_PROTOCOL, self._serve_pull)

    # ---- who has a say

    def may(self, peer_id: str, role: Role, domain: Domain) -> bool:
        """Whether the peer may play `role` in a round of the domain: it holds a say there, or fewer than
        `min_holders` peers do (the domain's bootstrap)."""
        return has_say(self.ledger.book, peer_id, self.ledger.rules, domain, role)

    def may_judge(self, peer_id: str, domain: Domain) -> bool:
        return self.may(peer_id, "judge", domain)

    def holds(self, peer_id: str, domain: Domain) -> bool:
        """Whether the peer holds a say of its own in the domain (bootstrap aside)."""
        return self.ledger.book.holds(peer_id, domain, self.ledger.rules)

    def proven(self, peer_id: str) -> bool:
        """Whether the peer holds a say of its own in some domain (bootstrap aside)."""
        return any(self.holds(peer_id, d) for d in DOMAINS)

    def speaks(self, peer_id: str) -> bool:
        """Whether what the peer writes (rounds, challenges) may count now: it has a say in some domain."""
        return speaks(self.ledger.book, peer_id, self.ledger.rules)

    def weight(self, peer_id: str, domain: Domain) -> float:
        """A judge's vote weight in a round of the domain: its reputation there (1 while the domain is
        open), as every node weighs it again when the round's entry is applied."""
        return judge_weight(self.ledger.book, peer_id, self.ledger.rules, domain)

    def standing(self) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
        """Per domain, its holders and whether it is open; per peer (highest score first), its say in
        each domain and the test behind it (the rows of `/v1/ledger` and the dashboard)."""
        book, rules = self.ledger.book, self.ledger.rules
        domains = {d: {"holders": len(book.holders(d, rules)), "open": book.open(d, rules)} for d in DOMAINS}
        rows = []
        for peer in book.peers():
            says = {}
            for d in DOMAINS:
                tally, scores = book.tally(peer, d, rules), book.book(d)
                says[d] = {
                    "say": self.may(peer, "answer", d),
                    "holds": book.holds(peer, d, rules),
                    "score": scores.score(peer),
                    "free": scores.free(peer),
                    "right": tally.right,
                    "asked": tally.asked,
                    "bar": tally.bar + rules.say_margin,
                    "lower_bound": rules.wilson_lower(tally.right, tally.asked),
                }
            rows.append(
                {
                    "peer_id": peer,
                    "score": sum(s["score"] for s in says.values()),
                    "free": sum(s["free"] for s in says.values()),
                    "eligible": any(s["holds"] for s in says.values()),
                    "domains": says,
                }
            )
        return domains, sorted(rows, key=lambda r: (-r["score"], r["peer_id"]))

    # ---- writing

    def record(self, type: str, record: dict[str, Any]) -> LedgerEntry | None:
        """Write this node's next entry and spread it. A failed write (a full disk, say, or an entry past
        what the ledger takes of a chain) is logged and loses nothing already held: the entry is simply
        not made."""
        try:
            entry = self.ledger.append(self.identity, type, record)  # type: ignore[arg-type]
        except (sqlite3.Error, OSError, BadEntry) as exc:
            # BadEntry: past this chain's allowance (consensus.ledger.MAX_OPEN_ENTRIES), as every node
            # would refuse it.
            log.error("could not write a %s entry to the ledger: %s", type, exc)
            return None
        if self._nursery is not None and self.transport is not None:
            self._nursery.start_soon(self.transport.publish, LEDGER_TOPIC, entry.to_wire())
        return entry

    def record_round(self, result: RoundResult) -> None:
        self.record("round", round_record(result))

    def sign_checkpoint(self, now: float) -> LedgerEntry | None:
        """Sign the checkpoint of the last epoch ended `CHECKPOINT_DELAY_S` before `now`, if this node has a
        say of its own and has not signed it; nobody has one in a network's first moments, and a
        checkpoint then would carry nothing."""
        if not self.proven(self.identity.peer_id):
            return None
        checkpoint = self.ledger.due_checkpoint(self.identity.peer_id, now - CHECKPOINT_DELAY_S)
        return None if checkpoint is None else self.record("checkpoint", checkpoint.to_record())

    # ---- replicating

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.transport is not None:
                nursery.start_soon(self._listen)
            nursery.start_soon(self._sign_checkpoints)
            task_status.started()

    async def _sign_checkpoints(self) -> None:
        while True:
            self.sign_checkpoint(time.time())
            await trio.sleep(CHECKPOINT_BEAT_S)

    async def _listen(self) -> None:
        assert self.transport is not None
        async for sender, body in self.transport.subscribe(LEDGER_TOPIC):
            added = self._take([body], sender)
            if Added.WAITING in added:
                self.offered(sender, None)

    def _take(self, wires: list[Any], sender: str) -> list[Added]:
        """Take entries and forks (`{"fork": [entry, entry]}`) from a peer; a fork they prove is spread."""
        items: list[LedgerEntry | Fork] = []
        for wire in wires:
            try:
                is_fork = isinstance(wire, Mapping) and "fork" in wire
                items.append(fork_from_wire(wire["fork"]) if is_fork else from_wire(wire))
            except BadEntry as exc:
                self.rejected += 1
                log.warning("rejected a ledger entry from %s: %s", sender, exc)
        rejected: list[BadEntry] = []
        known = {gateway: fork.seq for gateway, fork in self.ledger.forks().items()}
        try:
            added = self.ledger.add_many(items, rejected)
        except (sqlite3.Error, OSError) as exc:
            log.error("could not store ledger entries from %s: %s", sender, exc)
            return []
        for exc in rejected:
            self.rejected += 1
            log.warning("rejected a ledger entry from %s: %s", sender, exc)
        for gateway, fork in self.ledger.forks().items():
            if known.get(gateway) != fork.seq and self._nursery is not None and self.transport is not None:
                self._nursery.start_soon(self.transport.publish, LEDGER_TOPIC, {"fork": fork.to_wire()})
        return added

    def offered(self, peer_id: str, head: str | None) -> None:
        """A peer holds a ledger with another head (or None: unknown): fetch what it has and we lack."""
        if head == self.ledger.head or peer_id in self._pulling or self._nursery is None:
            return
        self._pulling.add(peer_id)
        self._nursery.start_soon(self.pull, peer_id)

    async def pull(self, peer_id: str) -> int:
        """Fetch every entry the peer holds that this ledger lacks; returns how many were new."""
        assert self.transport is not None
        self._pulling.add(peer_id)
        new = 0
        try:
            for _ in range(PULL_ROUNDS):
                body = {
                    "have": self.ledger.heads(),
                    "tips": self.ledger.tips(),
                    "forks": {gateway: fork.seq for gateway, fork in self.ledger.forks().items()},
                    "finals": len(self.ledger.finals),
                }
                more, received, new_now = False, 0, 0
                finals: list[Checkpoint] = []
                async with self.transport.stream(
                    peer_id, LEDGER_PROTOCOL, body, timeout=PULL_TIMEOUT_S
                ) as frames:
                    async for frame in frames:
                        if "finals" in frame:  # before anything else, and only to a ledger with none
                            finals += [Checkpoint.from_record(r) for r in frame["finals"]]
                            continue
                        if finals and self.ledger.adopt(finals):
                            log.info("took %d final checkpoints from %s", len(finals), peer_id)
                        finals = []
                        if "forks" in frame:
                            self._take([{"fork": proof} for proof in frame["forks"]], peer_id)
                        if "entries" in frame:
                            entries = list(frame["entries"])
                            received += len(entries)
                            if received > PULL_LIMIT:
                                raise RemoteError(f"more than {PULL_LIMIT} entries in one reply")
                            new_now += self._take(entries, peer_id).count(Added.NEW)
                        more = bool(frame.get("more"))
                new += new_now
                if not more or not new_now:
                    return new
            log.info(
                "stopped pulling from %s after %d rounds: it still says there is more", peer_id, PULL_ROUNDS
            )
            return new
        except (PeerUnavailable, RequestTimeout, RemoteError, KeyError, TypeError, ValueError) as exc:
            log.info("could not fetch ledger entries from %s: %s", peer_id, exc)
            return new
        finally:
            self._pulling.discard(peer_id)

    async def _serve_pull(self, sender: str, body: dict[str, Any]) -> Any:
        have, tips, forks = body.get("have"), body.get("tips", {}), body.get("forks", {})
        if not all(isinstance(m, Mapping) for m in (have, tips, forks)):
            yield {"error": "have, tips and forks must map gateways to entry counts, digests and seqs"}
            return
        if body.get("finals") == 0:
            finals = [c.to_record() for c in self.ledger.finals]
            for start in range(0, len(finals), PULL_BATCH):
                yield {"finals": finals[start : start + PULL_BATCH]}
        theirs = {str(k): int(v) for k, v in forks.items()}
        proofs = [f.to_wire() for g, f in self.ledger.forks().items() if g not in theirs or theirs[g] > f.seq]
        for start in range(0, len(proofs), PULL_BATCH):
            yield {"forks": proofs[start : start + PULL_BATCH]}
        missing = self.ledger.since(
            {str(k): int(v) for k, v in have.items()},
            PULL_LIMIT + 1,
            {str(k): str(v) for k, v in tips.items()},
        )
        more = len(missing) > PULL_LIMIT
        missing = missing[:PULL_LIMIT]
        for start in range(0, len(missing), PULL_BATCH):
            yield {"entries": [e.to_wire() for e in missing[start : start + PULL_BATCH]]}
        yield {"more": more}
