"""A counting, fault-injecting HTTP proxy in front of a real teacher server, for outage tests.

It records every /chat/completions request (its prompt, the status it got, when), can answer
chosen prompts with injected responses first (429 with Retry-After, 500, ...), and answers 502 when
the server behind it is down, as a load balancer would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Seen:
    prompt: str
    status: int
    at: float
    authorization: str | None
    samples: int = 1  # the request's `n`


@dataclass
class Fault:
    status: int
    headers: dict[str, str]
    message: str


class CountingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:8000 (no /v1)
        self.seen: list[Seen] = []
        self.faults: dict[str, list[Fault]] = {}  # prompt substring -> responses to give before forwarding
        self.after_ok: tuple[int, Callable[[], None]] | None = None  # after N answered requests, call this once
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=120)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def inject(self, prompt_part: str, *faults: Fault) -> None:
        self.faults[prompt_part] = list(faults)

    def answered(self, status: int = 200) -> Counter:
        """Requests per prompt that got `status`."""
        with self.lock:
            return Counter(s.prompt for s in self.seen if s.status == status)

    def close(self) -> None:
        self.server.shutdown()
        self.client.close()

    def _record(self, prompt: str, status: int, authorization: str | None, samples: int = 1) -> None:
        with self.lock:
            self.seen.append(Seen(prompt, status, time.time(), authorization, samples))
            answered = sum(1 for s in self.seen if s.status == 200)
            hook = self.after_ok if self.after_ok and answered >= self.after_ok[0] else None
            if hook:
                self.after_ok = None
        if hook:
            threading.Thread(target=hook[1], daemon=True).start()

    def _fault_for(self, prompt: str) -> Fault | None:
        with self.lock:
            for part, queue in self.faults.items():
                if part in prompt and queue:
                    return queue.pop(0)
        return None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:
                    pass  # the client died (a test killed it); the request still counts as answered

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body)
                prompt, samples = request["messages"][-1]["content"], request.get("n") or 1
                fault = proxy._fault_for(prompt)
                if fault:
                    error = json.dumps({"error": {"message": fault.message, "code": fault.status}}).encode()
                    proxy._record(prompt, fault.status, self.headers.get("Authorization"))
                    return self._send(fault.status, error, fault.headers)
                try:
                    upstream = proxy.client.post(
                        proxy.upstream + self.path, content=body, headers={"Content-Type": "application/json"}
                    )
                    status, content = upstream.status_code, upstream.content
                except httpx.TransportError as e:
                    status, content = 502, json.dumps({"error": {"message": f"teacher down: {e}"}}).encode()
                proxy._record(prompt, status, self.headers.get("Authorization"), samples)
                self._send(status, content, {})

        return Handler
