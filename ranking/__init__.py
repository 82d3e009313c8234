"""Peer ranking: which of several candidate answers the network returns.

The candidates are shuffled and compared on a sparse pair schedule spread over
the judges, never giving a judge its own answer (schedule); each judge is asked
for a binary pick by prompts whose replies are parsed strictly (judging); the
votes are aggregated with a reputation-weighted Bradley-Terry model
(bradley_terry), and a vote may be soft: a judge's probability read from its
tokens, both orders averaged and its letter prior removed (verdicts). Judges
weigh by a reliability measured on pairs with a known better answer
(reliability); candidates start from their models' calibrated accuracy as
log-odds (priors), pooled with those that agree (aggregate). Majority voting
over the final answers is the baseline the ranking has to beat (majority).
Everything here is pure: no network, no node.
"""
