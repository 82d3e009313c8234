"""Models run by torch through Hugging Face transformers, on CPU or GPU.

The pure-torch path: it loads an HF model folder or a GGUF file (which
transformers dequantises, so it is slower and larger than llama.cpp), and it
serves one request at a time. Every request, streamed or not, runs through
`TextIteratorStreamer` with `generate` in a thread, so stop strings and
cancellation are handled in one place. A given continuation is scored by one
forward pass over the prompt and it: the log-softmax of the logits at each of
its tokens.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from accel.methods import Method
from core.records import FinishReason, Generation, GenerationRequest, ModelInfo, Usage

from .base import (
    DEFAULT_CONTEXT_LENGTH,
    ContextLengthExceeded,
    Engine,
    EngineCrashed,
    EngineError,
    EngineSpec,
    EngineUnavailable,
    Scored,
    TextSink,
    cpu_description,
)


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _hardware(device: str) -> str:
    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    if device == "cpu":
        return cpu_description()
    return device


def _sampling(request: GenerationRequest) -> dict[str, Any]:
    if request.temperature <= 0:
        return {"do_sample": False}
    # top_k=0 turns off transformers' default top-k of 50, which OpenAI-style requests don't ask for.
    return {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p, "top_k": 0}


class _Flag(StoppingCriteria):
    """Stops `generate` at the next token once set from another thread."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        stop = self.event.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class _StopScanner:
    """Finds stop strings in streamed text and holds back what may be the start of one.

    Without the hold-back a client would already have received "###" by the
    time the text is cut at the stop string "###".
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self.text = ""
        self._sent = 0
        self.stopped = False

    def add(self, piece: str) -> str:
        """Take new text; return the part that is safe to hand out now."""
        self.text += piece
        hits = [i for i in (self.text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True
            return self._release(len(self.text))
        held = max((self._partial(s) for s in self._stops), default=0)
        return self._release(len(self.text) - held)

    def flush(self) -> str:
        return self._release(len(self.text))

    def _partial(self, stop: str) -> int:
        # The longest tail of the text that a stop string begins with.
        for n in range(min(len(stop) - 1, len(self.text)), 0, -1):
            if stop.startswith(self.text[-n:]):
                return n
        return 0

    def _release(self, end: int) -> str:
        out = self.text[self._sent : end]
        self._sent = max(self._sent, end)
        return out


class TransformersEngine(Engine):
    def __init__(self, spec: EngineSpec, *, device: str | None = None, threads: int | None = None) -> None:
        """`spec.source` is an HF model folder or a GGUF file."""
        self._path = Path(spec.source)
        self._context_length = spec.context_length or DEFAULT_CONTEXT_LENGTH
        self._device = device or default_device()
        if threads is not None:
            torch.set_num_threads(threads)  # torch has one pool for the whole process
        # generate() keeps per-call state on the model (caches, RNG use), so requests take turns,
        # one at a time whatever spec.parallel asks.
        self._lock = threading.Lock()
        self.info = ModelInfo(
            name=spec.name,
            backend="transformers",
            source=spec.source,
            context_length=self._context_length,
            chat=spec.chat,
            hardware=_hardware(self._device),
        )
        self._model: Any = None
        self._tokenizer: Any = None
        self._load()

    def _load(self) -> None:
        if self._path.is_file():
            folder, gguf = str(self._path.parent), {"gguf_file": self._path.name}
        else:
            folder, gguf = str(self._path), {}
        tokenizer = AutoTokenizer.from_pretrained(folder, **gguf)
        # Half precision is the point of a GPU; on CPU float32 is the fast, exact path.
        dtype = torch.float32 if self._device == "cpu" else "auto"
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map=self._device, **gguf)
        model.eval()
        self._tokenizer, self._model = tokenizer, model

    def _encode(self, request: GenerationRequest) -> dict[str, torch.Tensor]:
        tokenizer = self._tokenizer
        if request.messages is not None:
            if tokenizer.chat_template is None:
                raise EngineError(f"model {self.info.name!r} has no chat template; send a prompt instead")
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            encoded = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )
        else:
            encoded = tokenizer(request.prompt, return_tensors="pt")
        return {key: value.to(self._device) for key, value in encoded.items()}

    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        return self.stream(request, lambda _piece: False, method)

    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
        method = self.accepted(method)
        with self._lock:
            if self._model is None:
                raise EngineUnavailable(f"model {self.info.name!r} is restarting")
            return self._run(request, sink, method)

    def _run(self, request: GenerationRequest, sink: TextSink, method: Method) -> Generation:
        inputs = self._encode(request)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if prompt_tokens >= self._context_length:
            raise ContextLengthExceeded(prompt_tokens, self._context_length)
        max_new = min(request.max_tokens, self._context_length - prompt_tokens)

        tokenizer = self._tokenizer
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        flag = _Flag()
        if request.temperature > 0 and request.seed is not None:
            torch.manual_seed(request.seed)
        # Without a pad id generate() warns on every call and picks the eos id itself.
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    outcome["ids"] = self._model.generate(
                        **inputs,
                        **_sampling(request),
                        max_new_tokens=max_new,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([flag]),
                        pad_token_id=pad_id,
                        **method.request,
                    )
            except Exception as exc:  # handed to the caller's thread below
                outcome["error"] = exc
                streamer.end()  # unblocks the loop below, which would otherwise wait forever

        worker = threading.Thread(target=run, name=f"generate-{self.info.name}", daemon=True)
        scanner = _StopScanner(request.stop)
        cancelled = False
        worker.start()
        try:
            for piece in streamer:
                if cancelled or scanner.stopped:
                    continue  # drain what generate produced before it saw the flag
                out = scanner.add(piece)
                if out and sink(out):
                    cancelled = True
                if cancelled or scanner.stopped:
                    flag.event.set()
            if not (cancelled or scanner.stopped):
                rest = scanner.flush()
                if rest:
                    sink(rest)
        finally:
            flag.event.set()
            worker.join()

        error = outcome.get("error")
        if isinstance(error, ValueError):  # transformers refusing the request's settings
            raise EngineError(f"model {self.info.name!r} refused the request: {error}") from error
        if error is not None:
            raise EngineCrashed(f"transformers failed on model {self.info.name!r}: {error}") from error
        new_ids = outcome["ids"][0, prompt_tokens:].tolist()
        finish: FinishReason
        if cancelled:
            finish = "cancelled"
        elif scanner.stopped:
            finish = "stop"
        elif len(new_ids) >= max_new and new_ids[-1] not in self._eos_ids():
            finish = "length"
        else:
            finish = "stop"
        return Generation(text=scanner.text, finish_reason=finish, usage=Usage(prompt_tokens, len(new_ids)))

    def score(self, request: GenerationRequest, continuation: str) -> Scored:
        if not continuation:
            raise ValueError("an empty continuation has nothing to score")
        with self._lock:
            if self._model is None:
                raise EngineUnavailable(f"model {self.info.name!r} is restarting")
            prompt = self._encode(request)["input_ids"]
            tokens = self._tokenizer(continuation, add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids = torch.cat([prompt, tokens.to(self._device)], dim=1)
            if ids.shape[1] > self._context_length:
                raise ContextLengthExceeded(int(ids.shape[1]), self._context_length)
            with torch.inference_mode():
                # The logits at position t predict token t + 1: those from the prompt's last token on.
                logits = self._model(ids).logits[0, prompt.shape[1] - 1 : -1].float()
                logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[0, prompt.shape[1] :, None])
        return Scored(tuple(logprobs[:, 0].tolist()), len(continuation))

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            return set()
        return {eos} if isinstance(eos, int) else set(eos)

    def _unload(self) -> None:
        self._model = None
        self._tokenizer = None
        gc.collect()
        if self._device.startswith("cuda"):
            torch.cuda.empty_cache()

    def restart(self) -> None:
        with self._lock:
            self._unload()
            self._load()

    def close(self) -> None:
        with self._lock:
            self._unload()
