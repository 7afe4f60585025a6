"""ainode job SDK: call the platform's LLMs from inside a job container.

The container has no network. Its only way out is the AI gateway's Unix socket, bind-mounted at
``$AINODE_GATEWAY_SOCKET`` and authenticated by ``$AINODE_JOB_TOKEN``. Every call becomes a durable LLM
activity in the job's Temporal workflow, which meters tokens from the model server's own counts.

Standard library only. Thread-safe: calls may be made from many threads at once.

    import ai_client
    text = ai_client.generate("Summarise in one line: print('Hello')")
    reply = ai_client.chat([{"role": "user", "content": "What is recursion?"}], model="gemma3:270m")
"""

import http.client
import json
import os
import random
import socket
import threading
import time
import uuid

__all__ = [
    "generate",
    "chat",
    "usage",
    "AiClientError",
    "LimitExceededError",
    "ModelNotFoundError",
]

_SOCKET = os.environ.get("AINODE_GATEWAY_SOCKET", "/run/ainode/gateway.sock")
_TOKEN = os.environ.get("AINODE_JOB_TOKEN", "")
_WORK_DIR = os.environ.get("AINODE_WORK_DIR") or os.getcwd()
# A CPU model can take minutes for a long answer; the workflow, not this timeout, bounds the call.
_CALL_TIMEOUT_S = float(os.environ.get("AINODE_CALL_TIMEOUT_S", "900"))
_MAX_ATTEMPTS = int(os.environ.get("AINODE_CONNECT_ATTEMPTS", "8"))
_BACKOFF_S = float(os.environ.get("AINODE_BACKOFF_S", "0.2"))

_usage_lock = threading.Lock()
_totals = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class AiClientError(Exception):
    """A call the platform refused or could not answer. ``code`` is machine-readable (e.g. limit_exceeded)."""

    def __init__(self, message, code="error", status=0):
        super().__init__(message)
        self.code = code
        self.status = status


class LimitExceededError(AiClientError):
    """The job's call or token limit is reached; the job keeps running, further calls fail the same way."""


class ModelNotFoundError(AiClientError):
    """The requested model is not in the platform's catalog."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _record_usage(kind, reply):
    u = reply.get("usage") or {}
    line = {
        "ts": time.time(),
        "call": reply.get("call"),
        "kind": kind,
        "model": reply.get("model"),
        "prompt_tokens": u.get("prompt", 0),
        "completion_tokens": u.get("completion", 0),
        "total_tokens": u.get("total", 0),
    }
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8")
    with _usage_lock:
        _totals["calls"] += 1
        _totals["prompt_tokens"] += line["prompt_tokens"]
        _totals["completion_tokens"] += line["completion_tokens"]
        _totals["total_tokens"] += line["total_tokens"]
        # One O_APPEND write per line: whole lines even if other processes append too.
        try:
            fd = os.open(os.path.join(_WORK_DIR, "usage.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            pass  # a read-only work dir must not fail the call; the platform meters independently


def _raise_for(status, payload):
    err = (payload or {}).get("error") or {}
    code = err.get("code", "error")
    message = err.get("message", "HTTP %d from the AI gateway" % status)
    if code == "limit_exceeded":
        raise LimitExceededError(message, code, status)
    if code == "model_not_found":
        raise ModelNotFoundError(message, code, status)
    raise AiClientError(message, code, status)


def _call(path, body):
    # One id per logical call, reused by every retry: the platform answers and meters it exactly once.
    call_id = uuid.uuid4().hex
    payload = json.dumps(body).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer " + os.environ.get("AINODE_JOB_TOKEN", _TOKEN),
        "X-Ainode-Call-Id": call_id,
    }
    sock_path = os.environ.get("AINODE_GATEWAY_SOCKET", _SOCKET)
    last = None
    for attempt in range(_MAX_ATTEMPTS):
        conn = _UnixConnection(sock_path, _CALL_TIMEOUT_S)
        try:
            conn.request("POST", path, body=payload, headers=headers)
            resp = conn.getresponse()
            status, data = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            last = exc
            time.sleep(_BACKOFF_S * (2**attempt) * (0.5 + random.random()))
            continue
        finally:
            conn.close()
        try:
            parsed = json.loads(data.decode("utf-8")) if data else {}
        except ValueError:
            parsed = {}
        if status != 200:
            _raise_for(status, parsed)
        return parsed
    raise AiClientError(
        "AI gateway unreachable at %s after %d attempts: %s" % (sock_path, _MAX_ATTEMPTS, last), "unreachable"
    )


def _split_options(options):
    body = {}
    for key in ("system", "format"):
        if key in options:
            body[key] = options.pop(key)
    if options:
        body["options"] = options
    return body


def generate(prompt, model=None, **options):
    """Completes ``prompt`` and returns the text. ``model`` defaults to the job's model; keyword options
    (temperature, num_predict, seed, top_p, top_k, stop, repeat_penalty, system, format) pass through."""
    body = {"prompt": prompt}
    if model:
        body["model"] = model
    body.update(_split_options(dict(options)))
    reply = _call("/v1/generate", body)
    _record_usage("generate", reply)
    return reply.get("content", "")


def chat(messages, model=None, **options):
    """Answers a conversation (``[{"role": "user", "content": "..."}]``) and returns the reply text."""
    body = {"messages": list(messages)}
    if model:
        body["model"] = model
    body.update(_split_options(dict(options)))
    reply = _call("/v1/chat", body)
    _record_usage("chat", reply)
    return reply.get("content", "")


def usage():
    """Tokens used by this process so far, as the platform reported them."""
    with _usage_lock:
        return dict(_totals)
