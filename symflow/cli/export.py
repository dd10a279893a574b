"""``symflow export RUN_DIR -o model.pt2``: a trained model as ``torch.export`` programs.

    symflow export runs/hnn -o hnn.pt2            # field f(t, y), H(y), ∇H(y) + hnn.json
    symflow export runs/sympflow -o step.pt2      # x ↦ N(Δt, x), N(t, x) + step.json

The programs load with plain ``torch.export.load(path).module()``, without symflow.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model as torch.export programs (.pt2) for simulation pipelines",
        description="Write the trained model of a run directory as torch.export programs with a dynamic "
        "batch size (loadable with plain torch.export.load, without symflow) and a JSON of metadata "
        "(state layout, Δt, dtype, system, training-data hash). node runs: the field f(t, y) (and "
        "H, ∇H for Hamiltonian models); sympflow/pinn runs: the step x ↦ N(Δt, x) and N(t, x); cnf "
        "runs: log p(x) and the flow's field.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `symflow train ...` run directory")
    p.add_argument(
        "-o", "--output", required=True, help="the primary program's file (.pt2); the others go next to it"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--cnf-steps",
        type=int,
        help="rk4 steps of the exported density of a CNF trained with an adaptive method (default 20)",
    )
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symflow.exporting import export

    result = export(args.run_dir, args.output, overwrite=args.overwrite, cnf_steps=args.cnf_steps)
    if args.json:
        print(
            json.dumps(
                {**result.metadata, "files": {k: str(v) for k, v in result.programs.items()}}, indent=2
            )
        )
    else:
        print(result)
    return 0
