"""sft, kd and on_policy on the demo, side by side: one table printed and logged to MLflow as a run of its own.

    .venv/bin/python bench/objectives.py [--work_dir DIR] [name ...]

Every stage before training is cached and shared, so each objective trains the same filtered rows. Each gets
about the same wall clock on this machine (2 CPU cores, LoRA at the defaults), from per-step costs measured on
the demo: sft 5.2 s a step, kd 4.1 s (and 20 s once for the teacher's top-k pass), on_policy 19 s (the student
writes its own answers on half the steps). sft at 6 epochs is 84 steps, about 440 s; kd gets 7 epochs (98 steps),
on_policy 1.5 (21 steps). The defaults of `train.kd_*` and `train.on_policy_*` apply unless a setting says.
Takes about 35 minutes; the first `make demo` must have run (its traffic, teacher answers and cache).
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.cli import build_config, incidental_params  # noqa: E402
from tasks.run_table import log_comparison, markdown, runs_compared  # noqa: E402

SETTINGS = {
    "sft": {"train.objective": "sft", "train.epochs": "6"},
    "kd": {"train.objective": "kd", "train.epochs": "7"},
    "on_policy": {"train.objective": "on_policy", "train.epochs": "1.5"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"which objectives, of {', '.join(SETTINGS)} (default: all)")
    parser.add_argument("--work_dir", default=str(ROOT / ".redistill"))
    args = parser.parse_args()
    if unknown := set(args.names) - set(SETTINGS):
        parser.error(f"no objective {', '.join(sorted(unknown))}: choose from {', '.join(SETTINGS)}")
    from flows.distill import distill

    run_ids = []
    for name in args.names or SETTINGS:
        overrides = {"source.path": str(ROOT / "data" / "demo_traffic.jsonl"), "work_dir": args.work_dir,
                     "stop_after": "evaluate", "run_name": f"objective-{name}", **SETTINGS[name]}  # fmt: skip
        state = distill(build_config(None, overrides), return_state=True)
        if state.is_failed():  # the others still compared
            print(f"{name}: {state.message}")
            continue
        stopped = state.result()
        run_ids.append(stopped.mlflow_run_id)
        tracking_uri = stopped.tracking_uri
    if not run_ids:
        sys.exit("no objective finished")
    rows = runs_compared(tracking_uri, run_ids, incidental_params())
    print(markdown(rows))
    print(f"\nlogged as MLflow run {log_comparison(tracking_uri, rows, 'objectives')} at {tracking_uri}")


if __name__ == "__main__":
    main()
