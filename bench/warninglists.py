"""Time the warninglist checks: each kind's first load (and the memory it keeps), then the cost per value.

Checks 20,000 generated values of each kind twice through ``hub.warninglists``: once past the cache
(the cost of a value never seen), once through it (a value every feed response repeats).

    python bench/warninglists.py
"""

from __future__ import annotations

import random
import resource
import time

from hub import warninglists

COUNT = 20_000


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    base = max_rss_mb()
    for kind, value in (("ipv4-addr", "8.8.8.8"), ("domain-name", "dns.google"), ("file:SHA-256", "0" * 64)):
        start = time.perf_counter()
        warninglists.match(kind, value)
        took, grown = time.perf_counter() - start, max_rss_mb() - base
        print(f"first {kind} check (loads its lists): {took:.3f} s, max RSS +{grown:.0f} MB")
    rng = random.Random(1)  # noqa: S311 - benchmark values, not secrets
    cases = {
        "ipv4-addr": [".".join(str(rng.randint(1, 254)) for _ in range(4)) for _ in range(COUNT)],
        "ipv6-addr": [
            f"2a0{rng.randint(0, 9)}:{rng.randint(0, 65535):x}::{rng.randint(1, 65535):x}" for _ in range(COUNT)
        ],
        "domain-name": [f"h{i}.stem{i % 97}.com" for i in range(COUNT)],
        "url": [f"https://h{i}.stem{i % 97}.com/a/b.php" for i in range(COUNT)],
        "file:SHA-256": [f"{rng.getrandbits(256):064x}" for _ in range(COUNT)],
    }
    for kind, values in cases.items():
        start = time.perf_counter()
        for value in values:
            warninglists._match.__wrapped__(kind, value)
        uncached = (time.perf_counter() - start) / COUNT * 1e6
        for value in values:
            warninglists.match(kind, value)
        start = time.perf_counter()
        for value in values:
            warninglists.match(kind, value)
        cached = (time.perf_counter() - start) / COUNT * 1e6
        print(f"{kind}: {uncached:.1f} µs per value uncached, {cached:.2f} µs cached")


if __name__ == "__main__":
    main()
