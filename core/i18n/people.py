"""Catalogue of signing in and of who may do what."""
from __future__ import annotations

EN: dict[str, str] = {
    "auth.title": "Sign in to riskdesk",
    "auth.intro": "Every decision, rule change, promotion and export is recorded under the person signed in.",
    "auth.name": "User name", "auth.password": "Password", "auth.sign_in": "Sign in",
    "auth.oidc_sign_in": "Sign in with your organisation's account",
    "auth.first_title": "Create the first administrator",
    "auth.first_intro": "This workspace has no accounts yet. The first one is an administrator, who can then add "
                        "analysts and auditors (or use `python -m core users add NAME --role analyst --password-stdin`).",
    "auth.repeat": "Password again", "auth.create": "Create and sign in",
    "auth.mismatch": "The two passwords differ.",
    "auth.unknown_oidc": "{name} signed in with the identity provider but has no riskdesk account; an administrator "
                         "adds it with `python -m core users add {name} --role analyst`.",
    "auth.expired": "Your session expired after {hours} hours; sign in again.",
    "auth.signed_in_as": "Signed in as **{name}** ({role})",
    "auth.sign_out": "Sign out",
    "auth.not_allowed": "Your role ({role}) may not {action}.",
    "person_role.analyst": "analyst", "person_role.auditor": "auditor", "person_role.admin": "administrator",
    "action.review": "record review decisions", "action.rules": "change rules", "action.ingest": "load data",
    "action.train": "train models", "action.promote": "promote or roll back the champion",
    "action.people": "manage people and keys", "action.export": "export", "action.read": "read",
    "nav.audit": "Audit log", "audit.title": "Audit log",
    "audit.intro": "Every recorded action, newest first: who did it, when, to which object, and what changed. The log is append-only.",
    "audit.person": "Person", "audit.action": "Action", "audit.object_kind": "Object kind", "audit.object_id": "Object id",
    "audit.period": "Period", "audit.any": "(any)", "audit.count": "{total} entries match; page {page} of {pages}.",
    "audit.download": "Download the matching entries (CSV)", "audit.page": "Page",
    "audit.col.logged_at": "when", "audit.col.actor": "person", "audit.col.action": "action",
    "audit.col.object_kind": "object", "audit.col.object_id": "object id", "audit.col.model_id": "model",
    "audit.col.detail": "detail",
}

ZH: dict[str, str] = {
    "auth.title": "登录 riskdesk",
    "auth.intro": "每一个审核决定、规则修改、模型上线和导出都以当前登录人的身份记录。",
    "auth.name": "用户名", "auth.password": "密码", "auth.sign_in": "登录",
    "auth.oidc_sign_in": "使用机构账号登录",
    "auth.first_title": "创建第一个管理员",
    "auth.first_intro": "此工作区还没有账号。第一个账号是管理员，之后可添加分析员和审计员（或使用 "
                        "`python -m core users add NAME --role analyst --password-stdin`）。",
    "auth.repeat": "再次输入密码", "auth.create": "创建并登录",
    "auth.mismatch": "两次输入的密码不一致。",
    "auth.unknown_oidc": "{name} 已通过身份提供方登录，但在 riskdesk 中没有账号；请管理员使用 "
                         "`python -m core users add {name} --role analyst` 添加。",
    "auth.expired": "会话已超过 {hours} 小时而过期，请重新登录。",
    "auth.signed_in_as": "当前登录：**{name}**（{role}）",
    "auth.sign_out": "退出登录",
    "auth.not_allowed": "您的角色（{role}）无权{action}。",
    "person_role.analyst": "分析员", "person_role.auditor": "审计员", "person_role.admin": "管理员",
    "action.review": "记录审核决定", "action.rules": "修改规则", "action.ingest": "导入数据",
    "action.train": "训练模型", "action.promote": "上线或回滚冠军模型",
    "action.people": "管理用户和密钥", "action.export": "导出", "action.read": "查看",
    "nav.audit": "审计日志", "audit.title": "审计日志",
    "audit.intro": "所有已记录的操作，最新的在前：谁、何时、对哪个对象做了什么、改变了什么。日志只追加、不可修改。",
    "audit.person": "操作人", "audit.action": "操作", "audit.object_kind": "对象类型", "audit.object_id": "对象编号",
    "audit.period": "期间", "audit.any": "（全部）", "audit.count": "共 {total} 条符合；第 {page} / {pages} 页。",
    "audit.download": "下载符合条件的记录（CSV）", "audit.page": "页码",
    "audit.col.logged_at": "时间", "audit.col.actor": "操作人", "audit.col.action": "操作",
    "audit.col.object_kind": "对象", "audit.col.object_id": "对象编号", "audit.col.model_id": "模型",
    "audit.col.detail": "详情",
}
