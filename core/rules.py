"""The rule engine: a small expression language over feature names, parsed into an AST and
compiled to SQL with bound values (never eval), stored with stable ids and versions, and
backtested on labelled periods.

Grammar (keywords are case-insensitive)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [ op sum | ["not"] "between" sum "and" sum | ["not"] "in" "(" literal ("," literal)* ")"
                        | "is" ["not"] "null" ]
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | "abs" "(" sum ")" | number | string | "true" | "false" | name | "(" expr ")"

Names must be columns of the feature table (features, amount, channel, ...); strings and
numbers become bound parameters. A rule fires where its expression is true; NULL counts as
not fired. A rule that names a feature a dataset lacks (say new_counterparty in a file with no
counterparty) is "not applicable" to it: evaluation, backtests and the rule-set model leave it
out and say so (`applicable`), never fail.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .errors import RiskdeskError
from .store import Store, quote_ident

ACTIONS = ("BLOCK", "VERIFY")
KEYWORDS = {"and", "or", "not", "in", "between", "is", "null", "true", "false", "abs"}
COMPARISONS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
MAX_LENGTH = 2000


class RuleSyntaxError(RiskdeskError):
    """A rule expression that does not parse; `position` is 0-based in the expression."""

    def __init__(self, message: str, position: int, expression: str = ""):
        self.position = position
        self.expression = expression
        self.detail = message
        super().__init__(f"column {position + 1}: {message}")

    def pointer(self) -> str:
        """The expression with a caret under the problem."""
        return f"{self.expression}\n{' ' * self.position}^"


# -- tokens --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|'')*'|"(?:[^"\\]|"")*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<>|[-+*/(),<>=])
""", re.VERBOSE)


