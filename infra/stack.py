"""The local stack: PostgreSQL, an S3 server, the Prefect server and a worker, an MLflow server.

redistill stack up       # idempotent: starts what is not running, waits until each is healthy
redistill stack status   # each service, its URL and health (exit 1 if any is down)
redistill stack down     # stops what `up` started; the data stays
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from pydantic import ValidationError

from infra.services import SERVICES, Health, Service, StackError
from infra.settings import StackSettings


@dataclass
class ServiceState:
    name: str
    url: str
    health: Health
    note: str = ""


def services(settings: StackSettings) -> list[Service]:
    return [kind(settings) for kind in SERVICES]


def up(settings: StackSettings) -> tuple[list[ServiceState], float]:
    """Start the stack in dependency order; the state of each service and the seconds it took."""
    began = time.monotonic()
    states = []
    for service in services(settings):
        note = service.up()
        states.append(ServiceState(service.name, service.url, service.health(), note))
    return states, time.monotonic() - began


def status(settings: StackSettings) -> list[ServiceState]:
    return [ServiceState(s.name, s.url, s.health()) for s in services(settings)]


def down(settings: StackSettings) -> list[ServiceState]:
    """Stop in reverse order (the worker first, PostgreSQL last); data, logs and settings stay."""
    states = []
    for service in reversed(services(settings)):
        note = service.down()
        states.append(ServiceState(service.name, service.url, Health(False, "down"), note))
    return states[::-1]


def render(states: list[ServiceState]) -> str:
    width = max(len(s.url) for s in states)
    lines = []
    for s in states:
        mark = "up  " if s.health.ok else "DOWN"
        note = f"  ({s.note})" if s.note else ""
        lines.append(f"{s.name:<9}{mark}  {s.url:<{width}}  {s.health.detail}{note}")
    return "\n".join(lines)


def main(action: str) -> int:
    try:
        settings = StackSettings()
    except ValidationError as e:  # REDISTILL_PG_PORT=abc, say
        fields = ", ".join(f"REDISTILL_{str(err['loc'][0]).upper()}: {err['msg']}" for err in e.errors())
        print(f"redistill stack: {fields} (infra/stack.env or the environment)", file=sys.stderr)
        return 2
    try:
        if action == "up":
            states, seconds = up(settings)
            print(render(states))
            print(f"stack up in {seconds:.0f} s; data and logs in {settings.root}")
            print(f"Prefect UI {settings.prefect_ui}   MLflow {settings.mlflow_url}")
        elif action == "status":
            states = status(settings)
            print(render(states))
            return 0 if all(s.health.ok for s in states) else 1
        else:
            print(render(down(settings)))
            print(f"data kept in {settings.root}")
    except StackError as e:
        print(f"redistill stack: {e}", file=sys.stderr)
        return 1
    return 0
