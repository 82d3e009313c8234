"""Whether a model's answer to a calibration item is right, and the answer it settled on.

Short answers are matched with the civics package's own scoring: every
significant word of an accepted answer must appear (extra words are fine,
numbers are strict, names get slight spelling slack). Only the first line is
graded, so an answer followed by an essay that happens to name the right
thing elsewhere does not count. Code is never run in this process, nor
unisolated: it runs in a sandbox (routing.sandbox) with memory, CPU and file
limits, and the tests in another, which alone says whether they passed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path

from civics.scoring import answer_matches, normalize

from routing import grading_harness
from routing.datasets import Item
from routing.sandbox import python_command

# The version of what `grade` accepts, which the reputation rules name (Rules.grader): nodes that grade a
# challenge answer differently can't agree on the ledger, so any change here that could grade some short
# answer or option letter otherwise bumps it, and the rules' default with it, deliberately: the nodes on
# the new version are a network of their own rather than a silent split of the old one.
GRADER_VERSION = 1
MEMORY_LIMIT = 1 << 30
FILE_LIMIT = 1 << 20
HARNESS = "/sandbox/harness.py"

_PYTHON_FENCES = {"", "python", "py", "python3"}
# An option letter: "C", "(C)", "C." or "c)"; a lowercase letter only with its ")", or it is the article "a".
_LETTER = r"\(?([A-D]|[a-d](?=\)))\)?(?![A-Za-z0-9])"
_BARE = re.compile(r"[\s*_`'\"(]*([A-Da-d])[\s.:)*_`'\"]*")
_STATED = re.compile(rf"(?i:\banswer(?:\s+is|\s+would\s+be)?)\s*[:*\-]*\s*(?i:option\s*)?{_LETTER}")
_ALTERNATIVE = re.compile(rf"\s*(?:or|and|/)\s*{_LETTER}")
_OPTION_LINE = re.compile(r"^\s*\(?[A-D][.):]\s", re.M)
_LABEL = re.compile(r"^[\W_]*([A-Da-d])[).:]", re.M)
_MENTION = re.compile(r"(?<![A-Za-z0-9'’])([A-D])(?![A-Za-z0-9'’])")
# A capital "A" opening a sentence and running on into a lowercase word: "A good option is C",
# but not "A or B", "A is right".
_ARTICLE = re.compile(
    r"(?:^|[.!?:]\s+)(A) (?!(?:or|and|nor|is|was|seems|would|could|might|must|should|will|because)\b)[a-z]",
    re.M,
)


def grade(item: Item, answer: str, *, timeout_s: float = 10.0) -> bool:
    if item.kind == "qa":
        line = first_line(answer)
        return line is not None and answer_matches(line, list(item.answers))
    if item.kind == "mc":
        return choice(answer) in item.answers
    code = extract_code(answer, item)
    return bool(code.strip()) and run_tests(item, code, timeout_s=timeout_s)


def final_answer(item: Item, text: str) -> str | None:
    """What the answer amounts to, so that answers saying the same thing compare equal for voting:
    the normalised accepted answer it matches, an option letter, or the program; None if nothing."""
    if item.kind == "qa":
        line = first_line(text)
        if line is None:
            return None
        matched = next((a for a in item.answers if answer_matches(line, [a])), None)
        return normalize(matched if matched is not None else line) or None
    if item.kind == "mc":
        return choice(text)
    code = extract_code(text, item)
    return code if code.strip() else None


def option_count(question: str) -> int:
    """How many options ("A. ...", "(B) ...") the question lists on lines of their own; 0 if fewer than
    two, which is no list."""
    found = len(_OPTION_LINE.findall(question))
    return found if found >= 2 else 0


def spoken_answer(question: str, text: str) -> str | None:
    """What a free-form answer amounts to, for a majority vote when no calibration item says what kind of
    question it is: the option letter if the question lists options, else the normalised first line."""
    if option_count(question):
        return choice(text)
    line = first_line(text)
    return (normalize(line) or None) if line is not None else None


def first_line(text: str) -> str | None:
    """The first non-blank line, less an "Answer:" label (a label alone on its line gives the next line)."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [re.sub(r"(?i)^(?:final\s+)?answer\s*:\s*", "", line) for line in lines if line]
    return next((line for line in lines if line), None)


def choice(text: str) -> str | None:
    """The option letter the answer settles on, or None when it names none or several without choosing.

    In order: a bare letter ("C", "(C)", "c)"); the last "answer is X" / "Answer: X",
    unless it reads "answer is B or C"; a single option label starting a line
    ("c) Atrophy", "C. Li chose..."); a single letter standing alone in the text.
    """
    if bare := _BARE.fullmatch(text):
        return bare[1].upper()
    stated = list(_STATED.finditer(text))
    if stated:
        last = stated[-1]
        alternative = _ALTERNATIVE.match(text, last.end())
        if alternative and alternative[1].upper() != last[1].upper():
            return None
        return last[1].upper()
    labels = {m[1].upper() for m in _LABEL.finditer(text)}
    articles = {m.start(1) for m in _ARTICLE.finditer(text)}
    mentions = {m[1] for m in _MENTION.finditer(text) if m.start(1) not in articles}
    letters = labels or mentions
    return letters.pop() if len(letters) == 1 else None


