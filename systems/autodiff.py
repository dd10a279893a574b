"""Gradients of user energies, fast where an integrator calls them thousands of times.

A Hamiltonian without a hand-derived gradient gets ``∇H`` by automatic differentiation. Inside a
solve that gradient is evaluated at every stage of every step on small batches, where the cost is
the per-call overhead of the transform, not arithmetic: ``torch.func.grad`` costs ~15× a
hand-written gradient of Hénon–Heiles at ``B = 128`` (``benchmarks/bench_custom_field.py``).
:class:`ScalarGradient` therefore picks, per call:

* **composable** — ``torch.func.grad`` under ``torch.func`` transforms (``vmap``, ``jacrev``, …), when
  the state requires grad (the result must carry a graph: Newton Jacobians, backprop through a solve)
  and when the energy has trainable tensors of its own (found on the first call);
* **eager** — otherwise one plain reverse pass with ``torch.autograd.grad`` on a detached copy, which
  gives bitwise the same numbers at a fraction of the overhead;
* **compiled** — with ``compile="auto"`` (the default), once the eager path has been taken
  :data:`COMPILE_AFTER` times (a long solve, where a one-off compilation of seconds pays for itself)
  the gradient is compiled with ``torch.compile`` and used for the rest of the run; a
  :class:`CompiledFieldWarning` says so once. Compiled kernels agree with eager ones to round-off,
  not bitwise. ``compile=True`` compiles on the first eager call, ``compile=False`` never; a
  compilation that fails (e.g. no C++ compiler) falls back to the eager path with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch.func import grad

from symflow.integrators.errors import InvalidArgumentError

Tensor = torch.Tensor

#: Eager evaluations after which ``compile="auto"`` compiles the gradient.
COMPILE_AFTER = 20000


class CompiledFieldWarning(UserWarning):
    """Issued once when a field's autodiff gradient is switched to a ``torch.compile``d kernel."""


def _functorch_active() -> bool:
    check = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(check()) if check is not None else False


def check_compile(compile: object) -> bool | str:
    if compile not in (True, False, "auto"):
        raise InvalidArgumentError("compile", compile, "True, False or 'auto'")
    return compile  # type: ignore[return-value]


class ScalarGradient:
    """``x -> post(∇E(x))`` for a scalar-per-sample ``E: (..., k) -> (...)``, choosing the cheapest path.

    ``what`` names the function in messages (e.g. ``"∇H of 'double_well'"``); ``post`` is a cheap map
    applied to the gradient (e.g. the rotation by ``J`` of a Hamiltonian field), inside the compiled
    kernel when there is one, so that the whole field is one call.
    """

    def __init__(
        self,
        energy: Callable[[Tensor], Tensor],
        what: str,
        *,
        compile: bool | str = "auto",
        post: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.energy = energy
        self.post = post if post is not None else (lambda g: g)
        self.what = what
        self.compile = check_compile(compile)
        self.eager_calls = 0
        self.trainable: bool | None = None  # does E carry tensors that require grad? (probed once)
        self.compiled: Callable[[Tensor], Tensor] | None = None
        self.compile_failed = False

    def composable(self, x: Tensor) -> Tensor:
        return self.post(grad(lambda z: self.energy(z).sum())(x))

    def eager(self, x: Tensor) -> Tensor:
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            e = self.energy(z)
            if not e.requires_grad:  # E does not depend on x
                return self.post(torch.zeros_like(x))
            (g,) = torch.autograd.grad(e.sum(), z)
        return self.post(g)

    def __call__(self, x: Tensor) -> Tensor:
        if _functorch_active() or x.requires_grad:
            return self.composable(x)
        if torch.is_grad_enabled():
            if self.trainable is None:
                g = self.composable(x)
                self.trainable = g.requires_grad  # x does not require grad: the graph is E's own
                return g
            if self.trainable:
                return self.composable(x)
        self.eager_calls += 1
        if self.compiled is None and not self.compile_failed and self._should_compile():
            self._compile()
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as err:
                self._give_up(err)
        return self.eager(x)

    def _should_compile(self) -> bool:
        if self.compile is True:
            return True
        return self.compile == "auto" and self.eager_calls >= COMPILE_AFTER

    def _compile(self) -> None:
        energy, post = self.energy, self.post

        def gradient(x: Tensor) -> Tensor:
            return post(grad(lambda z: energy(z).sum())(x))

        self.compiled = torch.compile(gradient, dynamic=None)
        if self.compile == "auto":
            warnings.warn(
                f"symflow: {self.what} has been evaluated {self.eager_calls} times by automatic "
                "differentiation, where per-call overhead dominates; it is now compiled with torch.compile "
                "(a one-off of seconds, then several times faster per call; results agree to round-off). "
                "vector_field(system, compile=False) keeps it eager, compile=True compiles at once.",
                CompiledFieldWarning,
                stacklevel=4,
            )

    def _give_up(self, err: Exception) -> None:
        self.compiled = None
        self.compile_failed = True
        warnings.warn(
            f"symflow: torch.compile of {self.what} failed ({type(err).__name__}: {str(err)[:200]}); "
            "continuing with the eager gradient",
            CompiledFieldWarning,
            stacklevel=4,
        )

    @property
    def mode(self) -> str:
        """How the gradient is evaluated now, for reprs."""
        if self.compiled is not None:
            return "autodiff, compiled"
        if self.compile == "auto":
            return f"autodiff (compiled after {COMPILE_AFTER} calls)"
        return "autodiff, compile=True" if self.compile is True else "autodiff"
