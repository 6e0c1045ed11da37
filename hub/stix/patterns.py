"""STIX patterns: a fast recogniser for the common SIEM subset, stix2-patterns for everything else.

``validate_pattern`` always gives the library's verdict: the recogniser only answers for patterns it
fully understands, and hands every other one to stix2-patterns."""

from __future__ import annotations

import re

from stix2patterns.v21.object_validator import HASHES_REGEX as _PATTERN_HASH_RULES

# One findall() splits a pattern into tokens the way the STIX 2.1 ANTLR lexer does: the
# alternatives are ordered so that the first match is also the lexer's longest match, and
# the final catch-all makes every other character a token of its own (then rejected), so
# the tokens cover the whole input.
_PATTERN_TOKEN = re.compile(
    r"""[ \t\r\n]*(
      t'[0-9]{4}-(?:0[1-9]|1[012])-(?:0[1-9]|[12][0-9]|3[01])
        T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?Z'
    | h'(?:[0-9A-Fa-f]{2})*'
    | b'(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)'
    | '[^'\\]*(?:\\['\\][^'\\]*)*'
    | [A-Za-z_][A-Za-z0-9_-]*
    | [+-]?(?:[0-9]*\.[0-9]+|0|[1-9][0-9]*)
    | == | != | <> | <= | >=
    | [^ \t\r\n]
    )""",
    re.VERBOSE,
)
_KEYWORDS = (
    "AND OR NOT FOLLOWEDBY LIKE MATCHES ISSUPERSET ISSUBSET EXISTS LAST IN START STOP SECONDS WITHIN REPEATS TIMES"
).split()
# Kinds of the tokens that are always the same text; other kinds are derived in _token_kind.
_FIXED_KINDS = {
    **{k: k for k in _KEYWORDS},
    **{p: p for p in ":.,()[]*"},
    **dict.fromkeys(("=", "==", "!=", "<>"), "eq"),
    **dict.fromkeys(("<", "<=", ">", ">="), "ord"),
    "true": "bool",
    "false": "bool",
}
_KNOWN_KINDS = dict(_FIXED_KINDS)
_LITERAL_PREFIXES = {"t": "ts", "h": "hex", "b": "bin"}
_WORD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGITS = frozenset("0123456789")
_NUMBER_START = frozenset("+-.")
_ORDERABLE = ("int+", "int-", "float+", "float-", "str", "bin", "hex", "ts")
_PRIMITIVE = (*_ORDERABLE, "bool")
_STRING_OPS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})
_QUALIFIERS = frozenset({"START", "WITHIN", "REPEATS"})
_INDEX_STAR = object()
_HASH_RULES = {name: re.compile(rule[0]) for name, rule in _PATTERN_HASH_RULES.items()}


class _OutsideSubset(Exception):
    """The fast recogniser cannot vouch for this pattern; stix2-patterns must decide."""


def _token_kind(text: str) -> str:
    """Kind of a token that is not in _FIXED_KINDS: a literal, an identifier or a number."""
    first, single = text[0], len(text) == 1
    if first in _WORD_START:
        if not single and text[1] == "'":
            return _LITERAL_PREFIXES[first]
        kind = "idh" if "-" in text else "id"
        if len(_KNOWN_KINDS) < 20_000:  # object types and property names repeat across patterns
            _KNOWN_KINDS[text] = kind
        return kind
    if first == "'" and not single:
        return "str"
    if first in _DIGITS or (first in _NUMBER_START and not single):
        return ("float" if "." in text else "int") + ("-" if first == "-" else "+")
    # A lone quote, sign, '!', '/', comment or non-ASCII character: the lexer rules for those
    # (errors, comments, unicode white space) are left to stix2-patterns.
    raise _OutsideSubset


def _unquote(literal: str) -> str:
    """Unescape a pattern string literal exactly like stix2-patterns' inspector does."""
    return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")


