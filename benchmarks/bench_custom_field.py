"""A user's Hamiltonian (``from_hamiltonian``) against the catalogue's hand-derived field, per orbit-step.

The same Hénon–Heiles ``H`` is integrated three ways, interleaved in one process (1 thread, float64):

* ``builtin`` — ``vector_field(get_system("henon_heiles"))``: the hand-written gradient (the peer);
* ``custom, torch.func.grad`` — the field as it was before this change: ``J∇H`` by
  ``torch.func.grad`` on every call (and ``grad`` of the derived ``T``/``V`` for splittings);
* ``custom, eager`` — ``vector_field(from_hamiltonian(H, 2), compile=False)``: one plain reverse pass
  per call outside ``torch.func`` transforms (what the default does until it compiles);
* ``custom, compiled`` — ``compile=True``: the gradient through ``torch.compile``, what
  ``compile="auto"`` switches to after 20000 evaluations (its one-off compile time is reported
  separately, measured on the first call).

Rows: seconds per 1000 orbit-steps of each (wall and this process's CPU time; the machine may be shared)
and the slowdown against the builtin (``ratio`` = custom / builtin; 1 = as fast as hand-written).
Run: ``python -m benchmarks.bench_custom_field [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import symflow.systems as S
from benchmarks.harness import interleaved, write_result
from symflow.integrators import SplitField, solve
from symflow.systems.fields import gradient_of


class FuncGradField:
    """The autodiff field as it was: ``torch.func.grad`` on every call, split halves likewise."""

    def __init__(self, system: S.HamiltonianSystem) -> None:
        self.system, n = system, system.dof
        T, V = system.kinetic, system.potential
        self.split = SplitField(
            drift=lambda t, p: gradient_of(T, p), kick=lambda t, q: -gradient_of(V, q), n=n
        )

    def __call__(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = gradient_of(self.system.energy, y)
        n = self.system.dof
        return torch.cat([g[..., n:], -g[..., :n]], dim=-1)


def cpu_and_wall(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    orbits, steps, repeat = (32, 20, 2) if args.quick else (128, 100, 3)

    hh = S.get_system("henon_heiles")
    custom = S.from_hamiltonian(hh.hamiltonian, hh.dof, name="custom_henon_heiles")
    assert custom.separable, custom
    fields = {
        "builtin": S.vector_field(hh),
        "custom, torch.func.grad": FuncGradField(custom),
        "custom, eager": S.vector_field(custom, compile=False),
        "custom, compiled": S.vector_field(custom, compile=True),
    }
    y0 = hh.sample(orbits, seed=0, energy=0.1)
    rows = []
    cases = [
        ("gl6", {"dt": 0.1}),
        ("rk4", {"dt": 0.1}),
        ("verlet", {"dt": 0.1}),
        ("dopri5", {"rtol": 1e-8, "atol": 1e-10}),
    ]
    for method, opts in cases:
        span = steps * opts.get("dt", 0.1)
        ts = torch.linspace(0.0, span, 11, dtype=torch.float64)

        def run(f, method=method, opts=opts, ts=ts):
            return solve(f, y0, ts, method, **opts)

        compile_s = cpu_and_wall(lambda: run(fields["custom, compiled"]))[1]  # first call compiles
        ref = run(fields["builtin"]).ys
        for f in fields.values():
            torch.testing.assert_close(run(f).ys, ref, rtol=1e-9, atol=1e-10)  # the same solution
        nsteps = int(run(fields["builtin"]).stats["steps"].float().mean())
        orbit_steps = orbits * nsteps / 1000.0
        wall = interleaved({k: (lambda f=f: run(f)) for k, f in fields.items()}, repeat=repeat)
        cpu = {k: min(cpu_and_wall(lambda f=f: run(f))[0] for _ in range(repeat)) for k, f in fields.items()}
        base_wall = wall["builtin"]["median"] / orbit_steps
        base_cpu = cpu["builtin"] / orbit_steps
        for name in fields:
            w = wall[name]["median"] / orbit_steps
            c = cpu[name] / orbit_steps
            rows.append(
                {
                    "case": f"{method}, {orbits} orbits × {nsteps} steps: {name}",
                    "s per 1000 orbit-steps": w,
                    "cpu s per 1000 orbit-steps": c,
                    "ratio": w / base_wall,
                    "cpu ratio": c / base_cpu,
                    "compile s": compile_s if name == "custom, compiled" else "",
                }
            )
            print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    write_result(
        "custom_field",
        {
            "description": (
                "A from_hamiltonian Hénon–Heiles H against the catalogue's hand-derived field, interleaved, "
                f"{args.threads} thread(s), float64, E = 0.1. 'ratio' = time per orbit-step / the builtin's "
                "(1 = as fast as a hand-written gradient); 'torch.func.grad' is the field before this "
                "change, 'eager' the default until it compiles, 'compiled' what compile='auto' switches to "
                "after 20000 calls (compile time paid once, column 'compile s'). "
                f"Load average after: {load:.1f}."
            ),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
