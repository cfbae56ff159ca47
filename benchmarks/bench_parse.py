"""Parse + validate + serialize cycles per second of a typical PUBLISH (one core).

    .venv/bin/python benchmarks/bench_parse.py [--runs 7] [--seconds 1.0] [--profile]

A ~900-byte PUBLISH with a PIDF body, as a UE sends it through the P-CSCF
(Via x2, Route, P-Asserted-Identity, P-Charging-Vector ...).  One cycle is
``parse_datagram`` + ``validate_request`` + ``serialize``: what an element pays
before its own logic runs.  Prints the median of several timeit-style runs;
the target is 40,000 cycles/s.  ``--profile`` prints the cProfile of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import json
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

from presence_ims.sip import Request, parse_datagram, validate_request

TARGET = 40_000
DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BEGIN, END = "<!-- bench_parse:begin -->", "<!-- bench_parse:end -->"

PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
    b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@home1.net">\r\n'
    b' <tuple id="a8098a.672364762364"><status><basic>open</basic></status>'
    b"<contact>sip:alice@home1.net</contact></tuple>\r\n"
    b"</presence>\r\n"
)

PUBLISH = (
    b"PUBLISH sip:alice@home1.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pcscf.home1.net:5070;branch=z9hG4bK240f34.1\r\n"
    b"Via: SIP/2.0/UDP [5555::aaa:bbb:ccc:ddd]:1357;comp=sigcomp;branch=z9hG4bKnashds7;"
    b"received=5555::aaa:bbb:ccc:ddd;rport=1357\r\n"
    b"Max-Forwards: 69\r\n"
    b"Route: <sip:scscf1.home1.net;lr>\r\n"
    b"P-Asserted-Identity: \"Alice\" <sip:alice@home1.net>\r\n"
    b"P-Charging-Vector: icid-value=\"AyretyU0dm+6O2IrT5tAFrbHLso=023551024\";orig-ioi=home1.net\r\n"
    b"From: <sip:alice@home1.net>;tag=31415\r\n"
    b"To: <sip:alice@home1.net>\r\n"
    b"Call-ID: b89rjhnedlrfjflslj40a222\r\n"
    b"CSeq: 61 PUBLISH\r\n"
    b"Event: presence\r\n"
    b"Expires: 7200\r\n"
    b"Content-Type: application/pidf+xml\r\n"
    + f"Content-Length: {len(PIDF)}\r\n\r\n".encode()
    + PIDF
)


def cycle(data: bytes = PUBLISH) -> bytes:
    msg = parse_datagram(data)
    assert isinstance(msg, Request)
    validate_request(msg)
    return msg.serialize()


def run(seconds: float) -> float:
    """Cycles per second over one run of about ``seconds``."""
    loops = 1000
    while True:  # calibrate like timeit: a run long enough to measure
        start = time.perf_counter()
        for _ in range(loops):
            cycle()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or loops >= 10_000_000:
            return loops / elapsed
        loops = int(loops * max(2.0, seconds / max(elapsed, 1e-6)))


def write_doc(result: dict[str, object]) -> None:
    """Replace the bench_parse block of docs/performance.md with this run's figures."""
    cpu = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")]
        cpus = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("CPU(s)")]
        cpu = f"{names[0] if names else '?'}, {cpus[0] if cpus else '?'} CPUs"
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = "\n".join(
        [
            BEGIN,
            f"Measured {when} on {cpu}, Python {result['python']}, one core: "
            f"**{result['median_per_s']:,} cycles/s** median of {result['runs']} runs "
            f"({result['us_per_cycle']} us per cycle; min {result['min_per_s']:,}/s, "
            f"max {result['max_per_s']:,}/s) for a {result['message_bytes']}-byte PUBLISH; "
            f"target {TARGET:,}/s: {'met' if int(str(result['median_per_s'])) >= TARGET else 'not met'}.",
            END,
        ]
    )
    text = DOC.read_text() if DOC.exists() else "# Performance\n\n## SIP core\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one run")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--write-doc", action="store_true", help=f"update the block in {DOC}")
    args = parser.parse_args(argv)

    assert cycle() == PUBLISH, "serialize(parse(x)) must give x back for this message"
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20_000):
            cycle()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    run(0.2)  # warm-up
    rates = [run(args.seconds) for _ in range(args.runs)]
    median = statistics.median(rates)
    result = {
        "message_bytes": len(PUBLISH),
        "runs": args.runs,
        "median_per_s": round(median),
        "min_per_s": round(min(rates)),
        "max_per_s": round(max(rates)),
        "us_per_cycle": round(1e6 / median, 2),
        "target_per_s": TARGET,
        "python": platform.python_version(),
    }
    if args.write_doc:
        write_doc(result)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"PUBLISH {len(PUBLISH)} bytes: parse+validate+serialize median {median:,.0f}/s "
            f"({1e6 / median:.1f} us), min {min(rates):,.0f}/s, max {max(rates):,.0f}/s "
            f"over {args.runs} runs; target {TARGET:,}/s: {'met' if median >= TARGET else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
