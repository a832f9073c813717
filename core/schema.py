"""Column roles, header hints in English and Chinese (plus common abbreviations and a few
other languages), the feature families each role enables, and dataset names.

Only the time and the amount are required (and a label to train). Without a transaction id,
rows get stable ids from their position in the file; without a customer id, the per-customer
families are left out (FAMILY_NEEDS says which).
"""
from __future__ import annotations

import re
import unicodedata

from .errors import RiskdeskError

REQUIRED_ROLES = ("timestamp", "amount")
OPTIONAL_ROLES = ("transaction_id", "customer_id", "label", "balance_before", "balance_after", "channel",
                  "transaction_type", "device_id", "counterparty_id")
ROLES = ("transaction_id", "customer_id", "timestamp", "amount") + OPTIONAL_ROLES[2:]
TEXT_ROLES = ("transaction_id", "customer_id", "channel", "transaction_type", "device_id",
              "counterparty_id")
ID_ROLES = ("transaction_id", "customer_id", "device_id", "counterparty_id")
# Mapped to a column, these must have a value in every row (the row is rejected otherwise).
VALUE_REQUIRED_ROLES = ("transaction_id", "customer_id", "timestamp", "amount")
NUMBER_ROLES = ("amount", "balance_before", "balance_after")

# Feature families that need roles: each inner tuple is a group of which at least one role
# must be mapped. Families not listed (time of day, extras) need only the time and amount.
FAMILIES = ("amount", "time", "velocity", "novelty", "balance", "counterparty", "device", "categorical", "extras")
FAMILY_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "velocity": (("customer_id",),),
    "novelty": (("customer_id",), ("device_id", "channel", "counterparty_id")),
    "balance": (("balance_before",), ("balance_after",)),
    "counterparty": (("counterparty_id",),),
    "device": (("device_id",),),
    "categorical": (("channel", "transaction_type"),),
}


def missing_families(roles) -> list[dict]:
    """Families the roles do not allow: [{"family", "needs": [roles of the first missing group]}]."""
    roles = set(roles)
    out = []
    for family, groups in FAMILY_NEEDS.items():
        lacking = next((g for g in groups if not roles & set(g)), None)
        if lacking:
            out.append({"family": family, "needs": list(lacking)})
    return out


# Normalised header spellings (lower case, no spaces/underscores/dashes) for each role, most
# specific first. Matching is exact on these; CONTAINS below catches longer headers.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "transaction_id": ("transid", "transactionid", "txnid", "txid", "tranid", "tradeno",
                       "serialno", "transno", "transnum", "transactionnumber", "txnnum", "orderid", "交易流水号",
                       "流水号", "交易编号", "交易id", "交易序号", "交易序號", "订单号", "取引id", "取引番号", "id"),
    "customer_id": ("userid", "customerid", "custid", "clientid", "accountid", "acctno",
                    "accountno", "account", "cardno", "cardnumber", "ccnum", "card1", "nameorig", "kunde",
                    "kundennummer", "客户号", "客户id", "用户id", "用户号", "客户编号", "客戶編號", "账号",
                    "账户", "卡号", "客户", "顧客番号", "顧客id", "会員番号"),
    "timestamp": ("transtime", "transactiontime", "txdatetime", "txtime", "datetime",
                  "transdatetranstime", "transactiondt", "timestamp", "time", "step", "transdate",
                  "transactiondate", "bookingdate", "buchungsdatum", "datum", "fecha", "date", "交易时间",
                  "交易時間", "交易日期", "时间", "日期", "取引日時", "日時", "日付"),
    "amount": ("amount", "amt", "transamount", "transactionamount", "transactionamt", "txamount",
               "money", "betrag", "montant", "importe", "交易金额", "交易金額", "金额", "金額"),
    "label": ("label", "isfraud", "fraud", "txfraud", "fraudflag", "class", "target", "isrisk", "y",
              "是否欺诈", "欺诈标签", "欺诈", "标签", "是否风险", "是否詐騙", "不正", "不正フラグ", "betrug", "fraude"),
    "balance_before": ("prebalance", "balancebefore", "oldbalance", "oldbalanceorg",
                       "oldbalanceorig", "openingbalance", "交易前余额", "原余额"),
    "balance_after": ("postbalance", "balanceafter", "newbalance", "newbalanceorig",
                      "closingbalance", "交易后余额", "余额"),
    "channel": ("channel", "渠道", "交易渠道"),
    "transaction_type": ("transtype", "transactiontype", "txtype", "type", "category", "productcd",
                         "交易类型", "类型", "取引種別"),
    "device_id": ("deviceid", "device", "deviceinfo", "设备号", "设备id", "设备", "端末id"),
    "counterparty_id": ("counterparty", "counterpartyid", "merchant", "merchantid", "terminalid",
                        "payee", "payeeid", "beneficiary", "empfanger", "empfänger", "namedest", "交易对手", "商户",
                        "商户号", "终端号", "收款方", "收款人", "对手账号", "加盟店"),
}
CONTAINS: dict[str, tuple[str, ...]] = {
    "transaction_id": ("流水",),
    "customer_id": ("客户", "用户", "顧客", "customer", "client", "card"),
    "timestamp": ("时间", "日期", "datetime", "time", "date", "datum", "日時"),
    "amount": ("金额", "金額", "amount", "betrag", "montant", "importe"),
    "label": ("欺诈", "fraud", "不正"),
    "balance_before": ("交易前",),
    "balance_after": ("交易后",),
    "device_id": ("设备", "device"),
    "counterparty_id": ("商户", "merchant", "terminal", "对手", "payee", "beneficiary", "bénéficiaire",
                        "beneficiaire", "empfänger"),
}


def normalise_header(name: str) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    return re.sub(r"[\s_\-./()（）:：]+", "", text)


def header_hints(header: str) -> dict[str, float]:
    """How strongly a header names each role: 1.0 for an exact spelling (earlier in a role's
    list ranks a little higher), 0.75 for a header that contains a telling word."""
    norm = normalise_header(header)
    hints: dict[str, float] = {}
    for role in ROLES:
        if norm in SYNONYMS[role]:
            hints[role] = 1.0 - 0.002 * SYNONYMS[role].index(norm)
        elif any(w in norm for w in CONTAINS.get(role, ())):
            hints[role] = 0.75
    return hints


def suggest_mapping(headers: list[str]) -> dict[str, str]:
    """Suggest ROLE -> header from header names alone; each header and role used at most once.
    (core.ingest.infer also weighs the values; this is the header half of it.)"""
    pairs = sorted(((-strength, ROLES.index(role), h, role) for h in headers
                    for role, strength in header_hints(h).items()))
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for _, _, header, role in pairs:
        if role not in mapping and header not in used:
            mapping[role] = header
            used.add(header)
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


def check_mapping(mapping: dict[str, str], headers: list[str], source: str, complete: bool = True) -> dict[str, str]:
    """Validate a ROLE -> column mapping against a file's headers (with `complete`, the
    required roles must be there too)."""
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
    missing = [r for r in REQUIRED_ROLES if r not in mapping] if complete else []
    if missing:
        raise RiskdeskError(
            f"{source}: no column for required role{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; map {'them' if len(missing) > 1 else 'it'} with --map ROLE=COLUMN")
    return mapping
