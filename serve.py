"""Start the riskdesk server: `python serve.py [--server.port N --server.address A ...]`.

Serves the UI and the REST API (/api/v1) from one process (server.py). Options are
Streamlit's config flags, as `streamlit run` takes them (`--server.port 8501` or
`--server.port=8501`). Streamlit is told up front that app.py uses st.navigation: otherwise,
because a `pages/` folder exists, the first request after a server start that deep-links to a
page (e.g. /data) runs that page file on its own, without app.py's sidebar.
"""
import sys

from streamlit.runtime.pages_manager import PagesManager


def _value(text: str):
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
        options[key] = _value(value)
    return options


if __name__ == "__main__":
    config = parse_options(sys.argv[1:])
    PagesManager.uses_pages_directory = False
    from server import app
    app.run(config={"server.headless": True, **config})
