"""Column roles, the automatic mapping suggestion from English/Chinese headers, names."""
from __future__ import annotations

import re
import unicodedata

from .errors import RiskdeskError

REQUIRED_ROLES = ("transaction_id", "customer_id", "timestamp", "amount")
OPTIONAL_ROLES = ("label", "balance_before", "balance_after", "channel", "transaction_type",
                  "device_id", "counterparty_id")
ROLES = REQUIRED_ROLES + OPTIONAL_ROLES
TEXT_ROLES = ("transaction_id", "customer_id", "channel", "transaction_type", "device_id",
              "counterparty_id")
NUMBER_ROLES = ("amount", "balance_before", "balance_after")

# Normalised header spellings (lower case, no spaces/underscores/dashes) for each role, most
# specific first. Matching is exact on these; CONTAINS below catches longer headers.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "transaction_id": ("transid", "transactionid", "txnid", "txid", "tranid", "tradeno",
                       "serialno", "transno", "orderid", "交易流水号", "流水号", "交易编号", "交易id",
                       "交易序号", "订单号", "id"),
    "customer_id": ("userid", "customerid", "custid", "clientid", "accountid", "acctno",
                    "accountno", "account", "cardno", "nameorig", "客户号", "客户id", "用户id",
                    "用户号", "客户编号", "账号", "账户", "卡号", "客户"),
    "timestamp": ("transtime", "transactiontime", "txdatetime", "txtime", "datetime",
                  "timestamp", "time", "transdate", "transactiondate", "date", "交易时间",
                  "交易日期", "时间", "日期"),
    "amount": ("amount", "amt", "transamount", "transactionamount", "txamount", "money",
               "交易金额", "金额"),
    "label": ("label", "isfraud", "fraud", "txfraud", "class", "target", "isrisk", "y",
              "是否欺诈", "欺诈标签", "欺诈", "标签", "是否风险"),
    "balance_before": ("prebalance", "balancebefore", "oldbalance", "oldbalanceorg",
                       "oldbalanceorig", "openingbalance", "交易前余额", "原余额"),
    "balance_after": ("postbalance", "balanceafter", "newbalance", "newbalanceorig",
                      "closingbalance", "交易后余额", "余额"),
    "channel": ("channel", "渠道", "交易渠道"),
    "transaction_type": ("transtype", "transactiontype", "txtype", "type", "交易类型", "类型"),
    "device_id": ("deviceid", "device", "设备号", "设备id", "设备"),
    "counterparty_id": ("counterparty", "counterpartyid", "merchant", "merchantid", "terminalid",
                        "payee", "payeeid", "namedest", "交易对手", "商户", "商户号", "终端号",
                        "收款方", "对手账号"),
}
CONTAINS: dict[str, tuple[str, ...]] = {
    "transaction_id": ("流水",),
    "customer_id": ("客户", "用户"),
    "timestamp": ("时间", "datetime"),
    "amount": ("金额", "amount"),
    "label": ("欺诈", "fraud"),
    "balance_before": ("交易前",),
    "balance_after": ("交易后",),
    "device_id": ("设备", "device"),
    "counterparty_id": ("商户", "merchant", "terminal", "对手"),
}


def normalise_header(name: str) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    return re.sub(r"[\s_\-./()（）:：]+", "", text)


def suggest_mapping(headers: list[str]) -> dict[str, str]:
    """Suggest ROLE -> header from header names; each header and role used at most once."""
    norm = {h: normalise_header(h) for h in headers}
    mapping: dict[str, str] = {}
    used: set[str] = set()
    # Pass 1: exact synonyms, in the order of each role's synonym list.
    for role in ROLES:
        for syn in SYNONYMS[role]:
            hit = next((h for h in headers if h not in used and norm[h] == syn), None)
            if hit is not None:
                mapping[role] = hit
                used.add(hit)
                break
    # Pass 2: headers containing a telling word.
    for role, words in CONTAINS.items():
        if role in mapping:
            continue
        hit = next((h for h in headers if h not in used and any(w in norm[h] for w in words)), None)
        if hit is not None:
            mapping[role] = hit
            used.add(hit)
    return {role: mapping[role] for role in ROLES if role in mapping}


_NAME_RE = re.compile(r"^\w[\w .()\-]{0,63}$")


def check_dataset_name(name: str) -> str:
    """Return the cleaned dataset name or raise with a one-line reason."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise RiskdeskError("dataset name is empty")
    if ".." in cleaned or not _NAME_RE.match(cleaned):
        raise RiskdeskError(
            f"invalid dataset name {cleaned!r}: use up to 64 letters, digits, spaces, '_', '-', "
            "'.' or '()', starting with a letter or digit, no '/' or '..'")
    return cleaned


def check_mapping(mapping: dict[str, str], headers: list[str], source: str) -> dict[str, str]:
    """Validate a ROLE -> column mapping against a file's headers."""
    for role, column in mapping.items():
        if role not in ROLES:
            raise RiskdeskError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        if column not in headers:
            shown = ", ".join(headers[:12]) + (" ..." if len(headers) > 12 else "")
            raise RiskdeskError(f"{source} has no column {column!r} for role {role} (columns: {shown})")
    seen: dict[str, str] = {}
    for role, column in mapping.items():
        if column in seen:
            raise RiskdeskError(f"column {column!r} is mapped to both {seen[column]} and {role}")
        seen[column] = role
    missing = [r for r in REQUIRED_ROLES if r not in mapping]
    if missing:
        raise RiskdeskError(
            f"{source}: no column for required role{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; map {'them' if len(missing) > 1 else 'it'} with --map ROLE=COLUMN")
    return mapping
