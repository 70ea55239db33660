"""Full-solution checker for iGSM solutions (igsm-spec.md A.7, B, E.11); it never raises.

Input: the problem's :class:`~physlm.igsm.graph.Graph` and a detail-level-0 solution text
" Define <name> as v; [t1 = <hint> = <numbers> = r1; ...;] so v = <hint> = <numbers> = <result>. ...".
The text is stripped, a final "." dropped and it is split on ". " into sentences; a sentence containing
" BACK" (retry data) is skipped and counted in ``n_retries``. Each sentence is split on "; ": the first part
"Define <name> as v" names the step, the middle parts are intermediate steps and the last "so v = ..." is
the named step. A step is ``v = result`` (constant), ``v = x = result`` (copy: one letter or numeral) or
``v = x op y = n1 op n2 = result`` (binary, op in + - *, numbers 0..22, same op in hint and numbers).

Errors (all are collected, in sentence order; ``correct`` means none):
  empty             no solution text / no sentence;
  malformed         a sentence or step that does not parse (bad "Define", "so v" not the defined letter,
                    symbol not a single letter, bad numeral, hint/number arity mismatch, missing parts);
  unknown_param     the name is neither a parameter of G_d nor a structural abstract parameter
                    ("X's <Category>" with X in layer i and Category = layers[k], k > i);
  undefined_symbol  a letter used before it is defined;   redefined_symbol  a letter defined twice;
  duplicate_param   the same parameter defined twice;
  wrong_dependency  the named parameters a step uses (intermediate letters resolved recursively) differ
                    from the parameter's true operands, RNG excluded (missing / extra names in detail);
  wrong_reference   an operand's number (or a copy step's result) differs from the value of its letter;
  wrong_arithmetic  a binary computation wrong mod 23;
  wrong_value       the value given to a named parameter differs from its true value although the
                    sentence has no other error and all its inputs carried correct values (so a wrong
                    constant or operator; values that are wrong only because an earlier step was wrong are
                    not reported again);
  wrong_final_param the last named step is not the query (param = that last step's name);
  wrong_answer      the value given to the query (its last definition) differs from the true answer;
  answer_mismatch   the ``answer`` argument (int, "17" or " 17") is not exactly the true answer.
Steps for valid but unnecessary parameters are not errors; error-free ones are listed in ``unnecessary``.

Stricter than the reference checker (tools/sol_parser.py), which checks these only via the final answer:
wrong_value (constants/operators of every named step), duplicate_param, and instance names "X's Y" for
items of consecutive layers that are not an edge of the structure graph (unknown_param). Unlike the
reference we also keep going after the first problem, and a structural abstract parameter that is not in
G_d is accepted with operands and value derived from the structure graph (spec A.3).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from physlm.igsm.graph import ABSTRACT, INSTANCE, LETTERS, MOD, Graph, Key
from physlm.igsm.solution import sentences

_NUM = re.compile(r"(?:0|[1-9][0-9]?)")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass
class Mistake:
    kind: str
    param: str | None = None
    step: int | None = None
    detail: str = ""


@dataclass
class Verdict:
    correct: bool = False
    answer_correct: bool = False
    answer: int = -1
    errors: list[Mistake] = field(default_factory=list)
    unnecessary: list[str] = field(default_factory=list)
    first_wrong_param: str | None = None
    n_steps: int = 0
    n_retries: int = 0
    defined: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Step:
    sym: str
    hint: list[str]  # letters or numerals; [] for a constant step
    nums: list[int]  # operand values; only for binary steps
    result: int
    sign: str | None  # "+", "-", "*" for binary steps


class _Bad(Exception):
    """A parse failure (becomes a "malformed" mistake)."""


# ------------------------------------------------------------------------------------------ parsing
def _numeral(s: str) -> int:
    if not _NUM.fullmatch(s) or int(s) >= MOD:
        raise _Bad(f"bad numeral {s!r}")
    return int(s)


def _expr(s: str) -> tuple[str | None, list[str]]:
    for sign in _OPS:
        if f" {sign} " in s:
            return sign, s.split(f" {sign} ")
    return None, [s]


def parse_step(text: str, prefix: str = "") -> Step:
    """Parse "v = ..." (``prefix`` "so " for the named step); raises _Bad."""
    fields = text.split(" = ")
    head, rest = fields[0], fields[1:]
    if not head.startswith(prefix):
        raise _Bad(f"step {text!r} does not start with {prefix!r}")
    sym = head[len(prefix) :]
    if len(sym) != 1 or sym not in LETTERS:
        raise _Bad(f"bad symbol {sym!r}")
    if not 1 <= len(rest) <= 3:
        raise _Bad(f"step {text!r} has {len(rest)} '=' parts")
    result = _numeral(rest[-1])
    sign, hint, nums = None, [], []
    if len(rest) >= 2:
        sign, hint = _expr(rest[0])
        for tok in hint:
            if not (len(tok) == 1 and tok in LETTERS):
                _numeral(tok)
    if len(rest) == 3:
        sign2, raw = _expr(rest[1])
        nums = [_numeral(t) for t in raw]
        if sign2 != sign:
            raise _Bad(f"operator mismatch in {text!r}")
    if not ((len(hint) == len(nums) == 2) or (len(hint) < 2 and not nums)):
        raise _Bad(f"hint/number arity mismatch in {text!r}")
    return Step(sym, hint, nums, result, sign)


def parse_define(text: str) -> tuple[str, str]:
    if not text.startswith("Define ") or " as " not in text:
        raise _Bad(f"not a 'Define <name> as <letter>': {text!r}")
    name, _, sym = text[len("Define ") :].rpartition(" as ")
    if not name or len(sym) != 1 or sym not in LETTERS:
        raise _Bad(f"bad definition {text!r}")
    return name, sym


# ------------------------------------------------------------------------------------------ truth
def name_map(graph: Graph) -> dict[str, Key]:
    """Instance names of the structure edges, then abstract names "X's <Category>" for every i < k."""
    out: dict[str, Key] = {}
    for key in graph.params:
        if key[0] == INSTANCE:
            out.setdefault(graph.name(key), key)
    for i in range(graph.d - 1):
        for j in range(len(graph.items[i])):
            for k in range(i + 1, graph.d):
                out.setdefault(graph.name((ABSTRACT, i, j, k)), (ABSTRACT, i, j, k))
    return out


class _Truth:
    """True operands and values, for G_d parameters and structural abstract ones."""

    def __init__(self, graph: Graph):
        self.g, self.memo = graph, {}

    def __call__(self, key: Key) -> tuple[list[Key], int]:
        if key not in self.memo:
            g = self.g
            if g.has(key):
                p = g.index(key)
                self.memo[key] = ([g.params[q] for q in g.preds[p]], g.value[p])
            else:  # structural abstract parameter (spec A.3)
                _, i, j, k = key
                ops, v = [], 0
                for x in g.children(i, j):
                    inst = g.value[g.index((INSTANCE, i, j, x))]
                    ops.append((INSTANCE, i, j, x))
                    if k > i + 1:
                        ops.append((ABSTRACT, i + 1, x, k))
                        v += inst * self((ABSTRACT, i + 1, x, k))[1]
                    else:
                        v += inst
                self.memo[key] = (ops, v % MOD)
        return self.memo[key]


# ------------------------------------------------------------------------------------------ checking
@dataclass
class _Sym:
    value: int | None  # None: unknown (malformed step)
    refs: frozenset | None  # named params behind it (Key, or raw name if unknown); None: unknown
    tainted: bool  # its value may be wrong because of an error at or before it


class _Checker:
    def __init__(self, graph: Graph, solution: str):
        self.g, self.text = graph, solution
        self.names, self.truth = name_map(graph), _Truth(graph)
        self.necessary = {graph.params[p] for p in graph.order}
        self.query = graph.params[graph.query]
        self.v = Verdict(answer=graph.value[graph.query])
        self.syms: dict[str, _Sym] = {}
        self.seen: set[Key] = set()
        self.last: tuple[str, Key | None, int] | None = None  # last named step: name, key, sentence
        self.query_value: tuple[int | None, int] | None = None  # (value, sentence) of the query

    def err(self, kind: str, param: str | None, step: int | None, detail: str = "") -> None:
        self.v.errors.append(Mistake(kind, param, step, detail))

    def run(self) -> Verdict:
        for s, sentence in enumerate(sentences(self.text if isinstance(self.text, str) else "")):
            if sentence.retry:
                self.v.n_retries += 1
            else:
                self.v.n_steps += 1
                self.sentence(s, sentence.text)
        if not self.v.n_steps:
            self.err("empty", None, None, "no solution step")
        if self.last is not None and self.last[1] != self.query:
            self.err(
                "wrong_final_param",
                self.last[0],
                self.last[2],
                f"last step is not the query {self.g.name(self.query)!r}",
            )
        if self.query_value is not None and self.query_value[0] not in (None, self.v.answer):
            self.err(
                "wrong_answer",
                self.g.name(self.query),
                self.query_value[1],
                f"gave {self.query_value[0]}, true answer {self.v.answer}",
            )
        self.v.answer_correct = self.query_value is not None and self.query_value[0] == self.v.answer
        return self.v

    def sentence(self, s: int, sentence: str) -> None:
        parts = sentence.split("; ")
        try:
            name, sym = parse_define(parts[0])
        except _Bad as e:
            return self.err("malformed", None, s, str(e))
        self.v.defined.append(name)
        key = self.names.get(name)
        self.last = (name, key, s)
        n_err = len(self.v.errors)
        if key is None:
            self.err("unknown_param", name, s, f"{name!r} is not a parameter of the problem")
        elif key in self.seen:
            self.err("duplicate_param", name, s, f"{name!r} is defined twice")
        if key is not None:
            self.seen.add(key)
        ref = frozenset([key if key is not None else name])
        if len(parts) < 2:
            self.err("malformed", name, s, "missing 'so <letter> = ...' part")
            return self.finish(s, name, key, sym, None, ref, n_err)
        for part in parts[1:-1]:
            try:
                step = parse_step(part)
            except _Bad as e:
                self.err("malformed", name, s, str(e))
                sym2 = part.split(" = ")[0]
                if len(sym2) == 1 and sym2 in LETTERS and sym2 not in self.syms:
                    self.syms[sym2] = _Sym(None, None, True)
                continue
            value, refs, tainted = self.evaluate(step, name, s)
            self.syms[step.sym] = _Sym(value, refs, tainted)
        try:
            step = parse_step(parts[-1], "so ")
            if step.sym != sym:
                raise _Bad(f"'so {step.sym}' does not match the defined letter {sym!r}")
        except _Bad as e:
            self.err("malformed", name, s, str(e))
            return self.finish(s, name, key, sym, None, ref, n_err)
        value, refs, tainted = self.evaluate(step, name, s)
        if key is not None and refs is not None:
            want = set(self.truth(key)[0])
            missing = [self.g.name(k) for k in want - refs]
            extra = sorted(self.g.name(k) if isinstance(k, tuple) else k for k in refs - want)
            if missing or extra:
                self.err("wrong_dependency", name, s, f"missing {sorted(missing)}, extra {extra}")
        if key is not None and len(self.v.errors) == n_err and not tainted:
            true = self.truth(key)[1]
            if value != true:
                self.err("wrong_value", name, s, f"gave {value}, true value {true}")
        self.finish(s, name, key, sym, value, ref, n_err)

    def finish(
        self, s: int, name: str, key: Key | None, sym: str, value: int | None, ref: frozenset, n_err: int
    ) -> None:
        """Bind the sentence's letter to its named parameter and record bookkeeping."""
        true = self.truth(key)[1] if key is not None else None
        ok = len(self.v.errors) == n_err
        self.syms[sym] = _Sym(value, ref, value is None or value != true)
        if key == self.query:
            self.query_value = (value, s)
        if ok and key is not None and key not in self.necessary:
            self.v.unnecessary.append(name)

    def evaluate(self, step: Step, name: str, s: int) -> tuple[int, frozenset | None, bool]:
        """Check one step's references and arithmetic; returns (value, refs, tainted)."""
        n_err = len(self.v.errors)
        refs: set | None = set()
        tainted = False
        vals: list[int | None] = []
        for tok in step.hint:
            if tok in self.syms:
                sym = self.syms[tok]
                vals.append(sym.value)
                tainted |= sym.tainted
                refs = None if refs is None or sym.refs is None else refs | sym.refs
            elif len(tok) == 1 and tok in LETTERS:
                self.err("undefined_symbol", name, s, f"{tok!r} used before it is defined")
                vals.append(None)
                refs, tainted = None, True
            else:
                vals.append(int(tok))
        if step.sym in self.syms:
            self.err("redefined_symbol", name, s, f"{step.sym!r} is defined twice")
        if step.nums:
            for tok, want, got in zip(step.hint, vals, step.nums):
                if want is not None and want != got:
                    self.err("wrong_reference", name, s, f"{tok} = {want} but {got} was used")
            true = _OPS[step.sign](*step.nums) % MOD
            if step.result != true:
                self.err(
                    "wrong_arithmetic",
                    name,
                    s,
                    f"{step.nums[0]} {step.sign} {step.nums[1]} = {true}, not {step.result}",
                )
        elif step.hint and vals[0] is not None and vals[0] != step.result:
            self.err("wrong_reference", name, s, f"{step.hint[0]} = {vals[0]} but {step.result} was given")
        tainted |= len(self.v.errors) > n_err
        return step.result, None if refs is None else frozenset(refs), tainted


def _answer_ok(answer: object, truth: int) -> bool:
    if isinstance(answer, bool):
        return False
    if isinstance(answer, int):
        return answer == truth
    return isinstance(answer, str) and answer in (str(truth), f" {truth}")


def check(graph: Graph, solution: str, answer: str | int | None = None) -> Verdict:
    """Check a full solution (and, when given, the answer text) against the problem graph."""
    try:
        v = _Checker(graph, solution).run()
        if answer is not None:
            v.answer_correct = _answer_ok(answer, v.answer)
            if not v.answer_correct:
                v.errors.append(Mistake("answer_mismatch", None, None, f"answer {answer!r}, true {v.answer}"))
    except Exception as e:  # noqa: BLE001 - the checker must never raise
        try:
            truth = int(graph.value[graph.query])
        except Exception:  # noqa: BLE001
            truth = -1
        v = Verdict(answer=truth, errors=[Mistake("malformed", None, None, f"internal error: {e!r}")])
    v.errors.sort(key=lambda m: (m.step is None, m.step if m.step is not None else 0))
    v.first_wrong_param = next((m.param for m in v.errors if m.param is not None), None)
    v.correct = not v.errors
    return v
