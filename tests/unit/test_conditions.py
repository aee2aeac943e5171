"""Argo-style analysis conditions: parsing, evaluation (expr-lang semantics), direction."""

import math

import pytest

from core.analysis.conditions import Condition, ConditionError
from core.errors import ConfigError

NAN, INF = math.nan, math.inf


def check(text: str, result: object = None, args: dict[str, str] | None = None) -> bool:
    return Condition.parse(text).evaluate(result, args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals
        ("true", True),
        ("false", False),
        ("nil == nil", True),
        ("1 == 1.0", True),
        ("0.95 == .95", True),
        ("1e-3 == 0.001", True),
        ("1E3 == 1000", True),
        ("\"a\" == 'a'", True),
        ('"say \\"hi\\"" == \'say "hi"\'', True),
        ('"back\\\\slash" != "backslash"', True),
        ('len("a\\nb") == 3', True),
        # arithmetic and its precedence
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3 == 9", True),
        ("10 - 4 - 3 == 3", True),
        ("8 / 2 / 2 == 2", True),
        ("7 / 2 == 3.5", True),
        ("7 % 3 == 1", True),
        ("-7 % 3 == -1", True),
        ("-2 * 3 == -6", True),
        ("+2 == 2", True),
        ("- -2 == 2", True),
        ("1 + 2 < 4", True),
        # comparisons
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("1 != 2", True),
        ('"abc" < "abd"', True),
        # logic and its precedence
        ("true || false && false", True),
        ("(true || false) && false", False),
        ("false && true || true", True),
        ("true or false and false", True),
        ("not false", True),
        ("!true == false", True),
        ("!(1 == 1)", False),
        ("!!true", True),
        ("not (1 > 2) and 2 > 1", True),
        ("-1 + 2 == 1", True),  # unary minus binds tighter than +
        ("1 + 1 in [2]", True),  # arithmetic binds tighter than in
        ("1 < 2 == true", True),  # comparisons are left-associative
        # ternary (lowest precedence, right associative)
        ("(1 > 2 ? 1 : 2) == 2", True),
        ("false ? false : true ? true : false", True),
        # in, not in, array literals
        ("2 in [1, 2, 3]", True),
        ("4 not in [1, 2, 3]", True),
        ('"a" in ["a", "b"]', True),
        ('"x" in ["a", 1]', False),
        ("[1, 2] == [1, 2.0]", True),
        ("[] == []", True),
        # Go float division
        ("1 / 0 == 1 / 0", True),
        ("1 / 0 > 1e308", True),
        ("-1 / 0 < -1e308", True),
        ("isNaN(0 / 0)", True),
        ("isInf(1.0 / 0)", True),
        ("isNaN(0 / 0) && !(0 / 0 == 0 / 0) && 0 / 0 != 0 / 0", True),
        # functions on constants
        ("abs(-2.5) == 2.5", True),
        ("min(3, 1, 2) == 1", True),
        ("max(3, 1, 2) == 3", True),
        ("min([4, 5]) == 4", True),
        ("isNaN(max(1, 0 / 0))", True),
        ("sum([1, 2, 3]) == 6", True),
        ("sum([]) == 0", True),
        ("mean([1, 2, 3]) == 2", True),
        ("first([7, 8]) == 7", True),
        ("last([7, 8]) == 8", True),
        ("first([]) == nil", True),
        ("isNil(nil)", True),
        ("isNil(0)", False),
        ("default(nil, 3) == 3", True),
        ("default(2, 3) == 2", True),
        ('asInt("42") == 42', True),
        ("asInt(1.9) == 1", True),
        ('asFloat("1.5") == 1.5', True),
        ('isNaN(asFloat("NaN"))', True),
        ("asFloat(2) == 2.0", True),
        ('len("abc") == 3', True),
        ("isInf(1)", False),
    ],
)
def test_operators_literals_and_functions(text: str, expected: bool) -> None:
    assert check(text) is expected


