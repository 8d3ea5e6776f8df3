"""`make chaos`: a bounded chaos run on the whole platform, then the table.

Prints the seed first (`--seed` repeats a run's schedule of arrivals, scenarios and faults),
then what happens, then the table; exits 0 only when every invariant held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

from .faults import FAULT_KINDS
from .run import ChaosOptions, chaos_run

ROOT = Path(__file__).resolve().parents[3]


def parse_args(argv: list[str]) -> ChaosOptions:
    parser = argparse.ArgumentParser(prog="python -m permisos_sandbox.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="default: a new random one")
    parser.add_argument("--minutes", type=float, default=10.0, help="load and faults")
    parser.add_argument("--applications", type=int, default=100)
    parser.add_argument(
        "--settle-minutes",
        type=float,
        default=6.0,
        help="how long after the faults every application may take to be final",
    )
    parser.add_argument("--runners", type=int, default=3, help="the RunnerPool's size")
    parser.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        help="comma-separated fault kinds (empty: none); default every kind: "
        + ", ".join(FAULT_KINDS),
    )
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var" / "chaos")
    args = parser.parse_args(argv)
    return ChaosOptions(
        seed=args.seed if args.seed is not None else secrets.randbelow(1_000_000),
        state_dir=args.state_dir,
        minutes=args.minutes,
        applications=args.applications,
        settle_minutes=args.settle_minutes,
        runners=args.runners,
        kinds=tuple(k for k in args.faults.split(",") if k),
    )


async def main(argv: list[str]) -> int:
    options = parse_args(argv)
    result = await chaos_run(options, say=lambda line: print(line, flush=True))
    print("\n" + result.table, flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
