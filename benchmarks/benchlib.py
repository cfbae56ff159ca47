"""What the SIPp benchmarks share: the ramp rule, the machine they ran on, SIPp's statistics.

Imported by ``bench_echo_sipp.py`` and ``bench_ps.py`` (run as scripts from this
folder, which Python puts first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import datetime
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

FAIL_LIMIT = 0.001  # more than 0.1% failed calls ends a ramp
RATE_SHORTFALL = 0.95  # SIPp reaching less than 95% of the offered rate ends it too


@dataclass
class SippStep:
    """One step of a ramp: ``rate`` calls/s offered, what SIPp counted."""

    rate: int
    calls: int
    successful: int
    failed: int
    seconds: float
    achieved: float
    """Successful calls per second over the step."""

    @property
    def failed_ratio(self) -> float:
        total = self.successful + self.failed
        return self.failed / total if total else 1.0

    @property
    def passed(self) -> bool:
        return self.failed_ratio <= FAIL_LIMIT and self.achieved >= RATE_SHORTFALL * self.rate


def machine(*, kamailio: bool = False) -> dict[str, str]:
    """Date, Python, CPU model and count, SIPp's version (and Kamailio's), uvloop's."""
    info = {"python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)"):
                info[key.strip()] = value.strip()
    versions = [("sipp", ["sipp", "-v"], r"SIPp (v[0-9][0-9.]*[0-9])")]
    if kamailio:
        versions.append(("kamailio", ["kamailio", "-v"], r"kamailio (\d[\d.]*)"))
    for name, command, pattern in versions:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
            m = re.search(pattern, out)
            if m:
                info[name] = m.group(1)
    with contextlib.suppress(ImportError):
        import uvloop

        info["uvloop"] = str(getattr(uvloop, "__version__", "?"))
    return info


def sipp_elapsed(text: str) -> float:
    """Seconds of a SIPp statistics time (``HH:MM:SS:mmm...``)."""
    h, m, s = text.split(":")[:3]
    return int(h) * 3600 + int(m) * 60 + float(s)


def sipp_counts(stat: Path, wall: float) -> tuple[int, int, float]:
    """(successful calls, failed calls, seconds) from the last row of SIPp's
    ``-trace_stat`` file; (0, 0, ``wall``) when SIPp left no statistics row."""
    successful = failed = 0
    elapsed = wall
    if stat.exists():
        rows = [r for r in stat.read_text().splitlines() if r.strip()]
        if len(rows) >= 2:
            head, last = rows[0].split(";"), rows[-1].split(";")
            col = {name: i for i, name in enumerate(head)}
            successful = int(last[col["SuccessfulCall(C)"]])
            failed = int(last[col["FailedCall(C)"]])
            # StartTime and CurrentTime are "date<TAB>time<TAB>epoch"; ElapsedTime has whole seconds
            span = (float(last[col["CurrentTime"]].split("\t")[-1])
                    - float(last[col["StartTime"]].split("\t")[-1]))
            elapsed = span if span > 0 else sipp_elapsed(last[col["ElapsedTime(C)"]])
    return successful, failed, elapsed
