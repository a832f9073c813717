"""The command line beside a running server: DuckDB lets one process write a workspace, so while
the server holds it, `python -m core ...` asks the server to run the command instead.

The server publishes its local address and a random credential in `server.json` in the
workspace, readable by the workspace's owner only (0600), and removes it when it stops. A
command that finds the workspace busy sends its arguments, its working directory (for relative
file paths) and, where it reads one, its standard input to the server's /local/cli route, which
runs the same command there and answers with its exit code, stdout and stderr. This module
never imports streamlit.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

FILE = "server.json"
ROUTE = "/local/cli"
_token: str | None = None


def publish(home: Path, url: str) -> str:
    """Record this server's address and a new credential for the command line; returns it."""
    global _token
    _token = secrets.token_urlsafe(32)
    path = Path(home) / FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": url, "token": _token, "pid": os.getpid()}, f)
    return _token


def withdraw(home: Path) -> None:
    """Remove this server's record (at shutdown)."""
    path = Path(home) / FILE
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def accepts(token: str | None) -> bool:
    """Whether a request carries this server's command-line credential."""
    return bool(_token) and hmac.compare_digest((token or "").encode(), _token.encode())


def find(home: Path) -> dict | None:
    """The running server of a workspace {"url", "token"}, or None (no record, or its process
    has gone)."""
    try:
        record = json.loads((Path(home) / FILE).read_text(encoding="utf-8"))
        os.kill(int(record["pid"]), 0)
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forward(record: dict, argv: list[str], stdin: str | None) -> tuple[int, str, str]:
    """Run a command in the server; returns its (exit code, stdout, stderr)."""
    import urllib.error
    import urllib.request
    body = json.dumps({"argv": argv, "cwd": os.getcwd(), "stdin": stdin}).encode()
    request = urllib.request.Request(record["url"] + ROUTE, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {record['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=None) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return 1, "", f"error: the riskdesk server refused the command ({exc.code}: {exc.read()[:200]!r})\n"
    except OSError as exc:
        return 1, "", f"error: the workspace is in use by a riskdesk server at {record['url']} that does not answer ({exc})\n"
    return int(answer["code"]), answer["stdout"], answer["stderr"]
