"""The acceleration methods each engine really offers, as named settings it applies.

A method is settings at two levels: `load` changes how the engine is loaded
(llama.cpp keeps one loaded server per distinct set: an engine profile), and
`request` is merged into each request (llama.cpp's request body, or the
keyword arguments of transformers' `generate`). What each engine supports was
read from its own code and docs and measured on the offline models
(docs/models.md):

llama.cpp (xllamacpp): n-gram speculative decoding drafts tokens by looking
up the current n-gram earlier in the context and verifying the draft in one
batch (exact under greedy decoding in principle; "ngram-mod" keeps its n-gram
pool across requests); thread count (all cores, or all but one, the default,
which leaves a core for the node's network); a quantised (q8_0) KV cache,
smaller but not exact; flash attention off and a small physical batch, which
change the kernels and so the low bits of the logits. Draft-model speculation
needs a smaller model with the same vocabulary, and no two offline models
share one (49,152, 151,936 and 262,144 tokens), so it is left out; speculative
settings are not honoured per request in this build, hence profiles.

transformers: prompt-lookup decoding (drafts from n-grams of the prompt,
exact under greedy decoding), in two draft lengths; a static KV cache (exact;
it is the precondition for compiled decoding, which on CPU never triggers
without a private flag and took ~70 s to compile per prompt length, so
compilation is left out). Assisted generation has the same-vocabulary
problem as draft models.

`lossless` is the method's claim that greedy output stays identical to the
default's; `swarm node profile` and the tests check it, with llama.cpp's prompt
cache off for both (a reused prompt prefix itself flips near-tie tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT = "default"


@dataclass(frozen=True)
class Method:
    name: str
    backend: str
    lossless: bool
    summary: str
    load: Mapping[str, Any] = field(default_factory=dict)
    request: Mapping[str, Any] = field(default_factory=dict)


LLAMACPP = (
    Method(DEFAULT, "llamacpp", True, "the engine's defaults: all cores but one, no speculation"),
    Method(
        "ngram-simple",
        "llamacpp",
        True,
        "speculative decoding drafting from the last match of the current 3-gram, 16 tokens at most",
        load={"speculative": "ngram_simple", "ngram_n": 3, "ngram_m": 16},
    ),
    Method(
        "ngram-mod",
        "llamacpp",
        True,
        "speculative decoding from a rolling-hash n-gram pool kept across requests",
        load={"speculative": "ngram_mod", "ngram_n": 4, "ngram_m": 16},
    ),
    Method("threads-all", "llamacpp", True, "every core computes, none left aside", load={"threads": "all"}),
    Method(
        "kv-q8",
        "llamacpp",
        False,
        "8-bit quantised KV cache: half the memory, not exact",
        load={"cache_type": "q8_0"},
    ),
    Method(
        "small-batch",
        "llamacpp",
        False,
        "prompts evaluated 32 tokens at a time: less memory, other low bits",
        load={"n_batch": 64, "n_ubatch": 32},
    ),
)

TRANSFORMERS = (
    Method(DEFAULT, "transformers", True, "plain greedy or sampled decoding, dynamic KV cache"),
    Method(
        "prompt-lookup-4",
        "transformers",
        True,
        "prompt-lookup decoding: 4-token drafts copied from matching prompt n-grams",
        request={"prompt_lookup_num_tokens": 4, "max_matching_ngram_size": 2},
    ),
    Method(
        "prompt-lookup-10",
        "transformers",
        True,
        "prompt-lookup decoding: 10-token drafts copied from matching prompt n-grams",
        request={"prompt_lookup_num_tokens": 10, "max_matching_ngram_size": 2},
    ),
    Method(
        "static-cache",
        "transformers",
        True,
        "a preallocated static KV cache",
        request={"cache_implementation": "static"},
    ),
)

CATALOG: dict[str, tuple[Method, ...]] = {"llamacpp": LLAMACPP, "transformers": TRANSFORMERS}


def methods_for(backend: str) -> tuple[Method, ...]:
    """The methods of a backend; an engine with none of its own has only the default."""
    return CATALOG.get(backend, (Method(DEFAULT, backend, True, "the engine as it is"),))


def method(backend: str, name: str) -> Method:
    for m in methods_for(backend):
        if m.name == name:
            return m
    known = ", ".join(m.name for m in methods_for(backend))
    raise KeyError(f"no acceleration method {name!r} for {backend}; known: {known}")
