"""The one server: the Streamlit UI, the REST API (/api/v1, with its OpenAPI document at
/api/v1/openapi.json) and the session-cookie routes in one process, sharing one database handle
per workspace."""
import ipaddress
import re
from pathlib import Path

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route

from api import api
from core import localserver, sessions
from core.people import NotSignedIn
from core.store import open_store


class ApiMount(Mount):
    """A mount that also takes paths holding a (percent-encoded) newline, which Starlette's
    pattern leaves to the UI's plain-text 404: the API answers every /api/v1 path itself."""

    def __init__(self, path: str, app) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


def _same_site_path(text: str | None) -> str:
    """`text` if it is a path on this server, else "/" (no redirect elsewhere)."""
    text = text or "/"
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/"


def start_session(request: Request) -> RedirectResponse:
    """Trade the app's one-time sign-in grant for the session cookie, then go back to the page."""
    response = RedirectResponse(_same_site_path(request.query_params.get("next")), status_code=303)
    try:
        token = sessions.redeem(open_store(), request.query_params.get("grant", ""))
    except NotSignedIn:
        return response                     # the page shows the sign-in form again
    response.set_cookie(sessions.COOKIE, token, max_age=sessions.SESSION_HOURS * 3600, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


def end_session(request: Request) -> RedirectResponse:
    """Sign-out: end the cookie's session on the server and remove the cookie."""
    sessions.end(open_store(), sessions.session_id(request.cookies.get(sessions.COOKIE, "")))
    response = RedirectResponse(_same_site_path(request.query_params.get("next")), status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


def from_this_machine(host: str | None) -> bool:
    """Whether a client address is loopback, also as an IPv4-mapped IPv6 address: the default
    `./start.sh` listens on every interface, dual-stack, where 127.0.0.1 arrives as
    ::ffff:127.0.0.1."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


DEFAULT_PAGE_PATH = "/data"          # app.py's default page, which Streamlit serves at "/"


def default_page(request: Request) -> RedirectResponse:
    """The Data page's own address, for links and bookmarks: Streamlit serves the default page
    at "/" and answers its url_path with a "Page not found" dialog over the page."""
    query = request.url.query
    return RedirectResponse("/" + (f"?{query}" if query else ""), status_code=307)


async def run_command(request: Request) -> JSONResponse:
    """The command line of this machine's workspace owner, run here while this server holds the
    workspace (core.localserver): loopback only, with the credential from server.json."""
    import io

    from core import cli
    credential = request.headers.get("authorization", "").removeprefix("Bearer ")
    if request.client is None or not from_this_machine(request.client.host) or not localserver.accepts(credential):
        return JSONResponse({"error": "not the workspace's local command line"}, status_code=403)
    try:
        body = await request.json()
        argv, cwd, stdin = body["argv"], body.get("cwd"), body.get("stdin")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "expected {\"argv\": [...], \"cwd\", \"stdin\"}"}, status_code=422)
    try:
        code, out, err = await run_in_threadpool(cli.execute, argv, cwd if isinstance(cwd, str) else None,
                                                 io.StringIO(stdin if isinstance(stdin, str) else ""))
    except SystemExit as exc:            # --help and the like
        code, out, err = int(exc.code or 0), "", ""
    return JSONResponse({"code": code, "stdout": out, "stderr": err})


app = st.App(str(Path(__file__).resolve().parent / "app.py"),
             routes=[ApiMount("/api/v1", api),
                     Route("/session/start", start_session), Route("/session/end", end_session),
                     Route(DEFAULT_PAGE_PATH, default_page),
                     Route(localserver.ROUTE, run_command, methods=["POST"])])