class _PatternRecogniser:
    """Recursive-descent recogniser for the STIX 2.1 pattern grammar, minus rare corners."""

    def __init__(self, pattern: str) -> None:
        """Tokenise ``pattern``."""
        self.texts = _PATTERN_TOKEN.findall(pattern)
        known = _KNOWN_KINDS.get
        self.kinds: list[str | None] = [known(t) or _token_kind(t) for t in self.texts]
        self.kinds.append(None)  # end-of-input sentinels: looking ahead never runs off the lists
        self.texts.append("")
        self.pos = 0

    def take(self, *kinds: str) -> str:
        """Consume one token of one of ``kinds`` and return its text."""
        if self.kinds[self.pos] not in kinds:
            raise _OutsideSubset
        self.pos += 1
        return self.texts[self.pos - 1]

    def pattern(self) -> None:
        """pattern: observationExpressions EOF"""
        self.observations()
        if self.kinds[self.pos] is not None:
            raise _OutsideSubset

    def observations(self) -> None:
        """observationExpressions: observationExpressionOr ('FOLLOWEDBY' observationExpressionOr)*"""
        self.observation_or()
        while self.kinds[self.pos] == "FOLLOWEDBY":
            self.pos += 1
            self.observation_or()

    def observation_or(self) -> None:
        """observationExpressionOr: observationExpressionAnd ('OR' observationExpressionAnd)*"""
        self.observation_and()
        while self.kinds[self.pos] == "OR":
            self.pos += 1
            self.observation_and()

    def observation_and(self) -> None:
        """observationExpressionAnd: observationExpression ('AND' observationExpression)*"""
        self.observation()
        while self.kinds[self.pos] == "AND":
            self.pos += 1
            self.observation()

    def observation(self) -> None:
        """observationExpression: ('[' comparisonExpression ']' | '(' observationExpressions ')') qualifier*"""
        if self.take("[", "(") == "[":
            self.comparison_or()
            self.take("]")
        else:
            self.observations()
            self.take(")")
        seen = set()
        while (kind := self.kinds[self.pos]) in _QUALIFIERS:
            if kind in seen:  # the library's duplicate-qualifier rule has subtleties: let it decide
                raise _OutsideSubset
            seen.add(kind)
            self.qualifier(kind)

    def qualifier(self, kind: str) -> None:
        """START ts STOP ts | WITHIN number SECONDS | REPEATS integer TIMES"""
        self.pos += 1
        if kind == "START":
            self.take("ts")
            self.take("STOP")
            self.take("ts")
        elif kind == "WITHIN":
            self.take("int+", "float+")
            self.take("SECONDS")
        else:
            self.take("int+")
            self.take("TIMES")

    def comparison_or(self) -> None:
        """comparisonExpression: comparisonExpressionAnd ('OR' comparisonExpressionAnd)*"""
        self.comparison_and()
        while self.kinds[self.pos] == "OR":
            self.pos += 1
            self.comparison_and()

    def comparison_and(self) -> None:
        """comparisonExpressionAnd: propTest ('AND' propTest)*"""
        self.comparison()
        while self.kinds[self.pos] == "AND":
            self.pos += 1
            self.comparison()

    def comparison(self) -> None:
        """propTest: objectPath NOT? operator literal | '(' comparisonExpression ')' | EXISTS objectPath"""
        kind = self.kinds[self.pos]
        if kind == "(":
            self.pos += 1
            self.comparison_or()
            self.take(")")
            return
        if kind == "EXISTS":
            self.pos += 1
            self.object_path()
            return
        path = self.object_path()
        if self.kinds[self.pos] == "NOT":
            self.pos += 1
        kind = self.kinds[self.pos]
        self.pos += 1
        if kind == "eq":
            value = self.take(*_PRIMITIVE)
        elif kind == "ord":
            value = self.take(*_ORDERABLE)
        elif kind == "IN":
            value = self.set_literal()
        elif kind in _STRING_OPS:
            value = self.take("str")
        else:
            raise _OutsideSubset
        if "hashes" in path:
            _check_pattern_hash(path, value)

    def set_literal(self) -> str:
        """setLiteral: '(' (primitiveLiteral (',' primitiveLiteral)*)? ')'; returns its text"""
        self.take("(")
        if self.kinds[self.pos] == ")":
            self.pos += 1
            return "()"
        items = [self.take(*_PRIMITIVE)]
        while self.kinds[self.pos] == ",":
            self.pos += 1
            items.append(self.take(*_PRIMITIVE))
        self.take(")")
        return "(" + ",".join(items) + ")"

    def object_path(self) -> list:
        """objectPath: type ':' first ('.' key | '[' index ']')*; returns the path components"""
        kinds, texts, pos = self.kinds, self.texts, self.pos
        # The end sentinel (None) fails every test below, so indexing never runs off the list.
        if kinds[pos] not in ("id", "idh") or kinds[pos + 1] != ":" or kinds[pos + 2] not in ("id", "str"):
            raise _OutsideSubset
        pos += 2
        path: list = [_unquote(texts[pos]) if kinds[pos] == "str" else texts[pos]]
        pos += 1
        while (kind := kinds[pos]) == "." or kind == "[":
            step_kind, step = kinds[pos + 1], texts[pos + 1]
            if kind == "." and step_kind in ("id", "str"):
                path.append(_unquote(step) if step_kind == "str" else step)
                pos += 2
            elif kind == "[" and step_kind in ("int+", "*") and kinds[pos + 2] == "]":
                # Negative list indexes crash the library's inspector: they are left to it.
                path.append(_INDEX_STAR if step == "*" else int(step))
                pos += 3
            else:
                raise _OutsideSubset
        self.pos = pos
        return path


