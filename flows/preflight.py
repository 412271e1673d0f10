"""Before a run starts: every service it will use answers, or the run fails at once with one line naming the
service and its URL (not a traceback twenty minutes in, not a client retrying for minutes).

Checked: the request store's PostgreSQL, the MLflow tracking server (and, through it, its database), and the
object store of a remote work dir. URLs are shown without passwords.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from infra.services import short_reason
from tasks import storage
from tasks.urls import masked


class ServiceDown(RuntimeError):
    """A service the run needs does not answer: which, where, and why, in one line."""


def request_store_problem(url: str) -> str | None:
    if not url.startswith(("postgresql://", "postgres://")):
        return None  # SQLite on this machine: nothing to reach
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as e:
        return f"the request store's PostgreSQL at {masked(url)} does not answer ({short_reason(e)})"
    return None


def mlflow_problem(tracking_uri: str | None, experiment: str) -> str | None:
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return None
    query = urllib.parse.urlencode({"experiment_name": experiment})
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?{query}"
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except urllib.error.HTTPError as e:
        if e.code == 404 and "RESOURCE_DOES_NOT_EXIST" in e.read().decode(errors="replace"):
            return None  # no such experiment yet: the run creates it
        return f"the MLflow server at {masked(tracking_uri)} fails (HTTP {e.code}; is its database up?)"
    except OSError as e:
        return f"the MLflow server at {masked(tracking_uri)} does not answer ({short_reason(e)})"
    return None


def work_dir_problem(work_dir: str, endpoint: str | None) -> str | None:
    if storage.is_local(work_dir):
        return None
    try:
        storage.exists(work_dir)
    except Exception as e:  # each filesystem fails its own way (botocore, aiohttp, gcsfs …)
        where = f" ({endpoint})" if endpoint else ""
        return f"the object store of work_dir {work_dir}{where} does not answer ({short_reason(e)})"
    return None


def gguf_problem(outtype: str | None) -> str | None:
    """export.gguf asks for llama.cpp's converter: missing, say so before any training."""
    from tasks.llamacpp import converter_installed, converter_path

    if outtype and not converter_installed():
        missing = f"llama.cpp's converter is missing ({converter_path()})"
        return f"export.gguf is '{outtype}' but {missing}: run `make gguf-env`"
    return None


def check_services(config) -> None:
    """ServiceDown naming every service of `config` (a DistillConfig) that does not answer."""
    import os

    tracking = config.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    problems = [
        request_store_problem(config.request_store_url()),
        mlflow_problem(tracking, config.tracking.experiment),
        work_dir_problem(config.work_dir, config.storage.s3_endpoint_url),
        gguf_problem(config.export.gguf),
    ]
    if found := [p for p in problems if p]:
        raise ServiceDown("; ".join(found))
