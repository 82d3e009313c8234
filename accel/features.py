"""What a request looks like to the acceleration learner: a few numbers read off its prompt and settings.

The text features are the ones that tell acceleration methods apart. Prompt
lookup and n-gram decoding draft tokens by copying from the prompt, so they
pay off when the answer repeats the prompt: an edit request (rewrite, fix,
translate... the given text), a redundant prompt, code. Thread settings and
batching trade against prompt length and the load already on the model.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

# The names of `TaskFeatures.vector`'s entries, in order.
FEATURE_NAMES = (
    "log_prompt_tokens",
    "log_max_tokens",
    "chat",
    "code_share",
    "repetition",
    "edit_request",
    "log_concurrency",
)
LONG_PROMPT = 512  # tokens: from here a prompt counts as long in `kind`
SHORT_PROMPT = 64  # tokens: below this a prompt counts as a short question
CODE_KIND = 0.5  # share of code lines from which a prompt is "code"
REPETITIVE_KIND = 0.3  # repetition from which a prompt is "repetitive"
# An instruction sits at the start or the end of a prompt; looking only there keeps a pasted document
# that happens to say "translate" from passing for an edit request.
INSTRUCTION_CHARS = 300

_FENCE = re.compile(r"^\s*(```|~~~)")
# Case-sensitive on purpose: code keywords are lower case, while a sentence starting "Return the..." is prose.
_CODE_LINE = re.compile(
    r"""
    ^\s*(?:def|class|import|return|function|const|let|var|fn|func|pub|package|public|private|static)\s+[\w"'(<*\[]
    | ^\s*\#include\s*[<"]
    | ^\s*from\s+[\w.]+\s+import\b
    | ^\s*[A-Za-z_][\w.\[\]'"]*\s*(?:=|\+=|-=|\*=|/=|:=)\s*\S
    | ^\s*[\w.]+\(.*\)\s*;?\s*$
    | ^\s*[}\])]+[;,]?\s*$
    | [;{]\s*$
    | \)\s*:\s*$
    | =>|->|==|!=|&&|\|\|
    | ^(?:\ {4}|\t)\S
    | ^\s*(?://|/\*|\*/)
    """,
    re.VERBOSE,
)
_EDIT = re.compile(
    r"\b(?:repeat|rewrite|re-write|rephrase|paraphrase|copy|fix|edit|refactor|translate|convert|reformat"
    r"|proofread|rename|modify|correct|update)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class TaskFeatures:
    model: str
    backend: str
    prompt_tokens: int
    max_tokens: int
    chat: bool
    code_share: float  # 0..1: share of non-blank prompt lines that look like code or sit in ``` fences
    repetition: float  # 0..1: share of the prompt's word 3-grams that occur more than once
    edit_request: bool  # the instruction asks to repeat, rewrite, fix, translate... text it gives
    cluster: int | None  # the routing cluster, when known
    concurrency: int  # requests running on the model when this one started
    hardware: str

    def vector(self) -> np.ndarray:
        """The numeric features, as named in FEATURE_NAMES. Model, backend, hardware and cluster are left
        out: the learner keeps separate data per (model, backend), and a node has one hardware."""
        return np.array(
            [
                math.log1p(self.prompt_tokens),
                math.log1p(self.max_tokens),
                float(self.chat),
                self.code_share,
                self.repetition,
                float(self.edit_request),
                math.log1p(self.concurrency),
            ]
        )

    def kind(self) -> str:
        """A coarse label for display and for counting tries, the first that fits of: "edit, long prompt",
        "edit, short prompt", "code", "repetitive prompt", "long prompt" (from LONG_PROMPT tokens), "short
        question" (under SHORT_PROMPT tokens), "medium prompt"."""
        if self.edit_request:
            return "edit, long prompt" if self.prompt_tokens >= LONG_PROMPT else "edit, short prompt"
        if self.code_share >= CODE_KIND:
            return "code"
        if self.repetition >= REPETITIVE_KIND:
            return "repetitive prompt"
        if self.prompt_tokens >= LONG_PROMPT:
            return "long prompt"
        if self.prompt_tokens < SHORT_PROMPT:
            return "short question"
        return "medium prompt"


def describe(
    model: str,
    backend: str,
    text: str,
    prompt_tokens: int,
    max_tokens: int,
    chat: bool,
    *,
    cluster: int | None = None,
    concurrency: int = 0,
    hardware: str = "",
) -> TaskFeatures:
    """The features of a request whose prompt (every message's text, for a chat) is `text`."""
    return TaskFeatures(
        model=model,
        backend=backend,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        chat=chat,
        code_share=code_share(text),
        repetition=repetition(text),
        edit_request=edit_request(text),
        cluster=cluster,
        concurrency=concurrency,
        hardware=hardware,
    )


def code_share(text: str) -> float:
    """The share of non-blank lines that are inside ``` fences (the fences too) or look like code."""
    code = lines = 0
    fenced = False
    for line in text.splitlines():
        if not line.strip():
            continue
        lines += 1
        if _FENCE.match(line):
            fenced = not fenced
            code += 1
        elif fenced or _CODE_LINE.search(line):
            code += 1
    return code / lines if lines else 0.0


def repetition(text: str) -> float:
    """The share of word 3-grams that occur more than once in the text (0 under three words)."""
    words = _WORD.findall(text.lower())
    grams = list(zip(words, words[1:], words[2:], strict=False))
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(1 for gram in grams if counts[gram] > 1) / len(grams)


def edit_request(text: str) -> bool:
    """Whether the instruction, the prose at the start or end of the text, asks to rework given text."""
    prose = "\n".join(_prose_lines(text))
    return bool(_EDIT.search(prose[:INSTRUCTION_CHARS]) or _EDIT.search(prose[-INSTRUCTION_CHARS:]))


def _prose_lines(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines
