"""Continuous normalizing flows: trace cost, Hutchinson vs exact training, two moons, vs torchdiffeq.

1. **Cost per right-hand-side evaluation** of the augmented CNF field at D = 16 (TimeMLP 64-64-64,
   batch 256, float32): exact trace (16 batched vector–Jacobian products) vs Hutchinson (one), both
   as a plain evaluation (sampling, likelihood) and as evaluation + backward (training). Target:
   Hutchinson ≥ 3× cheaper.
2. **Trained NLL, Hutchinson vs exact trace** on the 16-D Gaussian mixture (4 components, spread
   0.25, std 0.5): the same network, seed, minibatches and steps, trained by maximum likelihood with
   each estimator (Rademacher probes); held-out NLL of both with the exact trace on the same 5000
   points (paired difference). Target: within 0.02 nats.
3. **Two moons**: maximum likelihood (exact trace, dopri5, backprop) against flow matching of the
   same network; held-out NLL of both with the exact trace. Targets: MLE training under 5 minutes of
   CPU, NLL within 0.1 nats of flow matching. Writes ``results/cnf_two_moons.png``.
4. **Time per training iteration** (forward + backward, Hutchinson trace, same probe) against a CNF
   of the same architecture and trace estimator integrated by ``torchdiffeq.odeint_adjoint`` (dopri5,
   seminorm adjoint) and ``torchdiffeq.odeint`` (backprop), at D = 2 and D = 16, adaptive (rtol =
   atol = 1e-5) and fixed-step RK4 3/8 rule (20 steps, identical work). Ratio = torchdiffeq time / symflow
   time (> 1: symflow faster).

``python -m benchmarks.bench_cnf [--quick] [--iterations]`` (``--iterations``: part 4 on the untrained
field only, to ``results/cnf_iterations.json``). Everything runs on one thread in float32.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.harness import RESULTS, interleaved, load_note, write_result
from symflow.cnf import (
    CNF,
    AugmentedField,
    TimeMLP,
    draw_probe,
    evaluate_nll,
    get_dataset,
    normalisation,
    train_cnf,
    train_flow_matching,
)
from symflow.cnf.plots import plot_density_panels
from symflow.integrators import AdjointOptions

F32 = torch.float32


# --- 1. cost per right-hand-side evaluation --------------------------------------------------------


def rhs_cost(dim: int = 16, batch: int = 256, repeat: int = 20) -> list[dict]:
    torch.manual_seed(0)
    field = TimeMLP(dim, (64, 64, 64))
    y = torch.randn(batch, dim)
    t = torch.tensor(0.5)
    exact = AugmentedField(field, dim, trace="exact")
    hutch = AugmentedField(field, dim, trace="hutchinson")
    z_exact = exact.pack(y)
    z_hutch = hutch.pack(y, probe=draw_probe((batch, dim), "rademacher"))
    rows = []
    for mode in ("evaluate", "evaluate + backward"):

        def case(aug, z, mode=mode):
            def run():
                if mode == "evaluate":
                    with torch.no_grad():
                        aug(t, z)
                else:
                    aug(t, z).sum().backward()

            return run

        res = interleaved(
            {"exact": case(exact, z_exact), "hutchinson": case(hutch, z_hutch)}, repeat=repeat, warmup=3
        )
        rows.append(
            {
                "case": f"RHS cost D={dim} B={batch}: {mode}",
                "exact ms": 1e3 * res["exact"]["median"],
                "hutchinson ms": 1e3 * res["hutchinson"]["median"],
                "exact / hutchinson": res["exact"]["median"] / res["hutchinson"]["median"],
            }
        )
        print(rows[-1], flush=True)
    return rows


def product_cost(dim: int = 2, batch: int = 256, repeat: int = 50) -> list[dict]:
    """The Hutchinson augmented field three ways, same field and probe: symflow's forward-mode
    product (``TimeMLP.jacobian_product``), the reverse-mode ``torch.func.vjp`` path (what any other
    field gets) and FFJORD's ``torch.autograd.grad(create_graph=True)`` (the torchdiffeq CNF below).
    Median ms per evaluation without a graph (a forward solve under the adjoint) and with the
    backward pass of training (backprop through the solver, or an adjoint stage's product)."""
    torch.manual_seed(0)
    field = TimeMLP(dim, (64, 64, 64))
    y = torch.randn(batch, dim)
    t = torch.tensor(0.5)
    probe = draw_probe((batch, dim), "rademacher", generator=torch.Generator().manual_seed(0))
    forward_mode = AugmentedField(field, dim, trace="hutchinson")
    reverse_mode = AugmentedField(lambda tt, yy: field(tt, yy), dim, trace="hutchinson")
    peer = TorchdiffeqCNF(field, dim)
    peer.probe = probe
    z_ours = forward_mode.pack(y, probe=probe)
    z_peer = torch.cat([y, torch.zeros(batch, 1)], -1)
    rows = []
    for mode in ("evaluate", "evaluate + backward"):

        def case(fn, z, mode=mode):
            def run():
                if mode == "evaluate":
                    with torch.no_grad():
                        fn(t, z)
                else:
                    zz = z.clone().requires_grad_(True)
                    fn(t, zz).sum().backward()

            return run

        res = interleaved(
            {
                "forward mode": case(forward_mode, z_ours),
                "torch.func.vjp": case(reverse_mode, z_ours),
                "autograd.grad": case(peer, z_peer),
            },
            repeat=repeat,
            warmup=5,
        )
        ms = {k: 1e3 * v["median"] for k, v in res.items()}
        rows.append(
            {
                "case": f"Hutchinson field D={dim} B={batch}: {mode}",
                "forward-mode ms": ms["forward mode"],
                "torch.func.vjp ms": ms["torch.func.vjp"],
                "autograd.grad (FFJORD) ms": ms["autograd.grad"],
                "autograd.grad / forward mode": ms["autograd.grad"] / ms["forward mode"],
            }
        )
        print(rows[-1], flush=True)
    return rows


# --- 2. trained NLL with each estimator ------------------------------------------------------------------


def mixture_problem(n_train: int = 20_000, n_test: int = 5_000):
    ds = get_dataset("gaussian_mixture", dim=16, components=4, spread=0.25, std=0.5)
    return ds, ds.sample(n_train, seed=1, dtype=F32), ds.sample(n_test, seed=2, dtype=F32)


def trace_training(steps: int = 400, batch_size: int = 512, lr: float = 5e-3) -> list[dict]:
    ds, train, test = mixture_problem()
    loc, scale = normalisation(train)
    values, seconds, cpu = {}, {}, {}
    for trace in ("hutchinson", "exact"):
        torch.manual_seed(0)
        cnf = CNF(
            TimeMLP(16, (64, 64, 64)),
            16,
            trace=trace,
            probe="rademacher",
            rtol=1e-4,
            atol=1e-4,
            loc=loc,
            scale=scale,
        )
        c0 = time.process_time()
        fit = train_cnf(cnf, train, steps=steps, batch_size=batch_size, lr=lr, progress=False, log_every=50)
        cpu[trace] = time.process_time() - c0
        seconds[trace] = fit.seconds
        with torch.no_grad():
            values[trace] = torch.cat([cnf.log_prob(c, trace="exact") for c in test.split(1000)]).double()
        print(trace, "NLL", float(-values[trace].mean()), "in", seconds[trace], "s", flush=True)
    diff = values["exact"] - values["hutchinson"]  # NLL(hutchinson) − NLL(exact), per test point
    entropy = float(-ds.log_prob(test.double()).mean())
    row = {
        "case": f"16-D mixture, {steps} steps, batch {batch_size}: NLL(Hutchinson-) − NLL(exact-trained)",
        "NLL exact-trained": float(-values["exact"].mean()),
        "NLL Hutchinson-trained": float(-values["hutchinson"].mean()),
        "value": float(diff.mean()),
        "paired stderr": float(diff.std() / diff.numel() ** 0.5),
        "exact NLL of data": entropy,
        "train s exact": seconds["exact"],
        "train s hutchinson": seconds["hutchinson"],
        "cpu s exact": cpu["exact"],
        "cpu s hutchinson": cpu["hutchinson"],
    }
    print(row, flush=True)
    return [row]


# --- 3. two moons ---------------------------------------------------------------------------------


def moons_problem(n_train: int = 20_000, n_test: int = 5_000):
    ds = get_dataset("two_moons")
    return ds, ds.sample(n_train, seed=1, dtype=F32), ds.sample(n_test, seed=2, dtype=F32)


def _train_moons(objective: str, steps: int, train: torch.Tensor, dt: float | None = None):
    """A two-moons flow trained by ``"mle"`` (maximum likelihood, exact trace, dopri5 at rtol 1e-5, or
    with ``dt`` fixed-step RK4) or ``"flow_matching"``; returns ``(cnf, fit, cpu seconds)``."""
    loc, scale = normalisation(train)
    torch.manual_seed(0)
    solver = {"rtol": 1e-5, "atol": 1e-5} if dt is None else {"method": "rk4", "dt": dt}
    cnf = CNF(TimeMLP(2, (64, 64, 64)), 2, trace="exact", loc=loc, scale=scale, **solver)
    c0 = time.process_time()
    if objective == "mle":
        fit = train_cnf(cnf, train, steps=steps, batch_size=256, lr=1e-2, progress=False, log_every=100)
    else:
        fit = train_flow_matching(cnf, train, steps=steps, batch_size=256, lr=2e-3, progress=False)
    return cnf, fit, time.process_time() - c0


def two_moons(
    mle_steps: int = 900, fm_steps: int = 20_000, figure: Path | None = None
) -> tuple[list[dict], dict[str, CNF]]:
    """Rows of results and the two trained flows."""
    ds, train, test = moons_problem()
    out, models = {}, {}
    for objective in ("mle", "flow_matching"):
        cnf, fit, cpu = _train_moons(objective, mle_steps if objective == "mle" else fm_steps, train)
        nll, se = evaluate_nll(cnf, test)
        out[objective] = {"nll": nll, "se": se, "wall": fit.seconds, "cpu": cpu, "steps": fit.steps}
        models[objective] = cnf
        print(objective, out[objective], flush=True)
    entropy = float(-ds.log_prob(test.double()).mean())
    rows = [
        {
            "case": f"two moons, {label}",
            "held-out NLL": out[key]["nll"],
            "stderr": out[key]["se"],
            "exact NLL of data": entropy,
            "steps": out[key]["steps"],
            "train wall s": out[key]["wall"],
            "train cpu s": out[key]["cpu"],
        }
        for key, label in (
            ("mle", "maximum likelihood (exact trace, dopri5)"),
            ("flow_matching", "flow matching"),
        )
    ]
    rows.append(
        {
            "case": "two moons: NLL(maximum likelihood) − NLL(flow matching)",
            "value": out["mle"]["nll"] - out["flow_matching"]["nll"],
        }
    )
    if figure is not None:
        _moons_figure(figure, ds, test, models, out)
    return rows, models


def _moons_figure(path: Path, ds, test, models: dict[str, CNF], out: dict) -> None:
    """Two rows (MLE, flow matching) of data / samples / model density / exact density."""
    import tempfile

    from matplotlib.figure import Figure
    from matplotlib.image import imread

    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for key, cnf in models.items():
            with torch.no_grad():
                samples = cnf.sample(5000, generator=torch.Generator().manual_seed(1))
            p = plot_density_panels(
                Path(tmp) / f"{key}.png",
                data=test,
                samples=samples,
                bounds=ds.bounds,
                model_log_prob=lambda x, cnf=cnf: cnf.log_prob(x.float()),
                exact_log_prob=ds.log_prob,
                title=f"{key}: held-out NLL {out[key]['nll']:.3f} nats",
            )
            parts.append(imread(p))
    fig = Figure(figsize=(parts[0].shape[1] / 110, sum(p.shape[0] for p in parts) / 110), dpi=110)
    for i, img in enumerate(parts):
        ax = fig.add_subplot(len(parts), 1, i + 1)
        ax.imshow(img)
        ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


# --- 4. time per training iteration vs torchdiffeq -------------------------------------------------------


class TorchdiffeqCNF(torch.nn.Module):
    """The same augmented field for torchdiffeq: state ``[y, ℓ]``, probe held as an attribute.

    torchdiffeq always evaluates the whole batch in order, so the probe can stay outside the state.
    The divergence is FFJORD's estimator as a torchdiffeq user writes it (Grathwohl et al. 2019,
    ``divergence_approx``): ``εᵀ ∂f/∂y`` from ``torch.autograd.grad(..., create_graph=True)`` under
    ``torch.enable_grad()``, times ``ε``.
    """

    def __init__(self, field: torch.nn.Module, dim: int) -> None:
        super().__init__()
        self.field = field
        self.dim = dim
        self.probe: torch.Tensor | None = None
        self.nfev = 0

    def forward(self, t, z):
        self.nfev += 1
        with torch.enable_grad():
            y = z[..., : self.dim]
            if not y.requires_grad:  # odeint_adjoint's forward solve runs without a graph
                y = y.detach().requires_grad_(True)
            f = self.field(t, y)
            (row,) = torch.autograd.grad(f, y, self.probe, create_graph=True)
            div = (row * self.probe).sum(-1)
        return torch.cat([f, -div.unsqueeze(-1)], -1)


def _our_iteration(cnf: CNF, x: torch.Tensor, probe: torch.Tensor):
    """One symflow training iteration (forward + backward of the NLL) → (parameter grads, mean nfev)."""

    def run():
        cnf.field.zero_grad()
        terms = cnf.density_terms(x, probe=probe)
        (-terms.log_prob.mean()).backward()
        return [p.grad.clone() for p in cnf.field.parameters()], terms.nfev.float().mean()

    return run


def _peer_iteration(peer: TorchdiffeqCNF, x: torch.Tensor, method: str, tol: dict, adjoint: bool):
    """The same iteration through torchdiffeq (``odeint_adjoint`` with the seminorm, or ``odeint``)
    → (parameter grads, evaluations of the augmented field)."""
    import torchdiffeq

    field, dim = peer.field, peer.dim
    ts = torch.tensor([1.0, 0.0], dtype=x.dtype)

    def run():
        field.zero_grad()
        peer.nfev = 0
        z0 = torch.cat([x, torch.zeros(x.shape[0], 1, dtype=x.dtype)], -1)
        adaptive = "rtol" in tol
        kw = {"rtol": tol["rtol"], "atol": tol["atol"]} if adaptive else {"options": {"step_size": tol["dt"]}}
        if adjoint:
            adj_kw = {"adjoint_params": tuple(field.parameters())}
            if adaptive:
                adj_kw["adjoint_options"] = {"norm": "seminorm"}
            else:
                adj_kw["adjoint_options"] = {"step_size": tol["dt"]}
                adj_kw["adjoint_method"] = method
            zt = torchdiffeq.odeint_adjoint(peer, z0, ts, method=method, **kw, **adj_kw)[-1]
        else:
            zt = torchdiffeq.odeint(peer, z0, ts, method=method, **kw)[-1]
        y, ell = zt[:, :dim], zt[:, dim]
        logp = -0.5 * y.pow(2).sum(-1) - 0.5 * dim * torch.log(torch.tensor(2 * torch.pi)) - ell
        (-logp.mean()).backward()
        return [p.grad.clone() for p in field.parameters()], peer.nfev

    return run


def iteration_time(
    dim: int,
    batch: int = 256,
    repeat: int = 5,
    *,
    field: torch.nn.Module | None = None,
    x: torch.Tensor | None = None,
    tag: str = "untrained field",
    adaptive_only: bool = False,
    compiled: bool = False,
    per_sample: bool = False,
) -> list[dict]:
    """Forward + backward of the NLL, symflow vs torchdiffeq, on ``x`` (default: ``1.5·N(0, I)``).

    The CNFs are in training mode, so with the default ``norm="auto"`` their adaptive solves share
    one step size across the batch, as torchdiffeq's do. ``compiled`` adds the tuned rows: the same
    RK4 solves with ``compile=True`` (the forward solve as compiled chunks of steps, the adjoint's
    backward step compiled; "compile s" is the first call's extra time over a timed call, reported
    apart from the per-iteration time), and the adjoint with only its backward step compiled
    (``AdjointOptions(compile=True)``); with ``adaptive_only`` the compiled dopri5 rows instead.
    ``per_sample`` adds the dopri5 rows with ``norm="sample"`` (every sample steps on its own, as in
    eval mode)."""
    torch.manual_seed(0)
    if field is None:
        field = TimeMLP(dim, (64, 64, 64))
    if x is None:
        x = torch.randn(batch, dim) * 1.5
    batch = x.shape[0]
    probe = draw_probe((batch, dim), "rademacher", generator=torch.Generator().manual_seed(0))
    peer = TorchdiffeqCNF(field, dim)
    peer.probe = probe
    rows = []
    rk = {"dt": 0.05}
    dp = {"rtol": 1e-5, "atol": 1e-5}
    configs = [
        ("dopri5 rtol=atol=1e-5, adjoint (seminorm)", "dopri5", dp, True, False),
        ("dopri5 rtol=atol=1e-5, backprop", "dopri5", dp, False, False),
        ("RK4 (3/8 rule) 20 steps, adjoint", "rk38", rk, True, False),
        ("RK4 (3/8 rule) 20 steps, backprop", "rk38", rk, False, False),
    ]
    if per_sample:
        alone = {**dp, "norm": "sample"}
        configs += [
            ("dopri5 rtol=atol=1e-5, adjoint (seminorm), norm='sample'", "dopri5", alone, True, False),
            ("dopri5 rtol=atol=1e-5, backprop, norm='sample'", "dopri5", alone, False, False),
        ]
    if compiled and adaptive_only:
        tuned = "dopri5 rtol=atol=1e-5, {}, compile=True (tuned)"
        configs += [
            (tuned.format("adjoint"), "dopri5", dp, True, True),
            (tuned.format("backprop"), "dopri5", dp, False, True),
        ]
    if compiled and not adaptive_only:
        backward_only = AdjointOptions(seminorm=True, compile=True)
        configs += [
            ("RK4 (3/8 rule) 20 steps, adjoint, compile=True (tuned)", "rk38", rk, True, True),
            (
                "RK4 (3/8 rule) 20 steps, adjoint, backward step compiled (tuned)",
                "rk38",
                rk,
                backward_only,
                False,
            ),
        ]
    if adaptive_only:
        configs = [c for c in configs if c[1] == "dopri5"]
    for label, method, tol, adjoint, compile_ in configs:
        ours_cnf = CNF(
            field, dim, trace="hutchinson", method=method, adjoint=adjoint, compile=compile_, **tol
        )
        tol = {k: v for k, v in tol.items() if k != "norm"}  # torchdiffeq's norm is always the batch's

        ours = _our_iteration(ours_cnf, x, probe)
        peer_method = "rk4" if method == "rk38" else method  # torchdiffeq's "rk4" is the 3/8 rule

        first = None
        if compile_ or isinstance(adjoint, AdjointOptions):
            t0 = time.perf_counter()
            ours()
            first = time.perf_counter() - t0
        theirs = _peer_iteration(peer, x, peer_method, tol, adjoint is not False)

        res = interleaved({"symflow": ours, "torchdiffeq": theirs}, repeat=repeat, warmup=1)
        (g1, nfev_ours), (g2, _) = ours(), theirs()
        peer.nfev = 0
        theirs()
        nfev_peer = peer.nfev
        diff = max(float((a - b).norm() / b.norm()) for a, b in zip(g1, g2) if b.norm() > 0)
        rows.append(
            {
                "case": f"training iteration D={dim} B={batch}, {tag}: {label}",
                "ours": res["symflow"]["median"],
                "peer": res["torchdiffeq"]["median"],
                "ratio": res["torchdiffeq"]["median"] / res["symflow"]["median"],
                "forward nfev ours (mean/sample)": float(nfev_ours),
                "nfev peer (fwd+bwd)": nfev_peer,
                "gradient rel. diff": diff,
            }
        )
        if first is not None:
            rows[-1]["compile s"] = first - res["symflow"]["median"]
        print(rows[-1], flush=True)
    return rows


def trained_iteration(cnf: CNF, repeat: int = 5, compiled: bool = False) -> list[dict]:
    """Training-iteration time with the field trained on two moons (a realistic number of steps):
    the default (steps shared by the batch while training) and per-sample steps (``norm="sample"``),
    and with ``compiled`` the default compiled."""
    _, _, test = moons_problem()
    y = ((test[:256] - cnf.loc) / cnf.scale).detach()  # the flow's own normalised coordinates
    return iteration_time(
        2,
        repeat=repeat,
        field=cnf.field,
        x=y,
        tag="field trained on two moons",
        adaptive_only=True,
        compiled=compiled,
        per_sample=True,
    )


def trained_work_precision(
    cnf: CNF,
    rtols: tuple[float, ...] = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5),
    repeat: int = 3,
    mode: str = "adjoint",
) -> list[dict]:
    """Work–precision of the training iteration on the trained field (dopri5, rtol = atol swept; the
    gradient by the seminorm adjoint, or with ``mode="backprop"`` by backpropagation through the solver's
    steps on both sides): relative error of ∂L/∂θ against a float64 reference (symflow, backprop, rtol 1e-10)
    vs seconds per iteration, for symflow with its default (steps shared by the batch while training)
    and with per-sample steps (``norm="sample"``), and for torchdiffeq. Solvers with different error
    estimators and controllers reach different errors at
    one rtol; the ``equal error`` rows compare them where their accuracy is the same (symflow's time
    interpolated log-log at torchdiffeq's error)."""
    if mode not in ("adjoint", "backprop"):
        raise ValueError(f"mode must be 'adjoint' or 'backprop', not {mode!r}")
    import copy

    from benchmarks.bench_integrators import _at_error

    _, _, test = moons_problem()
    x = ((test[:256] - cnf.loc) / cnf.scale).detach()
    field = cnf.field
    probe = draw_probe((x.shape[0], 2), "rademacher", generator=torch.Generator().manual_seed(0))
    reference = CNF(copy.deepcopy(field).double(), 2, trace="hutchinson", rtol=1e-10, atol=1e-10)
    ref = torch.cat([g.reshape(-1) for g in _our_iteration(reference, x.double(), probe.double())()[0]])

    def error(grads) -> float:
        flat = torch.cat([g.reshape(-1) for g in grads]).double()
        return float((flat - ref).norm() / ref.norm())

    peer = TorchdiffeqCNF(field, 2)
    peer.probe = probe
    libraries = ("symflow (default: shared steps)", "symflow, norm='sample'", "torchdiffeq")
    adjoint = mode == "adjoint"
    rows = []
    for rtol in rtols:
        tol = {"rtol": rtol, "atol": rtol}
        fns = {
            libraries[0]: _our_iteration(CNF(field, 2, trace="hutchinson", adjoint=adjoint, **tol), x, probe),
            libraries[1]: _our_iteration(
                CNF(field, 2, trace="hutchinson", adjoint=adjoint, norm="sample", **tol), x, probe
            ),
            libraries[2]: _peer_iteration(peer, x, "dopri5", tol, adjoint=adjoint),
        }
        res = interleaved(fns, repeat=repeat, warmup=1)
        for name, fn in fns.items():
            rows.append(
                {
                    "case": f"work-precision ({mode}), {name}, rtol=atol={rtol:g}",
                    "mode": mode,
                    "library": name,
                    "rtol": rtol,
                    "seconds": res[name]["median"],
                    "grad err": error(fn()[0]),
                }
            )
            print(rows[-1], flush=True)
    peer_rows = [r for r in rows if r.get("library") == libraries[2]]
    for ours in libraries[:2]:
        curve = [(r["grad err"], r["seconds"], 1.0) for r in rows if r.get("library") == ours]
        for r in peer_rows:
            try:
                t, _ = _at_error(curve, r["grad err"])
            except RuntimeError:  # the peer's error lies outside symflow's sweep
                continue
            rows.append(
                {
                    "case": (
                        f"equal error {r['grad err']:.2g} ({mode}, torchdiffeq rtol {r['rtol']:g}): {ours}"
                    ),
                    "ours": t,
                    "peer": r["seconds"],
                    "ratio": r["seconds"] / t,
                }
            )
            print(rows[-1], flush=True)
    return rows


