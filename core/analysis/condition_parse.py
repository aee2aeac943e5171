"""Tokenizer and parser of Argo's success/failure conditions (a safe subset of expr-lang)."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from core.errors import ConfigError

MAX_LENGTH = 2000
MAX_NESTING = 64
MAX_DEPTH = 128
HINT = "use comparisons, &&, ||, !, len(), isNaN(), result[0], all()/any()"

# name -> (fewest, most) arguments; None: any number.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "len": (1, 1), "isNaN": (1, 1), "isInf": (1, 1), "isNil": (1, 1), "asInt": (1, 1),
    "asFloat": (1, 1), "default": (2, 2), "abs": (1, 1), "min": (1, None), "max": (1, None),
    "sum": (1, 1), "mean": (1, 1), "first": (1, 1), "last": (1, 1),
}  # fmt: skip
PREDICATES = frozenset({"all", "any", "none", "one", "filter", "map", "count"})
BINARY = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3, "in": 3,
          "not in": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5}  # fmt: skip
_WORDS = {"and": "&&", "or": "||", "not": "!"}
_UNSUPPORTED = {"??", "?.", "..", "**", "^", "|", "&", "=", ";", "matches", "contains",
                "startsWith", "endsWith", "let"}  # fmt: skip
PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
_ALMOST = re.compile(r"\{\{\s*args\.")
_TOKEN = re.compile(
    r"(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<op>\?\?|\?\.|\.\.|\*\*|\|\||&&|==|!=|<=|>=|[-+*/%<>!?:.,()\[\]{}#^|&=;])"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}


class SyntaxProblem(Exception):
    """Internal: what is wrong with the expression, and at which column (0-based offset)."""

    def __init__(self, problem: str, column: int, hint: str = "") -> None:
        super().__init__(problem)
        self.problem, self.column, self.hint = problem, column, hint


@dataclass(frozen=True)
class Node:
    """An AST node; `span` is its (start, end) offsets in the expression text."""

    span: tuple[int, int]


@dataclass(frozen=True)
class Lit(Node):
    """A literal: number, string, true, false or nil."""

    value: object


@dataclass(frozen=True)
class Arg(Node):
    """An {{args.name}} placeholder outside quotes: a number if its value is one."""

    name: str


@dataclass(frozen=True)
class Text(Node):
    """A string literal holding placeholders, substituted as text."""

    parts: tuple[str | Arg, ...]


@dataclass(frozen=True)
class Var(Node):
    """`result`, or `#` (the current element) inside a predicate."""

    name: str  # "result" or "#"


@dataclass(frozen=True)
class Unary(Node):
    """`!x`, `-x` or `+x`."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """`left op right` (`and`/`or` are stored as `&&`/`||`)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Ternary(Node):
    """`cond ? yes : no`."""

    cond: Node
    yes: Node
    no: Node


@dataclass(frozen=True)
class Get(Node):
    """`obj[key]` or `obj.key` (key is then a string Lit)."""

    obj: Node
    key: Node


@dataclass(frozen=True)
class Call(Node):
    """A builtin function call."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Closure(Node):
    """A predicate `{...}` (or a bare expression) over `#`."""

    body: Node


@dataclass(frozen=True)
class Array(Node):
    """An array literal `[a, b]`."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Tok:
    """A token: its kind, value and offsets."""

    kind: str  # num, str, arg, name, op, end
    value: object
    pos: int
    end: int


def tokenize(text: str) -> list[Tok]:
    """Split `text` into tokens; a placeholder is one token, a string literal one token."""
    toks, i = [], 0
    while i < len(text):
        if text[i] in " \t\r\n":
            i += 1
        elif text[i] in "\"'":
            literal, i = _string(text, i)
            toks.append(literal)
        elif text.startswith("{{", i):
            m = PLACEHOLDER.match(text, i)
            if not m:
                raise SyntaxProblem("malformed placeholder (want {{args.name}})", i)
            toks.append(Tok("arg", m.group(1), i, m.end()))
            i = m.end()
        elif text[i] == "#" and i + 1 < len(text) and text[i + 1].isalpha():
            raise SyntaxProblem("unsupported closure variable (only # is)", i)
        elif m := _TOKEN.match(text, i):
            kind = m.lastgroup or "op"
            word = m.group()
            if kind == "op" and word in _UNSUPPORTED:
                raise SyntaxProblem(f"unsupported operator {word!r}", i, HINT)
            toks.append(Tok(kind, word, i, m.end()))
            i = m.end()
        else:
            raise SyntaxProblem(f"unexpected character {text[i]!r}", i, HINT)
    toks.append(Tok("end", "", len(text), len(text)))
    return toks


