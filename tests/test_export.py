"""``symflow export``: torch.export programs that load without symflow and equal the model.

The must-show round trip: programs exported from real (tiny) training runs are loaded with plain
``torch.export.load`` in a Python process that never imports symflow, evaluated there on fresh
inputs of several batch sizes, and compared with the model to 1e-12 in float64; the exported
vector field is integrated with :func:`symflow.integrators.solve`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import symflow
from symflow.cli.main import main
from symflow.exporting import ExportExistsError
from symflow.integrators import solve

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny training run per exportable learner (seconds each)."""
    d = tmp_path_factory.mktemp("runs")
    data = d / "ho.h5"
    quiet = ["--quiet"]
    assert main(["simulate", "harmonic_oscillator", "--n", "8", "--t-end", "2", "--n-obs", "11",
                 "-o", str(data), *quiet]) == 0  # fmt: skip
    out = {"data": data}
    for model in ("hnn", "mlp"):
        run = out[f"node_{model}"] = d / f"node_{model}"
        assert main(["train", "node", "--data", str(data), "--out", str(run), "--model", model,
                     "--steps", "2", "--width", "8", "--batch-size", "2", "--window", "3",
                     *quiet]) == 0  # fmt: skip
    out["sympflow"] = d / "sympflow"
    assert main(["train", "sympflow", "--system", "harmonic_oscillator", "--dt", "0.5", "--energy-max", "0.5",
                 "--collocation", "16", "--lbfgs-points", "16", "--lbfgs-iterations", "1", "--no-progress",
                 "--horizon", "1", "--energy-horizon", "2", "--eval-samples", "2", "--layers", "2",
                 "--width", "4", "--no-plots", "--steps", "2",
                 "--out", str(out["sympflow"])]) == 0  # fmt: skip
    out["cnf"] = d / "cnf"
    assert main(["train", "cnf", "--steps", "1", "--train-size", "32", "--test-size", "16", "--no-plots",
                 "-o", str(out["cnf"]), "--dtype", "float64", "--method", "rk4", "--dt", "0.5",
                 "--hidden", "8,8"]) == 0  # fmt: skip
    return out


# The consumer: a process that knows nothing of symflow. It evaluates every program on the saved
# inputs and records which modules it imported.
CONSUMER = textwrap.dedent(
    """
    import json, sys
    import torch
    jobs = json.loads(sys.argv[1])
    results = {}
    for name, job in jobs.items():
        extra = {"symflow_metadata.json": ""}
        program = torch.export.load(job["file"], extra_files=extra).module()
        inputs = torch.load(job["inputs"], weights_only=True)
        outputs = [program(*batch) for batch in inputs]
        results[name] = {"outputs": outputs, "metadata": extra["symflow_metadata.json"]}
    torch.save({k: v["outputs"] for k, v in results.items()}, sys.argv[2])
    imported = any(m == "symflow" or m.startswith("symflow.") for m in sys.modules)
    metadata = {k: v["metadata"] for k, v in results.items()}
    print(json.dumps({"symflow_imported": imported, "metadata": metadata}))
    """
)


def _inputs(signature: list[dict], dim: int, dt: float | None, g: torch.Generator) -> list[tuple]:
    batches = []
    for b in (1, 3, 50):  # the traced batch was 4: other sizes exercise the dynamic dimension
        args = []
        for arg in signature:
            if arg["name"] == "t":
                args.append(torch.rand(b, generator=g) * (dt if dt else 1.0))
            else:
                args.append(torch.randn(b, dim, generator=g))
        batches.append(tuple(args))
    return batches


def _references(kind: str, run: Path) -> dict:
    """The model's own computation of every program, from the run directory."""
    if kind.startswith("node"):
        from symflow.discovery.training import load_node

        m = load_node(run)
        refs = {"field": lambda t, y: m(t, y)}
        if hasattr(m, "hamiltonian"):
            refs["hamiltonian"] = m.hamiltonian

            def grad_h(y):
                u = y.clone().requires_grad_()
                return torch.autograd.grad(m.hamiltonian(u).sum(), u)[0]

            refs["grad_h"] = grad_h
        return refs
    if kind == "sympflow":
        from symflow.learners import load_model

        m = load_model(run)
        return {"step": lambda x: m(m.dt, x), "flow": lambda t, x: m(t, x)}
    m = symflow.load_cnf(run)
    return {"log_prob": lambda x: m.log_prob(x), "field": lambda t, y: m.field(t, y)}