def _check_pattern_hash(path: list, literal: str) -> None:
    """Apply stix2-patterns' hash-value check to a comparison whose path goes through 'hashes'."""
    selector = path[-1]
    if selector is _INDEX_STAR:
        return
    if not isinstance(selector, str):
        raise _OutsideSubset
    rule = _HASH_RULES.get(selector.upper().replace("-", "").replace("'", ""))
    if rule is not None and not rule.match(literal.replace("'", "")):
        raise _OutsideSubset


def _fast_pattern_ok(pattern: str) -> bool:
    """True when the fast recogniser proves the pattern valid; False means 'ask the library'."""
    try:
        _PatternRecogniser(pattern).pattern()
    except (_OutsideSubset, RecursionError):
        return False
    return True


def _library_pattern_check(pattern: str, stix_version: str = "2.1") -> str | None:
    """Validate with stix2-patterns (slow, about 0.4 ms); None if valid, else its first error."""
    from stix2patterns.validator import run_validator  # deferred: the ANTLR runtime is slow to import

    try:
        errors = run_validator(pattern, stix_version=stix_version)
    except Exception as exc:  # the library crashes on a few malformed inputs (e.g. '' or [x:y[-1] = 1])
        return f"pattern cannot be parsed ({type(exc).__name__}: {exc})"
    return errors[0].removeprefix("FAIL: ") if errors else None


def validate_pattern(pattern: str) -> str | None:
    """Return None if ``pattern`` is a valid STIX 2.1 pattern, else the reason."""
    if not isinstance(pattern, str):
        return f"pattern must be a string, not {type(pattern).__name__}"
    if _fast_pattern_ok(pattern):
        return None
    return _library_pattern_check(pattern)


_ONE_EQUALITY = re.compile(
    r"^\[([a-z0-9][a-z0-9-]*):((?:[a-z_][a-z0-9_]*|'[A-Za-z0-9_-]+')(?:\.(?:[a-z_][a-z0-9_]*|'[A-Za-z0-9_-]+'))*)"
    r" ?= ?('[^'\\]*(?:\\['\\][^'\\]*)*')\]$"
)


def pattern_equalities(pattern: str) -> list[tuple[str, str]]:
    """The (object path, string) of every ``path = 'string'`` and ``path IN ('string', ...)`` comparison.

    E.g. ``[ipv4-addr:value = '198.51.100.7' OR file:hashes.'SHA-256' = 'ab...']`` gives
    ``[("ipv4-addr:value", "198.51.100.7"), ("file:hashes.SHA-256", "ab...")]``. Read from the same
    tokens as the recogniser, so it needs no parse; ``NOT`` comparisons and other operators give nothing.
    """
    simple = _ONE_EQUALITY.match(pattern)
    if simple is not None:  # the common SIEM pattern, one comparison: no tokenising
        path = simple.group(1) + ":" + simple.group(2).replace("'", "")
        return [(path, _unquote(simple.group(3)))]
    texts = [*_PATTERN_TOKEN.findall(pattern), "", ""]  # end sentinels: looking ahead never runs off the list
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(texts) - 2:
        if texts[pos][:1] not in _WORD_START or texts[pos + 1] != ":" or not _is_step(texts[pos + 2]):
            pos += 1
            continue
        path, pos = _path_text(texts, pos)
        operator, operand = texts[pos], texts[pos + 1]
        if operator in ("=", "==") and operand[:1] == "'":
            out.append((path, _unquote(operand)))
        elif operator == "IN" and operand == "(":
            pos += 2
            while texts[pos] not in (")", ""):
                if texts[pos][:1] == "'":
                    out.append((path, _unquote(texts[pos])))
                pos += 1
    return out


def _is_step(text: str) -> bool:
    """Tell whether a token can name a property in an object path: a word or a quoted string."""
    return text[:1] in _WORD_START or (text[:1] == "'" and len(text) > 1)


def _path_text(texts: list[str], pos: int) -> tuple[str, int]:
    """The object path starting at ``texts[pos]`` as text (``file:hashes.SHA-256``), and the position after it."""

    def step(text: str) -> str:
        return _unquote(text) if text[:1] == "'" else text

    parts = [texts[pos], ":", step(texts[pos + 2])]
    pos += 3
    while True:
        if texts[pos] == "." and _is_step(texts[pos + 1]):
            parts += [".", step(texts[pos + 1])]
            pos += 2
        elif texts[pos] == "[" and texts[pos + 2 : pos + 3] == ["]"]:
            parts += ["[", texts[pos + 1], "]"]
            pos += 3
        else:
            return "".join(parts), pos
