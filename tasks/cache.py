"""Caching by content: a stage's cache key and its output folder come from what it computes, never
from where: configs and the digests of datasets and models, plus the identity of the code it runs.

Code identity is the AST of the stage's module and of every project module it imports (its own
family, tasks/llm or tasks/verifiers, and the core), without docstrings, comments or field
descriptions: prose edits invalidate nothing, and a chat-backend or sampling edit never retrains the student
(of the LLM layer, train imports only the request store, where the teacher's top-k are kept, and what asks a
served teacher for them: tasks/llm/served.py, http.py, prompt_logprobs.py).
"""

from __future__ import annotations

import ast
import errno
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from prefect import Task
from prefect.cache_policies import CachePolicy
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

from tasks import storage
from tasks.config import PLACE
from tasks.refs import DatasetRef, ModelRef
from tasks.stage import log

# Parameters that say where things are, not what they are: never part of a cache key, so the same run
# in two work dirs, or on two machines sharing storage, is the same computation.
LOCATION_PARAMETERS = ("work_dir", "store")


def identity(value: Any) -> Any:
    """What a value contributes to a cache key: datasets and models by their digest, never their URI; configs
    without their PLACE fields."""
    if isinstance(value, DatasetRef):
        return value.digest
    if isinstance(value, ModelRef):
        return value.fingerprint
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {name: identity(v) for name, v in value if fields[name].json_schema_extra != PLACE}
    if isinstance(value, dict):
        return {str(k): identity(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [identity(v) for v in value]
    return value


def content_key(*parts: Any) -> str:
    """A short stable hash of configs and refs (by content: see `identity`)."""
    plain = json.dumps([identity(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(plain.encode()).hexdigest()[:16]


def stage_uri(work_dir: str, stage: str, *inputs: Any) -> str:
    """Where a stage writes: one folder per content key (its inputs and the code of `tasks.<stage>` and what
    it imports), so neither two configs nor two versions of the code ever overwrite each other's outputs."""
    return storage.join(work_dir, stage, content_key(*inputs, code_key(importlib.import_module(f"tasks.{stage}"))))


class StageInputs(CachePolicy):
    """Cache key part: the task's inputs by content, leaving out where things are (LOCATION_PARAMETERS)."""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        return content_key({name: value for name, value in inputs.items() if name not in LOCATION_PARAMETERS})


def module_source(module: ModuleType) -> str:
    return inspect.getsource(module)


def code_text(source: str) -> str:
    """Python source without its prose: the AST with docstrings, bare strings and `description=` texts
    removed (line numbers and comments are not in it), so editing prose invalidates nothing."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            kept = [s for s in node.body if not (isinstance(s, ast.Expr) and _is_text(s.value))]
            node.body = kept or [ast.Pass()]
        if isinstance(node, ast.Call):
            node.keywords = [k for k in node.keywords if not (k.arg == "description" and _is_text(k.value))]
    return ast.dump(tree)


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def project_modules(module: ModuleType, seen: dict[str, ModuleType] | None = None) -> dict[str, ModuleType]:
    """The module and every project module it imports, transitively (read from its import statements,
    those inside functions too): a stage's own code, its family (tasks/llm, tasks/verifiers) and the core."""
    seen = {} if seen is None else seen
    seen[module.__name__] = module
    for node in ast.walk(ast.parse(module_source(module))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            # `from tasks.llm import local` names a module too
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in ("tasks", "flows") and name not in seen and _is_module(name):
                project_modules(importlib.import_module(name), seen)
    return seen


def _is_module(name: str) -> bool:
    """Whether `name` is a module (`tasks.llm.local`), not a name inside one (`tasks.config.Config`)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent is a module, not a package
        return False


class StageCode(CachePolicy):
    """Cache key part: the code (not the prose) of the task's module and every project module it uses.

    Prefect's TASK_SOURCE hashes only the decorated function; our stages keep their logic in pure
    functions beside it, and an edit there must invalidate the cache too.
    """

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        return code_key(sys.modules[task_ctx.task.fn.__module__])


def code_key(module: ModuleType) -> str:
    """The identity of a module's code and the project code it uses (see `project_modules`, `code_text`)."""
    modules = project_modules(module)
    return hash_objects(*(code_text(module_source(modules[name])) for name in sorted(modules)))


STAGE_CACHE = StageInputs() + StageCode()

# what a retry can fix: a connection to storage or a database that dropped (by class name: the libraries
# that raise them, botocore, aiohttp, psycopg, httpx, are not all imported here)
TRANSIENT_ERRORS = {
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "OperationalError", "TransportError",
}  # fmt: skip


# what s3fs makes of a server's "try again" (500 InternalError, 503 SlowDown) and of timeouts
TRANSIENT_ERRNOS = {errno.EREMOTEIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT}


def transient(error: BaseException | None) -> bool:
    """Whether the error, or one it was raised from, is a dropped connection, a timeout, or a server's "try
    again"."""
    while error is not None:
        if isinstance(error, ConnectionError | TimeoutError) or type(error).__name__ in TRANSIENT_ERRORS:
            return True
        if isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS:
            return True
        error = error.__cause__ or error.__context__
    return False


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect's retry condition for stages: retry an outage of S3 or PostgreSQL, not a bug or bad data."""
    return transient(state.result(raise_on_failure=False))


# every stage task: cached by content, results persisted, retried through a storage outage
STAGE_TASK = {
    "cache_policy": STAGE_CACHE,
    "persist_result": True,
    "retries": 2,
    "retry_delay_seconds": 15,
    "retry_condition_fn": retry_if_transient,
}


def outputs_intact(result: Any) -> bool:
    """Whether every dataset and model folder a stage result names, at any depth (a student's adapter), is still
    there, as it was written."""
    if isinstance(result, DatasetRef):
        return storage.exists(result.uri) and storage.digest(result.uri) == result.digest
    if isinstance(result, ModelRef):
        return storage.folder_complete(result.uri)
    if isinstance(result, BaseModel):
        return all(outputs_intact(value) for _, value in result)
    if isinstance(result, dict):
        return all(outputs_intact(value) for value in result.values())
    if isinstance(result, list | tuple):
        return all(outputs_intact(value) for value in result)
    return True


def cached(stage_task: Task) -> Callable[..., Any]:
    """The stage task, served from cache where it can be, but recomputed when the cached result names outputs
    that are gone (a deleted work dir, say): the next stage never gets a missing file; or when it is one not to
    reuse (a failed deploy check: the next run tries again)."""

    def run(*args: Any) -> Any:
        state = stage_task(*args, return_state=True)
        result = state.result()
        if state.name != "Cached":
            return result
        if not outputs_intact(result):
            log(f"{stage_task.name}: the cached outputs are gone; computing them again")
        elif not result.reusable():
            log(f"{stage_task.name}: the cached result is a failed check; trying again")
        else:
            return result
        return stage_task.with_options(refresh_cache=True)(*args)

    return run
