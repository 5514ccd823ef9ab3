"""A deterministic force-directed layout (Fruchterman–Reingold), pure Python.

Owns ``force_layout``: positions for a graph's nodes inside a box, from a fixed start (the nodes
on a circle in id order) and a fixed number of cooling steps, so that the same graph always
gets the same picture (golden files compare the bytes). Imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["force_layout"]


def force_layout(ids: Sequence[str], edges: Sequence[tuple[str, str]], width: float,
                 height: float, margin: float = 60.0, iterations: int = 120
                 ) -> dict[str, tuple[float, float]]:
    """``{id: (x, y)}`` for ``ids`` in a ``width`` × ``height`` box (``margin`` kept free),
    rounded to 0.1. Edges pull their ends together, all nodes push each other apart."""
    ids = sorted(ids)
    n = len(ids)
    if n == 0:
        return {}
    cx, cy = width / 2, height / 2
    if n == 1:
        return {ids[0]: (round(cx, 1), round(cy, 1))}
    w, h = width - 2 * margin, height - 2 * margin
    radius = min(w, h) / 2
    pos = {i: [cx + radius * math.cos(2 * math.pi * k / n - math.pi / 2),
               cy + radius * math.sin(2 * math.pi * k / n - math.pi / 2)]
           for k, i in enumerate(ids)}
    links = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b and a in pos and b in pos})
    k_opt = math.sqrt(w * h / n)
    temp = min(w, h) / 10
    for step in range(iterations):
        disp = {i: [0.0, 0.0] for i in ids}
        for x in range(n):
            a = ids[x]
            pa = pos[a]
            for y in range(x + 1, n):
                b = ids[y]
                dx, dy = pa[0] - pos[b][0], pa[1] - pos[b][1]
                dist = math.hypot(dx, dy) or 0.01
                force = k_opt * k_opt / dist
                fx, fy = dx / dist * force, dy / dist * force
                disp[a][0] += fx
                disp[a][1] += fy
                disp[b][0] -= fx
                disp[b][1] -= fy
        for a, b in links:
            dx, dy = pos[a][0] - pos[b][0], pos[a][1] - pos[b][1]
            dist = math.hypot(dx, dy) or 0.01
            force = dist * dist / k_opt
            fx, fy = dx / dist * force, dy / dist * force
            disp[a][0] -= fx
            disp[a][1] -= fy
            disp[b][0] += fx
            disp[b][1] += fy
        t = temp * (1 - step / iterations)
        for i in ids:
            dx, dy = disp[i]
            length = math.hypot(dx, dy)
            if length > 0:
                pos[i][0] += dx / length * min(length, t)
                pos[i][1] += dy / length * min(length, t)
            pos[i][0] = min(width - margin, max(margin, pos[i][0]))
            pos[i][1] = min(height - margin, max(margin, pos[i][1]))
    return {i: (round(p[0], 1), round(p[1], 1)) for i, p in pos.items()}