def plot_trained_work_precision(rows: list[dict], path: Path, mode: str = "adjoint") -> None:
    """Log–log gradient error against seconds per iteration, one line per library / step mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    names = list(dict.fromkeys(r["library"] for r in rows if "library" in r))
    for name, color in zip(names, ("C0", "C2", "C1")):
        sel = [r for r in rows if r.get("library") == name]
        ax.loglog([r["seconds"] for r in sel], [r["grad err"] for r in sel], "-o", color=color, label=name)
        for r in sel:
            ax.annotate(f"{r['rtol']:g}", (r["seconds"], r["grad err"]), fontsize=6, alpha=0.7)
    how = "adjoint backward, seminorm" if mode == "adjoint" else "backprop through the steps"
    ax.set_xlabel(f"seconds per training iteration (forward + {how})")
    ax.set_ylabel("relative error of ∂L/∂θ (vs float64, rtol 1e-10)")
    ax.set_title("CNF trained on two moons, D = 2, B = 256, dopri5, float32, 1 thread", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def iterations_only(repeat: int = 5) -> None:
    """Only the untrained-field training-iteration rows (D = 2 and 16), to ``results/cnf_iterations.json``."""
    rows = iteration_time(2, repeat=repeat, compiled=True) + iteration_time(16, repeat=repeat, compiled=True)
    write_result(
        "cnf_iterations",
        {
            "description": (
                "CNF training iteration (forward + backward of the NLL, Hutchinson trace, same probe), "
                "TimeMLP 64-64-64, B = 256, float32, 1 thread, untrained field; symflow CNF vs a "
                "torchdiffeq CNF with the same field and estimator (odeint_adjoint with the seminorm, "
                "or odeint), interleaved in one process; ratio = torchdiffeq / symflow (> 1: symflow "
                "faster). Both step the batch together (symflow's default norm='auto' in training mode). "
                "RK4 rows do identical work on both sides. " + load_note()
            ),
            "rows": rows,
        },
    )


def trained_only(quick: bool = False) -> None:
    """The trained-field training-iteration rows alone (``results/cnf_trained_iterations.json``): the
    two-moons flow trained by maximum likelihood as in :func:`two_moons`, then timed."""
    import os

    _, train, _ = moons_problem()
    # Trained with fixed-step RK4, not the adaptive solver under test: 900 float32 Adam steps amplify the
    # last bits of every solve, so a field trained adaptively changes whenever the adaptive attempt's
    # rounding does (torchdiffeq's forward evaluations on it moved from 44 to 38 after one such change),
    # and the same-rtol rows then compare the solvers on another problem.
    cnf, _, _ = _train_moons("mle", 5 if quick else 900, train, dt=0.05)
    rows = trained_iteration(cnf, repeat=1 if quick else 5, compiled=not quick)
    sweep = (1e-3, 1e-5) if quick else (1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
    wp = trained_work_precision(cnf, rtols=sweep, repeat=1 if quick else 5)
    wp_bp = trained_work_precision(cnf, rtols=sweep, repeat=1 if quick else 5, mode="backprop")
    if quick:
        return
    plot_trained_work_precision(wp, RESULTS / "cnf_trained_work_precision.png")
    plot_trained_work_precision(wp_bp, RESULTS / "cnf_trained_work_precision_backprop.png", mode="backprop")
    rows += wp + wp_bp
    write_result(
        "cnf_trained_iterations",
        {
            "description": (
                "CNF training iteration on a field trained on two moons (maximum likelihood, exact trace, "
                "900 steps with fixed-step RK4, dt = 0.05, so that the field does not depend on the "
                "adaptive solver's rounding), B = 256 held-out points in the flow's normalised "
                "coordinates, Hutchinson trace with the same probe on both sides, float32, 1 thread; "
                "symflow CNF vs a torchdiffeq CNF with the same field and estimator (odeint_adjoint with "
                "the seminorm, or odeint), interleaved in one process; ratio = torchdiffeq / symflow. "
                "The CNFs are in training mode: rows without a norm use the default, norm='auto', which "
                "shares one step size across the batch while training, as torchdiffeq does; "
                "norm='sample' rows step each sample on its own (what eval mode does); "
                "'(tuned)' rows add compile=True ('compile s': the first call's extra time). "
                f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f}."
            ),
            "rows": rows,
        },
    )


def products_only(repeat: int = 50) -> None:
    """Only the cost-per-evaluation rows (``results/cnf_products.json``): the three Hutchinson
    products, and the exact vs Hutchinson trace at D = 16."""
    rows = product_cost(2, repeat=repeat) + product_cost(16, repeat=repeat) + rhs_cost(repeat=repeat)
    write_result(
        "cnf_products",
        {
            "description": (
                "One evaluation of the CNF's augmented field with the Hutchinson trace, TimeMLP 64-64-64, "
                "B = 256, float32, 1 thread, same field and probe, interleaved: symflow's forward-mode "
                "product (TimeMLP.jacobian_product, the default for a TimeMLP), the reverse-mode "
                "torch.func.vjp path (any other field) and FFJORD's autograd.grad(create_graph=True) "
                "as the torchdiffeq CNF computes it. Median ms; 'evaluate' without a graph (the forward "
                "solve of an adjoint), 'evaluate + backward' with the backward pass of training. "
                "'RHS cost' rows: the exact trace (D forward-mode products) vs Hutchinson (one) at D = 16."
            ),
            "rows": rows,
        },
    )


def main(
    quick: bool = False, iterations: bool = False, trained: bool = False, products: bool = False
) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(F32)
    if products:
        products_only(repeat=5 if quick else 50)
        return
    if iterations:
        iterations_only(repeat=1 if quick else 5)
        return
    if trained:
        trained_only(quick)
        return
    if quick:
        rhs_cost(repeat=3)
        iteration_time(2, batch=64, repeat=1)
        _, models = two_moons(mle_steps=5, fm_steps=50)
        trained_iteration(models["mle"], repeat=1)
        trace_training(steps=3, batch_size=64)
        return
    rows = rhs_cost()
    rows += iteration_time(2, compiled=True)
    rows += iteration_time(16, compiled=True)
    moons, models = two_moons(figure=RESULTS / "cnf_two_moons.png")
    rows += moons
    rows += trained_iteration(models["mle"])
    rows += trace_training()
    write_result(
        "cnf",
        {
            "description": (
                "CNF benchmarks (benchmarks/bench_cnf.py), 1 thread, float32. RHS cost: median ms per "
                "augmented-field evaluation, TimeMLP 64-64-64. Training iterations: forward + backward of "
                "the NLL with the Hutchinson trace and the same probe; 'ours'/'peer' in seconds, ratio = "
                "torchdiffeq / symflow (> 1: symflow faster); both step the whole batch together while "
                "training (symflow's default norm='auto'), with different controllers, so adaptive "
                "nfev differ (rk4 rows do identical work). "
                "Training rows: held-out NLL with the exact trace, 5000 points; 'value' rows are "
                "differences in nats. Wall times were taken on a shared machine; CPU seconds are this "
                "process's own."
            ),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--iterations", action="store_true", help="only the untrained training-iteration rows")
    ap.add_argument("--trained", action="store_true", help="only the trained-field training-iteration rows")
    ap.add_argument("--products", action="store_true", help="only the trace-product cost rows")
    args = ap.parse_args()
    main(args.quick, args.iterations, args.trained, args.products)
