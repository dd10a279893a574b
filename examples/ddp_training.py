"""Neural-ODE training on several processes with torch.distributed (DDP) under torchrun.

    python examples/ddp_training.py            # 2 processes, a real run
    python examples/ddp_training.py --quick    # 2 processes, a few steps

The script writes a data set, then runs *the same command a user would type*::

    torchrun --standalone --nproc_per_node=2 -m symflow.cli.main train node --data hh.h5 --out run ...

Each rank gets its own shard of trajectories (DistributedSampler); DDP averages the gradients,
which the continuous adjoint hands to autograd like any other op. On a GPU machine pass
``--device cuda`` (one GPU per rank, NCCL). Only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from symflow.data import simulate


def main(quick: bool, out: Path, nproc: int, device: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "hh.h5"
    simulate(
        "henon_heiles",
        32 if quick else 200,
        10.0,
        output=data,
        sampling="irregular",
        n_obs=20,
        noise=1e-3,
        seed=0,
        overwrite=True,
        progress=False,
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "symflow.cli.main",
        "train",
        "node",
        "--data",
        str(data),
        "--out",
        str(out / "run"),
        "--overwrite",
        "--device",
        device,
        "--model",
        "hnn",
        "--gradient",
        "explicit",
        "--width",
        "32" if quick else "64",
        "--steps",
        "6" if quick else "1000",
        "--batch-size",
        "8" if quick else "32",
        "--window",
        "5",
    ]
    if quick:
        cmd += ["--no-eval", "--quiet"]
    print("running:", " ".join(cmd))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env)
    summary = json.loads((out / "run" / "summary.json").read_text())
    config = json.loads((out / "run" / "config.json").read_text())
    print(
        f"world size {config['world_size']}: {summary['steps']} steps, train loss {summary['train_loss']:.3g}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("example-output/ddp"))
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    main(args.quick, args.out, args.nproc, args.device)
