"""Parametric families: systems with varying parameters, files with per-trajectory parameters, and
learners conditioned on them (SympFlow / PINN N(t, x0; μ), HNN / neural ODE f(t, y; μ))."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from torch.func import jacrev, vmap

from symflow.cli import main
from symflow.data import TrajectoryDataset, collate_trajectories, open_trajectories, simulate, validate
from symflow.data.schema import SchemaError
from symflow.integrators import UnknownNameError, solve
from symflow.integrators.errors import CapabilityError, InvalidArgumentError
from symflow.learners import FlowMapPINN, SympFlow, load_model, train_flow_map
from symflow.systems import (
    SYSTEMS,
    declared_ranges,
    get_system,
    parametric_family,
    parse_range,
    vector_field,
)

pytestmark = pytest.mark.usefixtures("one_thread")

#: Every registered system that declares a varying parameter: the sweeps below run over all of them.
FAMILIES = [name for name in SYSTEMS.names() if declared_ranges(name)]


def test_the_catalogue_declares_the_issue_families():
    assert declared_ranges("harmonic_oscillator") == {"omega": (0.5, 2.0)}
    assert "length" in declared_ranges("pendulum")


# -- systems ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_family_field_and_energy_equal_each_members_own(name):
    family = parametric_family(name)
    mu = family.sample(6, seed=3)
    system0 = family.system(mu[0])
    y = system0.sample(6, seed=4)
    f = family.field(0.0, y, mu)
    h = family.energy(y, mu)
    for i in range(6):
        member = family.system(mu[i])
        torch.testing.assert_close(f[i], vector_field(member)(0.0, y[i]), rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(h[i], member.energy(y[i]), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_solve_matches_solving_each_member_alone(name):
    family = parametric_family(name)
    mu = family.sample(4, seed=1)
    y0 = family.system(mu[0]).sample(4, seed=2)
    ts = torch.linspace(0.0, 3.0, 7)
    together = family.solve(y0, mu, ts, "dop853", rtol=1e-11, atol=1e-12)
    for i in range(4):
        alone = solve(vector_field(family.system(mu[i])), y0[i : i + 1], ts, "dop853", rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(together[i], alone.ys[0], rtol=1e-8, atol=1e-9)


def test_family_exact_flow_is_each_members_exact_flow():
    family = parametric_family("harmonic_oscillator", {"omega": (0.5, 2.0)})
    mu = torch.tensor([[0.5], [1.3], [2.0]])
    y0 = torch.tensor([[1.0, 0.0], [0.3, -0.2], [0.0, 1.0]])
    t = torch.tensor([0.7, 2.0, 5.0])
    out = family.flow(t, y0, mu)
    for i in range(3):
        exact = get_system("harmonic_oscillator", omega=float(mu[i])).flow(t[i], y0[i])
        torch.testing.assert_close(out[i], exact, rtol=0, atol=1e-15)


def test_parameters_outside_the_family_range_are_refused_with_the_range():
    family = parametric_family("harmonic_oscillator", {"omega": (0.5, 2.0)})
    with pytest.raises(InvalidArgumentError, match=r"omega ∈ \[0.5, 2\].*got 3"):
        family.system(omega=3.0)
    with pytest.raises(InvalidArgumentError, match=r"omega ∈ \[0.5, 2\]"):
        family.params(torch.tensor([[1.0], [0.1]]))
    with pytest.raises(InvalidArgumentError, match="exactly the family's parameters"):
        family.params({"mass": 1.0})
    with pytest.raises(InvalidArgumentError, match=r"finite|range"):
        family.params(torch.tensor([[float("nan")]]))


def test_only_declared_parameters_may_vary_and_unknown_names_get_suggestions():
    with pytest.raises(InvalidArgumentError, match=r"may vary: length \(default range 0.5:2\)"):
        parametric_family("pendulum", {"mass": (1.0, 2.0)})
    with pytest.raises(UnknownNameError, match="length"):
        parametric_family("pendulum", {"lenght": (1.0, 2.0)})
    with pytest.raises(InvalidArgumentError, match="lo < hi"):
        parametric_family("pendulum", {"length": (2.0, 1.0)})
    with pytest.raises(InvalidArgumentError, match="> 0"):
        parametric_family("pendulum", {"length": (0.0, 1.0)})  # the parameter's own validity
    with pytest.raises(InvalidArgumentError, match="not both"):
        parametric_family("pendulum", {"length": None}, length=1.0)


def test_family_sampling_is_seeded_uniform_and_inside_the_box():
    family = parametric_family("pendulum", {"length": (0.5, 2.0), "g": (1.0, 3.0)})
    a, b = family.sample(4000, seed=7), family.sample(4000, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, family.sample(4000, seed=8))
    lo, hi = family.bounds()
    assert (a >= lo).all() and (a <= hi).all()
    torch.testing.assert_close(a.mean(0), (lo + hi) / 2, atol=0.03, rtol=0)


def test_parse_range_spellings():
    assert parse_range("omega=0.5:2") == ("omega", (0.5, 2.0))
    assert parse_range("omega") == ("omega", None)
    for bad in ("omega=0.5", "omega=a:b", ""):
        with pytest.raises(InvalidArgumentError):
            parse_range(bad)


def test_family_round_trips_through_its_json_description():
    family = parametric_family("pendulum", {"length": (0.5, 2.0)}, g=2.0)
    again = type(family).from_dict(json.loads(json.dumps(family.to_dict())))
    assert again.ranges == family.ranges and dict(again.fixed) == {"g": 2.0}


# -- conditioned flow maps -----------------------------------------------------------------------------


def _randomize(model: torch.nn.Module, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _defect(model, t, x) -> torch.Tensor:
    jac = vmap(jacrev(lambda s, y: model(s, y), argnums=1))(t, x)
    n = x.shape[-1] // 2
    eye, zero = torch.eye(n), torch.zeros(n, n)
    j = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)
    return (jac.transpose(-1, -2) @ j @ jac - j).norm(dim=(-2, -1)), jac


@pytest.mark.parametrize("derivatives", ["closed_form", "func", "autograd"])
@pytest.mark.parametrize("omega", [0.5, 0.9, 1.37, 2.0])
def test_parametric_sympflow_is_exactly_symplectic_at_every_fixed_parameter(derivatives, omega):
    torch.manual_seed(0)
    model = SympFlow(
        2, dt=1.0, layers=3, width=8, derivatives=derivatives, param_ranges={"omega": (0.5, 2.0)}
    )
    _randomize(model, 0.5, 1)
    x, t = 0.8 * torch.randn(32, 4), torch.rand(32)
    defect, jac = _defect(model.at(omega=omega), t, x)
    assert defect.max() <= 1e-12
    assert (jac - torch.eye(4)).norm(dim=(-2, -1)).median() > 0.1  # far from trivial
    # ... and μ really changes the map
    other = model.at(omega=0.5 if omega > 1 else 2.0)
    assert (model.at(omega=omega)(t, x) - other(t, x)).abs().max() > 1e-3


def test_parametric_derivative_modes_agree_and_the_map_is_the_identity_at_time_zero():
    torch.manual_seed(2)
    model = SympFlow(2, dt=1.0, layers=2, width=8, param_ranges={"a": (0.0, 1.0), "b": (-1.0, 1.0)})
    _randomize(model, 0.5, 2)
    x, t, mu = torch.randn(16, 4), torch.rand(16), torch.rand(16, 2)
    ref = model.time_derivative(t, x, mu=mu, derivatives="closed_form")
    for how in ("func", "autograd"):
        got = model.time_derivative(t, x, mu=mu, derivatives=how)
        torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[1], ref[1], rtol=1e-10, atol=1e-10)
    assert torch.equal(model(torch.zeros(16), x, mu), x)
    torch.testing.assert_close(model.inverse(t, model(t, x, mu), mu), x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("constraint", ["linear", "tfc"])
def test_parametric_pinn_takes_mu_and_holds_its_initial_condition(constraint):
    torch.manual_seed(0)
    model = FlowMapPINN(2, dt=1.0, width=8, constraint=constraint, param_ranges={"omega": (0.5, 2.0)})
    x, mu = torch.randn(8, 2), 0.5 + 1.5 * torch.rand(8, 1)
    assert torch.equal(model(torch.zeros(8), x, mu), x)
    y, dy = model.time_derivative(torch.rand(8), x, mu=mu)
    assert y.shape == dy.shape == (8, 2)
    assert (model(0.5, x, mu) - model(0.5, x, mu.flip(0))).abs().max() > 0


def test_at_equals_the_map_called_with_mu_and_rollouts_broadcast_mu():
    torch.manual_seed(0)
    model = SympFlow(1, dt=0.5, param_ranges={"omega": (0.5, 2.0)})
    x = torch.randn(5, 2)
    fixed = model.at(omega=1.25)
    torch.testing.assert_close(fixed(0.3, x), model(0.3, x, torch.tensor([1.25])), rtol=0, atol=0)
    ts = torch.linspace(0, 3.2, 9)
    torch.testing.assert_close(fixed.rollout(x, ts), model.rollout(x, ts, {"omega": 1.25}), rtol=0, atol=0)
    torch.testing.assert_close(fixed.flow(2.2, x), model.flow(2.2, x, torch.full((5, 1), 1.25)))


def test_learners_refuse_parameters_they_were_not_trained_with_before_any_work():
    family_model = SympFlow(1, dt=0.5, param_ranges={"omega": (0.5, 2.0)})
    plain = SympFlow(1, dt=0.5)
    x = torch.randn(3, 2)
    with pytest.raises(InvalidArgumentError, match=r"trained with: \['omega'\]"):
        family_model(0.1, x)
    with pytest.raises(InvalidArgumentError, match="single system"):
        plain(0.1, x, torch.ones(3, 1))
    with pytest.raises(InvalidArgumentError, match="single system"):
        plain.at(omega=1.0)
    with pytest.raises(InvalidArgumentError, match=r"\['omega'\], not \['length'\]"):
        family_model.flow(1.0, x, {"length": 1.0})
    with pytest.raises(InvalidArgumentError, match=r"omega ∈ \[0.5, 2\]"):
        family_model.rollout(x, torch.linspace(0, 1, 3), torch.tensor([3.0]))
    with pytest.raises(InvalidArgumentError, match=r"omega ∈ \[0.5, 2\]"):
        family_model.at(omega=0.1)
    with pytest.raises(InvalidArgumentError, match="shape"):
        family_model(0.1, x, torch.ones(3, 2))


# -- training -----------------------------------------------------------------------------------------


def test_family_training_records_the_family_evaluates_inside_it_and_reloads(tmp_path):
    result = train_flow_map(
        "harmonic_oscillator",
        param_ranges={"omega": [0.5, 2.0]},
        dt=0.5,
        adam_steps=6,
        lbfgs_steps=1,
        lbfgs_points=50,
        collocation=50,
        validation_points=50,
        box=(-1.0, 1.0),
        eval_samples=2,
        horizon=1.0,
        energy_horizon=1.0,
        plots=False,
        progress=False,
        run_dir=tmp_path / "run",
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["family"]["ranges"] == {"omega": [0.5, 2.0]}
    assert config["model"]["param_ranges"] == {"omega": [0.5, 2.0]}
    points = [r["params"]["omega"] for r in result.summary["family_evaluation"]]
    assert points == [0.75, 1.25, 1.75]  # interior, none a bound
    model = load_model(tmp_path / "run")
    assert model.param_names == ("omega",)
    x = torch.randn(3, 2)
    torch.testing.assert_close(model(0.2, x, torch.ones(3, 1)), result.model(0.2, x, torch.ones(3, 1)))
    # `symflow diagnose` cannot guess which member to diagnose: it says so, before any work
    assert main(["diagnose", str(tmp_path / "run"), "--out", str(tmp_path / "diag")]) == 1
    assert not (tmp_path / "diag").exists()


def test_family_options_are_checked_before_any_work(tmp_path):
    with pytest.raises(InvalidArgumentError, match="may vary"):
        train_flow_map("pendulum", param_ranges={"mass": [1, 2]}, progress=False)
    with pytest.raises(InvalidArgumentError, match="no fixed value"):
        train_flow_map(
            "pendulum", param_ranges={"length": [1, 2]}, system_args={"length": 1.5}, progress=False
        )
    with pytest.raises(InvalidArgumentError, match="LO < HI"):
        train_flow_map("pendulum", param_ranges={"length": [2, 1]}, progress=False)


# -- files with per-trajectory parameters ---------------------------------------------------------------


@pytest.fixture(scope="module")
def family_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("family") / "oscillators.h5"
    simulate(
        "harmonic_oscillator",
        12,
        2.0,
        output=path,
        param_ranges={"omega": (0.5, 2.0)},
        n_obs=9,
        seed=5,
        progress=False,
    )
    return path


def test_simulated_families_record_names_ranges_and_exact_trajectories(family_file):
    with open_trajectories(family_file) as f:
        assert f.param_names == ("omega",)
        assert f.attrs["param_ranges"] == {"omega": [0.5, 2.0]}
        mu = f.params()
        assert mu.shape == (12, 1) and (mu >= 0.5).all() and (mu <= 2.0).all()
        assert len(np.unique(mu)) == 12
        energy = f.read_dataset("energy")
        for i in range(12):
            t, y = f.trajectory(i)
            member = get_system("harmonic_oscillator", omega=float(mu[i, 0]))
            exact = member.flow(torch.from_numpy(t), torch.from_numpy(y[0]))
            assert np.abs(exact.numpy() - y).max() < 1e-7
            torch.testing.assert_close(
                torch.from_numpy(energy[i]), member.energy(torch.from_numpy(y)), atol=1e-8, rtol=0
            )


def test_simulated_parameters_are_seeded_and_independent_of_chunk_size(family_file, tmp_path):
    other = tmp_path / "again.h5"
    simulate(
        "harmonic_oscillator",
        12,
        2.0,
        output=other,
        param_ranges={"omega": (0.5, 2.0)},
        n_obs=9,
        seed=5,
        chunk_size=5,
        progress=False,
    )
    with open_trajectories(family_file) as a, open_trajectories(other) as b:
        assert np.array_equal(a.params(), b.params())


def test_dataset_items_and_batches_carry_parameters(family_file):
    ds = TrajectoryDataset(family_file, window=4)
    train, _ = ds.split(0.25, seed=0)
    with open_trajectories(family_file) as f:
        everything = f.params()
    batch = collate_trajectories([train[i] for i in range(len(train))])
    assert batch.params.shape == (len(train), 1)
    assert np.array_equal(batch.params.numpy(), everything[batch.index.numpy()])
    assert batch.to(dtype=torch.float32).params.dtype == torch.float32
    with pytest.raises(InvalidArgumentError, match="all with or all without"):
        collate_trajectories([train[0], {k: v for k, v in train[1].items() if k != "params"}])


def _rewrite_names(src, dst, names) -> None:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as h:
        if names is None:
            del h.attrs["param_names"]
        else:
            h.attrs["param_names"] = json.dumps(names)


def test_validate_refuses_params_that_do_not_match_the_systems_parameters(family_file, tmp_path):
    bad = tmp_path / "bad.h5"
    _rewrite_names(family_file, bad, ["omgea"])
    report = validate(bad)
    assert not report.ok
    text = str(report)
    assert "['omgea']" in text and "['n', 'mass', 'omega']" in text
    assert main(["validate", str(bad)]) == 1
    with pytest.raises(SchemaError, match="omgea"):
        TrajectoryDataset(bad)
    _rewrite_names(family_file, bad, ["omega", "mass"])
    assert "for the 1 columns" in str(validate(bad))


def test_unnamed_params_stay_readable_but_nothing_is_conditioned_on_them(family_file, tmp_path):
    from symflow.discovery.training import NodeConfig, train_node
    from symflow.learners.supervised import UnusableDataError

    unnamed = tmp_path / "unnamed.h5"
    _rewrite_names(family_file, unnamed, None)  # as written before param_names existed
    assert validate(unnamed).ok
    assert TrajectoryDataset(unnamed).param_names == ()
    with pytest.raises(UnusableDataError, match="param_names"):
        train_flow_map(data=unnamed, learner="sympflow", adam_steps=1, progress=False)
    with pytest.raises(InvalidArgumentError, match="--params ignore"):
        train_node(NodeConfig(data=str(unnamed), steps=1, window=4), tmp_path / "r", progress=False)


def test_write_trajectories_names_the_params_columns(tmp_path):
    from symflow.data import write_trajectories

    t = np.linspace(0, 1, 3)
    y = np.zeros((2, 3, 2))
    path = write_trajectories(
        tmp_path / "w.h5",
        t[None].repeat(2, 0),
        y,
        params=[[1.0], [1.5]],
        param_names=["omega"],
        attrs={"system": "harmonic_oscillator"},
    )
    assert TrajectoryDataset(path).param_names == ("omega",)
    with pytest.raises(InvalidArgumentError, match="one per column"):
        write_trajectories(tmp_path / "x.h5", t, y, params=[[1.0], [1.5]], param_names=["a", "b"])


def test_cli_simulate_param_range_writes_a_family_and_refuses_bad_ranges(tmp_path, capsys):
    out = tmp_path / "p.h5"
    args = ["simulate", "pendulum", "--param-range", "length=0.6:1.8", "--n", "3", "--t-end", "1"]
    assert main([*args, "--n-obs", "3", "--quiet", "-o", str(out)]) == 0
    with open_trajectories(out) as f:
        assert f.param_names == ("length",)
        assert ((f.params() >= 0.6) & (f.params() <= 1.8)).all()
    assert main(["validate", str(out)]) == 0
    assert main(["simulate", "pendulum", "--param-range", "mass=1:2", "-o", str(tmp_path / "x.h5")]) == 1
    assert "may vary: length" in capsys.readouterr().err


def test_sympflow_trains_from_a_file_with_params_and_evaluates_each_trajectory_at_its_own_mu(family_file):
    result = train_flow_map(
        data=family_file,
        learner="sympflow",
        dt=0.5,
        adam_steps=4,
        progress=False,
        plots=False,
        eval_samples=2,
    )
    s = result.summary
    assert s["params"]["names"] == ["omega"]
    assert result.model.param_names == ("omega",)
    assert s["symplecticity_defect_max"] <= 1e-12
    assert "heldout" in s and "energy_error_max" in s


# -- discovery conditioned on parameters ---------------------------------------------------------------


def test_conditioned_hnn_keeps_mu_exactly_constant_and_conserves_its_own_energy():
    from symflow.discovery.parametric import ParametricVectorField

    torch.manual_seed(0)
    model = ParametricVectorField(2, {"omega": (0.5, 2.0)}, kind="hnn", width=16)
    z0 = torch.cat([torch.randn(4, 2), torch.tensor([[0.5], [0.8], [1.4], [2.0]])], dim=-1)
    ys = solve(model, z0, torch.linspace(0, 5, 11), "dop853", rtol=1e-11, atol=1e-12).ys
    assert torch.equal(ys[..., 2], z0[:, None, 2].expand(4, 11))  # μ: exact zeros added, every stage
    h = model.hamiltonian(ys[..., :2], ys[..., 2:])
    assert (h - h[:, :1]).abs().max() < 1e-8
    with pytest.raises(InvalidArgumentError, match=r"conditioned on \['omega'\]"):
        model(0.0, torch.randn(4, 2))
    with pytest.raises(InvalidArgumentError, match=r"trained with: \['omega'\]"):
        model.field(0.0, torch.randn(4, 2), None)


def test_train_node_conditions_on_the_files_params_and_reloads(family_file, tmp_path):
    from symflow.discovery.parametric import ParametricVectorField
    from symflow.discovery.training import NodeConfig, load_node, train_node

    cfg = NodeConfig(
        data=str(family_file), model="hnn", width=16, steps=2, lbfgs_steps=1, window=4, batch_size=4
    )
    summary = train_node(cfg, tmp_path / "run", progress=False)
    assert summary["params"]["names"] == ["omega"]
    ev = summary["evaluation"]
    assert ev["held_out"] and ev["trajectories"] >= 2 and ev["reference"] == "exact flow"
    model = load_node(tmp_path / "run")
    assert isinstance(model, ParametricVectorField) and model.param_names == ("omega",)
    plain = train_node(
        NodeConfig(data=str(family_file), width=8, steps=1, window=4, params="ignore"),
        tmp_path / "plain",
        progress=False,
        evaluate=False,
    )
    assert "params" not in plain
    with pytest.raises(CapabilityError, match="cannot be conditioned"):
        train_node(NodeConfig(data=str(family_file), model="anode", steps=1), tmp_path / "a", progress=False)