def extract_code(text: str, item: Item) -> str:
    """The program a code answer amounts to, prompt included.

    The code is the first ```python block that defines the entry point (else
    the first block, else the whole text). A block that defines it follows the
    prompt, so the prompt's imports and helpers are there and the model's
    definition replaces the stub; a block that does not is taken for the body
    and continues the prompt.
    """
    blocks = _python_blocks(text)
    defines = re.compile(rf"^def\s+{re.escape(item.entry_point)}\s*\(", re.M)
    code = next((b for b in blocks if defines.search(b)), blocks[0] if blocks else text)
    code = re.sub(r"^(?:[ \t]*\n)+", "", code).rstrip()
    if not code:
        return ""
    if defines.search(code):
        return f"{item.code_prefix.rstrip()}\n\n\n{code}\n"
    if not code[0].isspace():
        code = textwrap.indent(code, "    ")
    return f"{item.code_prefix}{code}\n"


def _python_blocks(text: str) -> list[str]:
    """The contents of the ``` blocks tagged python (or untagged); one cut short by max_tokens counts too."""
    blocks: list[str] = []
    current: list[str] | None = None
    tag = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("```"):
            if current is not None:
                current.append(line)
        elif current is None:
            current, tag = [], stripped[3:].strip().lower()
        else:
            if tag in _PYTHON_FENCES:
                blocks.append("\n".join(current))
            current = None
    if current is not None and tag in _PYTHON_FENCES:
        blocks.append("\n".join(current))
    return blocks


def run_tests(item: Item, code: str, *, timeout_s: float) -> bool:
    """Whether `item`'s tests pass against the function `code` defines, within `timeout_s`.

    The code runs in one sandbox and the tests in another, joined by two
    pipes: calls go one way and results come back, as plain data
    (routing.grading_harness). The pass is the tests' own line on a pipe only
    their sandbox holds, written once `check` returned; nothing the code does
    to its own process (its exit status, its output, its hooks) reaches it.
    Both sandboxes get limits on address space, CPU seconds, file size,
    processes (root is exempt) and core dumps; on timeout both are killed,
    whatever they started with them. SandboxUnavailable where bwrap is
    missing or can't isolate: the code is not run.
    """
    limits = [
        (resource.RLIMIT_AS, MEMORY_LIMIT),
        (resource.RLIMIT_CPU, math.ceil(timeout_s) + 1),
        (resource.RLIMIT_FSIZE, FILE_LIMIT),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_CORE, 0),
    ]
    role_args = [item.entry_point, json.dumps(limits)]
    harness = {HARNESS: Path(grading_harness.__file__)}
    with tempfile.TemporaryDirectory(prefix="grade-", ignore_cleanup_errors=True) as directory:
        code_dir, tests_dir = Path(directory, "code"), Path(directory, "tests")
        code_dir.mkdir()
        tests_dir.mkdir()
        (code_dir / grading_harness.PROGRAM).write_text(code, encoding="utf-8")
        (tests_dir / grading_harness.PROMPT).write_text(item.code_prefix, encoding="utf-8")
        (tests_dir / grading_harness.TESTS).write_text(item.test, encoding="utf-8")
        calls_read, calls_write = os.pipe()  # from the tests to the code
        results_read, results_write = os.pipe()  # and back
        started: list[subprocess.Popen[bytes]] = []
        try:
            try:
                serve = python_command(
                    HARNESS, ["serve", *role_args], binds={**harness, grading_harness.CODE_DIR: code_dir}
                )
                started.append(_start(serve, stdin=calls_read, stdout=results_write))
                check = python_command(
                    HARNESS,
                    ["check", *role_args, str(calls_write)],
                    binds={**harness, grading_harness.TESTS_DIR: tests_dir},
                )
                checker = _start(check, stdin=results_read, stdout=subprocess.PIPE, pass_fds=(calls_write,))
                started.append(checker)
            finally:
                # Held only by the sandboxes now, so that either one's end is the other's end of file.
                for fd in (calls_read, calls_write, results_read, results_write):
                    os.close(fd)
            verdict, _ = checker.communicate(timeout=timeout_s)
            return verdict == grading_harness.PASSED
        except subprocess.TimeoutExpired:
            return False
        finally:
            for process in started:
                # bwrap's group; the sandbox inside dies with it, and everything it started with the sandbox.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _start(
    command: list[str], *, stdin: int, stdout: int, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env={},
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        pass_fds=pass_fds,
        start_new_session=True,
    )
