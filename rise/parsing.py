"""Reading model completions (`<think>…</think><answer>…</answer>`) and writing training targets in the same form.

Parsing never raises on model output: whatever the model wrote, `parse_completion` returns a `ParsedCompletion`
whose `error` says why no answer could be read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from rise.answers import answer_to_text, parse_answer_text
from rise.tasks import Answer, TaskSpec

logger = logging.getLogger(__name__)

# Tokens a decoder may leave at the end of a completion when special tokens are not skipped.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<eos>", "<|end|>", "<|eot_id|>")
# Anchored at both ends like TRL's think_format_reward (`^<think>(?!.*<think>)(.*?)</think>.*$`): one think block
# then one answer block and nothing else. The tempered `(?:(?!…).)*` bodies cannot contain another tag, so a tag the
# model echoes from the prompt breaks the format instead of being counted, and matching stays linear in the length.
_THINK_BODY = r"((?:(?!</?think>|</?answer>).)*)"
_ANSWER_BODY = r"((?:(?!</?answer>|</?think>).)*)"
THINK_ANSWER_RE = re.compile(rf"^\s*<think>{_THINK_BODY}</think>\s*<answer>{_ANSWER_BODY}</answer>\s*$", re.DOTALL)
# Reconstruction prompts ask for the answer alone; a think block before it is tolerated.
ANSWER_ONLY_RE = re.compile(rf"^\s*(?:<think>{_THINK_BODY}</think>\s*)?<answer>{_ANSWER_BODY}</answer>\s*$", re.DOTALL)
ANSWER_BLOCK_RE = re.compile(r"<answer>((?:(?!</?answer>).)*)</answer>", re.DOTALL)
THINK_BLOCK_RE = re.compile(r"<think>((?:(?!</?think>).)*)</think>", re.DOTALL)
THINK_TAG_RE = re.compile(r"</?think>")
ANY_TAG_RE = re.compile(r"</?(?:think|answer)>")


@dataclass
class ParsedCompletion:
    """What a completion says.

    Args:
        cot (`str | None`): the reasoning inside `<think>…</think>`, stripped; `None` when there is none.
        answer (`Answer | None`): the answer in original-image pixels (`rise.tasks` shapes); `None` on failure.
        error (`str | None`): why no answer could be read; `None` when `answer` is set.
        format_ok (`bool`): the completion is exactly one think block then one answer block (or, for
            reconstruction, an answer block with an optional think block before it).
        answer_text (`str | None`): the raw text the answer was read from, for display.
    """

    cot: str | None
    answer: Answer | None
    error: str | None
    format_ok: bool
    answer_text: str | None = None


def strip_end_markers(text: str) -> str:
    """Remove end-of-turn tokens a decoder left at the end, so `...</answer><|im_end|>` still counts as well formed.

    >>> strip_end_markers("<answer>circle</answer><|im_end|>\\n")
    '<answer>circle</answer>'
    """
    text = text.rstrip()
    stripped = True
    while stripped:
        stripped = False
        for marker in END_MARKERS:
            if text.endswith(marker):
                text = text[: -len(marker)].rstrip()
                stripped = True
    return text


def _split_completion(text: str, require_think: bool) -> tuple[str | None, str | None, bool]:
    """(cot, answer text, format_ok). Falls back leniently so a malformed completion can still be scored."""
    strict = (THINK_ANSWER_RE if require_think else ANSWER_ONLY_RE).match(text)
    if strict:
        return strict.group(1), strict.group(2), True
    answers = list(ANSWER_BLOCK_RE.finditer(text))
    if answers:
        # The last answer block is the model's final word; earlier ones are drafts or prompt echoes.
        last = answers[-1]
        thinks = list(THINK_BLOCK_RE.finditer(text, 0, last.start()))
        return (thinks[-1].group(1) if thinks else None), last.group(1), False
    thinks = list(THINK_BLOCK_RE.finditer(text))
    cot = thinks[-1].group(1) if thinks else None
    tail = text[thinks[-1].end() :] if thinks else text
    if ANY_TAG_RE.search(tail) or not tail.strip():
        return cot, None, False
    # No tags at all after the reasoning: a bare answer, as an untuned base model often writes.
    return cot, tail, False


def parse_completion(
    text: str, spec: TaskSpec, width: int | None, height: int | None, *, require_think: bool = True
) -> ParsedCompletion:
    """Parse a completion into reasoning and an answer in original-image pixels; never raises.

    Args:
        text (`str`): the completion as decoded.
        spec (`TaskSpec`): the task, its labels, synonyms and the coordinate frame the model writes boxes in.
        width (`int`), height (`int`): the original image size, to convert and clip boxes (unused for labels).
        require_think (`bool`): `format_ok` needs a think block (annotation); `False` for reconstruction answers.

    Returns:
        `ParsedCompletion`: `answer` set and `error` `None`, or `answer` `None` and `error` giving the reason.

    Example:
    >>> spec = TaskSpec("classification", labels=("circle", "square"))
    >>> parse_completion("<think>Round edges.</think><answer>Circle</answer>", spec, 64, 64)
    ParsedCompletion(cot='Round edges.', answer='circle', error=None, format_ok=True, answer_text='Circle')
    >>> parse_completion("<think>Round edges.</think>", spec, 64, 64).error
    'no <answer>…</answer> block'
    """
    try:
        return _parse_completion(text, spec, width, height, require_think)
    except Exception as error:
        # why: one odd completion must not end a training run or an annotation batch; the test suite asserts this
        # branch is never reached on arbitrary text, so reaching it in production is a bug worth logging.
        logger.exception("Unexpected error while parsing a completion")
        return ParsedCompletion(None, None, f"internal parser error ({type(error).__name__})", False)


def _parse_completion(text: str, spec: TaskSpec, width: int, height: int, require_think: bool) -> ParsedCompletion:
    if not isinstance(text, str):
        return ParsedCompletion(None, None, f"the completion is {type(text).__name__}, not text", False)
    cot, answer_text, format_ok = _split_completion(strip_end_markers(text), require_think)
    cot = cot.strip() if cot is not None else None
    if answer_text is None:
        return ParsedCompletion(cot, None, "no <answer>…</answer> block", False)
    answer, error = parse_answer_text(answer_text, spec, width, height)
    return ParsedCompletion(cot, answer, error, format_ok, answer_text.strip())


def extract_reasoning(text: str) -> str:
    """The chain of thought a RISE-CoT reasoning completion contains: its last think block, or the whole text.

    Anything outside the think block is dropped, so an answer written after the reasoning never reaches the
    reconstruction. Tags are removed; leakage inside the reasoning is `rise.leakage`'s job.

    >>> extract_reasoning("<think>Four equal sides.</think><answer>square</answer>")
    'Four equal sides.'
    >>> extract_reasoning("Four equal sides.<|im_end|>")
    'Four equal sides.'
    """
    if not isinstance(text, str):
        return ""
    text = strip_end_markers(text)
    thinks = list(THINK_BLOCK_RE.finditer(text))
    if thinks:
        return thinks[-1].group(1).strip()
    return THINK_TAG_RE.sub(" ", text).strip()


def format_answer(answer: Answer, spec: TaskSpec, width: int, height: int) -> str:
    """Write a pixel answer as the model's answer text (boxes in the spec's frame); `parse_completion` reads it back.

    Raises:
        `ValueError`: the answer does not fit the task (this is stored data, not model output).

    Example:
    >>> spec = TaskSpec("grounding")  # Qwen2-VL frame: 0..1000 on each axis
    >>> format_answer([0, 0, 32, 16], spec, 64, 32)
    '[0, 0, 500, 500]'
    """
    return answer_to_text(answer, spec, width, height)


def reasoning_problem(text: str) -> str | None:
    """Why a reasoning written by a person cannot go inside `<think>…</think>` of a training target, or None.

    A tag or an end-of-turn token inside it would end the think block (or the turn) early in every target made
    from it.

    >>> reasoning_problem("Two warm colours, one cool.") is None
    True
    >>> reasoning_problem("so </think> it is")
    "it contains '</think>', which marks the end of a reasoning; write it without tags"
    """
    tag = ANY_TAG_RE.search(text)
    if tag:
        return f"it contains {tag.group(0)!r}, which marks the end of a reasoning; write it without tags"
    for marker in END_MARKERS:
        if marker in text:
            return f"it contains {marker!r}, a model's end-of-turn token; write it without it"
    return None


def format_completion(cot: str, answer: Answer, spec: TaskSpec, width: int, height: int) -> str:
    """The full training target `<think>cot</think><answer>…</answer>` for SFT.

    >>> format_completion("Four equal sides.", "square", TaskSpec("classification", labels=("circle", "square")), 0, 0)
    '<think>Four equal sides.</think><answer>square</answer>'
    """
    return f"<think>{cot.strip()}</think><answer>{format_answer(answer, spec, width, height)}</answer>"
