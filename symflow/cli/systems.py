"""``symflow systems``: list the registered Hamiltonian systems and their parameters."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("systems", help="list the registered Hamiltonian systems")
    p.add_argument("name", nargs="?", help="show one system's parameters in detail")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import symflow.systems as s

    names = [args.name] if args.name else s.list_systems()
    rows = []
    for name in names:
        spec = s.get_spec(name)
        system = spec()
        rows.append(
            {
                "name": spec.name,
                "dof": system.dof,
                "separable": system.separable,
                "exact_flow": system.exact_flow is not None,
                "poincare": system.poincare.description if system.poincare else None,
                "doubled": system.doubling is not None,
                "summary": spec.summary,
                "parameters": {
                    p.name: {
                        "default": p.default,
                        "doc": p.doc,
                        **({"family_range": list(p.family_range)} if p.family_range else {}),
                    }
                    for p in spec.parameters
                },
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    w = max([22, *(len(r["name"]) for r in rows)])
    print(f"{'name':{w}s} {'dof':>4s}  {'separable':9s}  {'exact':5s}  summary")
    for r in rows:
        print(
            f"{r['name']:{w}s} {r['dof']:4d}  {'yes' if r['separable'] else 'no':9s}  "
            f"{'yes' if r['exact_flow'] else 'no':5s}  {r['summary']}"
        )
        if args.name:
            width = max((len(pname) for pname in r["parameters"]), default=0)
            for pname, info in r["parameters"].items():
                varies = ""
                if "family_range" in info:
                    lo, hi = info["family_range"]
                    varies = f"  (may vary: --param-range {pname}={lo:g}:{hi:g})"
                print(f"    {pname:<{width}} = {info['default']!r:<8}  {info['doc']}{varies}")
            if r["poincare"]:
                print(f"    Poincaré section: {r['poincare']}")
    return 0
