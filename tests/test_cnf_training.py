"""CNF training: the NLL falls, runs resume bit for bit, and ``symflow train cnf`` end to end."""

from __future__ import annotations

import json

import pytest
import torch

from symflow.cli.main import main
from symflow.cnf import CNF, TimeMLP, evaluate_nll, get_dataset, normalisation, train_cnf

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def moons(n, seed):
    return get_dataset("two_moons").sample(n, seed=seed, dtype=torch.float32)


def small_cnf(train, trace="exact", adjoint=False):
    torch.manual_seed(0)
    loc, scale = normalisation(train)
    return CNF(
        TimeMLP(2, (32, 32)).float(),
        2,
        trace=trace,
        rtol=1e-4,
        atol=1e-4,
        adjoint=adjoint,
        loc=loc,
        scale=scale,
    )


@pytest.mark.parametrize(("trace", "adjoint"), [("exact", False), ("hutchinson", True)])
def test_maximum_likelihood_training_lowers_the_held_out_nll(trace, adjoint):
    train, test = moons(4000, 1), moons(1000, 2)
    cnf = small_cnf(train, trace, adjoint)
    before, se = evaluate_nll(cnf, test)
    fit = train_cnf(cnf, train, steps=40, batch_size=128, lr=1e-2, progress=False, log_every=5)
    after, _ = evaluate_nll(cnf, test)
    assert after < before - 0.15, (before, after, se)
    assert fit.steps == 40 and len(fit.history) == 8
    assert all(r["nfev"] > 0 for r in fit.history)


def test_regularised_training_reports_kinetic_and_jacobian_terms():
    train = moons(1000, 1)
    cnf = small_cnf(train, "hutchinson")
    fit = train_cnf(
        cnf, train, steps=3, batch_size=64, kinetic=0.1, jacobian=0.1, progress=False, log_every=1
    )
    last = fit.history[-1]
    assert last["kinetic"] > 0 and last["jacobian"] > 0
    assert last["loss"] == pytest.approx(
        last["nll"] + 0.1 * last["kinetic"] + 0.1 * last["jacobian"], rel=1e-5
    )


def test_interrupted_training_resumes_bit_for_bit(tmp_path):
    """Hutchinson probes and minibatches come from a checkpointed generator: 3 + 3 steps == 6 steps."""
    train = moons(1000, 1)
    kw = dict(batch_size=64, progress=False, cosine=False, checkpoint_every=3)
    straight = small_cnf(train, "hutchinson")
    train_cnf(straight, train, steps=6, run=tmp_path / "a", **kw)
    train_cnf(small_cnf(train, "hutchinson"), train, steps=3, run=tmp_path / "b", **kw)
    resumed = small_cnf(train, "hutchinson")
    fit = train_cnf(resumed, train, steps=6, run=tmp_path / "b", resume=True, **kw)
    assert fit.steps == 6
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def cli(tmp_path, *extra, out="run"):
    args = [
        "train",
        "cnf",
        "--data",
        "two_moons",
        "--steps",
        "4",
        "--hidden",
        "16,16",
        "--train-size",
        "1000",
        "--test-size",
        "300",
        "--samples",
        "300",
        "--checkpoint-every",
        "2",
        "--out",
        str(tmp_path / out),
        *extra,
    ]
    return main(args)


def test_cli_trains_and_writes_summary_checkpoints_metrics_and_figure(tmp_path, capsys):
    assert cli(tmp_path, "--trace", "hutchinson", "--adjoint") == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["trace"] == "hutchinson"
    assert summary["held_out_nll"] > summary["held_out_exact_nll"] - 0.05  # the exact density is the floor
    assert (run / "density.png").stat().st_size > 10_000
    assert (run / "checkpoints" / "manifest.json").exists()
    assert json.loads((run / "config.json").read_text())["cli"]["adjoint"] is True
    assert "held_out_nll" in capsys.readouterr().out
    # Resuming with more steps continues from step 4.
    assert cli(tmp_path, "--trace", "hutchinson", "--adjoint", "--resume", "--steps", "6") == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6


def test_cli_step_norm_is_recorded_kept_on_resume_and_reloaded(tmp_path, capsys):
    from symflow.exporting import load_cnf

    assert cli(tmp_path, "--trace", "hutchinson", "--norm", "sample", "--no-plots") == 0
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["cli"]["norm"] == "sample" and config["cnf"]["norm"] == "sample"
    assert load_cnf(run).norm == "sample"
    # The norm steers training: resuming with another one (here the default) is refused, naming it.
    assert cli(tmp_path, "--trace", "hutchinson", "--resume", "--steps", "6", "--no-plots") == 1
    assert "norm='sample' (now 'auto')" in capsys.readouterr().err


def test_cli_default_norm_trains_with_shared_steps_and_the_flow_loads_for_evaluation(tmp_path):
    from symflow.exporting import load_cnf

    assert cli(tmp_path, "--trace", "hutchinson", "--no-plots") == 0
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["cnf"]["norm"] == "auto"
    flow = load_cnf(run)
    assert flow.norm == "auto" and not flow.training and flow.step_norm == "sample"


def test_train_cnf_trains_in_training_mode_even_from_an_evaluated_flow():
    torch.manual_seed(0)
    cnf = CNF(TimeMLP(2, (8,)), 2, trace="hutchinson", rtol=1e-3, atol=1e-3).eval()
    seen = []
    original = cnf.density_terms

    def spy(*args, **kwargs):
        seen.append((torch.is_grad_enabled(), cnf.step_norm))
        return original(*args, **kwargs)

    cnf.density_terms = spy
    data = torch.randn(64, 2)
    train_cnf(cnf, data, steps=2, batch_size=16, validation=data, validate_every=1, progress=False)
    # Two training steps with shared steps, two validations (no graph) with per-sample steps.
    assert sorted(seen) == [(False, "sample")] * 2 + [(True, "batch")] * 2
    assert cnf.training


def test_cli_flow_matching_objective_runs(tmp_path):
    assert cli(tmp_path, "--objective", "flow_matching", "--no-plots", "--data-param", "noise=0.05") == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["objective"] == "flow_matching" and "figure" not in summary


def test_cli_reports_user_mistakes_in_one_line(tmp_path, capsys):
    assert cli(tmp_path, "--data", "two_moon") == 1
    assert "did you mean 'two_moons'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert cli(tmp_path, "--no-plots") == 0
    assert cli(tmp_path, "--no-plots") == 1  # exists without --resume
    assert "--resume" in capsys.readouterr().err
    assert cli(tmp_path, "--no-plots", "--resume", "--trace", "hutchinson") == 1  # settings changed
    assert "trace" in capsys.readouterr().err
    assert cli(tmp_path, "--data-param", "noize=0.1", out="other") == 1
    assert "noise" in capsys.readouterr().err
    assert cli(tmp_path, "--activation", "relu", out="other") == 1
    assert "unknown activation 'relu'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
