"""The parts that run elsewhere: the compose file (no Docker engine here, so linted) and the deployment."""

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
