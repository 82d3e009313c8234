"""Driving base (not instruction-tuned) models with completion prompts.

A base model has no usable chat template, so a chat request is written out as
a plain "Q: ... A:" transcript and the model continues it; the stop strings
end the answer where the model would start the next turn.
"""

from __future__ import annotations

import dataclasses

from core.records import GenerationRequest, Message

TURN_STOPS = ("\nQ:", "\nUser:", "\n\n\n")

_PREFIX = {"user": "Q: ", "assistant": "A: ", "tool": "Tool: "}


def transcript(messages: tuple[Message, ...]) -> str:
    lines = []
    for message in messages:
        if message.role == "system":
            lines.append(message.content.strip())
        else:
            lines.append(_PREFIX[message.role] + message.content.strip())
    return "\n".join(lines) + "\nA:"


def as_completion(request: GenerationRequest) -> GenerationRequest:
    """The same request, as a completion prompt a base model can continue."""
    if request.messages is None:
        return request
    return dataclasses.replace(
        request,
        messages=None,
        prompt=transcript(request.messages),
        stop=tuple(dict.fromkeys(request.stop + TURN_STOPS)),
    )
