"""A round's domain: named in its ledger entry, checked there, and told in its provenance."""

from __future__ import annotations

import pytest

from consensus import BadEntry, make
from consensus.entry import GENESIS
from node.api.provenance import left_out_note
from node.ledger import round_record
from node.rounds import RoundResult
from reputation import Rules
from tests.unit.test_consensus_ledger import GATEWAY
from tests.unit.test_consensus_ledger import round_record as signed_round

RULES = Rules().digest()


def test_a_rounds_entry_names_its_domain_and_an_unknown_one_is_refused() -> None:
    assert round_record(RoundResult("r", "consensus", "q?", domain="logic"))["domain"] == "logic"
    make(GATEWAY, 0, GENESIS, 1.0, "round", signed_round("r1"), RULES)
    for bad in ("astrology", None):
        with pytest.raises(BadEntry):
            make(GATEWAY, 0, GENESIS, 1.0, "round", {**signed_round("r2"), "domain": bad}, RULES)
    record = signed_round("r3")
    del record["domain"]
    with pytest.raises(BadEntry):
        make(GATEWAY, 0, GENESIS, 1.0, "round", record, RULES)


def test_the_provenance_says_how_many_experts_were_left_out_for_lack_of_a_say() -> None:
    assert left_out_note(0) is None
    assert left_out_note(1) == "1 expert without a say in this domain left out"
    assert left_out_note(2) == "2 experts without a say in this domain left out"
