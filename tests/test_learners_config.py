"""The learners' configuration dataclasses and the CLI options generated from them; the published
code's training options (collocation time range, gradient clipping, one-cycle, best checkpoint, box)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch

from symflow.cli.config_options import flags_of
from symflow.cli.main import build_parser, main
from symflow.integrators.errors import InvalidArgumentError, UnknownNameError
from symflow.learners import PinnConfig, SympFlowConfig, load_model, train_sympflow
from symflow.learners.optim import AdamThenLBFGS

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = {"sympflow": SympFlowConfig, "pinn": PinnConfig}
TINY = {
    "collocation": 32,
    "lbfgs_points": 64,
    "lbfgs_iterations": 2,
    "validation_points": 64,
    "progress": False,
    "log_every": 1,
}


def _bounded_numeric_fields():
    for learner, cls in CONFIGS.items():
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if meta["kind"] in ("int", "float") and meta["low"] is not None:
                yield learner, f


def _below(meta):
    low = meta["low"]
    return int(low) - 1 if meta["kind"] == "int" else (low if meta["low_open"] else low - 1e-3)


@pytest.mark.parametrize(
    "learner,field", list(_bounded_numeric_fields()), ids=lambda v: v if isinstance(v, str) else v.name
)
def test_every_numeric_option_below_its_range_is_refused_by_the_api_and_the_cli_before_any_work(
    learner, field, tmp_path, capsys
):
    cls = CONFIGS[learner]
    bad = _below(field.metadata)
    with pytest.raises(InvalidArgumentError, match=rf"^{field.name}: expected"):
        cls(**{field.name: bad})
    out = tmp_path / "run"
    flag = flags_of(field)[0]
    code = main(["train", learner, "--system", "harmonic_oscillator", "--out", str(out), flag, str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and f"{flag}: expected" in err and "Traceback" not in err  # the flag typed
    assert len(err.strip().splitlines()) == 2  # the error line and the --debug hint
    assert not out.exists()  # nothing was created: refused before any work


@pytest.mark.parametrize("learner", list(CONFIGS))
def test_cli_options_are_generated_from_the_config_fields_with_the_same_defaults(learner):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    train = sub.choices["train"]
    learner_parser = next(
        a for a in train._actions if hasattr(a, "choices") and isinstance(a.choices, dict)
    ).choices[learner]
    dests = {a.dest: a for a in learner_parser._actions}
    cls = CONFIGS[learner]
    for f in dataclasses.fields(cls):
        assert f.name in dests, f.name
        if f.metadata["kind"] not in ("params", "ranges"):  # mappings: default factories
            assert dests[f.name].default == f.default, f.name
    run_options = {"help", "out", "resume", "overwrite", "threads", "no_progress"}
    assert set(dests) == {f.name for f in dataclasses.fields(cls)} | run_options


def test_a_config_round_trips_through_config_json_and_refuses_unknown_names(tmp_path):
    cfg = SympFlowConfig(system="harmonic_oscillator", box=(-1, 1), collocation_times=(-0.1, 0.5), dt=0.5)
    assert SympFlowConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(UnknownNameError, match="did you mean 'layers'"):
        SympFlowConfig.from_dict({"layer": 3})
    with pytest.raises(InvalidArgumentError, match="not both"):
        SympFlowConfig(system="henon_heiles", data="x.h5")
    with pytest.raises(InvalidArgumentError, match="x0"):
        PinnConfig(kind="ivp", system="harmonic_oscillator")
    with pytest.raises(InvalidArgumentError, match="even count"):
        SympFlowConfig(box=(-1, 1, 2))


def test_onecycle_rises_to_the_peak_at_the_warmup_fraction_and_returns_to_lr_final():
    p = [torch.nn.Parameter(torch.zeros(3))]
    opt = AdamThenLBFGS(p, adam_steps=101, lr=5e-2, lr_final=1e-4, schedule="onecycle", warmup=0.3)
    lrs = [opt.learning_rate(k) for k in range(101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-4)
    assert max(lrs) == pytest.approx(5e-2) and lrs.index(max(lrs)) == 30
    assert all(a <= b for a, b in itertools.pairwise(lrs[:31]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[30:]))
    cosine = AdamThenLBFGS(p, adam_steps=101, lr=1e-2, lr_final=1e-4)
    assert cosine.learning_rate(50) == pytest.approx(1e-3)  # the log-space midpoint
    assert AdamThenLBFGS(p, adam_steps=9, lr=3e-3, schedule="constant").learning_rate(5) == 3e-3


def test_gradient_clipping_bounds_each_adam_step_and_leaves_lbfgs_alone():
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = AdamThenLBFGS([w], adam_steps=1, lr=1e-2, grad_clip=1e-3, lbfgs_iterations=1)
    (1e6 * w).pow(2).sum().backward()
    opt.step()
    assert float(w.grad.norm()) == pytest.approx(1e-3)
    opt.zero_grad()

    def closure():
        return (w - 3).pow(2).sum()

    loss = closure()
    loss.backward()
    unclipped = float(w.grad.norm())
    opt.set_closure(closure, loss)
    opt.step()
    assert unclipped > 1 and float(closure().detach()) < float(loss.detach())  # L-BFGS used the true gradient


def test_collocation_times_range_is_the_one_the_loss_sees(tmp_path, monkeypatch):
    import symflow.learners.training as tr

    seen = []
    original = tr.hamiltonian_matching_loss

    def spy(model, field, t, x0, **kw):
        seen.append(t.detach().clone())
        return original(model, field, t, x0, **kw)

    monkeypatch.setattr(tr, "hamiltonian_matching_loss", spy)
    train_sympflow(
        "harmonic_oscillator",
        dt=0.5,
        layers=1,
        width=4,
        adam_steps=5,
        collocation_times=(-0.1, 0.5),
        evaluate=False,
        **TINY,
    )
    t = torch.cat(seen)
    assert float(t.min()) < 0 and float(t.min()) >= -0.1 and float(t.max()) <= 0.5


def test_box_domain_from_the_cli_one_pair_for_every_coordinate_or_one_per_coordinate(tmp_path, capsys):
    common = ["train", "sympflow", "--system", "henon_heiles", "--steps", "2", "--no-eval", "--layers", "1",
              "--width", "3", "--collocation", "16", "--validation-points", "16",
              "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a"), "--box", "-1", "1"]) == 0
    dom = json.loads((tmp_path / "a" / "config.json").read_text())["domain"]
    assert dom == {"kind": "box", "low": [-1.0] * 4, "high": [1.0] * 4}
    box = ["--box", "-1", "1", "-2", "2", "-0.5", "0.5", "-0.5", "0.5", "--energy-max", "0.1"]
    assert main([*common, "--out", str(tmp_path / "b"), *box]) == 0
    dom = json.loads((tmp_path / "b" / "config.json").read_text())["domain"]
    assert dom["kind"] == "sublevel" and dom["low"] == [-1, -2, -0.5, -0.5] and dom["high"][1] == 2
    assert main([*common, "--out", str(tmp_path / "c"), "--box", "-1", "1", "0", "1"]) == 1
    assert "4 pairs LO HI" in capsys.readouterr().err


def test_keep_best_returns_and_reloads_the_weights_with_the_lowest_validation_loss(tmp_path):
    result = train_sympflow(
        "harmonic_oscillator",
        dt=0.5,
        layers=1,
        width=4,
        adam_steps=30,
        lr=1.0,  # large: the validation residual stalls and turns up again
        schedule="constant",
        keep_best=True,
        validate_every=3,
        evaluate=False,
        run_dir=tmp_path,
        **TINY,
    )
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = {r["step"]: r["val_residual"] for r in records if "val_residual" in r}
    best_step = min(vals, key=vals.get)
    assert result.summary["best_step"] == best_step and best_step != 30  # not simply the last weights
    assert result.summary["best_val_loss"] == pytest.approx(vals[best_step])
    loaded = load_model(tmp_path)
    for a, b in zip(loaded.parameters(), result.model.parameters()):
        assert torch.equal(a, b)
    assert math.isfinite(result.summary["best_val_loss"])