@pytest.mark.parametrize(
    ("text", "result", "expected"),
    [
        # Prometheus scalar and vector results
        ("result >= 0.95", 0.97, True),
        ("result >= 0.95", NAN, False),
        ("result < 0.95", NAN, False),
        ("result == result", NAN, False),
        ("result != result", NAN, True),
        ("isNaN(result)", NAN, True),
        ("isNaN(result) || result >= 0.95", NAN, True),
        ("isInf(result)", INF, True),
        ("result[0] >= 0.95", [0.97], True),
        ("result[0] >= 0.95", [0.9], False),
        ("result[0] >= 0.95", [NAN], False),
        ("isNaN(result[0])", [NAN], True),
        ("isNaN(result[0]) || result[0] >= 0.9", [NAN], True),
        ("isNaN(result[0]) || result[0] >= 0.9", [0.8], False),
        ("result[-1] == 3", [1, 2, 3], True),
        ("result[-3] == 1", [1, 2, 3], True),
        ("-result[0] == -1", [1], True),
        ("len(result) == 0 || result[0] < 0.01", [], True),
        ("len(result) == 0 || result[0] < 0.01", [0.5], False),
        ("len(result) > 0 && result[0] >= 0.95", [], False),
        ("2 in result", [2.0, 2.0], True),
        ("result[0] + result[1] == 3", [1, 2], True),
        ("result[1.0] == 2", [1, 2], True),
        # Argo's documented conditions
        ("result[0] <= 0.95", [0.5], True),
        ("result[0] >= 10", [12], True),
        ("result < 0.95", 0.5, True),
        ("result <= 0.01", 0.001, True),
        ("default(result, 0) < 10", None, True),
        ("default(result, 0) < 10", 12.0, False),
        ("default(result[0], 0) >= 0.95", [0.99], True),
        ("default(result[0], 0) >= 0.95", [], False),
        ("default(result[0], 0) < 5", None, True),
        ("default(result.a.b, 1) == 1", {"a": None}, True),
        ("asInt(result) > 100", "101", True),
        ("asInt(result) > 100", 100.9, False),
        ("asInt(result) == 1", 1.123, True),
        ("asFloat(result) == 1.1", "1.1", True),
        ("asFloat(result) >= 1", 1, True),
        ("max(result) < 0.05", [0.01, 0.04], True),
        ("max(result) < 0.05", [0.01, 0.06], False),
        ("isNil(result)", None, True),
        ("isNil(result)", [], False),
        # closures
        ("all(result, {# >= 0.9})", [0.95, 0.99], True),
        ("all(result, {# >= 0.9})", [0.95, 0.5], False),
        ("all(result, {# >= 0.9})", [], True),
        ("all(result, # < 1000)", [1, 2], True),
        ("any(result, {isNaN(#)})", [1.0, NAN], True),
        ("any(result, {isNaN(#)})", [], False),
        ("none(result, {# > 0.5})", [0.1, 0.2], True),
        ("one(result, {# > 2})", [1, 2, 3], True),
        ("one(result, {# > 1})", [1, 2, 3], False),
        ("count(result, {# > 1}) == 2", [1, 2, 3], True),
        ("len(filter(result, {# > 1})) == 2", [1, 2, 3], True),
        ("sum(map(result, {# * 2})) == 12", [1, 2, 3], True),
        ("all(result, {all(#, {# > 0})})", [[1, 2], [3]], True),
        ("all(result, {len(#) == 0 || any(#, {# == 0})})", [[], [0, 1]], True),
        ("all(result, {# < 0.01})", [0.001, NAN], False),
        # web provider: JSON results
        ("result == true", True, True),
        ("result == false", True, False),
        ('result == "I am OK"', "I am OK", True),
        ("result == 'true'", "true", True),
        ("result.ok == true", {"ok": True}, True),
        ("result.ok && result.successPercent >= 0.90", {"ok": True, "successPercent": 0.95}, True),
        ("result.ok && result.successPercent >= 0.90", {"ok": False}, False),
        ('result["status"] == "up"', {"status": "up"}, True),
        ('result["status"] == "up"', {"status": "down"}, False),
        ("result.missing == nil", {"ok": True}, True),
        ("result.successRate >= 0.95", {"successRate": 0.96}, True),
        ('"ok" in result', {"ok": 1}, True),
        ('"ok" in result', {}, False),
        (
            "all(result.service_apdex.values.values, {# > 1})",
            {"service_apdex": {"values": {"values": [2, 2]}}},
            True,
        ),
        ("all(result.values, {asFloat(.value) >= 9900})", {"values": [{"value": "9901"}]}, True),
        (
            "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
            [{"Values": [0.0] * 5}],
            True,
        ),
        ("result.items[1].n == 2", {"items": [{"n": 1}, {"n": 2}]}, True),
        ("len(result) == 2", {"a": 1, "b": 2}, True),
    ],
)
def test_results(text: str, result: object, expected: bool) -> None:
    assert check(text, result) is expected


