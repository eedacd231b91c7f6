"""Confidence intervals of shares and of their differences, for accuracies and agreements over finite test sets."""

from __future__ import annotations

import math

Z95 = 1.959963984540054       # the standard normal quantile of a two-sided 95 % interval


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval of a share k/n (Wilson 1927): honest near 0 and 1, where the normal one is not."""
    if n <= 0:
        return None
    p, z2 = k / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Interval of p2 - p1 from the two Wilson intervals (Newcombe 1998, method 10)."""
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p2 - p1
    return (d - math.sqrt((p2 - b[0]) ** 2 + (a[1] - p1) ** 2), d + math.sqrt((b[1] - p2) ** 2 + (p1 - a[0]) ** 2))