def test_exported_programs_load_without_symflow_and_equal_the_model(runs, tmp_path):
    kinds = ("node_hnn", "node_mlp", "sympflow", "cnf")
    g = torch.Generator().manual_seed(1)
    jobs, inputs, metas = {}, {}, {}
    for kind in kinds:
        result = symflow.export(runs[kind], tmp_path / f"{kind}.pt2")
        meta = metas[kind] = json.loads((tmp_path / f"{kind}.json").read_text())
        assert meta == result.metadata
        for name, prog in meta["programs"].items():
            key = f"{kind}/{name}"
            inputs[key] = _inputs(prog["inputs"], meta["state"]["dim"], meta["dt"], g)
            torch.save(inputs[key], tmp_path / f"{kind}.{name}.inputs.pt")
            jobs[key] = {
                "file": str(tmp_path / prog["file"]),
                "inputs": str(tmp_path / f"{kind}.{name}.inputs.pt"),
            }
    # One consumer process for all programs (starting Python with torch is the slow part).
    done = subprocess.run(
        [sys.executable, "-I", "-c", CONSUMER, json.dumps(jobs), str(tmp_path / "out.pt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["symflow_imported"] is False
    outputs = torch.load(tmp_path / "out.pt", weights_only=True)
    for kind in kinds:
        meta = metas[kind]
        refs = _references(kind, runs[kind])
        assert set(refs) == set(meta["programs"])
        for name in meta["programs"]:
            key = f"{kind}/{name}"
            assert json.loads(report["metadata"][key]) == meta  # every archive carries the metadata
            for args, got in zip(inputs[key], outputs[key], strict=True):
                want = refs[name](*args).detach()
                assert got.dtype == torch.float64 and got.shape == want.shape
                torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_exported_field_integrates_with_solve_like_the_model(runs, tmp_path):
    symflow.export(runs["node_hnn"], tmp_path / "hnn.pt2")
    field = torch.export.load(tmp_path / "hnn.pt2").module()
    from symflow.discovery.training import load_node

    model = load_node(runs["node_hnn"])
    y0 = torch.tensor([[1.0, 0.0], [0.3, -0.5], [0.0, 0.8]])
    ts = torch.linspace(0, 2, 5)
    # Fixed steps: the same arithmetic. Adaptive steps: round-off-level differences in f may move a
    # step-size decision, so the solutions agree to the tolerance asked for, not to round-off.
    for method, opts, atol in (("rk4", {"dt": 0.05}, 1e-12), ("dopri5", {"rtol": 1e-9, "atol": 1e-11}, 1e-9)):
        exported = solve(lambda t, y: field(t.expand(y.shape[:-1]), y), y0, ts, method, **opts)
        reference = solve(model, y0, ts, method, **opts)
        torch.testing.assert_close(exported.ys, reference.ys, rtol=0, atol=atol)
    # ∇H and H are the learned system's: f = J∇H, and H is conserved along the exported flow.
    grad_h = torch.export.load(tmp_path / "hnn.grad_h.pt2").module()
    hamiltonian = torch.export.load(tmp_path / "hnn.hamiltonian.pt2").module()
    g = grad_h(y0)
    torch.testing.assert_close(
        field(torch.zeros(3), y0), torch.cat([g[:, 1:], -g[:, :1]], -1), rtol=0, atol=1e-14
    )
    sol = solve(lambda t, y: field(t.expand(y.shape[:-1]), y), y0, ts, "gl6", dt=0.05)
    energy = hamiltonian(sol.ys.reshape(-1, 2)).reshape(3, -1)
    assert float((energy - energy[:, :1]).abs().max().detach()) < 1e-10


def test_a_pipeline_loop_of_the_exported_step_reproduces_the_flow_map(runs, tmp_path):
    symflow.export(runs["sympflow"], tmp_path / "step.pt2")
    meta = json.loads((tmp_path / "step.json").read_text())
    step = torch.export.load(tmp_path / "step.pt2").module()
    from symflow.learners import load_model

    model = load_model(runs["sympflow"])
    x = torch.tensor([[0.5, 0.0], [0.0, -0.7]])
    states = [x]
    for _ in range(8):
        states.append(step(states[-1]))
    ts = meta["dt"] * torch.arange(9, dtype=torch.float64)
    torch.testing.assert_close(torch.stack(states, 1), model.rollout(x, ts), rtol=0, atol=1e-12)
    assert meta["dt"] == model.dt == 0.5
    assert meta["state"]["names"] == ["q1", "p1"] and meta["dtype"] == "float64"
    assert meta["system"]["name"] == "harmonic_oscillator"


def test_metadata_names_system_and_hashes_the_training_file(runs, tmp_path):
    import hashlib

    result = symflow.export(runs["node_hnn"], tmp_path / "m.pt2")
    meta = result.metadata
    assert meta["system"]["name"] == "harmonic_oscillator"
    want = hashlib.sha256(Path(runs["data"]).read_bytes()).hexdigest()
    assert meta["training_data"]["file_sha256"] == want
    assert meta["programs"]["field"]["signature"] == "field(t (B,), y (B, 2)) -> (B, 2)"
    assert set(result.programs) == {"field", "hamiltonian", "grad_h"}


def test_export_refuses_to_replace_files_and_bad_inputs(runs, tmp_path):
    symflow.export(runs["node_mlp"], tmp_path / "m.pt2")
    before = (tmp_path / "m.pt2").read_bytes()
    with pytest.raises(ExportExistsError, match="overwrite"):
        symflow.export(runs["node_mlp"], tmp_path / "m.pt2")
    assert (tmp_path / "m.pt2").read_bytes() == before
    symflow.export(runs["node_mlp"], tmp_path / "m.pt2", overwrite=True)
    with pytest.raises(symflow.integrators.InvalidArgumentError, match="pt2"):
        symflow.export(runs["node_mlp"], tmp_path / "m.onnx")
    from symflow.training import RunDirectoryError

    with pytest.raises(RunDirectoryError, match=r"config\.json"):
        symflow.export(tmp_path, tmp_path / "x.pt2")
    assert not list(tmp_path.glob(".*partial*"))  # no temporary file left behind


def test_cli_export_writes_programs_and_reports_mistakes_in_one_line(runs, tmp_path, capsys):
    out = tmp_path / "f.pt2"
    assert main(["export", str(runs["node_mlp"]), "-o", str(out)]) == 0
    assert "field" in capsys.readouterr().out and out.exists() and (tmp_path / "f.json").exists()
    assert main(["export", str(runs["node_mlp"]), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "Traceback" not in err
    assert main(["export", str(tmp_path / "missing"), "-o", str(tmp_path / "g.pt2")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_python_dash_m_symflow_is_the_symflow_command():
    done = subprocess.run(
        [sys.executable, "-m", "symflow", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: symflow") and "export" in done.stdout and "simulate" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "symflow", "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
