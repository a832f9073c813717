"""Start the riskdesk server: `python serve.py [--server.port N --server.address A ...]`.

Serves the UI and the REST API (/api/v1) from one process (server.py). Options are
Streamlit's config flags, as `streamlit run` takes them (`--server.port 8501` or
`--server.port=8501`). Streamlit is told up front that app.py uses st.navigation: otherwise,
because a `pages/` folder exists, the first request after a server start that deep-links to a
page (e.g. /data) runs that page file on its own, without app.py's sidebar.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager

HERE = Path(__file__).resolve().parent


LIST_OPTIONS = {"secrets.files"}        # comma-separated on the command line


def _value(key: str, text: str):
    if key in LIST_OPTIONS:
        return [part for part in text.split(",") if part]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if text.isdigit() else text


def parse_options(argv: list[str]) -> dict:
    """`--section.name value` and `--section.name=value` pairs as a config mapping."""
    options, args = {}, list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or "." not in arg:
            raise SystemExit(f"error: unexpected argument {arg!r} (options look like --server.port 8501)")
        key, _, value = arg[2:].partition("=")
        if not _:
            if not args:
                raise SystemExit(f"error: --{key} needs a value")
            value = args.pop(0)
        options[key] = _value(key, value)
    return options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background(home, log=None, timeout: float = 60, threads: int | None = None, port: int | None = None,
               options: dict | None = None, address: str | None = "127.0.0.1"):
    """This server in another process on `home`, on `port` (default: a free local port), for
    tests, benchmarks and screenshots: yields its base URL once /api/v1/health answers, stops it
    afterwards, listening on `address` (None: every interface, as `./start.sh` does). `options`
    are more Streamlit config flags ({"secrets.files": "PATH"}). Output
    goes to the `log` file (else nowhere); a server that does not start raises with the log's
    tail."""
    port = port or free_port()
    env = {**os.environ, "RISKDESK_HOME": str(home), **({"RISKDESK_THREADS": str(threads)} if threads else {})}
    out = open(log, "w") if log else subprocess.DEVNULL
    flags = [f"--{k}={v}" for k, v in (options or {}).items()]
    proc = subprocess.Popen([sys.executable, str(HERE / "serve.py"), "--server.port", str(port),
                             *(["--server.address", address] if address else []), *flags],
                            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(url + "/api/v1/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    tail = Path(log).read_text()[-2000:] if log else ""
                    raise RuntimeError(f"the server did not start on {home}: {tail}") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def without_nagle() -> None:
    """Small responses on kept-alive connections go out at once. Streamlit binds its listening
    socket itself, with protocol 0, so asyncio does not set TCP_NODELAY on the connections it
    accepts, and each response's last segment waited for the client's delayed ACK: 44 ms per
    API call instead of 2. Set on the listening socket, the option is inherited (Linux)."""
    from streamlit.web.server.starlette import starlette_server
    bind = starlette_server._bind_socket

    def bind_without_nagle(*args, **kwargs):
        sock = bind(*args, **kwargs)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    starlette_server._bind_socket = bind_without_nagle


# What the pages and the API import, loaded before the server answers so that settle() can
# freeze it. shap and optuna stay lazy: they load on first use, for the pages that need them.
WARM_MODULES = ("pandas", "pyarrow", "plotly.graph_objects", "plotly.express", "lightgbm", "core.explain",
                "core.realtime", "core.monitor", "core.plots", "core.report", "core.compare", "core.models")


def settle(modules=WARM_MODULES) -> None:
    """Import what the pages and the API use, then move every object alive now out of the
    garbage collector's reach (gc.freeze). Each full collection otherwise walked the ~200k
    objects of Streamlit, pandas, plotly and LightGBM holding the GIL, 140-180 ms on an idle
    machine and over 300 ms under load, and every API request waited for it."""
    import gc
    import importlib
    for name in modules:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


def local_url(config: dict) -> str:
    """The address the command line on this machine reaches the server at."""
    address = str(config.get("server.address") or "127.0.0.1")
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "localhost") else address
    return f"http://{host}:{config.get('server.port', 8501)}"


if __name__ == "__main__":
    import atexit
    import faulthandler
    import signal

    faulthandler.enable(all_threads=True)     # a crash in native code leaves every thread's stack in the log

    from core import config as workspace
    from core import localserver
    config = parse_options(sys.argv[1:])
    PagesManager.uses_pages_directory = False
    without_nagle()
    # Requests hop between the event loop and worker threads, taking the GIL at each hop; with
    # a page script busy in Python each hop waited up to the default 5 ms switch interval.
    sys.setswitchinterval(float(os.environ.get("RISKDESK_SWITCH_INTERVAL", "0.0005")))
    from server import app
    settle()
    home = workspace.home()
    home.mkdir(parents=True, exist_ok=True)
    localserver.publish(home, local_url(config))
    atexit.register(localserver.withdraw, home)
    # the web server re-raises SIGTERM after its graceful shutdown, which would skip atexit
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    app.run(config={"server.headless": True, **config})
