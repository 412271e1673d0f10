"""`redistill deploy`: the distill flow on a Prefect server, run by the workers of a work pool.

- `distill/on-demand`: no schedule; the Prefect UI's "Custom run" renders `DistillConfig` as a typed
  form (descriptions, defaults, bounds), and the server validates what is submitted.
- `distill/scheduled`: `schedule.cron` in `schedule.timezone` (default Mondays 03:00 UTC).

The workers run the flow from this checkout (a `set_working_directory` pull step): a process pool on this
machine or any machine with the same path. With a remote work dir, Prefect's results go beside the stage
datasets (a RemoteFileSystem block), so a retried run on any worker is served from them.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL

from flows.distill import DistillConfig, distill
from flows.placement import STAGE_FLOW, run_stage
from tasks import storage
from tasks.urls import masked

PROJECT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/distill.py:distill"
STAGE_ENTRYPOINT = "flows/placement.py:run_stage"
RESULTS_BLOCK = "redistill-results"
GPU_POOL_TEMPLATE = PROJECT / "deploy" / "gpu-pool.json"


class DeployError(RuntimeError):
    """What stopped `redistill deploy`, in one line: a password in a parameter, a server that does not answer,
    a work pool or schedule the server refused."""


@dataclass
class Deployed:
    name: str
    id: UUID
    schedule: str | None


def results_env(config: DistillConfig) -> dict[str, str]:
    """Where the flow runs of a deployment keep Prefect's results: beside the work dir when it is remote (a
    RemoteFileSystem block holding the endpoint, never a key), else Prefect's default on the worker."""
    if storage.is_local(config.work_dir):
        return {}
    from prefect.filesystems import RemoteFileSystem

    settings: dict = {"endpoint_url": config.storage.s3_endpoint_url} if config.storage.s3_endpoint_url else {}
    if config.storage.s3_region:
        settings["client_kwargs"] = {"region_name": config.storage.s3_region}
    block = RemoteFileSystem(basepath=storage.join(config.work_dir, "prefect-results"), settings=settings)
    block.save(RESULTS_BLOCK, overwrite=True)
    return {"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": f"remote-file-system/{RESULTS_BLOCK}"}


def refuse_passwords(config: DistillConfig) -> None:
    """A deployment's parameters are stored by the server and shown in its UI: no password may be in them."""
    for name, url in (("request_store", config.request_store), ("tracking.tracking_uri", config.tracking.tracking_uri)):
        if url and masked(url) != url:
            raise DeployError(
                f"{name} holds a password: the server stores and shows a deployment's parameters; give the "
                "workers PGPASSWORD (or the server's own auth) instead"
            )


def deploy(config: DistillConfig, work_pool: str) -> list[Deployed]:
    """Register both deployments with `config` as their default parameter; what was registered."""
    refuse_passwords(config)
    try:
        return _deploy(config, work_pool)
    except httpx.HTTPError as e:
        raise DeployError(f"the Prefect server at {PREFECT_API_URL.value()} does not answer ({e})") from None
    except (ObjectNotFound, PrefectHTTPStatusError, ValueError) as e:
        raise DeployError(str(e).splitlines()[0]) from None


def _deploy(config: DistillConfig, work_pool: str) -> list[Deployed]:
    from prefect.schedules import Cron

    flow = distill.from_source(source=str(PROJECT), entrypoint=ENTRYPOINT)
    stage_flow = run_stage.from_source(source=str(PROJECT), entrypoint=STAGE_ENTRYPOINT)
    common = {
        "work_pool_name": work_pool,
        "parameters": {"config": config.model_dump(mode="json")},
        "job_variables": {"env": results_env(config)},
        "build": False,
        "push": False,
        "print_next_steps": False,
        "ignore_warnings": True,
        "tags": ["redistill"],
    }
    cron = Cron(config.schedule.cron, timezone=config.schedule.timezone)
    with contextlib.redirect_stdout(io.StringIO()):  # Prefect prints a table per deployment; we print one line
        on_demand = flow.deploy(name="on-demand", description=_describe(None), **common)
        fresh = config.model_copy(update={"schedule": config.schedule.model_copy(update={"fresh_traffic": True})})
        parameters = {"config": fresh.model_dump(mode="json")}
        scheduled = flow.deploy(
            name="scheduled", schedules=[cron], description=_describe(config), **(common | {"parameters": parameters})
        )
        stages = [
            Deployed(f"{STAGE_FLOW}/{pool}", stage_flow.deploy(name=pool, **(common | {"work_pool_name": pool,
                     "parameters": {}, "description": f"distill stages placed on {pool}"})), None)
            for pool in sorted(config.placement.pools())
        ]  # fmt: skip
    return [
        Deployed("distill/on-demand", on_demand, None),
        Deployed("distill/scheduled", scheduled, f"{config.schedule.cron} ({config.schedule.timezone})"),
        *stages,
    ]


def ensure_gpu_pool(name: str = "gpu") -> str:
    """The Kubernetes pool for GPU stages (one `nvidia.com/gpu` per job, the GPU worker image), created or
    updated through the server's API, which validates the template. No cluster is needed to create it; a
    `prefect-kubernetes` worker in a cluster runs its jobs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    template = json.loads(GPU_POOL_TEMPLATE.read_text())
    pool = WorkPoolCreate(name=name, type="kubernetes", base_job_template=template,
                          description="GPU stages: rollout on vLLM, train, evaluate, export")  # fmt: skip
    try:
        with get_client(sync_client=True) as client:
            return client.create_work_pool(pool, overwrite=True).type
    except httpx.HTTPError as e:
        raise DeployError(f"the Prefect server at {PREFECT_API_URL.value()} does not answer ({e})") from None


def _describe(config: DistillConfig | None) -> str:
    if config is None:
        return "Distil the teacher into a quantized student, on demand: change any field in the form."
    return f"Re-distil fresh traffic on a schedule: {config.schedule.cron} ({config.schedule.timezone})."
