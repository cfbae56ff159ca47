"""IMS core benchmarks: ESP protect+verify throughput, and registrations per second.

    .venv/bin/python benchmarks/bench_ims.py esp [--seconds 2]
    .venv/bin/python benchmarks/bench_ims.py register [--ues 200] [--concurrency 20]
    .venv/bin/python benchmarks/bench_ims.py all --write-doc

``esp``: packets per second through EspSender.protect + EspReceiver.unprotect
for 1 KiB payloads, for every alg/ealg pair (one core, no sockets).

``register``: a whole home network in one process (HSS over Diameter, CSCFs
over mutual TLS, the P-CSCF with its ESP transport) and N UEs registering with
IMS AKA + sec-agree (two REGISTERs, a 401, MAR/SAR, SA set-up), ``concurrency``
at a time; prints registrations/s and latency percentiles.  Everything runs on
127.0.0.1 with free ports and temporary state.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench_ims:begin -->", "<!-- bench_ims:end -->"


def bench_esp(seconds: float) -> list[tuple[str, str, float]]:
    from presence_ims.security.esp import (
        EspReceiver,
        EspSender,
        SecurityAssociation,
        derive_keys,
    )

    ik, ck = os.urandom(16), os.urandom(16)
    payload = os.urandom(1024)
    out = []
    for alg in ("hmac-sha-1-96", "hmac-md5-96"):
        for ealg in ("aes-cbc", "des-ede3-cbc", "null"):
            auth_key, enc_key = derive_keys(ik, ck, alg, ealg)
            sa = SecurityAssociation(4242, alg, ealg, auth_key, enc_key, ("127.0.0.1", 1), ("127.0.0.1", 2), None)
            sender, receiver = EspSender(sa), EspReceiver(sa)
            n = 0
            start = time.perf_counter()
            deadline = start + seconds
            while True:
                for _ in range(200):
                    packet = sender.protect(payload)
                    receiver.unprotect(packet, 0.0)
                n += 200
                if time.perf_counter() >= deadline:
                    break
            rate = n / (time.perf_counter() - start)
            out.append((alg, ealg, rate))
            print(f"ESP {alg:14} {ealg:13} {rate:9,.0f} packets/s (protect+verify, 1 KiB)")
    return out


async def _register(ues: int, concurrency: int) -> tuple[float, list[float]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from netharness import running_network  # type: ignore[import-not-found]
    from presence_ims import logging as plog

    plog.configure(os.environ.get("BENCH_LOG", "error"))
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        roles = ("hss", "ps", "scscf", "icscf", "pcscf")
        async with running_network(Path(tmp), roles=roles) as net:
            sem = asyncio.Semaphore(concurrency)
            users = [("alice" if i % 2 == 0 else "bob") for i in range(ues)]

            async def one(user: str) -> None:
                async with sem:
                    ue = await net.ue(user, register=False, subscribe_reg=False)
                    t0 = time.perf_counter()
                    try:
                        await ue.register()
                    except Exception:
                        print(f"UE {user} port-c {ue.esp.port_c} ESP drops {dict(ue.esp.drops)}")
                        raise
                    finally:
                        await ue.stop(deregister=False)
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            results = await asyncio.gather(*(one(u) for u in users), return_exceptions=True)
            elapsed = time.perf_counter() - start
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                pcscf = net.nodes["pcscf"]
                print(f"{len(failures)} registrations failed: {failures[:3]}; P-CSCF ESP drops "
                      f"{dict(pcscf.esp.drops)}, stats {pcscf.endpoint.stats.snapshot()}")
    return ues / elapsed, latencies


def bench_register(ues: int, concurrency: int) -> tuple[float, float, float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rate, lat = asyncio.run(_register(ues, concurrency))
    lat.sort()
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(f"IMS AKA + sec-agree registrations: {rate:,.0f}/s ({ues} UEs, {concurrency} at a time), "
          f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return rate, p50, p99


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    except OSError:
        model = "?"
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


LOAD_AT_START = " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_doc(esp: list[tuple[str, str, float]], reg: tuple[float, float, float], ues: int, conc: int) -> None:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        "## IMS core",
        "",
        f"Measured {date} on {machine()} with `benchmarks/bench_ims.py all --write-doc` "
        f"(load average {LOAD_AT_START} at the start: other work shares this machine).",
        "",
        "ESP protect + verify, 1 KiB payloads, one core, no sockets:",
        "",
        "| integrity | encryption | packets/s |",
        "|---|---|---|",
        *[f"| {a} | {e} | {r:,.0f} |" for a, e, r in esp],
        "",
        f"Registrations with IMS AKA + sec-agree through P-CSCF, I-CSCF, S-CSCF and HSS "
        f"(Diameter and SIP over mutual TLS, one process): **{reg[0]:,.0f} registrations/s** "
        f"({ues} UEs, {conc} at a time), latency p50 {reg[1]:.1f} ms, p99 {reg[2]:.1f} ms. "
        "Each registration is two REGISTER transactions through three CSCFs, UAR x2, MAR, SAR, "
        "a Milenage vector and the SA set-up on both sides.",
        END,
    ]
    block = "\n".join(lines)
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["esp", "register", "all"])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--ues", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--write-doc", action="store_true")
    a = p.parse_args()
    esp = bench_esp(a.seconds) if a.what in ("esp", "all") else []
    reg = bench_register(a.ues, a.concurrency) if a.what in ("register", "all") else (0.0, 0.0, 0.0)
    if a.write_doc:
        if a.what != "all":
            p.error("--write-doc needs 'all'")
        write_doc(esp, reg, a.ues, a.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