@pytest.mark.parametrize(
    ("text", "args", "result", "expected"),
    [
        ("result[0] < {{args.error-threshold}}", {"error-threshold": "0.05"}, [0.01], True),
        ("result[0] < {{args.error-threshold}}", {"error-threshold": "0.05"}, [0.06], False),
        ("result[0] < {{ args.error-threshold }}", {"error-threshold": "5"}, [4], True),
        (
            "default(result, 0) > {{ args.restarts.max-restarts }}",
            {"restarts.max-restarts": "4"},
            5.0,
            True,
        ),
        ("result == {{args.want}}", {"want": "up"}, "up", True),
        ('result.status == "{{args.want}}"', {"want": "up"}, {"status": "up"}, True),
        ('result == "{{args.n}}"', {"n": "1.50"}, "1.50", True),
        ('result == "v{{args.n}}-{{args.m}}"', {"n": "1", "m": "x"}, "v1-x", True),
        ('result == "{{args.q}}"', {"q": 'a"b\\c'}, 'a"b\\c', True),
        ("{{args.n}} == 1.5", {"n": " 1.5 "}, None, True),
        ("{{args.n}} == 'inf'", {"n": "inf"}, None, True),
        ("{{args.n}} == '1e999'", {"n": "1e999"}, None, True),
        ("result[{{args.i}}] == 2", {"i": "-1"}, [1, 2], True),
        ("all(result, {# < {{args.max}}})", {"max": "3"}, [1, 2], True),
        ('result["{{args.k}}"] == 1', {"k": "a"}, {"a": 1}, True),
    ],
)
def test_placeholders(text: str, args: dict[str, str], result: object, expected: bool) -> None:
    condition = Condition.parse(text, args=args.keys())
    assert condition.evaluate(result, args) is expected


def test_placeholders_listed() -> None:
    condition = Condition.parse('result[0] < {{args.a}} || result.x == "{{ args.b-c }}"')
    assert condition.placeholders() == frozenset({"a", "b-c"})
    assert Condition.parse("result > 1").placeholders() == frozenset()


@pytest.mark.parametrize(
    ("text", "result", "fragment"),
    [
        ("result[5] > 1", [1], "index out of range (array of length 1)"),
        ("result[-2] > 1", [1], "index out of range"),
        ("result[0] >= 0.95", [], "no data"),
        ("result[0] >= 0.95", None, "nil"),
        ("result.ok", [1], "an array has no fields or keys"),
        ("result.ok", 1.5, "cannot read a field or an index of float"),
        ("result.a.b == 1", {}, "nil"),
        ("result[0.5] == 1", [1], "must be an integer"),
        ("result[0] > 'a'", [1.0], "cannot compare float and string"),
        ("result == 'up'", 1.0, "mismatched types float and string"),
        ("result == 1", True, "mismatched types bool and int"),
        ("result + 1 > 2", "a", "cannot apply + to string and int"),
        ("true + 1 == 2", None, "cannot apply + to bool and int"),
        ("'a' + 'b' == 'ab'", None, "cannot apply +"),
        ("result", 1.5, "expected bool, but got float"),
        ("1", None, "expected bool, but got int"),
        ("result", {"a": 1}, "expected bool, but got map"),
        ("!result", 1, "expected bool, but got int"),
        ("!1 == 1", None, "!1: expected bool"),  # (!1) == 1, as expr parses it
        ("not 1 in [1]", None, "expected bool, but got int"),
        ("result && true", 1, "expected bool"),
        ("false || result", "x", "expected bool, but got string"),
        ("-result == 1", "x", "expected a number"),
        ("1 % 0 == 0", None, "integer divide by zero"),
        ("1.5 % 1 == 0", None, "% needs integers"),
        ("len(result) == 1", 1.0, "len() needs an array"),
        ("isNaN(result)", "x", "expected a number, but got string"),
        ("isNaN(result[0])", [None], "expected a number, but got nil"),
        ("asInt(result) == 1", "1.1", "cannot convert string '1.1' to int"),
        ("asFloat(result) == 1", "NotANum", "cannot convert string 'NotANum' to float"),
        ("asFloat(result) == '1.1'", "1.1", "mismatched types float and string"),
        ("all(result, {# > 1})", 1.0, "expected an array, but got float"),
        ("all(result, {#})", [1], "expected bool, but got int"),
        ("max(result) < 1", [], "no values"),
        ("mean(result) < 1", [], "mean() of an empty array"),
        ("1 in result", 1.0, "cannot look for int in float"),
        ("1 in result", {"a": 1}, "cannot look for int in map"),
        ("result[0] > 1", "abc", "cannot read a field or an index of string"),
        ("(result ? 1 : 2) == 1", 1, "expected bool, but got int"),
        ("9223372036854775807 + 1 > 0", None, "integer overflow"),
    ],
)
def test_evaluation_errors(text: str, result: object, fragment: str) -> None:
    with pytest.raises(ConditionError, match="could not evaluate") as caught:
        check(text, result)
    assert fragment in str(caught.value)


