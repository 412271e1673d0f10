"""`redistill`: write demo traffic, or run the distillation flow from a YAML config and flags.

    redistill demo-data --out data/demo_traffic.jsonl
    redistill stack up                                      # PostgreSQL, S3, Prefect, MLflow on loopback
    redistill run --config my.yaml --rollout.samples_per_prompt 8 --train.epochs 1
    redistill run --config my.yaml --stop-after redact      # a dry run: what would reach the teacher

Every config field is a flag (`--<section>.<field>`). A text field takes its value as it is written
(`--run_name 2026-11-23`, `--run_name no`); other fields read it as YAML (`8`, `null`, `[0, 2]`,
`{capitals: contains}`). Flags override the file, the file overrides the defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import types
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

# the temporary Prefect server a one-shot run starts reports usage home: an error line offline, a call home online
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


class ConfigFileError(ValueError):
    """A config file that is missing or not a YAML mapping: said in one line, naming the file."""


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, Any]]:
    """{dotted name: (description, type)} of every non-section field of a config class."""
    fields = {}
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            fields |= _leaf_fields(kind, f"{prefix}{name}.")
        else:
            fields[f"{prefix}{name}"] = (info.description or "", kind)
    return fields


def _is_text(kind: Any) -> bool:
    """Whether a field holds text (str, a choice of words, a time, a path, or one of those or None): its flag
    value is taken as written, not as YAML (`2026-11-23` would become a date, `no` a boolean)."""
    if get_origin(kind) in (Union, types.UnionType):
        members = [k for k in get_args(kind) if k is not type(None)]
        return all(_is_text(k) for k in members)
    if get_origin(kind) is Literal:
        return all(isinstance(v, str) for v in get_args(kind))
    return kind in (str, datetime, Path)


def read_config_file(path: str) -> dict[str, Any]:
    """The YAML mapping in `path`, or ConfigFileError naming the file (and the line and column)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigFileError(f"config file {path}: {e.strerror}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise ConfigFileError(
            f"config file {path} line {mark.line + 1}, column {mark.column + 1}: not valid YAML ({e.problem})"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigFileError(f"config file {path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path}: holds a {type(data).__name__}, not a mapping of config sections")
    return data


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, section by section."""
    merged = dict(base)
    for key, value in top.items():
        merged[key] = (
            _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def build_config(config_file: str | None, overrides: dict[str, str], base: dict[str, Any] | None = None):
    """DistillConfig from defaults, then `base` (the stack's, for a deployment), then the YAML file, then
    `section.field: value` overrides."""
    from flows.distill import DistillConfig

    fields = _leaf_fields(DistillConfig)
    data = _merged(base or {}, read_config_file(config_file) if config_file else {})
    for dotted, raw in overrides.items():
        *sections, leaf = dotted.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = raw if _is_text(fields[dotted][1]) else yaml.safe_load(raw)
    return DistillConfig.model_validate(data)


def _score(value: float | None, width: int) -> str:
    """A score right-aligned, or a dash where nothing was scored (no production answer in a slice)."""
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def render_summary(summary) -> str:
    """The closing table: scores per slice (the shipped student's with its 95 % interval), transfer, speed, memory
    and size, the gate's verdict, where things are."""
    models = list(summary.scores)
    extra = {"exported": summary.exported_accuracy, "production": summary.production_accuracy}
    columns = models + [name for name, found in extra.items() if found]
    accuracy = {m: summary.scores[m].accuracy for m in models} | extra
    width = max(9, *(len(m) + 2 for m in columns))
    slices = sorted(set(summary.transfer_ratio) - {"all"}) + ["all"]
    shipped = f"{summary.student} 95%"
    wide = len(shipped) + 4
    agrees = f"{'agrees':>8}" if summary.shadow_agreement else ""
    lines = [
        f"{'slice':<12}" + "".join(f"{m:>{width}}" for m in columns) + f"{shipped:>{wide}}{'transfer':>10}{agrees}"
    ]
    for name in slices:
        cells = "".join(_score(accuracy[m].get(name), width) for m in columns)
        found = summary.scores[summary.student].interval.get(name)
        interval = f"[{found.low:.2f}, {found.high:.2f}]" if found else ""
        shadow = _score(summary.shadow_agreement.get(name), 8) if agrees else ""
        lines.append(f"{name:<12}{cells}{interval:>{wide}}{summary.transfer_ratio.get(name, 0.0):>10.2f}{shadow}")
    label = max(12, *(len(m) + 1 for m in models))
    header = f"{'params(M)':>10}{'size(MB)':>10}{'p50(s)':>8}{'p95(s)':>8}{'tokens/s':>10}{'peak MB':>9}"
    lines += ["", f"{'model':<{label}}{header}"]
    for m in models:
        s = summary.scores[m]
        params = f"{s.params / 1e6:>10.1f}" if s.params is not None else f"{'served':>10}"
        size = f"{s.size_mb:>10.0f}" if s.size_mb is not None else f"{'':>10}"
        memory = f"{s.peak_memory_mb:>9.0f}" if s.peak_memory_mb is not None else f"{'':>9}"
        speed = f"{s.latency_s:>8.2f}{s.latency_p95_s:>8.2f}{s.tokens_per_s:>10.1f}"
        lines.append(f"{m:<{label}}{params}{size}{speed}{memory}")
    p = summary.promotion
    lines += [
        f"{'exported':<{label}}{'':>10}{summary.exported_mb:>10.0f}   {summary.exported_uri}"
        + (f" ({summary.student})" if len(models) > 3 else ""),
        "",
        *([f"export check {summary.export_check}"] if summary.export_check else []),
        *([summary.gguf] if summary.gguf else []),
        f"gate: {p.registered_model} version {p.version}, {p.reason}",
        *([summary.fallback] if summary.fallback else []),
        *([summary.win_rate] if summary.win_rate else []),
        *([summary.shadow + " (agrees: per slice, above)"] if summary.shadow else []),
        f"MLflow run {summary.mlflow_run_id} at {summary.tracking_uri}",
        f"  view it: mlflow ui --backend-store-uri {summary.tracking_uri}",
        "stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary.stage_seconds.items()),
    ]
    return "\n".join(lines)


def _demo_data(args: argparse.Namespace) -> int:
    from tasks.demo_calibration import write_calibration
    from tasks.demo_traffic import write_demo_traffic

    traffic = write_demo_traffic(Path(args.out), rows=args.rows, seed=args.seed)
    print(f"wrote {len(traffic.lines)} log lines ({len(traffic.malformed_lines)} malformed) to {args.out}")
    calibration = Path(args.out).with_name("judge_calibration.jsonl")
    print(f"wrote {write_calibration(calibration)} labelled answers for the judge's calibration to {calibration}")
    return 0


def render_stopped(stopped) -> str:
    """What a run that stopped early found, stage by stage, and where its datasets are."""
    parts = [report.markdown() for report in stopped.reports]
    parts.append("## where the data is\n\n" + "\n".join(f"- {k}: {v}" for k, v in stopped.datasets.items()))
    parts.append(
        f"ended after {stopped.stage}: {stopped.reason}; MLflow run {stopped.mlflow_run_id} at {stopped.tracking_uri}"
    )
    return "\n".join(parts)


def _run(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    from tasks import storage
    from tasks.logfile.files import LogError
    from tasks.source import check_source

    try:
        config = build_config(args.config, overrides)
        storage.configure(config.storage)
        check_source(config.source)  # a log that cannot be read is said before any run starts
    except (ConfigFileError, LogError, storage.StorageError) as e:
        print(f"redistill: {e}", file=sys.stderr)
        return 2
    except (ValidationError, yaml.YAMLError) as e:
        print(f"redistill: invalid config\n{e}", file=sys.stderr)
        return 2
    from prefect.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

    from flows.distill import StoppedEarly, distill

    with temporary_settings(updates={PREFECT_TASKS_REFRESH_CACHE: args.refresh_cache}):
        state = distill(config, return_state=True)
    if state.is_failed():
        print(f"redistill: {state.message}", file=sys.stderr)
        return 2 if state.name == "NothingToDistill" else 1
    result = state.result()
    print("\n" + (render_stopped(result) if isinstance(result, StoppedEarly) else render_summary(result)))
    return 0


def incidental_params() -> tuple[str, ...]:
    """Params that tell two runs apart without saying anything about what was trained: where things are (PLACE
    fields), the run's name and stop, and the sections about services and placement."""
    from flows.distill import DistillConfig
    from tasks.config import place_fields

    sections = ("run_name", "work_dir", "request_store", "stop_after", "tracking.", "storage.", "placement.")
    return tuple(sorted(place_fields(DistillConfig))) + sections


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    from tasks.run_table import log_comparison, markdown, runs_compared
    from tasks.tracking import TrackingConfig, tracking_uri
    from tasks.urls import masked

    try:
        uri = tracking_uri(TrackingConfig(tracking_uri=args.tracking_uri), args.work_dir)
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            raise ValueError(f"no MLflow runs in {args.work_dir} (no mlflow.db): pass --work-dir or --tracking-uri")
        rows = runs_compared(uri, args.runs, incidental_params())
        print(markdown(rows))
        print(f"\nlogged as MLflow run {log_comparison(uri, rows)} at {masked(uri)}")
    except (ValueError, MlflowException) as e:  # no such run, or no MLflow to read or write
        print(f"redistill: {masked(str(e))}", file=sys.stderr)
        return 2
    return 0


def _deploy(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    """Register the deployments on the stack's Prefect server (or $PREFECT_API_URL's), pointed at the stack."""
    import os

    from infra.settings import StackSettings

    stack = StackSettings()
    try:
        config = build_config(args.config, overrides, base=stack.distill_defaults())
    except ConfigFileError as e:
        print(f"redistill: {e}", file=sys.stderr)
        return 2
    except (ValidationError, yaml.YAMLError) as e:
        print(f"redistill: invalid config\n{e}", file=sys.stderr)
        return 2
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deploy import DeployError, deploy, ensure_gpu_pool

    api = os.environ.get("PREFECT_API_URL", stack.prefect_api)
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            for deployed in deploy(config, args.work_pool or stack.work_pool):
                when = f", {deployed.schedule}" if deployed.schedule else ""
                print(f"deployed {deployed.name} ({deployed.id}{when})")
            kind = ensure_gpu_pool(args.gpu_pool)
    except DeployError as e:
        print(f"redistill deploy: {e}", file=sys.stderr)
        return 1
    print(f"work pool {args.gpu_pool} ({kind}, one nvidia.com/gpu per job): a prefect-kubernetes worker runs it")
    print(f"run it from the UI: {stack.prefect_ui}/deployments (Run > Custom run)")
    return 0


def _add_config_fields(parser: argparse.ArgumentParser) -> None:
    """A `--<section>.<field>` flag for every config field, and `--config FILE`."""
    from flows.distill import DistillConfig

    parser.add_argument("--config", help="YAML file with DistillConfig fields (sections as mappings)")
    options = parser.add_argument_group("config fields (each overrides the file; text as written, others as YAML)")
    for dotted, (description, _) in _leaf_fields(DistillConfig).items():
        # argparse %-formats help texts: a literal % in a description must be doubled
        help_text = description.replace("%", "%%")
        options.add_argument(
            f"--{dotted}", dest=f"set:{dotted}", metavar="VALUE", help=help_text, default=argparse.SUPPRESS
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # the config's flags cost the import of the whole flow: only the commands that take them build them
    with_config = next((a for a in argv if not a.startswith("-")), None) in ("run", "deploy", None)
    # no abbreviations: `--rollout.samples` must not silently mean `--rollout.samples_per_prompt`
    parser = argparse.ArgumentParser(
        prog="redistill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo-data", help="write a demo production log (JSONL) with planted PII")
    demo.add_argument("--out", default="data/demo_traffic.jsonl", help="where to write it")
    demo.add_argument("--rows", type=int, default=600, help="log lines")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    stack = commands.add_parser("stack", help="the local stack: PostgreSQL, S3, Prefect server + worker, MLflow")
    stack.add_argument("action", choices=("up", "status", "down"), help="start (idempotent), show health, or stop")
    compare = commands.add_parser(
        "compare", help="runs side by side (the student per slice, transfer, training cost), logged as a run too"
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_ID", help="MLflow run ids (each run prints its own)")
    compare.add_argument("--work-dir", default=".redistill", help="whose MLflow, when no tracking URI is given")
    compare.add_argument("--tracking-uri", help="MLflow (default: $MLFLOW_TRACKING_URI, else the work dir's)")
    run = commands.add_parser("run", help="run the distillation flow", allow_abbrev=False)
    run.add_argument(
        "--refresh-cache", action="store_true", help="recompute every stage instead of reusing cached results"
    )
    run.add_argument("--stop-after", dest="set:stop_after", metavar="STAGE", default=argparse.SUPPRESS,
                     help="the same as --stop_after: stop after this stage (redact: a dry run)")  # fmt: skip
    if with_config:
        _add_config_fields(run)
    deploy = commands.add_parser(
        "deploy", help="register distill/on-demand and distill/scheduled on the stack's Prefect server",
        allow_abbrev=False,
    )  # fmt: skip
    deploy.add_argument("--work-pool", help="the work pool whose workers run it (default: the stack's)")
    deploy.add_argument("--gpu-pool", default="gpu", help="the Kubernetes GPU pool to create or update")
    if with_config:
        _add_config_fields(deploy)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "demo-data":
        return _demo_data(args)
    if args.command == "compare":
        return _compare(args)
    if args.command == "stack":
        from infra.stack import main as stack

        return stack(args.action)
    overrides = {k.removeprefix("set:"): v for k, v in vars(args).items() if k.startswith("set:")}
    return _deploy(args, overrides) if args.command == "deploy" else _run(args, overrides)


if __name__ == "__main__":
    sys.exit(main())
