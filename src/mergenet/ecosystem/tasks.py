"""Synthetic task families: the skills contributors specialise in.

Each family draws one problem from a seeded RNG: a question, its answer text and three
distinct wrong answers of the same form. Distractors are near misses (a digit off, a
permutation of the same letters) so that choosing the right one needs the skill, not the
format. Answers are short texts that follow the question, because a few-million-parameter
model learns to produce an answer long before it learns to map it onto a letter
(DESIGN.md, "Two accuracies").
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

Problem = tuple[str, str, list[str]]
"""(question, answer, three distinct wrong answers)."""


@dataclass(frozen=True)
class TaskFamily:
    name: str
    description: str
    draw: Callable[[random.Random], Problem]


def _distinct(answer: str, candidates: list[str], fallback: Callable[[], str]) -> list[str]:
    """Three wrong answers, distinct from each other and from ``answer``."""
    out: list[str] = []
    for c in candidates:
        if c != answer and c not in out:
            out.append(c)
        if len(out) == 3:
            return out
    while len(out) < 3:
        c = fallback()
        if c != answer and c not in out:
            out.append(c)
    return out


def _near_numbers(rng: random.Random, value: int, low: int = 0) -> list[str]:
    steps = [1, -1, 10, -10, 2, -2, 11, -9]
    rng.shuffle(steps)
    return [str(value + s) for s in steps if value + s >= low]


def _add(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    ans = a + b
    return (
        f"What is {a}+{b}?",
        str(ans),
        _distinct(str(ans), _near_numbers(rng, ans), lambda: str(rng.randint(20, 198))),
    )


def _sub(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    a, b = max(a, b), min(a, b)
    ans = a - b
    return (
        f"What is {a}-{b}?",
        str(ans),
        _distinct(str(ans), _near_numbers(rng, ans), lambda: str(rng.randint(0, 89))),
    )


def _compare(rng: random.Random) -> Problem:
    a, b = rng.sample(range(10, 1000), 2)
    ans = max(a, b)
    wrong = [str(min(a, b)), str(ans + rng.choice([1, 10, 100])), str(ans - rng.choice([1, 10]))]
    return (
        f"Which is larger: {a} or {b}?",
        str(ans),
        _distinct(str(ans), wrong, lambda: str(rng.randint(10, 999))),
    )


def _letters(rng: random.Random, n: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _permutations(rng: random.Random, word: str) -> list[str]:
    out = []
    for _ in range(12):
        chars = list(word)
        rng.shuffle(chars)
        out.append("".join(chars))
    return out


def _reverse(rng: random.Random) -> Problem:
    word = _letters(rng, rng.randint(4, 6))
    ans = word[::-1]
    near = [word, ans[1:] + ans[0], ans[:-2] + ans[-1] + ans[-2], *_permutations(rng, word)]
    return (
        f"Reverse the letters: {word}",
        ans,
        _distinct(ans, near, lambda: _letters(rng, len(word))),
    )


def _sort(rng: random.Random) -> Problem:
    word = "".join(rng.sample(string.ascii_lowercase, rng.randint(4, 5)))
    ans = "".join(sorted(word))
    near = [word, ans[::-1], ans[1] + ans[0] + ans[2:], *_permutations(rng, word)]
    return f"Sort the letters: {word}", ans, _distinct(ans, near, lambda: _letters(rng, len(word)))


def _count(rng: random.Random) -> Problem:
    target = rng.choice("abc")
    word = _letters(rng, rng.randint(6, 10), "abcd")
    ans = word.count(target)
    return (
        f"How many {target} in {word}?",
        str(ans),
        _distinct(
            str(ans),
            [str(ans + 1), str(max(ans - 1, 0)), str(ans + 2), str(ans + 3)],
            lambda: str(rng.randint(0, 10)),
        ),
    )


def _lookup(rng: random.Random) -> Problem:
    keys = rng.sample(string.ascii_lowercase, 4)
    values = [rng.randint(0, 9) for _ in keys]
    i = rng.randrange(4)
    table = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
    ans = str(values[i])
    others = [str(v) for j, v in enumerate(values) if j != i]
    return (
        f"{table}. What is {keys[i]}?",
        ans,
        _distinct(ans, others, lambda: str(rng.randint(0, 9))),
    )


_UNITS = [
    ("km", "m", 1000),
    ("m", "cm", 100),
    ("kg", "g", 1000),
    ("cm", "mm", 10),
    ("l", "ml", 1000),
]


def _convert(rng: random.Random) -> Problem:
    big, small, factor = rng.choice(_UNITS)
    qty = rng.randint(2, 499)
    ans = qty * factor
    wrong = [str(qty * f) for _, _, f in _UNITS if f != factor] + [str(ans * 10), str(qty)]
    return (
        f"How many {small} in {qty} {big}?",
        str(ans),
        _distinct(str(ans), wrong, lambda: str(rng.randint(2, 499) * factor)),
    )


def _bits(rng: random.Random) -> Problem:
    width = rng.randint(6, 9)
    bits = _letters(rng, width, "01")
    ans = "".join("1" if c == "0" else "0" for c in bits)
    near = [bits, ans[::-1], *(ans[:i] + bits[i] + ans[i + 1 :] for i in range(width))]
    rng.shuffle(near)
    return f"Flip the bits: {bits}", ans, _distinct(ans, near, lambda: _letters(rng, width, "01"))


def _sequence(rng: random.Random) -> Problem:
    start, step = rng.randint(1, 99), rng.randint(2, 15)
    terms = [start + i * step for i in range(4)]
    ans = terms[-1] + step
    wrong = [str(ans + 1), str(ans - 1), str(terms[-1] + 1), str(ans + step)]
    shown = ", ".join(str(t) for t in terms)
    return (
        f"Continue: {shown},",
        str(ans),
        _distinct(str(ans), wrong, lambda: str(rng.randint(5, 60))),
    )


def _add_small(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 99), rng.randint(1, 9)
    ans = a + b
    return (
        f"What is {a}+{b}?",
        str(ans),
        _distinct(str(ans), _near_numbers(rng, ans), lambda: str(rng.randint(11, 108))),
    )


def _successor(rng: random.Random) -> Problem:
    n = rng.randint(10, 999)
    ans = n + 1
    wrong = [str(n), str(n + 2), str(n - 1), str(n + 10), str(n + 11)]
    return (
        f"What comes after {n}?",
        str(ans),
        _distinct(str(ans), wrong, lambda: str(rng.randint(10, 1000))),
    )


def _predecessor(rng: random.Random) -> Problem:
    n = rng.randint(11, 999)
    ans = n - 1
    wrong = [str(n), str(n - 2), str(n + 1), str(n - 10), str(n - 11)]
    return (
        f"What comes before {n}?",
        str(ans),
        _distinct(str(ans), wrong, lambda: str(rng.randint(10, 998))),
    )


def _plus_ten(rng: random.Random) -> Problem:
    n = rng.randint(100, 989)
    ans = n + 10
    wrong = [str(n), str(n + 1), str(n + 11), str(n + 100), str(n + 20), str(n - 10)]
    return (
        f"What is {n}+10?",
        str(ans),
        _distinct(str(ans), wrong, lambda: str(rng.randint(100, 999))),
    )


def _spaced(letters: str) -> str:
    return " ".join(letters)


def _upper(rng: random.Random) -> Problem:
    word = _letters(rng, rng.randint(3, 5))
    ans = _spaced(word.upper())
    near = [_spaced(p.upper()) for p in _permutations(rng, word)]
    near.insert(0, _spaced(word))
    return (
        f"Uppercase: {_spaced(word)}",
        ans,
        _distinct(ans, near, lambda: _spaced(_letters(rng, len(word)).upper())),
    )


def _repeat(rng: random.Random) -> Problem:
    digits = _letters(rng, rng.randint(3, 5), string.digits)
    ans = _spaced(digits * 2)
    near = [_spaced(digits), _spaced(digits * 3), _spaced(digits + digits[::-1])]
    near += [_spaced(digits + p) for p in _permutations(rng, digits)]
    return (
        f"Say twice: {_spaced(digits)}",
        ans,
        _distinct(ans, near, lambda: _spaced(_letters(rng, 2 * len(digits), string.digits))),
    )


def _double(rng: random.Random) -> Problem:
    digits = _letters(rng, rng.randint(3, 5), string.digits)
    ans = "".join(str(2 * int(d) % 10) for d in digits)
    near = [digits, ans[::-1], *(ans[:i] + digits[i] + ans[i + 1 :] for i in range(len(digits)))]
    near += [p for p in _permutations(rng, ans)]
    return (
        f"Double each digit (mod 10): {_spaced(digits)}",
        _spaced(ans),
        _distinct(
            _spaced(ans),
            [_spaced(x) for x in near],
            lambda: _spaced(_letters(rng, len(digits), string.digits)),
        ),
    )


def _maxlist(rng: random.Random) -> Problem:
    values = rng.sample(range(1, 100), 4)
    ans = max(values)
    others = [str(v) for v in values if v != ans]
    return (
        "Largest of " + ", ".join(map(str, values)) + "?",
        str(ans),
        _distinct(str(ans), others, lambda: str(rng.randint(1, 99))),
    )


TASKS: dict[str, TaskFamily] = {
    t.name: t
    for t in [
        TaskFamily("add", "two-digit addition", _add),
        TaskFamily("sub", "two-digit subtraction", _sub),
        TaskFamily("compare", "the larger of two numbers", _compare),
        TaskFamily("reverse", "reverse a short word", _reverse),
        TaskFamily("sort", "sort the letters of a word", _sort),
        TaskFamily("count", "count a letter in a word", _count),
        TaskFamily("lookup", "read a key from a small table", _lookup),
        TaskFamily("convert", "unit conversion", _convert),
        TaskFamily("bits", "flip every bit of a short bit string", _bits),
        TaskFamily("sequence", "next term of an arithmetic sequence", _sequence),
        TaskFamily("add_small", "a two-digit plus a one-digit number", _add_small),
        TaskFamily("successor", "the number after a number", _successor),
        TaskFamily("predecessor", "the number before a number", _predecessor),
        TaskFamily("plus_ten", "a three-digit number plus ten", _plus_ten),
        TaskFamily("double", "double each digit, modulo 10", _double),
        TaskFamily("upper", "uppercase spaced letters", _upper),
        TaskFamily("repeat", "say a digit string twice", _repeat),
        TaskFamily("maxlist", "the largest of four numbers", _maxlist),
    ]
}
