"""Argo Rollouts' successCondition/failureCondition: parsed once, evaluated safely, no eval()."""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from core.analysis.condition_parse import (
    Arg,
    Array,
    Binary,
    Call,
    Closure,
    Get,
    Lit,
    Node,
    Ternary,
    Text,
    Unary,
    Var,
    children,
    parse_expression,
)
from core.errors import ConfigError

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_GO_FLOAT = re.compile(rf"{_DECIMAL.pattern}|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_FLIP = {"up": "down", "down": "up"}
_KINDS = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"), (list | tuple, "array"))
_KINDS += ((Mapping, "map"),)
_MONOTONE = {"default", "asInt", "asFloat", "abs", "min", "max", "sum", "mean", "first", "last"}


class ConditionError(ValueError):
    """A condition could not be evaluated on this result.

    For example an index out of range, a wrong type, or a value that is not a bool.
    """


class _Problem(Exception):
    """Internal: evaluating `node` failed; `problem` never holds an argument's value."""

    def __init__(self, node: Node, problem: str) -> None:
        super().__init__(problem)
        self.node, self.problem = node, problem


class _Missing(_Problem):
    """An index out of range or a read from nil: what default() stands in for."""


@dataclass(frozen=True)
class _Env:
    result: Any
    args: Mapping[str, str]
    item: Any = None  # the `#` of the innermost predicate


@dataclass(frozen=True)
class Condition:
    """One successCondition or failureCondition of an analysis metric, parsed once."""

    text: str
    _tree: Node | None = field(default=None, compare=False, repr=False)
    _what: str = field(default="condition", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self._tree is None:
            object.__setattr__(self, "_tree", parse_expression(self.text, self._what))

    @classmethod
    def parse(
        cls, text: str, args: Collection[str] | None = None, what: str = "condition"
    ) -> Condition:
        """Parse `text`; ConfigError naming `what` if it is unsupported or uses undeclared args."""
        condition = cls(text, parse_expression(text, what), what)
        for name in sorted(condition.placeholders()):
            if args is not None and name not in args:
                raise ConfigError(
                    f"{what} {text!r} uses {{{{args.{name}}}}}, which the template does not declare"
                )
        return condition

    def placeholders(self) -> frozenset[str]:
        """Names of the {{args.x}} placeholders the expression uses."""
        return frozenset(n.name for n in _walk(self._tree) if isinstance(n, Arg))

    def evaluate(self, result: Any, args: Mapping[str, str] | None = None) -> bool:
        """True or False on `result`; ConditionError (never showing an argument's value) if not."""
        env = _Env(result, args or {})
        try:
            value = _eval(self._tree, env)
        except _Problem as e:
            where = self.text[e.node.span[0] : e.node.span[1]]
            problem = f"{where}: {e.problem}"
            missing = isinstance(e, _Missing) or "nil" in e.problem
        except RecursionError:
            problem, missing = "the result is nested too deeply", False
        except (ArithmeticError, TypeError, ValueError):
            problem, missing = "a value of an unsupported type or size", False
        else:
            if isinstance(value, bool):
                return value
            problem, missing = f"expected bool, but got {_kind(value)}", False
        empty = missing and (result is None or (isinstance(result, list | tuple) and not result))
        note = " (the result is nil or empty: no data returned by the provider)" if empty else ""
        raise ConditionError(f"could not evaluate {self._what} {self.text!r}: {problem}{note}")

    def direction(self) -> str | None:
        """Which way of result makes this true: "up" (larger), "down" (smaller), None: unclear."""
        found = _dirs(self._tree, 0)
        return next(iter(found)) if found is not None and len(found) == 1 else None


def _walk(node: Node | None) -> Iterator[Node]:
    stack = [node] if node is not None else []
    while stack:
        node = stack.pop()
        yield node
        stack.extend(children(node))


def _kind(value: Any) -> str:
    """The expr-style name of a value's type, for messages."""
    if value is None:
        return "nil"
    return next((name for t, name in _KINDS if isinstance(value, t)), type(value).__name__)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any, env: _Env) -> str:
    """The kind and a short repr of `value`; the kind alone if the repr may hold an argument."""
    text = _REPR.repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    secrets = {v.strip() for v in env.args.values() if v.strip()}
    secrets |= {repr(n) for v in secrets if isinstance(n := _arg_value(v), float)}
    return _kind(value) if any(s in text for s in secrets) else f"{_kind(value)} {text}"


def _arg_value(raw: str) -> Any:
    """A placeholder's value: a float if `raw` is a finite number, else `raw` itself."""
    if _DECIMAL.fullmatch(raw.strip()) and math.isfinite(number := float(raw)):
        return number
    return raw


def _arg(node: Arg, env: _Env) -> str:
    if node.name not in env.args:
        raise _Problem(node, f"no value was given for {{{{args.{node.name}}}}}")
    return env.args[node.name]


def _eval(node: Node | None, env: _Env) -> Any:
    match node:
        case Lit(value=value):
            return value
        case Arg():
            return _arg_value(_arg(node, env))
        case Text(parts=parts):
            return "".join(p if isinstance(p, str) else _arg(p, env) for p in parts)
        case Var(name=name):
            return env.result if name == "result" else env.item
        case Unary(op="!", operand=x):
            return not _bool(node, _eval(x, env))
        case Unary(op=op, operand=x):
            number = _num(node, _eval(x, env))
            return -number if op == "-" else number
        case Binary(op="&&" | "||" as op, left=left, right=right):
            first = _bool(left, _eval(left, env))
            if first == (op == "||"):
                return first
            return _bool(right, _eval(right, env))
        case Binary(op=op, left=left, right=right):
            return _binary(node, op, _eval(left, env), _eval(right, env))
        case Get(obj=obj, key=key):
            return _get(node, _eval(obj, env), _eval(key, env))
        case Array(items=items):
            return [_eval(item, env) for item in items]
        case Call(name="default", args=(x, fallback)):
            try:
                value = _eval(x, env)
            except _Missing:
                value = None
            return _eval(fallback, env) if value is None else value
        case Call(name=name, args=(items, Closure(body=body))):
            return _predicate(node, name, _array(items, _eval(items, env)), body, env)
        case Call(name=name, args=args):
            return _FUNCTIONS[name](node, [_eval(a, env) for a in args], env)
        case Ternary(cond=cond, yes=yes, no=no):
            return _eval(yes if _bool(cond, _eval(cond, env)) else no, env)
    raise AssertionError(f"unknown node {node!r}")


def _bool(node: Node, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Problem(node, f"expected bool, but got {_kind(value)}")
    return value


def _num(node: Node, value: Any) -> int | float:
    if not _is_num(value):
        raise _Problem(node, f"expected a number, but got {_kind(value)}")
    return value


def _array(node: Node, value: Any) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _Problem(node, f"expected an array, but got {_kind(value)}")
    return value


def _binary(node: Node, op: str, a: Any, b: Any) -> Any:
    if op in ("==", "!="):
        return _equal(node, a, b, strict=True) == (op == "==")
    if op in ("in", "not in"):
        if isinstance(b, list | tuple):
            found = any(_equal(node, a, item, strict=False) for item in b)
        elif isinstance(b, Mapping) and isinstance(a, str):
            found = a in b
        else:
            raise _Problem(node, f"cannot look for {_kind(a)} in {_kind(b)}")
        return found == (op == "in")
    if op in ("<", "<=", ">", ">="):
        if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
            raise _Problem(node, f"cannot compare {_kind(a)} and {_kind(b)}")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if not (_is_num(a) and _is_num(b)):
        raise _Problem(node, f"cannot apply {op} to {_kind(a)} and {_kind(b)}")
    if op == "/":
        if b == 0:  # Go floats: x/0 is +-Inf, 0/0 is NaN
            if a == 0 or math.isnan(a):
                return math.nan
            return math.copysign(1.0, a) * math.copysign(1.0, b) * math.inf
        return a / b
    if op == "%":
        if not all(float(x).is_integer() for x in (a, b)):
            raise _Problem(node, "% needs integers")
        if b == 0:
            raise _Problem(node, "integer divide by zero")
        rest = abs(int(a)) % abs(int(b))  # Go: the remainder takes the dividend's sign
        return rest if a >= 0 else -rest
    value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[op]()
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise _Problem(node, "integer overflow")
    return value


def _equal(node: Node, a: Any, b: Any, strict: bool) -> bool:
    """Go/expr equality: numbers numerically (NaN never), deep for arrays and maps."""
    if a is None or b is None:
        return a is None and b is None
    if _is_num(a) and _is_num(b):
        return a == b
    if _kind(a) != _kind(b):
        if strict:
            raise _Problem(node, f"mismatched types {_kind(a)} and {_kind(b)}")
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(
            _equal(node, x, y, False) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_equal(node, a[k], b[k], False) for k in a)
    return bool(a == b)


def _get(node: Node, obj: Any, key: Any) -> Any:
    if obj is None:
        raise _Missing(node, "cannot read a field or an index of nil")
    if isinstance(obj, Mapping):
        if not isinstance(key, str):
            raise _Problem(node, f"a map's key must be a string, not {_kind(key)}")
        return obj.get(key)
    if not isinstance(obj, list | tuple):
        raise _Problem(node, f"cannot read a field or an index of {_kind(obj)}")
    if isinstance(key, str):
        raise _Problem(node, "an array has no fields or keys: it needs an integer index")
    if not _is_num(key) or not float(key).is_integer():
        raise _Problem(node, f"an array index must be an integer, not {_kind(key)}")
    index = int(key) + (len(obj) if key < 0 else 0)
    if not 0 <= index < len(obj):
        raise _Missing(node, f"index out of range (array of length {len(obj)})")
    return obj[index]


def _predicate(node: Node, name: str, items: Collection[Any], body: Node, env: _Env) -> Any:
    def each(item: Any) -> Any:
        return _eval(body, _Env(env.result, env.args, item))

    if name == "map":
        return [each(item) for item in items]
    if name == "filter":
        return [item for item in items if _bool(body, each(item))]
    tests = (_bool(body, each(item)) for item in items)
    if name == "count":
        return sum(tests)
    if name == "one":
        return sum(tests) == 1
    return {"all": all, "any": any, "none": lambda t: not any(t)}[name](tests)


def _as_int(node: Node, value: Any, env: _Env) -> int:
    if _is_num(value) and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    raise _Problem(node, f"cannot convert {_show(value, env)} to int")


def _as_float(node: Node, value: Any, env: _Env) -> float:
    if _is_num(value):
        return float(value)
    if isinstance(value, str) and _GO_FLOAT.fullmatch(value):
        return float(value)
    raise _Problem(node, f"cannot convert {_show(value, env)} to float")


def _extreme(pick: Callable[..., Any]) -> Callable[[Node, list[Any], _Env], Any]:
    def extreme(node: Node, values: list[Any], env: _Env) -> Any:
        many = values[0] if len(values) == 1 and isinstance(values[0], list | tuple) else values
        numbers = [_num(node, v) for v in many]
        if not numbers:
            raise _Problem(node, "no values")
        return math.nan if any(math.isnan(n) for n in numbers) else pick(numbers)

    return extreme


def _len(node: Node, value: Any) -> int:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise _Problem(node, f"len() needs an array, a map or a string, not {_kind(value)}")


def _mean(node: Node, value: Any) -> float:
    numbers = [_num(node, v) for v in _array(node, value)]
    if not numbers:
        raise _Problem(node, "mean() of an empty array")
    return sum(numbers) / len(numbers)


_FUNCTIONS: dict[str, Callable[[Node, list[Any], _Env], Any]] = {
    "len": lambda n, v, e: _len(n, v[0]),
    "isNaN": lambda n, v, e: math.isnan(_num(n, v[0])),
    "isInf": lambda n, v, e: math.isinf(_num(n, v[0])),
    "isNil": lambda n, v, e: v[0] is None,
    "asInt": lambda n, v, e: _as_int(n, v[0], e),
    "asFloat": lambda n, v, e: _as_float(n, v[0], e),
    "abs": lambda n, v, e: abs(_num(n, v[0])),
    "min": _extreme(min),
    "max": _extreme(max),
    "sum": lambda n, v, e: sum(_num(n, x) for x in _array(n, v[0])),
    "mean": lambda n, v, e: _mean(n, v[0]),
    "first": lambda n, v, e: next(iter(_array(n, v[0])), None),
    "last": lambda n, v, e: next(reversed(_array(n, v[0])), None),
}


def _merge(a: int | None, b: int | None) -> int | None:
    """Combine two monotonicity signs (+1, -1, 0 independent, None unclear)."""
    if a is None or b is None:
        return None
    return a or b if a == b or not a or not b else None


def _sign(node: Node, item: int | None) -> int | None:
    """+1 if `node` grows with result, -1 if it shrinks, 0 if independent, None if unclear."""
    match node:
        case Var(name="result"):
            return 1
        case Var():
            return item
        case Lit() | Arg() | Text():
            return 0
        case Get(obj=obj, key=key):
            return _sign(obj, item) if _sign(key, item) == 0 else None
        case Unary(op="-" | "+" as op, operand=x):
            s = _sign(x, item)
            return -s if s is not None and op == "-" else s
        case Binary(op="+" | "-" | "*" | "/" as op, left=left, right=right):
            a, b = _sign(left, item), _sign(right, item)
            if op in "*/" and a and b:
                return None
            return _merge(a, -b if b is not None and op in "-/" else b)
        case Call(name=name, args=args) if name in _MONOTONE:
            return reduce(_merge, (_sign(a, item) for a in args), 0)
        case Call(name="map" | "filter" as name, args=(items, Closure(body=body))):
            over = _sign(items, item)
            return _sign(body, over) if name == "map" else over
        case Call(name="count", args=(items, Closure(body=body))):
            found = _dirs(body, _sign(items, item))
            if found is None or len(found) > 1:
                return None
            return {"up": 1, "down": -1}[found.pop()] if found else 0
        case Call():
            return 0  # len(), isNaN(), all(), ...: not a magnitude of the result
    return None if any(isinstance(n, Var) for n in _walk(node)) else 0


def _dirs(node: Node | None, item: int | None) -> set[str] | None:
    """Which ways of result make the boolean `node` true; None if unclear or mixed."""
    match node:
        case Binary(op="&&" | "||", left=left, right=right):
            a, b = _dirs(left, item), _dirs(right, item)
            return None if a is None or b is None else a | b
        case Unary(op="!", operand=x):
            found = _dirs(x, item)
            return None if found is None else {_FLIP[d] for d in found}
        case Binary(op="<" | "<=" | ">" | ">=" as op, left=left, right=right):
            b = _sign(right, item)
            s = _merge(_sign(left, item), None if b is None else -b)
            if not s:
                return None if s is None else set()
            return {"up" if (s > 0) == (op in (">", ">=")) else "down"}
        case Call(name="all" | "any" | "none" | "one" as name, args=(items, Closure(body=body))):
            found = _dirs(body, _sign(items, item))
            if name == "one" and found:
                return None
            return {_FLIP[d] for d in found} if found and name == "none" else found
        case Ternary():
            return None if any(isinstance(n, Var) for n in _walk(node)) else set()
    return set()  # ==, !=, in, isNaN(), result.ok, true: say nothing about a direction
