"""Raw primitives on a 100-byte payload: sign + verify and encrypt + decrypt, ferrosession
beside itsdangerous, the standard library's ``hmac`` and ``cryptography``.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/primitives.py [--quick]

One operation = wrap the payload, then unwrap it (what a session layer does per written
and read value). ferrosession is measured through its public transformer API
(``transform_write`` / ``transform_read``: ``str`` in, ``str`` out) and through the Rust
object under it (``_core.Transform.write`` / ``.read``, private: the raw cost without the
Python method call around it). Peers get ``bytes`` (their natural input):

- itsdangerous ``TimestampSigner`` (what Starlette's and Flask's cookie sessions use) and
  ``Signer`` (no timestamp): ``unsign(sign(payload))``;
- ``hmac``: ``payload + b"/" + hmac.new(key, payload, "sha256").hexdigest()``, then split,
  recompute and ``hmac.compare_digest`` (ferrosession's wire format, by hand);
- ``cryptography``: ``Fernet`` (AES-128-CBC + HMAC-SHA256, base64) and ``AESGCM``
  (AES-256-GCM, a fresh 12-byte ``os.urandom`` nonce per value, raw bytes out).

Before timing, every variant must round-trip the payload and reject a tampered value,
and ferrosession's signature must equal the one ``hmac`` computes (so it really is
HMAC-SHA256 under that key); the run aborts otherwise. Goal (DESIGN.md §3): sign + verify
at least 10x faster than itsdangerous ``TimestampSigner``. Results:
``benches/results/primitives.json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys
from typing import Any, Callable, Optional

import _harness as h

KEY = bytes(range(32))  # fixed, so runs are comparable; never a real key
PAYLOAD = ('{"user":"ada.lovelace@example.com","items":["sku-10001","sku-10002"],"v":42}' * 2)[:100]
PAYLOAD_B = PAYLOAD.encode()
GOAL = 10.0


def _flip(value: Any, at: int) -> Any:
    """``value`` with one character / byte changed at index ``at`` (negative = from end)."""
    if isinstance(value, str):
        c = value[at]
        repl = "A" if c != "A" else "B"
        i = at % len(value)
        return value[:i] + repl + value[i + 1 :]
    b = bytearray(value)
    b[at] ^= 0x01
    return bytes(b)


def _rejects(fn: Callable[[Any], Any], value: Any) -> bool:
    try:
        return fn(value) is None
    except Exception:
        return True


def build() -> dict[str, tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """Per variant: a label, the one-operation function, and its sanity check."""
    import itsdangerous
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    import ferrosession as fs

    mac = fs.MessageAuthentication(KEY)
    mac_w, mac_r = mac.transform_write, mac.transform_read
    mac_core = mac._core
    core_w, core_r = mac_core.write, mac_core.read
    enc = fs.Encrypt(KEY)
    enc_w, enc_r = enc.transform_write, enc.transform_read
    enc_core = enc._core
    ecore_w, ecore_r = enc_core.write, enc_core.read
    ts = itsdangerous.TimestampSigner(KEY)
    signer = itsdangerous.Signer(KEY)
    fernet = Fernet(base64.urlsafe_b64encode(KEY))
    aesgcm = AESGCM(KEY)
    urandom = os.urandom
    new_hmac, compare = hmac.new, hmac.compare_digest
    sha256 = hashlib.sha256

    def hmac_sign(data: bytes) -> bytes:
        return data + b"/" + new_hmac(KEY, data, sha256).hexdigest().encode()

    def hmac_verify(signed: bytes) -> Optional[bytes]:
        data, _, tag = signed.rpartition(b"/")
        good = new_hmac(KEY, data, sha256).hexdigest().encode()
        return data if compare(good, tag) else None

    def gcm_seal(data: bytes) -> bytes:
        nonce = urandom(12)
        return nonce + aesgcm.encrypt(nonce, data, None)

    def gcm_open(sealed: bytes) -> bytes:
        return aesgcm.decrypt(sealed[:12], sealed[12:], None)

    p, pb = PAYLOAD, PAYLOAD_B

    def check(
        name: str, write: Callable[[Any], Any], read: Callable[[Any], Any], src: Any, at: int
    ) -> Callable[[], Any]:
        def run_check() -> Any:
            wire = write(src)
            if read(wire) != src:
                raise h.SanityError(f"{name}: the round trip did not return the payload")
            if not _rejects(read, _flip(wire, at)):
                raise h.SanityError(f"{name}: a tampered value was accepted")
            if write(src) == wire and name.startswith(("encrypt", "fernet", "aesgcm")):
                raise h.SanityError(f"{name}: two encryptions gave the same value (no nonce?)")
            return wire

        return run_check

    def core_read(value: str) -> Optional[str]:
        opened = core_r(value)
        return None if opened is None else opened[0]

    def ecore_read(value: str) -> Optional[str]:
        opened = ecore_r(value)
        return None if opened is None else opened[0]

    def fs_matches_hmac() -> Any:
        wire = mac_w(p)
        if wire.encode() != hmac_sign(pb):
            raise h.SanityError(f"ferrosession's signature is not HMAC-SHA256: {wire!r}")
        return check("sign/ferrosession", mac_w, mac_r, p, -5)()

    def enc_hides() -> Any:
        wire = check("encrypt/ferrosession", enc_w, enc_r, p, -5)()
        if "lovelace" in wire or "lovelace" in base64.urlsafe_b64decode(wire + "==").decode(
            "latin-1"
        ):
            raise h.SanityError("encrypt/ferrosession: the payload shows in the ciphertext")
        return wire

    return {
        "sign/ferrosession": (
            "ferrosession MessageAuthentication (transform_write/read)",
            lambda: mac_r(mac_w(p)),
            fs_matches_hmac,
        ),
        "sign/ferrosession-core": (
            "ferrosession _core Transform write/read (private, raw)",
            lambda: core_r(core_w(p)),
            check("sign/ferrosession-core", core_w, core_read, p, -5),
        ),
        "sign/itsdangerous-timestamp": (
            "itsdangerous TimestampSigner",
            lambda: ts.unsign(ts.sign(pb)),
            check("sign/itsdangerous-timestamp", ts.sign, ts.unsign, pb, -5),
        ),
        "sign/itsdangerous-signer": (
            "itsdangerous Signer",
            lambda: signer.unsign(signer.sign(pb)),
            check("sign/itsdangerous-signer", signer.sign, signer.unsign, pb, -5),
        ),
        "sign/hmac": (
            "hmac.new + compare_digest (stdlib)",
            lambda: hmac_verify(hmac_sign(pb)),
            check("sign/hmac", hmac_sign, hmac_verify, pb, -5),
        ),
        "encrypt/ferrosession": (
            "ferrosession Encrypt (transform_write/read)",
            lambda: enc_r(enc_w(p)),
            enc_hides,
        ),
        "encrypt/ferrosession-core": (
            "ferrosession _core Transform write/read (private, raw)",
            lambda: ecore_r(ecore_w(p)),
            check("encrypt/ferrosession-core", ecore_w, ecore_read, p, -5),
        ),
        "encrypt/fernet": (
            "cryptography Fernet",
            lambda: fernet.decrypt(fernet.encrypt(pb)),
            check("fernet", fernet.encrypt, fernet.decrypt, pb, -5),
        ),
        "encrypt/aesgcm": (
            "cryptography AESGCM (+ os.urandom nonce)",
            lambda: gcm_open(gcm_seal(pb)),
            check("aesgcm", gcm_seal, gcm_open, pb, -5),
        ),
    }


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    variants_def = build()
    sizes: dict[str, int] = {}
    for key, (_, _, sanity) in variants_def.items():
        wire = sanity()
        sizes[key] = len(wire)
    progress.note("sanity checks passed: " + ", ".join(f"{k} {n} B" for k, n in sizes.items()))
    variants = {k: h.Variant(k, h.call_batch(op)) for k, (_, op, _) in variants_def.items()}
    rounds = await h.measure_args(variants, args, progress)
    q = {k: h.quantiles(v.samples) for k, v in variants.items()}
    out: dict[str, Any] = {}
    for key, (label, _, _) in variants_def.items():
        kind = key.split("/", 1)[0]
        ref = "sign/itsdangerous-timestamp" if kind == "sign" else "encrypt/fernet"
        spread = h.ratio_spread(variants[ref].samples, variants[key].samples)
        out[key] = {
            "label": label,
            "per_op_us": q[key],
            "ops_per_s": 1e6 / q[key]["median"],
            "wire_bytes": sizes[key],
            "speedup_vs": ref,
            "speedup": q[ref]["median"] / q[key]["median"],
            "speedup_paired": spread,
            "batch_calls": variants[key].n,
        }
    goal_key = "sign/ferrosession"
    goal = {
        "name": "sign + verify ≥ 10x itsdangerous TimestampSigner",
        "variant": goal_key,
        "speedup": out[goal_key]["speedup"],
        "speedup_paired": out[goal_key]["speedup_paired"],
        "goal": GOAL,
        "met": out[goal_key]["speedup"] >= GOAL,
        "raw_core_speedup": out["sign/ferrosession-core"]["speedup"],
    }

    return h.result(
        "primitives",
        args,
        unit="microseconds per operation (wrap + unwrap)",
        packages=["itsdangerous", "cryptography"],
        rounds=rounds,
        environment_extra={"openssl": _openssl()},
        settings={"payload_bytes": len(PAYLOAD_B), "key_bytes": len(KEY)},
        results=out,
        goal=goal,
    )


def _openssl() -> Optional[str]:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())
    except Exception:
        return None


def table(result: dict[str, Any]) -> str:
    rows = []
    for key, e in result["results"].items():
        q, sp = e["per_op_us"], e["speedup_paired"]
        ref = "TimestampSigner" if e["speedup_vs"].startswith("sign") else "Fernet"
        rows.append(
            [
                f"{key.split('/', 1)[0]}: {e['label']}",
                f"{q['median']:.3f}",
                f"{q['p25']:.3f} to {q['p75']:.3f}",
                f"{e['ops_per_s']:,.0f}",
                str(e["wire_bytes"]),
                f"{e['speedup']:.1f}x {ref} ({sp['p25']:.1f} to {sp['p75']:.1f})",
            ]
        )
    header = ["100-byte payload, wrap + unwrap", "µs", "p25 to p75", "ops/s", "wire B", "speed"]
    g = result["goal"]
    env = result["environment"]
    pk = env["packages"]
    foot = (
        f"\nGoal: {g['name']}: {g['speedup']:.1f}x (paired p25 to p75 "
        f"{g['speedup_paired']['p25']:.1f} to {g['speedup_paired']['p75']:.1f}; raw _core "
        f"{g['raw_core_speedup']:.1f}x): {'met' if g['met'] else '**not met**'}.\n"
        f"Medians of {result['settings']['rounds']} interleaved rounds. Python {env['python']}, "
        f"ferrosession {pk['ferrosession']} ({env['ferrosession_build_profile']}), "
        f"itsdangerous {pk['itsdangerous']}, cryptography {pk['cryptography']} "
        f"({env['openssl']}); {env['nproc']} CPU(s): {env['cpu']}."
    )
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args("primitives", __doc__, argv, budget=40, quick_budget=3)
    return h.run_and_report(
        "primitives", args, run, table, lambda result: bool(result["goal"]["met"])
    )


if __name__ == "__main__":
    sys.exit(main())
