"""The shape of the project: the compose file (no Docker engine here, so linted), the deployment, and the
direction of imports (stages import the core and their own family, never each other)."""

from pathlib import Path

import yaml

from flows.distill import DistillConfig

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_consistent():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        if "build" in service:
            context = (ROOT / "docker" / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        else:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
        depends = service.get("depends_on", [])
        assert set(depends) <= set(services), name
        for volume in service.get("volumes", []):
            named = volume.split(":")[0]
            assert named.startswith((".", "/")) or named in compose["volumes"], f"{name}: volume {named}"


def test_weekly_deployment_has_the_cron_and_a_valid_config():
    import importlib.util

    spec = importlib.util.spec_from_file_location("weekly", ROOT / "deploy" / "weekly.py")
    weekly = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(weekly)
    deployment = weekly.weekly_deployment()
    assert deployment.name == "weekly"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 1"]
    assert DistillConfig.model_validate(deployment.parameters["config"]) == DistillConfig()


STAGES = {"source", "redact", "teacher", "rollout", "dedup", "verify", "filter", "student", "train", "evaluate"}
STAGES |= {"export", "gate"}
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
