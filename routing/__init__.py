"""Expert routing: which models in the network answer a question.

Embeddings place a question among the calibration clusters (clusters, table),
the Avengers score ranks the models for it (scoring), and the MoE² selection
picks the subset that fits the caller's latency and cost budgets (selection).
Everything here is pure: no network, no node.
"""
