"""Parameter spaces that an evolutionary search can sample, cross over and mutate.

Every strategy declares the parameters the search may move (names are mergekit's, so a
recipe's params drop straight into a mergekit YAML), their types and bounds. All operators
return points inside the space: numeric values are clipped to their bounds (log-scaled
parameters are moved in log space), booleans stay booleans, choices stay in their set, and
a strategy-level ``repair`` function enforces joint constraints (DELLA's
``density ± epsilon ∈ (0, 1)``). The search therefore never has to know what a parameter
means, and a mutated candidate can never crash the merge with an out-of-range value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ParamKind = Literal["float", "int", "bool", "choice"]
Params = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One searchable parameter: its type, bounds (inclusive) and default."""

    name: str
    kind: ParamKind
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind in ("float", "int"):
            if self.low is None or self.high is None or self.low > self.high:
                raise ValueError(f"{self.name}: numeric parameters need low <= high")
            if self.log and self.low <= 0:
                raise ValueError(f"{self.name}: a log-scaled parameter needs low > 0")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice parameter needs choices")

    # -- numeric helpers: map to [0, 1] and back so operators treat every scale alike --
    def _to_unit(self, value: float) -> float:
        assert self.low is not None and self.high is not None
        if self.high == self.low:
            return 0.0
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (math.log(max(value, self.low)) - lo) / (hi - lo)
        return (value - self.low) / (self.high - self.low)

    def _from_unit(self, u: float) -> Any:
        assert self.low is not None and self.high is not None
        u = min(1.0, max(0.0, u))
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            value = math.exp(lo + u * (hi - lo))
        else:
            value = self.low + u * (self.high - self.low)
        return self.clip(value)

    def clip(self, value: Any) -> Any:
        """The nearest legal value (bounds for numbers, type coercion for the rest)."""
        if self.kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if self.kind == "choice":
            if value in self.choices:
                return value
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        assert self.low is not None and self.high is not None
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        number = min(self.high, max(self.low, number))
        return round(number) if self.kind == "int" else number

    def contains(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high

    def describe(self) -> str:
        """Compact: ``1 in [0.01,1]``, ``True (bool)``, ``'a' of [a, b]``."""
        if self.kind == "bool":
            return f"{self.default} (bool)"
        if self.kind == "choice":
            return f"{self.default!r} of {list(self.choices)}"
        scale = " log" if self.log else ""
        return f"{self.default:g} in [{self.low:g},{self.high:g}]{scale}"


@dataclass(frozen=True)
class ParamSpace:
    """An ordered set of parameters plus an optional repair for joint constraints."""

    params: tuple[Param, ...] = ()
    repair: Callable[[Params], Params] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> Params:
        return self.contain({})

    def contain(self, params: Mapping[str, Any]) -> Params:
        """Fill missing names with defaults, clip every value into the space, apply repair.

        Unknown names are an error (a typo must not silently become a default).
        """
        unknown = set(params) - set(self.names)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)}; this strategy takes {list(self.names)}"
            )
        out = {p.name: p.clip(params.get(p.name, p.default)) for p in self.params}
        if self.repair is not None:
            out = self.repair(out)
        return out

    clip = contain

    def contains(self, params: Mapping[str, Any]) -> bool:
        if set(params) != set(self.names):
            return False
        if not all(p.contains(params[p.name]) for p in self.params):
            return False
        return self.repair is None or self.repair(dict(params)) == dict(params)

    def sample(self, rng: np.random.Generator) -> Params:
        """A uniform draw (log-uniform for log-scaled parameters)."""
        out: Params = {}
        for p in self.params:
            if p.kind == "bool":
                out[p.name] = bool(rng.random() < 0.5)
            elif p.kind == "choice":
                out[p.name] = p.choices[int(rng.integers(len(p.choices)))]
            else:
                out[p.name] = p._from_unit(float(rng.random()))
        return self.contain(out)

    def crossover(
        self,
        a: Mapping[str, Any],
        b: Mapping[str, Any],
        alpha: float,
        eps: float | Mapping[str, float] = 0.0,
        rng: np.random.Generator | None = None,
    ) -> Params:
        """Algorithm 2's ``α·a + (1−α)·b + ε``, kept inside the space.

        Numeric values are blended in each parameter's unit scale (log scale where declared),
        so ``eps`` is a fraction of the parameter's range: a float applies to every numeric
        parameter, a mapping per name. Booleans and choices come from ``a`` with probability
        ``alpha`` (deterministically from ``a`` when ``alpha >= 0.5`` and no rng is given).
        """
        a, b = self.contain(a), self.contain(b)
        out: Params = {}
        for p in self.params:
            if p.kind in ("bool", "choice"):
                take_a = (rng.random() < alpha) if rng is not None else alpha >= 0.5
                out[p.name] = a[p.name] if take_a else b[p.name]
                continue
            e = eps.get(p.name, 0.0) if isinstance(eps, Mapping) else eps
            u = alpha * p._to_unit(a[p.name]) + (1 - alpha) * p._to_unit(b[p.name]) + e
            out[p.name] = p._from_unit(u)
        return self.contain(out)

    def mutate(self, params: Mapping[str, Any], sigma: float, rng: np.random.Generator) -> Params:
        """Gaussian steps of ``sigma`` (a fraction of each range); flips/resamples with p=σ."""
        base = self.contain(params)
        out: Params = {}
        flip = min(0.5, abs(sigma))
        for p in self.params:
            value = base[p.name]
            if p.kind == "bool":
                out[p.name] = (not value) if rng.random() < flip else value
            elif p.kind == "choice":
                resample = rng.random() < flip
                out[p.name] = p.choices[int(rng.integers(len(p.choices)))] if resample else value
            else:
                out[p.name] = p._from_unit(p._to_unit(value) + sigma * float(rng.normal()))
        return self.contain(out)

    def describe(self) -> list[tuple[str, str, str]]:
        return [(p.name, p.describe(), p.help) for p in self.params]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "name": p.name,
                "kind": p.kind,
                "default": p.default,
                "low": p.low,
                "high": p.high,
                "log": p.log,
                "choices": list(p.choices),
                "help": p.help,
            }
            for p in self.params
        ]


def f(
    name: str, default: float, low: float, high: float, help: str = "", log: bool = False
) -> Param:
    """Shorthand for a float parameter."""
    return Param(name, "float", default, low, high, log=log, help=help)


def b(name: str, default: bool, help: str = "") -> Param:
    """Shorthand for a bool parameter."""
    return Param(name, "bool", default, help=help)


def i(name: str, default: int, low: int, high: int, help: str = "") -> Param:
    """Shorthand for an int parameter."""
    return Param(name, "int", default, low, high, help=help)
