"""symflow: scientific machine learning for Hamiltonian dynamics in PyTorch.

Subpackages: :mod:`symflow.integrators` (numerics), :mod:`symflow.systems` (Hamiltonian ODEs),
and the learners, data, diagnostics and CLI built on them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("symflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "export"]


def __getattr__(name: str):
    # ``symflow.export(...)`` without importing torch on ``import symflow`` (PEP 562).
    if name in ("export", "load_cnf"):
        from . import exporting

        return getattr(exporting, name)
    raise AttributeError(f"module 'symflow' has no attribute {name!r}")