@dataclass
class Token:
    kind: str      # number | string | name | keyword | op | end
    text: str
    pos: int
    value: object = None


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"the expression is longer than {MAX_LENGTH} characters", MAX_LENGTH, text)
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise RuleSyntaxError(f"unexpected character {text[pos]!r}", pos, text)
        kind = m.lastgroup
        raw = m.group()
        if kind == "number":
            tokens.append(Token("number", raw, pos, float(raw)))
        elif kind == "string":
            quote = raw[0]
            tokens.append(Token("string", raw, pos, raw[1:-1].replace(quote * 2, quote)))
        elif kind == "name":
            low = raw.lower()
            tokens.append(Token("keyword", low, pos) if low in KEYWORDS else Token("name", raw, pos))
        elif kind == "op":
            tokens.append(Token("op", raw, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- AST -----------------------------------------------------------------------------------------

@dataclass
class Node:
    kind: str            # or, and, not, cmp, between, in, isnull, arith, neg, abs, num, str, bool, name
    pos: int
    op: str = ""
    children: tuple = ()
    value: object = None


class _Parser:
    def __init__(self, text: str, names: set[str] | None):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.names = names

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None):
        tok = tok or self.tok
        raise RuleSyntaxError(message, tok.pos, self.text)

    def take(self, kind: str, text: str | None = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, text: str, what: str) -> Token:
        tok = self.take(kind, text)
        if tok is None:
            found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            self.error(f"expected {what}, found {found}")
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "end":
            self.error("the expression is empty")
        node = self.or_()
        if self.tok.kind != "end":
            self.error(f"unexpected {self.tok.text!r}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while (tok := self.take("keyword", "or")):
            node = Node("or", tok.pos, children=(node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.not_()
        while (tok := self.take("keyword", "and")):
            node = Node("and", tok.pos, children=(node, self.not_()))
        return node

    def not_(self) -> Node:
        if (tok := self.take("keyword", "not")):
            return Node("not", tok.pos, children=(self.not_(),))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum_()
        tok = self.tok
        if tok.kind == "op" and tok.text in COMPARISONS:
            self.i += 1
            return Node("cmp", tok.pos, op=COMPARISONS[tok.text], children=(left, self.sum_()))
        negate = False
        if tok.kind == "keyword" and tok.text == "not" and self.tokens[self.i + 1].text in ("between", "in"):
            self.i += 1
            negate = True
            tok = self.tok
        if self.take("keyword", "between"):
            low = self.sum_()
            self.expect("keyword", "and", "'and' in 'between ... and ...'")
            node = Node("between", tok.pos, children=(left, low, self.sum_()))
            return Node("not", tok.pos, children=(node,)) if negate else node
        if self.take("keyword", "in"):
            self.expect("op", "(", "'(' after 'in'")
            items = [self.literal()]
            while self.take("op", ","):
                items.append(self.literal())
            self.expect("op", ")", "')' to close the list")
            node = Node("in", tok.pos, children=(left, *items))
            return Node("not", tok.pos, children=(node,)) if negate else node
        if self.take("keyword", "is"):
            is_not = bool(self.take("keyword", "not"))
            self.expect("keyword", "null", "'null' after 'is'")
            return Node("isnull", tok.pos, op="IS NOT NULL" if is_not else "IS NULL", children=(left,))
        return left

    def literal(self) -> Node:
        tok = self.tok
        sign = -1.0 if self.take("op", "-") else 1.0
        if (t := self.take("number")):
            return Node("num", t.pos, value=sign * t.value)
        if sign < 0:
            self.error("expected a number after '-'")
        if (t := self.take("string")):
            return Node("str", t.pos, value=t.value)
        if (t := self.take("keyword", "true")) or (t := self.take("keyword", "false")):
            return Node("bool", t.pos, value=t.text == "true")
        self.error("expected a number or a quoted text in the list", tok)

    def _arith(self, operand, ops: str) -> Node:
        """A left-associative chain of `operand` joined by the one-character operators `ops`."""
        node = operand()
        while self.tok.kind == "op" and self.tok.text in ops:
            tok = self.tok
            self.i += 1
            node = Node("arith", tok.pos, op=tok.text, children=(node, operand()))
        return node

    def sum_(self) -> Node:
        return self._arith(self.product, "+-")

    def product(self) -> Node:
        return self._arith(self.unary, "*/")

    def unary(self) -> Node:
        tok = self.tok
        if self.take("op", "-"):
            return Node("neg", tok.pos, children=(self.unary(),))
        if self.take("keyword", "abs"):
            self.expect("op", "(", "'(' after 'abs'")
            inner = self.sum_()
            self.expect("op", ")", "')' to close 'abs('")
            return Node("abs", tok.pos, children=(inner,))
        if self.take("number"):
            return Node("num", tok.pos, value=tok.value)
        if self.take("string"):
            return Node("str", tok.pos, value=tok.value)
        if self.take("keyword", "true") or self.take("keyword", "false"):
            return Node("bool", tok.pos, value=tok.text == "true")
        if self.take("name"):
            if self.names is not None and tok.text not in self.names:
                close = sorted(self.names, key=lambda n: _distance(n, tok.text))[:3]
                self.error(f"unknown feature {tok.text!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""), tok)
            return Node("name", tok.pos, value=tok.text)
        if self.take("op", "("):
            node = self.or_()
            self.expect("op", ")", "')'")
            return node
        if tok.kind == "end":
            self.error("the expression ends too early; expected a value")
        self.error(f"expected a value, found {tok.text!r}")


def _distance(a: str, b: str) -> int:
    """Edit distance, for 'did you mean'."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def parse(text: str, names: set[str] | None = None) -> Node:
    """Parse a rule expression; `names` (if given) are the allowed feature names."""
    return _Parser(text or "", names).parse()


def compile_sql(node: Node) -> tuple[str, list]:
    """SQL for an AST with ? placeholders, and the values to bind."""
    params: list = []

    def go(n: Node) -> str:
        k = n.kind
        if k in ("or", "and"):
            return f"({go(n.children[0])} {k.upper()} {go(n.children[1])})"
        if k == "not":
            return f"(NOT {go(n.children[0])})"
        if k == "cmp":
            return f"({go(n.children[0])} {n.op} {go(n.children[1])})"
        if k == "between":
            return f"({go(n.children[0])} BETWEEN {go(n.children[1])} AND {go(n.children[2])})"
        if k == "in":
            return f"({go(n.children[0])} IN ({', '.join(go(c) for c in n.children[1:])}))"
        if k == "isnull":
            return f"({go(n.children[0])} {n.op})"
        if k == "arith":
            left, right = go(n.children[0]), go(n.children[1])
            return f"({left} / NULLIF({right}, 0))" if n.op == "/" else f"({left} {n.op} {right})"
        if k == "neg":
            return f"(-{go(n.children[0])})"
        if k == "abs":
            return f"abs({go(n.children[0])})"
        if k in ("num", "str", "bool"):
            params.append(n.value)
            return "?"
        if k == "name":
            return quote_ident(n.value)
        raise RiskdeskError(f"cannot compile node {k}")

    return go(node), params


def to_text(node: Node) -> str:
    """Canonical text of an AST (parse(to_text(ast)) gives the same AST)."""
    k = node.kind
    c = node.children
    if k in ("or", "and"):
        return f"({to_text(c[0])} {k} {to_text(c[1])})"
    if k == "not":
        return f"(not {to_text(c[0])})"
    if k == "cmp":
        return f"({to_text(c[0])} {node.op} {to_text(c[1])})"
    if k == "between":
        return f"({to_text(c[0])} between {to_text(c[1])} and {to_text(c[2])})"
    if k == "in":
        return f"({to_text(c[0])} in ({', '.join(to_text(x) for x in c[1:])}))"
    if k == "isnull":
        return f"({to_text(c[0])} {node.op.lower()})"
    if k == "arith":
        return f"({to_text(c[0])} {node.op} {to_text(c[1])})"
    if k == "neg":
        return f"(-{to_text(c[0])})"
    if k == "abs":
        return f"abs({to_text(c[0])})"
    if k == "num":
        return repr(float(node.value))
    if k == "str":
        return "'" + str(node.value).replace("'", "''") + "'"
    if k == "bool":
        return "true" if node.value else "false"
    return node.value


def shape(node: Node):
    """The AST without positions (for comparing ASTs)."""
    return (node.kind, node.op, node.value, tuple(shape(c) for c in node.children))


# -- stored rules ----------------------------------------------------------------------------------

STARTER_RULES = [
    ("R001", "Amount far above the customer's normal, to a new payee",
     "amount_zscore_30d > 3 and new_counterparty = 1", "VERIFY", 30),
    ("R002", "Large transfer at night", "transaction_type = 'transfer' and is_night = 1 and amount > 5000", "VERIFY", 35),
    ("R003", "Balance drained through a new channel or device", "drained = 1 and (new_channel = 1 or new_device = 1)",
     "BLOCK", 60),
    ("R004", "Burst: 5 or more transactions within an hour", "cust_count_1h >= 5", "VERIFY", 20),
    ("R005", "New device and a large amount", "new_device = 1 and amount_to_mean_30d > 5", "VERIFY", 40),
    ("R006", "Card testing: a burst of tiny amounts", "cust_count_1h >= 4 and cust_mean_1h < 10", "BLOCK", 70),
    ("R007", "Payee with recent confirmed fraud", "cp_fraud_share_30d > 0.2", "VERIFY", 30),
    ("R008", "Large amount at night", "is_night = 1 and amount > 5000", "VERIFY", 25),
]
STARTER_NAMES_ZH = {
    "R001": "金额远高于客户常态且收款方为新对手",
    "R002": "夜间大额转账",
    "R003": "通过新渠道或新设备转空余额",
    "R004": "高频：一小时内 5 笔及以上交易",
    "R005": "新设备且金额较大",
    "R006": "盗卡测试：连续多笔极小金额",
    "R007": "收款方近期有确认欺诈",
    "R008": "夜间大额交易",
}


def display_name(rule: dict, lang: str = "en") -> str:
    """A rule's name in the UI language: starter rules whose name was never changed have a
    Chinese name too; names people wrote are shown as written."""
    starter = next((name for rid, name, *_ in STARTER_RULES if rid == rule["rule_id"]), None)
    if lang == "zh" and starter is not None and rule["name"] == starter:
        return STARTER_NAMES_ZH[rule["rule_id"]]
    return rule["name"]


def names_in(expression: str) -> set[str]:
    """The feature names an expression refers to (empty if it does not tokenise)."""
    try:
        return {tok.text for tok in tokenize(expression) if tok.kind == "name"}
    except RuleSyntaxError:
        return set()


def applicable(rules: list[dict], fs: dict) -> tuple[list[dict], list[dict]]:
    """(rules that fit the feature set, [{"rule_id", "name", "missing"}] for those that name
    features it lacks)."""
    names = _rule_columns(fs)
    fitting, skipped = [], []
    for r in rules:
        missing = sorted(names_in(r["expression"]) - names)
        if missing:
            skipped.append({"rule_id": r["rule_id"], "name": r["name"], "missing": missing})
        else:
            fitting.append(r)
    return fitting, skipped


def _rule_columns(fs: dict) -> set[str]:
    return {f["name"] for f in fs["catalogue"]} | {"amount"}


def validate(expression: str, fs: dict | None = None) -> Node:
    """Parse against a feature set's names (or any names without one)."""
    return parse(expression, _rule_columns(fs) if fs else None)


def current_rules(store: Store, include_disabled: bool = True) -> list[dict]:
    """The latest version of every rule, by id."""
    rows = store.dicts("""
        SELECT * FROM rules r WHERE version = (SELECT max(version) FROM rules WHERE rule_id = r.rule_id)
        ORDER BY rule_id""")
    return [r for r in rows if include_disabled or r["enabled"]]


def revision(store: Store) -> str:
    """Changes whenever a rule version is added (a cache key for anything rules affect)."""
    n, newest = store.rows("SELECT count(*), max(created_at) FROM rules")[0]
    return f"{n}:{newest}"


def rule_history(store: Store, rule_id: str) -> list[dict]:
    return store.dicts("SELECT * FROM rules WHERE rule_id = ? ORDER BY version DESC", [rule_id])


def check_rule(name: str, expression: str, action: str, score: float, enabled: bool = True,
               fs: dict | None = None) -> dict:
    """A rule's fields, checked and normalised (raises RiskdeskError naming the bad field)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise RiskdeskError("a rule needs a name of 1 to 120 characters")
    if action not in ACTIONS:
        raise RiskdeskError(f"action must be one of {', '.join(ACTIONS)}")
    try:
        score = float(score)
    except (TypeError, ValueError):
        raise RiskdeskError("the score must be a number") from None
    if not 0 <= score <= 1000:
        raise RiskdeskError("the score must be between 0 and 1000")
    validate(expression, fs)
    return {"name": name, "expression": expression.strip(), "action": action, "score": score, "enabled": bool(enabled)}


def current_version(store: Store, rule_id: str) -> int | None:
    return store.scalar("SELECT max(version) FROM rules WHERE rule_id = ?", [rule_id])


def save_rule(store: Store, name: str, expression: str, action: str, score: float, enabled: bool = True,
              rule_id: str | None = None, author: str = "app", fs: dict | None = None,
              approved_by: str | None = None) -> dict:
    """Add a rule or a new version of one (rules are never edited in place). In the app, the API
    and the command line this runs only when a second person approves the change
    (core.approvals)."""
    rule = check_rule(name, expression, action, score, enabled, fs)
    with store.write() as cur:
        if rule_id:
            version = cur.execute("SELECT max(version) FROM rules WHERE rule_id = ?", [rule_id]).fetchone()[0]
            if version is None:
                raise RiskdeskError(f"no rule {rule_id!r}")
            version += 1
        else:
            n = cur.execute("SELECT count(DISTINCT rule_id) FROM rules").fetchone()[0]
            existing = {r[0] for r in cur.execute("SELECT DISTINCT rule_id FROM rules").fetchall()}
            while (rule_id := f"R{n + 1:03d}") in existing:
                n += 1
            version = 1
        cur.execute("INSERT INTO rules (rule_id, version, name, expression, action, score, enabled, author, "
                    "created_at, approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [rule_id, version, rule["name"], rule["expression"], rule["action"], rule["score"],
                     rule["enabled"], author, datetime.now(), approved_by])
        store.audit(cur, author, "save_rule", "rule", rule_id,
                    {"version": version, **rule, **({"approved_by": approved_by} if approved_by else {})})
    return {"rule_id": rule_id, "version": version}


def ensure_starter_rules(store: Store) -> None:
    """Seed the starter rules once, into an empty rule table."""
    if store.scalar("SELECT count(*) FROM rules"):
        return
    for rule_id, name, expression, action, score in STARTER_RULES:
        with store.write() as cur:
            cur.execute("INSERT INTO rules (rule_id, version, name, expression, action, score, enabled, author, "
                        "created_at) VALUES (?, 1, ?, ?, ?, ?, true, 'riskdesk', ?)",
                        [rule_id, name, expression, action, score, datetime.now()])


# -- evaluation and backtest ----------------------------------------------------------------------

def conditions(rules: list[dict], fs: dict) -> list[tuple[dict, str, list]]:
    """Each rule with its SQL condition (never NULL) and the values to bind, in order."""
    names = _rule_columns(fs)
    out = []
    for r in rules:
        try:
            sql, params = compile_sql(parse(r["expression"], names))
        except RuleSyntaxError as exc:
            raise RiskdeskError(f"rule {r['rule_id']} ({r['name']}): {exc}") from None
        out.append((r, f"coalesce({sql}, false)", params))
    return out


def period_sql(start, end) -> tuple[str, list]:
    clauses, params = [], []
    if start:
        clauses.append("CAST(timestamp AS DATE) >= ?")
        params.append(str(start))
    if end:
        clauses.append("CAST(timestamp AS DATE) <= ?")
        params.append(str(end))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def evaluate(store: Store, fs: dict, rules: list[dict], start=None, end=None, extra_columns: str = ""):
    """Per transaction: which rules fired (columns named by rule id), the rule-set score (sum of
    scores of rules fired) and the rule decision (BLOCK if a BLOCK rule fired, else VERIFY if
    any rule fired, else PASS). Rules not applicable to the feature set are left out. Returns
    a DataFrame in time order."""
    compiled = conditions(applicable(rules, fs)[0], fs)
    where, wparams = period_sql(start, end)
    fired = [f"{sql} AS {quote_ident(r['rule_id'])}" for r, sql, _ in compiled]
    params = [p for _, _, ps in compiled for p in ps]
    score = " + ".join(f"CASE WHEN {quote_ident(r['rule_id'])} THEN {float(r['score'])!r} ELSE 0 END"
                       for r, _, _ in compiled) or "0"
    block = " OR ".join(quote_ident(r["rule_id"]) for r, _, _ in compiled if r["action"] == "BLOCK") or "false"
    anyr = " OR ".join(quote_ident(r["rule_id"]) for r, _, _ in compiled) or "false"
    rule_cols = "".join(f", {quote_ident(r['rule_id'])}" for r, _, _ in compiled)
    return store.df(f"""
        SELECT transaction_id, timestamp, customer_id, amount, label{extra_columns}{rule_cols},
               CAST({score} AS DOUBLE) AS rule_score,
               CASE WHEN {block} THEN 'BLOCK' WHEN {anyr} THEN 'VERIFY' ELSE 'PASS' END AS rule_decision
        FROM (SELECT *, {', '.join(fired) if fired else 'NULL AS _none'} FROM {fs['table']}{where})
        ORDER BY timestamp, transaction_id""", params + wparams)


def backtest(store: Store, fs: dict, rules: list[dict] | None = None, start=None, end=None) -> dict:
    """Labelled backtest of each rule and of the rule set on a period: hits, hit rate,
    precision, recall, fraud amount caught, false positives, pairwise overlap, and the rule
    set scored like a model (AUC and average precision of the sum of scores)."""
    import pandas as pd
    from . import metrics
    rules = [r for r in (rules if rules is not None else current_rules(store)) if r["enabled"]]
    rules, skipped = applicable(rules, fs)
    frame = evaluate(store, fs, rules, start, end)
    labelled = frame[frame["label"].notna()]
    y = labelled["label"].to_numpy(dtype=int)
    amount = labelled["amount"].to_numpy(dtype=float)
    fraud_total, fraud_amount = int(y.sum()), float(amount[y == 1].sum())
    rows = []
    for r in rules:
        hit = labelled[r["rule_id"]].to_numpy(dtype=bool)
        tp = int((hit & (y == 1)).sum())
        hits = int(hit.sum())
        rows.append({"rule_id": r["rule_id"], "version": r["version"], "name": r["name"], "action": r["action"],
                     "score": r["score"], "hits": hits, "hit_rate": hits / len(y) if len(y) else float("nan"),
                     "true_positives": tp, "false_positives": hits - tp,
                     "precision": tp / hits if hits else float("nan"),
                     "recall": tp / fraud_total if fraud_total else float("nan"),
                     "fraud_amount_caught": float(amount[hit & (y == 1)].sum()) / fraud_amount if fraud_amount else float("nan")})
    hits_any = labelled["rule_decision"].ne("PASS").to_numpy()
    tp_any = int((hits_any & (y == 1)).sum())
    overall = {"transactions": len(frame), "labelled": len(y), "frauds": fraud_total,
               "hits": int(hits_any.sum()), "precision": tp_any / hits_any.sum() if hits_any.sum() else float("nan"),
               "recall": tp_any / fraud_total if fraud_total else float("nan"),
               "fraud_amount_caught": float(amount[hits_any & (y == 1)].sum()) / fraud_amount if fraud_amount else float("nan")}
    scores = labelled["rule_score"].to_numpy(dtype=float)
    if 0 < fraud_total < len(y):
        overall["auc"] = metrics.roc_auc(y, scores)
        overall["average_precision"] = metrics.average_precision(y, scores)
    ids = [r["rule_id"] for r in rules]
    m = labelled[ids].to_numpy(dtype=float) if ids else np.zeros((len(labelled), 0))
    overlap = pd.DataFrame(m.T @ m, index=ids, columns=ids).astype(int)
    columns = ["rule_id", "version", "name", "action", "score", "hits", "hit_rate", "true_positives",
               "false_positives", "precision", "recall", "fraud_amount_caught"]
    return {"rules": pd.DataFrame(rows, columns=columns), "overall": overall, "overlap": overlap,
            "skipped": skipped, "period": {"start": str(start) if start else None, "end": str(end) if end else None}}


def hit_sql(rules: list[dict], fs: dict) -> dict:
    """SQL expressions over a row of the feature table for a set of rules (those that do not fit
    the feature set are left out): "fired", the list of rule ids that fire, and "block", true
    when a BLOCK rule fires; each as (sql, bound parameters in order)."""
    compiled = conditions(applicable(rules, fs)[0], fs)
    cases = [f"CASE WHEN {sql} THEN CAST(? AS VARCHAR) END" for _, sql, _ in compiled]
    fired = (f"list_filter([{', '.join(cases)}], lambda x: x IS NOT NULL)" if cases else "CAST([] AS VARCHAR[])",
             [p for r, _, ps in compiled for p in [*ps, r["rule_id"]]])
    blocking = [(sql, ps) for r, sql, ps in compiled if r["action"] == "BLOCK"]
    block = (" OR ".join(sql for sql, _ in blocking) or "false", [p for _, ps in blocking for p in ps])
    return {"fired": fired, "block": block}


def fired_for(store: Store, fs: dict, rules: list[dict], transaction_id: str) -> set[str]:
    """Ids of the rules that fire on one transaction."""
    sql, params = hit_sql(rules, fs)["fired"]
    rows = store.rows(f"SELECT {sql} FROM {fs['table']} WHERE CAST(transaction_id AS VARCHAR) = ?",
                      params + [str(transaction_id)])
    return set(rows[0][0]) if rows else set()


def blocked_ids(store: Store, fs: dict, start=None, end=None) -> set:
    """Transaction ids in the period on which an enabled BLOCK rule fires. A rule that does
    not fit this feature set (a name it lacks) blocks nothing."""
    sql, params = hit_sql(current_rules(store, include_disabled=False), fs)["block"]
    if sql == "false":
        return set()
    where, wparams = period_sql(start, end)
    return {r[0] for r in store.rows(f"SELECT transaction_id FROM (SELECT * FROM {fs['table']}{where}) WHERE {sql}",
                                     wparams + params)}


def snapshot(rules: list[dict]) -> list[dict]:
    """The rules as stored with a model (ids, versions, expressions, actions, scores)."""
    return [{k: r[k] for k in ("rule_id", "version", "name", "expression", "action", "score", "enabled")}
            for r in rules]


def dumps(rules: list[dict]) -> str:
    return json.dumps(snapshot(rules), ensure_ascii=False)
