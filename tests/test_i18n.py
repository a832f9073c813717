"""Both catalogues are complete and every key the UI uses exists."""
import re

from conftest import ROOT
from core.i18n import EN, ZH, t

UI_FILES = [ROOT / "app.py", ROOT / "ui.py", *sorted((ROOT / "pages").glob("*.py"))]


def test_catalogues_have_the_same_keys_and_placeholders():
    assert set(EN) == set(ZH)
    for key in EN:
        assert set(re.findall(r"{(\w+)}", EN[key])) == set(re.findall(r"{(\w+)}", ZH[key])), key


def test_every_key_used_by_the_ui_exists():
    used = set()
    for path in UI_FILES:
        used |= set(re.findall(r"""\btr\(\s*["']([\w.]+)["']""", path.read_text(encoding="utf-8")))
        # keys built as tr(f"prefix.{x}") must have their prefix in the catalogue
        for prefix in re.findall(r"""\btr\(\s*f["']([\w.]+)\{""", path.read_text(encoding="utf-8")):
            assert any(k.startswith(prefix) for k in EN), prefix
    assert used, "no tr() calls found"
    missing = sorted(k for k in used if k not in EN)
    assert not missing, missing


def test_chinese_uses_glossary_terms():
    assert t("role.transaction_id", "zh") == "交易流水号"
    assert t("role.counterparty_id", "zh") == "交易对手"
    assert t("role.device_id", "zh") == "设备号"


def test_every_multiselect_says_its_placeholder_in_the_page_language():
    """Streamlit's own placeholder ("Choose options") is English on a Chinese page."""
    for path in UI_FILES:
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"\.multiselect\(", text):
            depth, end = 0, call.end() - 1
            for end in range(call.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            assert "placeholder=" in text[call.start():end], (path.name, text[call.start():call.start() + 80])
