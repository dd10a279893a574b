"""A torchdiffeq script that runs unchanged on symflow: only the import differs.

This is the classic torchdiffeq demo in miniature — learn the spiral dy/dt = A y³ from one observed
trajectory with a neural ODE trained through ``odeint_adjoint`` — written exactly as one writes it
for torchdiffeq (time-first outputs, ``method``/``options``, ``adjoint_params``, a ``callback_step``
on the field). The backend is chosen by the one import at the top of ``run``; everything after it is
torchdiffeq code.

    python examples/torchdiffeq_migration.py              # symflow, 300 iterations
    python examples/torchdiffeq_migration.py --quick      # a few seconds
    python examples/torchdiffeq_migration.py --compare    # also run it on torchdiffeq, if installed

Prints the loss every few iterations and, with ``--compare``, both backends' losses side by side and
their forward solutions' difference at the start (the same data and initial weights).
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch


def run(backend: str, iterations: int, seed: int = 0) -> list[float]:
    if backend == "symflow":
        from symflow.integrators import odeint, odeint_adjoint  # ← the only change
    else:
        from torchdiffeq import odeint, odeint_adjoint

    # ---- from here on: an ordinary torchdiffeq script ------------------------------------------------
    torch.manual_seed(seed)
    true_y0 = torch.tensor([[2.0, 0.0]])
    t = torch.linspace(0.0, 10.0, 200)
    true_A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])

    class Lambda(torch.nn.Module):
        def forward(self, t, y):
            return torch.mm(y**3, true_A)

    with torch.no_grad():
        true_y = odeint(Lambda(), true_y0, t, method="dopri5")  # (200, 1, 2): time first

    class ODEFunc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2))
            self.steps = 0

        def forward(self, t, y):
            return self.net(y**3)

        def callback_step(self, t0, y0, dt):  # torchdiffeq's callback: called before every step
            self.steps += 1

    func = ODEFunc()
    optimizer = torch.optim.RMSprop(func.parameters(), lr=1e-3)
    losses = []
    for itr in range(1, iterations + 1):
        idx = torch.randint(0, 190, (20,))
        batch_y0 = true_y[idx]  # (20, 1, 2)
        batch_t = t[:10]
        batch_y = torch.stack([true_y[idx + i] for i in range(10)], dim=0)  # (10, 20, 1, 2)
        optimizer.zero_grad()
        pred_y = odeint_adjoint(
            func,
            batch_y0,
            batch_t,
            rtol=1e-6,
            atol=1e-8,
            method="dopri5",
            adjoint_params=tuple(func.parameters()),
            adjoint_options={"norm": "seminorm"},
        )
        loss = torch.mean(torch.abs(pred_y - batch_y))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if itr % max(1, iterations // 5) == 0:
            with torch.no_grad():
                pred = odeint(func, true_y0, t, method="rk4", options={"step_size": 0.05})
                total = torch.mean(torch.abs(pred - true_y)).item()
            print(
                f"  [{backend}] iter {itr:4d}  batch loss {loss.item():.4f}  full-trajectory loss {total:.4f}"
            )
    print(f"  [{backend}] field steps seen by callback_step: {func.steps}")
    return losses


def main(quick: bool, compare: bool) -> None:
    torch.set_num_threads(1)
    iterations = 15 if quick else 300
    backends = ["symflow"]
    if compare:
        if importlib.util.find_spec("torchdiffeq") is None:
            print("torchdiffeq is not installed: running the symflow backend only")
        else:
            backends.append("torchdiffeq")
    results = {}
    for backend in backends:
        start = time.perf_counter()
        results[backend] = run(backend, iterations)
        print(f"{backend}: {iterations} iterations in {time.perf_counter() - start:.1f} s")
    if len(results) == 2:
        a, b = results["symflow"], results["torchdiffeq"]
        print(f"first-iteration loss: symflow {a[0]:.6f}, torchdiffeq {b[0]:.6f} (same data and weights)")
        print(f"last-iteration loss:  symflow {a[-1]:.6f}, torchdiffeq {b[-1]:.6f}")
    assert all(torch.isfinite(torch.tensor(v)).all() for v in results.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="15 iterations (a few seconds)")
    parser.add_argument("--compare", action="store_true", help="also run the script on torchdiffeq")
    args = parser.parse_args()
    main(args.quick, args.compare)
