"""Shared benchmark harness: interleaved timing against peers, JSON results, the README table.

Every performance claim in symflow is a *ratio* measured here, with the peer run in the same
process and interleaved with ours (round-robin over repeats), so machine noise hits both alike.
Results go to ``benchmarks/results/<name>.json``; ``python -m benchmarks.harness`` (or any bench
script) regenerates the table in ``benchmarks/README.md`` from all result files.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
TABLE_START = "<!-- results:start -->"
TABLE_END = "<!-- results:end -->"


def sync(device: str | torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    cases: dict[str, Callable[[], object]], *, repeat: int = 5, warmup: int = 1, device: str | None = None
) -> dict[str, dict[str, float]]:
    """Time each case ``repeat`` times, round-robin, after ``warmup`` untimed calls each.

    Returns ``{case: {"median": s, "min": s, "runs": n, "cpu": s}}`` in seconds per call: wall-clock
    median and minimum, and the median CPU time of this process (``time.process_time``), which other
    jobs on a shared machine disturb far less than the wall clock (single-threaded cases).
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        k: {"median": statistics.median(v), "min": min(v), "runs": len(v), "cpu": statistics.median(cpu[k])}
        for k, v in times.items()
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        # Compiled CPU kernels depend on the vector instructions (AVX2 vs AVX-512), and the VMs these
        # runs land on differ between runs: record what this one has.
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_note() -> str:
    """The 1-minute load average against the core count, for a result's description: other jobs on the
    machine move absolute times (interleaved ratios much less)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return "Load average unknown on this platform."
    cores = os.cpu_count() or 1
    busy = " (other jobs running)" if load > cores else ""
    return f"Load average (1 min) at the end: {load:.1f} on {cores} cores{busy}."


def write_result(name: str, payload: dict[str, object]) -> Path:
    """Write ``results/<name>.json`` (with machine info and a timestamp) and refresh the README table.

    ``payload`` must contain ``"rows"``: a list of dicts, each with at least ``case``, ``ours``,
    ``peer`` and ``ratio`` (peer time / our time, > 1 means symflow is faster) or ``value``.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)
    update_readme()
    return path


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def render_table() -> str:
    lines = []
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        m = doc.get("machine", {})
        where = m.get("gpu") or f"CPU ({m.get('threads')} threads)"
        lines.append(f"\n### {doc['benchmark']} — {where}, torch {m.get('torch')}, {doc.get('when', '')}\n")
        if doc.get("description"):
            lines.append(doc["description"] + "\n")
        rows = doc.get("rows", [])
        if not rows:
            continue
        cols = list(dict.fromkeys(k for r in rows for k in r))
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rows:
            lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def update_readme() -> None:
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text:
        text += f"\n{TABLE_START}\n{TABLE_END}\n"
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(head + TABLE_START + "\n" + render_table() + TABLE_END + tail)


if __name__ == "__main__":
    update_readme()
    print(README.read_text())
