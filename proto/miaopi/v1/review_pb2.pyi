import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from miaopi.v1 import approval_pb2 as _approval_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskPause(_message.Message):
    __slots__ = ("kind", "reason", "started_on", "ended_on")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_ON_FIELD_NUMBER: _ClassVar[int]
    ENDED_ON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reason: str
    started_on: str
    ended_on: str
    def __init__(self, kind: _Optional[str] = ..., reason: _Optional[str] = ..., started_on: _Optional[str] = ..., ended_on: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("decision_id", "kind", "state", "item_code", "department", "jurisdiction", "window_id", "opened_at", "assignee", "claim_expires_at", "promised_due_date", "statutory_due_date", "supplement_due_date", "due_dates_estimated", "warning", "used_working_days", "paused_working_days", "pauses", "pending_materials", "rules_outcome", "rules_verdict", "outcome", "overridden", "last_seq", "escalations", "last_escalated_at")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ID_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    CLAIM_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PROMISED_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    STATUTORY_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    SUPPLEMENT_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    DUE_DATES_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    USED_WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    PAUSES_FIELD_NUMBER: _ClassVar[int]
    PENDING_MATERIALS_FIELD_NUMBER: _ClassVar[int]
    RULES_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RULES_VERDICT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    kind: str
    state: str
    item_code: str
    department: str
    jurisdiction: str
    window_id: str
    opened_at: _timestamp_pb2.Timestamp
    assignee: str
    claim_expires_at: _timestamp_pb2.Timestamp
    promised_due_date: str
    statutory_due_date: str
    supplement_due_date: str
    due_dates_estimated: bool
    warning: str
    used_working_days: int
    paused_working_days: int
    pauses: _containers.RepeatedCompositeFieldContainer[TaskPause]
    pending_materials: _containers.RepeatedScalarFieldContainer[str]
    rules_outcome: _approval_pb2.Outcome
    rules_verdict: _approval_pb2.Outcome
    outcome: _approval_pb2.Outcome
    overridden: bool
    last_seq: int
    escalations: int
    last_escalated_at: _timestamp_pb2.Timestamp
    def __init__(self, decision_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., item_code: _Optional[str] = ..., department: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., window_id: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assignee: _Optional[str] = ..., claim_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., promised_due_date: _Optional[str] = ..., statutory_due_date: _Optional[str] = ..., supplement_due_date: _Optional[str] = ..., due_dates_estimated: _Optional[bool] = ..., warning: _Optional[str] = ..., used_working_days: _Optional[int] = ..., paused_working_days: _Optional[int] = ..., pauses: _Optional[_Iterable[_Union[TaskPause, _Mapping]]] = ..., pending_materials: _Optional[_Iterable[str]] = ..., rules_outcome: _Optional[_Union[_approval_pb2.Outcome, str]] = ..., rules_verdict: _Optional[_Union[_approval_pb2.Outcome, str]] = ..., outcome: _Optional[_Union[_approval_pb2.Outcome, str]] = ..., overridden: _Optional[bool] = ..., last_seq: _Optional[int] = ..., escalations: _Optional[int] = ..., last_escalated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("states", "page_size", "page_token", "escalated_only")
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_ONLY_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    escalated_only: bool
    def __init__(self, states: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., escalated_only: _Optional[bool] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class ClaimTaskRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class ReleaseTaskRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class DecideTaskRequest(_message.Message):
    __slots__ = ("decision_id", "outcome", "reasons", "legal_basis", "justification")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    outcome: _approval_pb2.Outcome
    reasons: _containers.RepeatedScalarFieldContainer[str]
    legal_basis: _containers.RepeatedScalarFieldContainer[str]
    justification: str
    def __init__(self, decision_id: _Optional[str] = ..., outcome: _Optional[_Union[_approval_pb2.Outcome, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., legal_basis: _Optional[_Iterable[str]] = ..., justification: _Optional[str] = ...) -> None: ...

class RequestSupplementRequest(_message.Message):
    __slots__ = ("decision_id", "materials", "note")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    materials: _containers.RepeatedScalarFieldContainer[str]
    note: str
    def __init__(self, decision_id: _Optional[str] = ..., materials: _Optional[_Iterable[str]] = ..., note: _Optional[str] = ...) -> None: ...

class SupplyMaterialsRequest(_message.Message):
    __slots__ = ("decision_id", "materials")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    materials: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, decision_id: _Optional[str] = ..., materials: _Optional[_Iterable[str]] = ...) -> None: ...

class WithdrawCaseRequest(_message.Message):
    __slots__ = ("decision_id", "reason")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    reason: str
    def __init__(self, decision_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ClaimTaskResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class ReleaseTaskResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class DecideTaskResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class RequestSupplementResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class SupplyMaterialsResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class WithdrawCaseResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class RateCaseRequest(_message.Message):
    __slots__ = ("decision_id", "score", "comment")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    score: int
    comment: str
    def __init__(self, decision_id: _Optional[str] = ..., score: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class RateCaseResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class GetKpisRequest(_message.Message):
    __slots__ = ("month", "by")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    month: str
    by: str
    def __init__(self, month: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class Kpi(_message.Message):
    __slots__ = ("key", "rank", "cases", "instant_cases", "instant_rate", "approval_rate", "median_handling_days", "p90_handling_days", "on_time_rate", "overdue", "overrides", "response_rate", "resolution_rate", "ratings", "satisfaction_rate", "score")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    CASES_FIELD_NUMBER: _ClassVar[int]
    INSTANT_CASES_FIELD_NUMBER: _ClassVar[int]
    INSTANT_RATE_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_RATE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_HANDLING_DAYS_FIELD_NUMBER: _ClassVar[int]
    P90_HANDLING_DAYS_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_RATE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_RATE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_RATE_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    SATISFACTION_RATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    key: str
    rank: int
    cases: int
    instant_cases: int
    instant_rate: float
    approval_rate: float
    median_handling_days: float
    p90_handling_days: int
    on_time_rate: float
    overdue: int
    overrides: int
    response_rate: float
    resolution_rate: float
    ratings: int
    satisfaction_rate: float
    score: float
    def __init__(self, key: _Optional[str] = ..., rank: _Optional[int] = ..., cases: _Optional[int] = ..., instant_cases: _Optional[int] = ..., instant_rate: _Optional[float] = ..., approval_rate: _Optional[float] = ..., median_handling_days: _Optional[float] = ..., p90_handling_days: _Optional[int] = ..., on_time_rate: _Optional[float] = ..., overdue: _Optional[int] = ..., overrides: _Optional[int] = ..., response_rate: _Optional[float] = ..., resolution_rate: _Optional[float] = ..., ratings: _Optional[int] = ..., satisfaction_rate: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class GetKpisResponse(_message.Message):
    __slots__ = ("month", "by", "response_working_hours", "rows", "total")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_WORKING_HOURS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    month: str
    by: str
    response_working_hours: float
    rows: _containers.RepeatedCompositeFieldContainer[Kpi]
    total: Kpi
    def __init__(self, month: _Optional[str] = ..., by: _Optional[str] = ..., response_working_hours: _Optional[float] = ..., rows: _Optional[_Iterable[_Union[Kpi, _Mapping]]] = ..., total: _Optional[_Union[Kpi, _Mapping]] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("after_seq", "follow")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    follow: bool
    def __init__(self, after_seq: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("seq", "kind", "decision_id", "item_code", "department", "jurisdiction", "due_date", "raised_at", "recipients", "note")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: str
    decision_id: str
    item_code: str
    department: str
    jurisdiction: str
    due_date: str
    raised_at: _timestamp_pb2.Timestamp
    recipients: _containers.RepeatedScalarFieldContainer[str]
    note: str
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[str] = ..., decision_id: _Optional[str] = ..., item_code: _Optional[str] = ..., department: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., due_date: _Optional[str] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recipients: _Optional[_Iterable[str]] = ..., note: _Optional[str] = ...) -> None: ...

class WatchAlertsResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class EscalateTaskRequest(_message.Message):
    __slots__ = ("decision_id", "note")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    note: str
    def __init__(self, decision_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class EscalateTaskResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof", "alert_seq")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    ALERT_SEQ_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    alert_seq: int
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ..., alert_seq: _Optional[int] = ...) -> None: ...

class SuspendTaskRequest(_message.Message):
    __slots__ = ("decision_id", "reason", "note")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    reason: str
    note: str
    def __init__(self, decision_id: _Optional[str] = ..., reason: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SuspendTaskResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class ResumeTaskRequest(_message.Message):
    __slots__ = ("decision_id", "note")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    note: str
    def __init__(self, decision_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ResumeTaskResponse(_message.Message):
    __slots__ = ("task", "transition_id", "seq", "tree_head", "inclusion_proof")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    task: Task
    transition_id: str
    seq: int
    tree_head: _approval_pb2.TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., transition_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_head: _Optional[_Union[_approval_pb2.TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...