def _string(text: str, start: int) -> tuple[Tok, int]:
    """Read the quoted literal at `start`: its parts (text and placeholders) and where it ends."""
    quote, parts, buf, i = text[start], [], [], start + 1
    while i < len(text) and text[i] != quote:
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                raise SyntaxProblem("unsupported escape in string", i)
            buf.append(_ESCAPES[text[i + 1]])
            i += 2
        elif (m := PLACEHOLDER.match(text, i)) is not None:
            parts.extend(["".join(buf), Arg((i, m.end()), m.group(1))])
            buf, i = [], m.end()
        elif _ALMOST.match(text, i):
            raise SyntaxProblem("malformed placeholder (want {{args.name}})", i)
        else:
            buf.append(text[i])
            i += 1
    if i >= len(text):
        raise SyntaxProblem("unterminated string", start)
    parts = [p for p in [*parts, "".join(buf)] if p != ""]
    return Tok("str", tuple(parts), start, i + 1), i + 1


class _Parser:
    """Precedence-climbing parser over the tokens of one expression."""

    def __init__(self, text: str) -> None:
        self.toks, self.i, self.nesting, self.closures = tokenize(text), 0, 0, 0

    def peek(self, offset: int = 0) -> Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, op: str) -> Tok:
        if self.peek().value != op or self.peek().kind not in ("op", "name"):
            self.fail(f", expected {op!r}")
        return self.take()

    def fail(self, more: str = "") -> None:
        tok = self.peek()
        shown = {"end": "end", "str": "string"}.get(tok.kind) or repr(tok.value)
        raise SyntaxProblem(f"unexpected {shown}{more}", tok.pos, HINT)

    def parse(self) -> Node:
        node = self.ternary()
        if self.peek().kind != "end":
            self.fail(" after the end of the expression")
        return node

    def nest(self, at: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise SyntaxProblem(f"nested more than {MAX_NESTING} levels deep", at)

    def ternary(self) -> Node:
        cond = self.binary(1)
        if self.peek().value == "?" and self.peek().kind == "op":
            self.nest(self.take().pos)
            yes = self.ternary()
            self.expect(":")
            no = self.ternary()
            cond = Ternary((cond.span[0], no.span[1]), cond, yes, no)
            self.nesting -= 1
        return cond

    def binary_op(self) -> str | None:
        tok = self.peek()
        if tok.kind == "name" and tok.value in _UNSUPPORTED:
            raise SyntaxProblem(f"unsupported operator {tok.value!r}", tok.pos, HINT)
        if tok.kind == "name" and tok.value == "not" and self.peek(1).value == "in":
            return "not in"
        if tok.kind in ("op", "name"):
            op = _WORDS.get(str(tok.value), str(tok.value))
            return op if op in BINARY else None
        return None

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while (op := self.binary_op()) is not None and BINARY[op] >= min_prec:
            self.i += 2 if op == "not in" else 1
            right = self.binary(BINARY[op] + 1)
            left = Binary((left.span[0], right.span[1]), op, left, right)
        return left

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind in ("op", "name") and tok.value in ("!", "not", "-", "+"):
            self.take()
            self.nest(tok.pos)
            operand = self.unary()
            self.nesting -= 1
            op = _WORDS.get(str(tok.value), str(tok.value))
            return Unary((tok.pos, operand.span[1]), op, operand)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.peek().kind == "op" and self.peek().value in (".", "[", "("):
            tok = self.take()
            if tok.value == ".":
                name = self.member_name()
                node = Get((node.span[0], name.span[1]), node, name)
            elif tok.value == "[":
                self.nest(tok.pos)
                key = self.ternary()
                _refuse_dunder(key)
                node = Get((node.span[0], self.expect("]").end), node, key)
                self.nesting -= 1
            else:
                raise SyntaxProblem("unsupported method call", tok.pos, HINT)
        return node

    def member_name(self) -> Lit:
        tok = self.peek()
        if tok.kind != "name":
            self.fail(", expected a field name")
        node = Lit((tok.pos, tok.end), self.take().value)
        _refuse_dunder(node)
        return node

    def primary(self) -> Node:
        tok = self.take()
        span = (tok.pos, tok.end)
        if tok.kind == "num":
            text = str(tok.value)
            if any(c in text for c in ".eE"):
                return Lit(span, float(text))
            if int(text) >= 2**63:
                raise SyntaxProblem("integer literal out of range", tok.pos)
            return Lit(span, int(text))
        if tok.kind == "str":
            parts = tok.value
            assert isinstance(parts, tuple)
            if all(isinstance(p, str) for p in parts):
                return Lit(span, "".join(parts))
            return Text(span, parts)
        if tok.kind == "arg":
            return Arg(span, str(tok.value))
        if tok.kind == "name":
            return self.name(tok)
        if tok.value == "(":
            self.nest(tok.pos)
            node = self.ternary()
            self.expect(")")
            self.nesting -= 1
            return node
        if tok.value == "[":
            items = self.arguments("]", tok.pos)
            return Array((tok.pos, self.toks[self.i - 1].end), tuple(items))
        if tok.value == "#":
            if not self.closures:
                raise SyntaxProblem("'#' outside a {...} predicate", tok.pos, HINT)
            return Var(span, "#")
        if tok.value == "." and self.closures and self.peek().kind == "name":
            name = self.member_name()
            return Get((tok.pos, name.span[1]), Var(span, "#"), name)
        if tok.value == "{":
            raise SyntaxProblem("a {...} predicate belongs in all(), any(), ... only", tok.pos)
        self.i -= 1
        self.fail()
        raise AssertionError  # unreachable: fail() raises

    def name(self, tok: Tok) -> Node:
        name, span = str(tok.value), (tok.pos, tok.end)
        called = self.peek().value == "(" and self.peek().kind == "op"
        if name in ("true", "false", "nil") and not called:
            return Lit(span, {"true": True, "false": False, "nil": None}[name])
        if name == "result" and not called:
            return Var(span, "result")
        if not called:
            if name in FUNCTIONS or name in PREDICATES:
                raise SyntaxProblem(f"function {name!r} must be called", tok.pos)
            raise SyntaxProblem(
                f"unknown name {name!r}", tok.pos, "the only variable is result (# in predicates)"
            )
        if name not in FUNCTIONS and name not in PREDICATES:
            known = ", ".join([*FUNCTIONS, *sorted(PREDICATES)])
            raise SyntaxProblem(f"unknown function {name!r}", tok.pos, f"supported: {known}")
        open_at = self.take().pos
        if name in PREDICATES:
            items = [self.ternary()]
            if self.peek().value != ",":
                raise SyntaxProblem(f"{name}() takes a list and a {{...}} predicate", tok.pos)
            self.take()
            items.append(self.closure())
            self.expect(")")
        else:
            items = self.arguments(")", open_at)
            least, most = FUNCTIONS[name]
            if len(items) < least or (most is not None and len(items) > most):
                want = f"{least}" if least == most else f"at least {least}"
                raise SyntaxProblem(f"{name}() takes {want} argument(s), not {len(items)}", tok.pos)
        return Call((tok.pos, self.toks[self.i - 1].end), name, tuple(items))

    def closure(self) -> Closure:
        start, braced = self.peek().pos, self.peek().value == "{" and self.peek().kind == "op"
        self.closures += 1
        self.nest(start)
        if braced:
            self.take()
        body = self.ternary()
        end = self.expect("}").end if braced else body.span[1]
        self.closures -= 1
        self.nesting -= 1
        return Closure((start, end), body)

    def arguments(self, close: str, at: int) -> list[Node]:
        self.nest(at)
        items: list[Node] = []
        while not (self.peek().value == close and self.peek().kind == "op"):
            items.append(self.ternary())
            if self.peek().value != close:
                self.expect(",")
        self.take()
        self.nesting -= 1
        return items


def _refuse_dunder(key: Node) -> None:
    if isinstance(key, Lit) and isinstance(key.value, str) and key.value.startswith("__"):
        raise SyntaxProblem(f"unsupported member name {key.value!r}", key.span[0], HINT)


def children(node: Node) -> list[Node]:
    """The direct sub-nodes of `node` (placeholders inside strings included)."""
    found: list[Node] = []
    for f in fields(node):
        value = getattr(node, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, Node):
                found.append(item)
    return found


def parse_expression(text: str, what: str) -> Node:
    """Parse `text` to an AST, or raise ConfigError naming `what`, the problem and its column."""
    shown = text if len(text) <= 200 else text[:200] + "..."
    if not text.strip():
        raise ConfigError(f"{what} {shown!r} is empty: {HINT}")
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"{what} {shown!r} is longer than {MAX_LENGTH} characters")
    try:
        tree = _Parser(text).parse()
    except SyntaxProblem as e:
        hint = f": {e.hint}" if e.hint else ""
        raise ConfigError(f"{what} {shown!r}: {e.problem} at column {e.column}{hint}") from None
    except RecursionError:  # only with a nearly exhausted stack: the nesting limit comes first
        raise ConfigError(f"{what} {shown!r} is nested too deeply") from None
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(node))
    if deepest > MAX_DEPTH:
        raise ConfigError(f"{what} {shown!r} is nested more than {MAX_DEPTH} levels deep")
    return tree
