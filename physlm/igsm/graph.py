"""The iGSM problem graph: one object that the generator fills, the text parser rebuilds, and the
checker, the probe labels and the Parquet record read.

Vocabulary of the graph (igsm-spec.md A.2-A.5):
- the *structure graph* has ``d`` layers; ``items[i][j]`` is the name of item ``j`` of layer ``i`` and
  ``layers[i]`` the category name of layer ``i`` (e.g. "Zoo", "Enclosure", ...);
- a parameter is a key ``(kind, i, j, k)``: ``kind == 0`` is the *instance* parameter "number of each
  items[i+1][k] in each items[i][j]" (one per structure edge), ``kind == 1`` the *abstract* parameter "total
  number of layers[k] items in items[i][j]" (k > i);
- the *dependency graph* G_d is the list ``params`` (instance and abstract parameters) with, for each,
  its operands ``preds`` (indices into ``params`` in insertion order; the RNG is not an index but the flag
  ``rng``) and its formula (``inner``, ``outer``, ``const``).

Formulas. For an instance parameter with operands P1..Pr (in ``preds`` order):
  inner "const"  r == 0, value = const (RNG only)
  inner "copy"   r == 1, E = P1
  inner "sum"    r >= 2, E = P1 + ... + Pr
  inner "diff"   r == 2, E = P1 - P2
  outer ""       value = E
  outer "add"    value = const + E          ("const more than E")
  outer "mul"    value = const * E          ("const times as much as E")
For an abstract parameter ``inner == "abstract"``, ``outer == ""``, ``const == -1`` and the operands are
fixed by the structure graph: for each child x of items[i][j] (ascending), the instance (0,i,j,x) and, when
k > i+1, the abstract (1,i+1,x,k) right after it. All arithmetic is mod 23.

``order`` is the solution order (the necessary parameters, topologically sorted, ending with ``query``);
``sentences`` is the order of the instance parameters in the problem text.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

MOD = 23
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
INSTANCE, ABSTRACT = 0, 1
INNER = ("const", "copy", "sum", "diff", "abstract")
OUTER = ("", "add", "mul")

Key = tuple[int, int, int, int]


@dataclass(slots=True)
class Graph:
    layers: list[str]
    """Category name of each layer, top to bottom (len d)."""
    items: list[list[str]]
    """items[i][j]: name of item j of layer i."""
    params: list[Key] = field(default_factory=list)
    """Parameters of G_d as (kind, i, j, k)."""
    preds: list[list[int]] = field(default_factory=list)
    """Operand indices of each parameter, in insertion order (RNG excluded)."""
    rng: list[bool] = field(default_factory=list)
    """Whether the parameter also depends on the RNG (a constant)."""
    inner: list[str] = field(default_factory=list)
    outer: list[str] = field(default_factory=list)
    const: list[int] = field(default_factory=list)
    """The RNG constant (0..22), or -1 when the parameter has none."""
    value: list[int] = field(default_factory=list)
    query: int = -1
    order: list[int] = field(default_factory=list)
    sentences: list[int] = field(default_factory=list)
    _index: dict[Key, int] | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------- basic accessors
    @property
    def d(self) -> int:
        return len(self.layers)

    @property
    def n(self) -> int:
        return len(self.params)

    def index(self, key: Key) -> int:
        """Index of a parameter key in ``params`` (KeyError if it is not in G_d)."""
        if self._index is None or len(self._index) != len(self.params):
            self._index = {p: x for x, p in enumerate(self.params)}
        return self._index[key]

    def has(self, key: Key) -> bool:
        try:
            self.index(key)
        except KeyError:
            return False
        return True

    def add(
        self,
        key: Key,
        preds: list[int] | None = None,
        rng: bool = False,
        inner: str = "abstract",
        outer: str = "",
        const: int = -1,
        value: int = -1,
    ) -> int:
        """Append a parameter; returns its index."""
        self.params.append(key)
        self.preds.append(list(preds or []))
        self.rng.append(rng)
        self.inner.append(inner)
        self.outer.append(outer)
        self.const.append(const)
        self.value.append(value)
        self._index = None
        return len(self.params) - 1

    # ---------------------------------------------------------------- names (A.5, A.7)
    def name(self, p: int | Key) -> str:
        """Solution-text name: "X's Y" (instance) or "X's Category" (abstract)."""
        kind, i, j, k = self.params[p] if isinstance(p, int) else p
        child = self.items[i + 1][k] if kind == INSTANCE else self.layers[k]
        return f"{self.items[i][j]}'s {child}"

    def ref(self, p: int | Key) -> str:
        """Problem-text reference: "each X's Y"."""
        return "each " + self.name(p)

    def question(self) -> str:
        """The question sentence (with leading space, as in the problem text)."""
        kind, i, j, k = self.params[self.query]
        what = self.items[i + 1][k] if kind == INSTANCE else self.layers[k]
        return f" How many {what} does {self.items[i][j]} have?"

    # ---------------------------------------------------------------- structure
    def children(self, i: int, j: int) -> list[int]:
        """Children x (ascending) of item (i, j) in the structure graph (one per instance edge)."""
        return sorted(k for (kind, a, b, k) in self.params if kind == INSTANCE and a == i and b == j)

    def necessary(self) -> set[int]:
        return set(self.order)

    def op_of(self, p: int) -> int:
        """op(a) = max(1, in-degree - 1), the RNG counted (spec A.4, Def. D.1)."""
        return max(1, len(self.preds[p]) + int(self.rng[p]) - 1)

    def op(self) -> int:
        """op of the problem: sum of op over the necessary parameters (= number of ';' in the solution)."""
        return sum(self.op_of(p) for p in self.order)

    @property
    def ip(self) -> int:
        """Number of instance parameters (= sentences in the problem = structure edges)."""
        return sum(1 for p in self.params if p[0] == INSTANCE)

    def evaluate(self, order: list[int] | None = None) -> list[int]:
        """Recompute every value from the formulas (mod 23), along ``order`` (default: a topological order)."""
        val: list[int | None] = [None] * self.n
        for p in self.topological() if order is None else order:
            ops = [val[q] for q in self.preds[p]]
            kind = self.params[p][0]
            if kind == ABSTRACT:
                # operands: inst(x) [, abs(x)] per child x, in order
                _, i, j, k = self.params[p]
                if k == i + 1:
                    v = sum(ops)
                else:
                    v = sum(ops[t] * ops[t + 1] for t in range(0, len(ops), 2))
            else:
                inner = self.inner[p]
                if inner == "const":
                    v = 0
                elif inner == "diff":
                    v = ops[0] - ops[1]
                else:  # copy or sum
                    v = sum(ops)
                if self.outer[p] == "add":
                    v = self.const[p] + v
                elif self.outer[p] == "mul":
                    v = self.const[p] * v
                elif inner == "const":
                    v = self.const[p]
            val[p] = v % MOD
        return val  # type: ignore[return-value]

    def topological(self, subset: set[int] | None = None, strict: bool = True) -> list[int]:
        """A deterministic topological order (Kahn, smallest index first) of all parameters, or of
        ``subset`` (closed under preds). A cycle raises ValueError, or with ``strict=False`` is left out."""
        nodes = range(self.n) if subset is None else subset
        indeg = {p: len(self.preds[p]) for p in nodes}
        succ: dict[int, list[int]] = {p: [] for p in nodes}
        for p in nodes:
            for q in self.preds[p]:
                succ[q].append(p)
        ready = [p for p in nodes if indeg[p] == 0]
        heapq.heapify(ready)
        out: list[int] = []
        while ready:
            p = heapq.heappop(ready)
            out.append(p)
            for s in succ[p]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, s)
        if strict and len(out) != len(indeg):
            raise ValueError("dependency graph has a cycle")
        return out

    def successors(self) -> list[list[int]]:
        succ: list[list[int]] = [[] for _ in range(self.n)]
        for p, ps in enumerate(self.preds):
            for q in ps:
                succ[q].append(p)
        return succ

    def ancestors(self, p: int) -> set[int]:
        """All parameters p depends on, transitively (RNG excluded; p itself excluded)."""
        seen: set[int] = set()
        stack = list(self.preds[p])
        while stack:
            q = stack.pop()
            if q not in seen:
                seen.add(q)
                stack.extend(self.preds[q])
        return seen