def test_evaluation_error_names_the_metric_and_expression() -> None:
    condition = Condition.parse("result[0] >= 0.95", what="successCondition")
    with pytest.raises(ConditionError) as caught:
        condition.evaluate([])
    message = str(caught.value)
    assert "successCondition 'result[0] >= 0.95'" in message
    assert "result[0]: index out of range" in message


def test_condition_error_is_a_value_error() -> None:
    assert issubclass(ConditionError, ValueError)


SECRET = object()  # stands for the secret argument's value in a result


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("result[0] < {{args.token}}", [None]),
        ("result == {{args.token}}", True),
        ("result[{{args.token}}] > 1", [1]),
        ('asFloat("{{args.token}}x") > 1', None),
        ('asInt("x{{args.token}}") > 1', None),
        ("result.a[{{args.token}}] == 1", {"a": [0]}),
        ("{{args.token}} + true > 0", None),
        ("{{args.token}}", None),
        ("!{{args.token}}", None),
        ("{{args.token}} in result", 5),
        ("result[0] == 'tok-{{args.token}}'", [1]),
        ('asInt(default(result, "{{args.token}}")) > 0', None),
        ("asInt(result) > 0", SECRET),
        ("asFloat(result[0]) > 0", [SECRET]),
    ],
)
@pytest.mark.parametrize("secret", ["hunter2-s3cret", "12345.678"])
def test_errors_never_show_argument_values(text: str, result: object, secret: str) -> None:
    result = secret + "!" if result is SECRET else result
    result = [secret + "!"] if result == [SECRET] else result
    with pytest.raises(ConditionError) as caught:
        Condition.parse(text).evaluate(result, {"token": secret})
    assert secret not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_errors_shorten_a_huge_result() -> None:
    huge = "x" * 10_000
    with pytest.raises(ConditionError) as caught:
        check("asInt(result) > 1", huge)
    assert len(str(caught.value)) < 200
    with pytest.raises(ConditionError) as caught:
        check("result", list(range(100_000)))
    assert len(str(caught.value)) < 200


def test_a_deep_result_is_a_condition_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ConditionError, match="nested too deeply"):
        check("result == result", deep)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "result[0] >= 0.95 ?? 1",
            [
                "successCondition 'result[0] >= 0.95 ?? 1'",
                "unsupported operator '??' at column 18",
                "use comparisons",
            ],
        ),
        ("exec('import os')", ["unknown function 'exec' at column 0", "supported: len"]),
        ("__import__('os').system('x')", ["unknown function '__import__'"]),
        ("os", ["unknown name 'os'"]),
        ("os.system == 1", ["unknown name 'os'"]),
        ("result.__class__", ["unsupported member name '__class__' at column 7"]),
        ("result.__class__.__mro__", ["unsupported member name '__class__'"]),
        ('result["__globals__"] == 1', ["unsupported member name '__globals__'"]),
        ("result.Name() == 'hi'", ["unsupported method call"]),
        ("result(1)", ["unknown function 'result'"]),
        ("len", ["function 'len' must be called"]),
        ("# > 1", ["'#' outside a {...} predicate at column 0"]),
        ("len(result, {# > 1})", ["a {...} predicate belongs in all(), any()"]),
        ("all(result, {#index > 1})", ["unsupported closure variable"]),
        ("(result[0] > 1", ["unexpected end, expected ')'"]),
        ("result[0] > 1)", ["unexpected ')' after the end of the expression at column 13"]),
        ("result[0 > 1", ["expected ']'"]),
        ("all(result, {# > 1)", ["expected '}'"]),
        ("result[0] >= 0.95 1", ["unexpected '1' after the end"]),
        ("result >", ["unexpected end"]),
        ("", ["is empty"]),
        ("   ", ["is empty"]),
        ("'open", ["unterminated string"]),
        ("'\\q'", ["unsupported escape"]),
        ("result = 1", ["unsupported operator '='"]),
        ("result ** 2 > 1", ["unsupported operator '**'"]),
        ("result?.a == 1", ["unsupported operator '?.'"]),
        ("result | len() > 1", ["unsupported operator '|'"]),
        ("result matches 'a.*'", ["unsupported operator 'matches'"]),
        ("1..3", ["unexpected"]),
        ("result[0] > 1; 2", ["unsupported operator ';'"]),
        ("result @ 1", ["unexpected character '@'"]),
        ("`x`", ["unexpected character '`'"]),
        ("{{ inputs.x }} > 1", ["malformed placeholder"]),
        ("result == '{{ args.x y }}'", ["malformed placeholder"]),
        ("len() == 0", ["len() takes 1 argument(s), not 0"]),
        ("default(result) > 0", ["default() takes 2 argument(s), not 1"]),
        ("all(result)", ["all() takes a list and a {...} predicate"]),
        ("99999999999999999999 > 1", ["integer literal out of range"]),
        ("results[0] >= 90", ["unknown name 'results'"]),
    ],
)
def test_parse_refusals(text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        Condition.parse(text, what="successCondition")
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_undeclared_placeholder_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"uses \{\{args\.x\}\}, which the template does not declare"
    ):
        Condition.parse("result[0] < {{args.x}}", args=["y"], what="failureCondition")
    with pytest.raises(ConfigError, match="does not declare"):
        Condition.parse('result == "{{args.x}}"', args=[])
    assert Condition.parse("result[0] < {{args.x}}", args=["x"]).placeholders() == {"x"}
    assert Condition.parse("result[0] < {{args.x}}").placeholders() == {"x"}  # no args: not checked


