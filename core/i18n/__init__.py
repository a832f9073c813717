"""UI text in English and Simplified Chinese (terms from ../shared/glossary.md).

Pages never hold literal user-facing strings: they call t(key, lang, **values). A test checks
that both catalogues have the same keys and that every key a page uses exists. The catalogue
is split by area: `base` (pages and models), `ingest` (mapping suggestions, data health),
`operations` (batches, feedback labels), `people` (signing in, roles).
"""
from __future__ import annotations

from . import base, ingest, operations, people

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT = "en"

EN: dict[str, str] = {**base.EN, **ingest.EN, **operations.EN, **people.EN}
ZH: dict[str, str] = {**base.ZH, **ingest.ZH, **operations.ZH, **people.ZH}
CATALOGUES = {"en": EN, "zh": ZH}


def t(key: str, lang: str = DEFAULT, **values) -> str:
    """The text for `key` in `lang` (English if missing), with {placeholders} filled."""
    text = CATALOGUES.get(lang, EN).get(key) or EN.get(key) or key
    return text.format(**values) if values else text


def role_name(role: str, lang: str = DEFAULT) -> str:
    return t(f"role.{role}", lang)


def reason_text(reason: str, role: str | None, lang: str = DEFAULT) -> str:
    return t(f"reason.{reason}", lang, role=role_name(role, lang) if role else "")


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


