"""Pseudo-random observable values for demo indicators, only from documentation and benchmarking
ranges (RFC 5737, RFC 2544) and reserved names (RFC 2606, RFC 6761): nothing points at a real host."""

from __future__ import annotations

import random
from base64 import b32encode

# The address blocks indicators draw from: the three RFC 5737 documentation nets
# and the RFC 2544 benchmarking block, for variety beyond 762 addresses.
IPV4_PREFIXES: tuple[str, ...] = ("192.0.2.", "198.51.100.", "203.0.113.")
IPV4_BENCH_NET = "198.18.0.0/15"

_DOMAIN_PREFIXES = (
    "login secure docs update cdn mail auth portal careers recruit wallet swap verify drive cloud hr assessment meet"
).split()
_DOMAIN_STEMS = (
    "naver-nid daum-mail kakao-auth defi-bridge coin-exchange nft-market talent-hub job-portal"
    " aerospace-jobs defense-hr unification-forum policy-institute crypto-trade dev-assess remote-devs"
    " blockchain-labs fund-transfer bank-swift"
).split()
_DOMAIN_SUFFIXES = ("example", "test", "invalid", "example.com", "example.net", "example.org")
_URL_PATHS = (
    "jobs/offer.pdf download/update.exe api/v1/beacon wp-content/plugins/cache/view.php assessment/task.zip"
    " docs/viewer.hta login.php files/installer.msi npm/package.tgz board/list.php images/logo.gif"
    " payload/stage2.bin"
).split()
_MAIL_LOCALS = "hr.recruiter talent careers no-reply security-team admin support editor".split()
_HASHES = (
    ("SHA-256", 256, "'SHA-256'"),
    ("SHA-256", 256, "'SHA-256'"),
    ("SHA-1", 160, "'SHA-1'"),
    ("MD5", 128, "MD5"),
)
_BECH32 = str.maketrans({"b": "8", "i": "9", "o": "0"})  # base32 lower-case -> the bech32 alphabet

# kind, weight, roles; every role pairs a phrase with its STIX indicator type
KINDS: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    (
        "ipv4",
        0.25,
        (
            ("C2 server", "malicious-activity"),
            ("staging server", "malicious-activity"),
            ("exfiltration endpoint", "malicious-activity"),
            ("VPN exit node", "anonymization"),
            ("compromised relay", "compromised"),
        ),
    ),
    (
        "domain",
        0.20,
        (
            ("C2 domain", "malicious-activity"),
            ("phishing domain", "malicious-activity"),
            ("credential-harvesting domain", "malicious-activity"),
            ("payload host", "malicious-activity"),
        ),
    ),
    (
        "url",
        0.15,
        (
            ("payload download URL", "malicious-activity"),
            ("phishing page", "malicious-activity"),
            ("C2 beacon URL", "malicious-activity"),
        ),
    ),
    (
        "file",
        0.25,
        (
            ("backdoor", "malicious-activity"),
            ("loader", "malicious-activity"),
            ("dropper", "malicious-activity"),
            ("trojanized installer", "malicious-activity"),
        ),
    ),
    (
        "email",
        0.08,
        (("spear-phishing sender", "malicious-activity"), ("fake recruiter account", "attribution")),
    ),
    ("wallet", 0.07, (("laundering wallet", "attribution"), ("theft proceeds wallet", "attribution"))),
)


def _domain(rng: random.Random) -> str:
    """Return a look-alike domain under a reserved name."""
    n = rng.getrandbits(7)
    number = str(n) if n < 100 else ""
    return (
        f"{_DOMAIN_PREFIXES[rng.getrandbits(16) % len(_DOMAIN_PREFIXES)]}-"
        f"{_DOMAIN_STEMS[rng.getrandbits(16) % len(_DOMAIN_STEMS)]}{number}."
        f"{_DOMAIN_SUFFIXES[rng.getrandbits(16) % len(_DOMAIN_SUFFIXES)]}"
    )


def _ipv4(rng: random.Random) -> str:
    """Return an address from the documentation nets or the benchmarking block."""
    bits = rng.getrandbits(24)
    host = bits % 254 + 1
    if bits >> 22:  # three quarters from RFC 5737, one quarter from 198.18.0.0/15
        return IPV4_PREFIXES[(bits >> 22) - 1] + str(host)
    return f"198.{18 + (bits >> 21 & 1)}.{bits >> 8 & 255}.{host}"


def observable(rng: random.Random, kind: str) -> tuple[str, str]:
    """Return ``(pattern, value)`` for one pseudo-random observable of ``kind``."""
    if kind == "ipv4":
        value = _ipv4(rng)
        return f"[ipv4-addr:value = '{value}']", value
    if kind == "domain":
        value = _domain(rng)
        return f"[domain-name:value = '{value}']", value
    if kind == "url":
        value = f"https://{_domain(rng)}/{_URL_PATHS[rng.getrandbits(16) % len(_URL_PATHS)]}"
        return f"[url:value = '{value}']", value
    if kind == "file":
        name, bits, key = _HASHES[rng.getrandbits(2)]
        value = format(rng.getrandbits(bits), f"0{bits // 4}x")
        return f"[file:hashes.{key} = '{value}']", f"{name} {value}"
    if kind == "email":
        value = f"{_MAIL_LOCALS[rng.getrandbits(16) % len(_MAIL_LOCALS)]}{rng.getrandbits(10)}@{_domain(rng)}"
        return f"[email-addr:value = '{value}']", value
    if rng.getrandbits(1):
        value = f"0x{rng.getrandbits(160):040x}"
    else:  # bech32 shape with a random checksum, so almost surely not a valid address
        value = "bc1q" + b32encode(rng.randbytes(25)).decode().lower()[:38].translate(_BECH32)
    # OpenCTI's observable type for wallets; STIX 2.1 has none
    return f"[cryptocurrency-wallet:value = '{value}']", value