def test_missing_argument_value_at_evaluation() -> None:
    with pytest.raises(ConditionError, match=r"no value was given for \{\{args\.x\}\}"):
        Condition.parse("result < {{args.x}}").evaluate(1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(" * 10_000 + "1" + ")" * 10_000, "longer than 2000 characters"),
        ("(" * 100 + "true" + ")" * 100, "nested more than 64 levels"),
        ("!" * 100 + "true", "nested more than 64 levels"),
        ("[" * 100 + "]" * 100, "nested more than 64 levels"),
        ("-" * 500 + "1 > 0", "nested more than 64 levels"),
        ("1" + " + 1" * 400 + " > 0", "nested more than 128 levels"),
        ("result" + "[0]" * 300, "nested more than 128 levels"),
    ],
)
def test_huge_or_deep_expressions_are_refused_cleanly(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Condition.parse(text)


def test_moderately_nested_expressions_work() -> None:
    assert check("(" * 60 + "true" + ")" * 60)
    assert check("1" + " + 1" * 100 + " == 101")


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("result[0] >= 0.95", "up"),
        ("result > 1", "up"),
        ("0.95 <= result[0]", "up"),
        ("0.01 > result", "down"),
        ("result[0] < {{args.error-threshold}}", "down"),
        ("len(result) == 0 || result[0] < 0.01", "down"),
        ("len(result) > 0 && result[0] >= 0.95", "up"),
        ("isNaN(result[0]) || result[0] >= 0.9", "up"),
        ("default(result[0], 0) >= 0.95", "up"),
        ("default(result, 0) > {{args.restarts.max-restarts}}", "up"),
        ("asInt(result) > 100", "up"),
        ("max(result) < 0.05", "down"),
        ("all(result, {# < 0.01})", "down"),
        ("all(result, {# >= 0.9})", "up"),
        ("none(result, {# > 0.5})", "down"),
        ("any(result, {isNaN(#)})", None),
        ("!(result[0] < 0.01)", "up"),
        ("1 - result[0] > 0.05", "down"),
        ("result[0] * 100 >= 95", "up"),
        ("100 / result > 1", "down"),
        ("count(result, {# > 0.5}) < 3", "down"),
        ("result.ok && result.successPercent >= 0.90", "up"),
        ("len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})", "down"),
        ("result == true", None),
        ("result == 'I am OK'", None),
        ("len(result) > 0", None),
        ("result[0] > 0.1 && result[0] < 0.9", None),
        ("result[0] > result[1]", None),
        ("one(result, {# > 2})", None),
        ("(result[0] > 1 ? result[0] : 0) > 1", None),
        ("true", None),
    ],
)
def test_direction(text: str, direction: str | None) -> None:
    assert Condition.parse(text).direction() == direction


def test_condition_is_frozen_data_compared_by_text() -> None:
    a, b = Condition.parse("result > 1"), Condition("result > 1")
    assert a == b
    assert a.text == "result > 1"
    assert b.evaluate(2)
    with pytest.raises(AttributeError):
        a.text = "x"  # type: ignore[misc]
    with pytest.raises(ConfigError):
        Condition("os")
