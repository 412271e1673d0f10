"""The shape of the project: the compose file (no Docker engine here, so checked against the stack's env file
and the images), the GPU pool's template, and the
direction of imports (stages import the core and their own family, never each other)."""

import json
import re
import shutil
import sys
import tomllib
from pathlib import Path

import yaml

from infra.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]


SERVICE_PORTS = {  # compose service -> (the stack.env variable of its host port, the port it listens on inside)
    "postgres": ("REDISTILL_PG_PORT", 5432),
    "s3": ("REDISTILL_S3_PORT", 8333),
    "prefect-server": ("REDISTILL_PREFECT_PORT", 4200),
    "mlflow": ("REDISTILL_MLFLOW_PORT", 5000),
}


def _stack_env() -> dict[str, str]:
    lines = (ROOT / "infra" / "stack.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_compose_file_agrees_with_the_stack_env_and_the_images():
    text = (ROOT / "docker" / "compose.yaml").read_text()
    compose, env = yaml.safe_load(text), _stack_env()
    services = compose["services"]
    assert set(services) == {*SERVICE_PORTS, "worker-cpu", "worker-gpu"}
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= set(env), "a variable the env file does not define"
    for name, (variable, inside) in SERVICE_PORTS.items():
        assert services[name]["ports"] == [f"127.0.0.1:${{{variable}}}:{inside}"], name  # loopback only
        command = str(services[name].get("command", ""))
        assert name == "postgres" or str(inside) in command, f"{name} does not listen on {inside}"
    for name, service in services.items():
        if "build" in service:
            dockerfile = (ROOT / "docker" / service["build"]["context"] / service["build"]["dockerfile"]).resolve()
            copied = re.findall(r"^COPY (.+) \S+$", dockerfile.read_text(), re.M)
            assert all((ROOT / part).exists() for line in copied for part in line.split()), dockerfile
            [program] = service.get("entrypoint") or ["redistill"]
            assert shutil.which(program, path=str(Path(sys.executable).parent)), f"{name}: no {program} installed"
        else:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name}: pin the image tag"
        assert set(service.get("depends_on", [])) <= set(services), name
        for volume in service.get("volumes", []):
            named = volume.split(":")[0]
            assert named.startswith((".", "/")) or named in compose["volumes"], f"{name}: volume {named}"
    # the workers get what the local stack's worker gets, pointed at the services by name
    settings = StackSettings()
    for worker in ("worker-cpu", "worker-gpu"):
        assert set(services[worker]["environment"]) == set(settings.client_env()), worker
        assert services[worker]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert "--pool ${REDISTILL_WORK_POOL} --type process" in services["worker-cpu"]["command"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for dockerfile in ("Dockerfile.cpu", "Dockerfile.gpu"):
        entrypoint = re.search(r"^ENTRYPOINT \[\"(\w+)\"\]", (ROOT / "docker" / dockerfile).read_text(), re.M)[1]
        assert entrypoint in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_the_gpu_pool_template_asks_for_one_gpu_and_the_gpu_image():
    template = json.loads((ROOT / "deploy" / "gpu-pool.json").read_text())
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    variables = template["variables"]["properties"]
    assert variables["gpu_count"]["default"] == 1 and "gpu-worker" in variables["image"]["default"]


STAGES = {"source", "redact", "drift", "teacher", "rollout", "dedup", "verify", "filter", "student", "train"}
STAGES |= {"evaluate", "replay", "decontaminate", "judge"}
STAGES |= {"export", "serve", "gate", "dpo"}
FAMILIES = {"llm", "verifiers", "pii", "logfile"}


def _project_imports(path: Path) -> set[str]:
    """The `tasks` modules or packages a file imports (`tasks.llm.store` -> `llm`), inside functions too."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ([f"tasks.{a.name}" for a in node.names] if node.module == "tasks" else [])
        found |= {name.split(".")[1] for name in names if name.startswith("tasks.")}
    return found


def test_stages_import_the_core_and_their_family_never_each_other():
    for stage in STAGES:
        imported = _project_imports(ROOT / "tasks" / f"{stage}.py")
        assert not imported & (STAGES - {stage}), f"tasks/{stage}.py imports another stage"


def test_families_and_the_core_import_no_stage():
    for family in FAMILIES:
        for path in (ROOT / "tasks" / family).glob("*.py"):
            imported = _project_imports(path)
            assert not imported & STAGES and not imported & (FAMILIES - {family}), path
    core = {p for p in (ROOT / "tasks").glob("*.py") if p.stem not in STAGES}
    for path in core:
        assert not _project_imports(path) & STAGES, path
