"""Peak resident memory of one forward+backward solve, in a fresh process (Linux).

``python -m benchmarks.memory_probe STEPS ADJOINT [BATCH WIDTH TIMES]`` prints a JSON line with the
resident set before the solve and its high-water mark during it (kB). ``TIMES`` = 1 makes the field
depend on ``t`` and differentiates the output times as well. The high-water mark is reset
(``/proc/self/clear_refs`` ← 5) right before the solve, so the import of torch does not hide it.
"""

from __future__ import annotations

import json
import re
import sys

import torch


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(key + r":\s+(\d+)", fh.read()).group(1))


def probe(steps: int, adjoint: bool, batch: int = 32, width: int = 32, times: int = 0) -> dict[str, int]:
    from symflow.integrators import solve

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)

    class Field(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, width), torch.nn.Tanh(), torch.nn.Linear(width, 4)
            )

        def forward(self, t, y):
            return self.net(y) * (torch.cos(t).reshape(-1, 1) if times else 1.0)

    f = Field()
    y0 = torch.randn(batch, 4)
    ts = torch.linspace(0, 1.0, 2).requires_grad_(bool(times))
    solve(f, y0, ts, "rk4", dt=0.5, adjoint=adjoint).ys.sum().backward()  # warm up allocators
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status("VmRSS")
    sol = solve(f, y0, ts, "rk4", dt=1.0 / steps, adjoint=adjoint)
    sol.ys.square().sum().backward()
    if times:
        assert ts.grad is not None and torch.isfinite(ts.grad).all()
    return {"steps": steps, "adjoint": adjoint, "before_kb": before, "peak_kb": _status("VmHWM")}


def run(steps: int, adjoint: bool, batch: int = 32, width: int = 32, times: bool = False) -> dict[str, int]:
    """Run :func:`probe` in a fresh interpreter and return its result."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.memory_probe",
            str(steps),
            "1" if adjoint else "0",
            str(batch),
            str(width),
            "1" if times else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
        cwd=root,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(probe(int(args[0]), args[1] == "1", *(int(a) for a in args[2:]))))
