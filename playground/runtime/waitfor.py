"""The live wait-for graph, and the deadlocks it contains.

Nodes are invocation ids and lock nodes, one per (service, key). Edges:
- invocation -> invocation: a pending request-response call (or attach) waits for the callee;
- invocation -> lock: an invocation queued in a key's inbox waits for that key's lock;
- lock -> invocation: the key's lock is held by that invocation.

Routing lock waits through a lock node keeps a lock handoff to one edge change, however long the inbox.
A cycle is looked for only when an edge is added, by walking from the edge's head back to its tail, so
the cost follows the cycle (and what hangs off its path), not the size of the graph. Shared handlers take
no lock and so add no lock edges: an exclusive handler calling a shared one on its own key is no cycle.

Every pending call counts as a wait, as if the caller needed all of them. A handler that races a call
against something else (`restate.select` with a timeout) and whose call is part of a cycle is reported as
deadlocked even though the other branch might still win; the graph does not know which awaits are races.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LockNode = tuple[str, str]  # (service, key)
Node = str | LockNode


@dataclass(frozen=True)
class Cycle:
    """One deadlock: the nodes in wait order (each waits for the next; the last waits for the first)."""

    nodes: tuple[Node, ...]
    kinds: tuple[str, ...] = field(default=())  # kinds[i] is the kind of the edge nodes[i] -> nodes[i+1]

    def edges(self) -> list[tuple[Node, Node, str]]:
        n = len(self.nodes)
        return [(self.nodes[i], self.nodes[(i + 1) % n], self.kinds[i]) for i in range(n)]

    @property
    def invocation_ids(self) -> list[str]:
        return [n for n in self.nodes if isinstance(n, str)]


class WaitForGraph:
    def __init__(self) -> None:
        self._out: dict[Node, dict[Node, str]] = {}
        self._cycles: list[Cycle] = []

    def add(self, u: Node, v: Node, kind: str) -> Cycle | None:
        """Add the edge u -> v ('call', 'attach', 'queued' or 'holds'); return the cycle it closes, if any."""
        out = self._out
        succ = out.get(u)
        if succ is None:
            out[u] = {v: kind}
        else:
            succ[v] = kind
        if v not in out and v != u:
            return None  # nothing leaves v, so nothing leads back to u (the common case: a lock's new holder)
        path = self._path(v, u)
        if path is None:
            return None
        nodes = (u, *path[:-1])
        kinds = tuple(self._out[a][b] for a, b in zip(nodes, (*nodes[1:], nodes[0]), strict=True))
        cycle = Cycle(nodes, kinds)
        self._cycles.append(cycle)
        return cycle

    def remove(self, u: Node, v: Node) -> None:
        succ = self._out.get(u)
        if succ is not None and succ.pop(v, None) is not None and not succ:
            del self._out[u]

    def remove_all_from(self, u: Node) -> None:
        self._out.pop(u, None)

    def has(self, u: Node, v: Node) -> bool:
        return v in self._out.get(u, ())

    def successors(self, u: Node) -> dict[Node, str]:
        return self._out.get(u, {})

    def reaches(self, start: Node, goal: Node) -> bool:
        """Whether `start` waits on `goal`, through a chain of edges."""
        return start != goal and self._path(start, goal) is not None

    def _path(self, start: Node, goal: Node) -> list[Node] | None:
        """A path start -> ... -> goal (inclusive), by depth-first search; None if goal is unreachable."""
        parent: dict[Node, Node | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            if node == goal:
                path = [node]
                while (prev := parent[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1]
            for nxt in self._out.get(node, ()):
                if nxt not in parent:
                    parent[nxt] = node
                    stack.append(nxt)
        return None

    def cycles(self) -> list[Cycle]:
        """The cycles that still stand (a cancel or kill removes an edge and so breaks its cycle)."""
        self._cycles = [c for c in self._cycles if all(self.has(a, b) for a, b, _ in c.edges())]
        return list(self._cycles)

    def cycle_reached_from(self, start: Node) -> Cycle | None:
        """A standing cycle that `start` is part of, or waits on through a chain of edges."""
        if not self._cycles:  # the common case, on every await: no cycle was ever closed
            return None
        cycles = self.cycles()
        if not cycles:
            return None
        members = {n: c for c in cycles for n in c.nodes}
        stack, seen = [start], {start}
        while stack:
            node = stack.pop()
            if node in members:
                return members[node]
            for nxt in self._out.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return None

    def edges(self) -> list[tuple[Node, Node, str]]:
        return [(u, v, k) for u, succ in self._out.items() for v, k in succ.items()]
