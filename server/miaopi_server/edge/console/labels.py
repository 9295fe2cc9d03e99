"""Chinese labels for the codes the API speaks (states, warnings, outcomes, alert kinds,
fact origins), and small formatting helpers for the templates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.casework.states import STATE_NAMES
from miaopi_server.clock import SHANGHAI

STATES = STATE_NAMES
KINDS = {"instant": "即办", "review": "人工审核", "supplement": "容缺后补"}
WARNINGS = {
    "due_soon": "即将到期",
    "overdue_promised": "超承诺时限",
    "overdue_statutory": "超法定时限",
}
OUTCOMES = {
    "APPROVE": "准予",
    "REJECT": "不予批准",
    "MANUAL_REVIEW": "转人工审核",
    "UNSPECIFIED": "—",
}
ALERT_KINDS = {
    **WARNINGS,
    "supplement_overdue": "容缺材料逾期",
    "override": "不合规办理（推翻规则结论）",
    "escalated": "督办",
}
# 行政许可法 Art. 45: the periods not counted in the time limit (casework.model.ART45_REASONS)
SUSPEND_REASONS = {
    "hearing": "听证",
    "tendering": "招标",
    "auction": "拍卖",
    "testing": "检验",
    "inspection": "检测",
    "quarantine": "检疫",
    "appraisal": "鉴定",
    "expert_review": "专家评审",
}
ORIGINS = {"window": "窗口录入", "source": "共享数据", "default": "默认值", "derived": "系统计算"}
ACTIONS = {
    "claim": "认领",
    "release": "退回队列",
    "decide": "作出决定",
    "request_supplement": "要求补正",
    "supply": "补交材料",
    "suspend": "中止",
    "resume": "恢复",
    "escalate": "督办",
    "lapse": "逾期失效",
    "withdraw": "撤回",
    "rate": "评价",
}
GROUPINGS = {"item": "事项", "department": "部门", "window": "窗口", "jurisdiction": "辖区"}
ROLES = {
    "reviewer": "审核人员",
    "supervisor": "督查人员",
    "admin": "管理员",
    "window": "窗口",
    "anonymous": "未认证（开发模式）",
}


def outcome(value: int) -> str:
    return OUTCOMES[outcome_code(value)]


def outcome_code(value: int) -> str:
    return str(pb.Outcome.Name(value)).removeprefix("OUTCOME_")


def local_time(ts: timestamp_pb2.Timestamp) -> str:
    """A protobuf Timestamp as Beijing time, to the minute."""
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime(tzinfo=dt.UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def iso_local(text: str) -> str:
    """An RFC 3339 time string (as recorded) as Beijing time, to the second."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def value(v: Any) -> str:
    """A fact value (protobuf Value or plain JSON value) as text."""
    if hasattr(v, "WhichOneof"):
        v = json_format.MessageToDict(v)
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "、".join(value(x) for x in v)
    return str(v)


def percent(row: Any, name: str) -> str:
    return f"{100 * getattr(row, name):.1f}%" if row.HasField(name) else "—"
