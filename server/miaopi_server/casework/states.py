"""The task state machine: every state, every action, and which action leads where.

A decision opens one task (or none, when the rules closed the case at once):
    review task      open -claim-> claimed -decide-> decided
                     claimed -release-> open; a claim idle past its expiry may be claimed again
                     claimed -request_supplement-> awaiting_supplement -supply-> open
                     claimed -suspend-> suspended -resume-> claimed (行政许可法 Art. 45 periods)
    supplement task  supplement_pending -supply-> supplemented | -lapse-> lapsed
    any task not final -withdraw-> withdrawn
    any task not final -escalate-> the same state (督办: marked, its people notified)
An action from a state it does not leave is refused with IllegalTransition, naming both.
"""

from __future__ import annotations

from miaopi_server.errors import MiaopiError

# Task kinds; an "instant" case is closed by the decision itself and has no task.
INSTANT, REVIEW, SUPPLEMENT = "instant", "review", "supplement"

OPEN = "open"
CLAIMED = "claimed"
AWAITING_SUPPLEMENT = "awaiting_supplement"
SUSPENDED = "suspended"
DECIDED = "decided"
SUPPLEMENT_PENDING = "supplement_pending"
SUPPLEMENTED = "supplemented"
LAPSED = "lapsed"
WITHDRAWN = "withdrawn"
CLOSED = "closed"  # an instant case: approved or rejected by the rules alone

FINAL = frozenset({DECIDED, SUPPLEMENTED, LAPSED, WITHDRAWN, CLOSED})
# States in which the working-day clock stands still (each such period is a pause on record).
PAUSED = frozenset({AWAITING_SUPPLEMENT, SUSPENDED})

CLAIM = "claim"
RELEASE = "release"
DECIDE = "decide"
REQUEST_SUPPLEMENT = "request_supplement"
SUPPLY = "supply"
SUSPEND = "suspend"
RESUME = "resume"
LAPSE = "lapse"
WITHDRAW = "withdraw"
ESCALATE = "escalate"

ACTIONS = (
    CLAIM, RELEASE, DECIDE, REQUEST_SUPPLEMENT, SUPPLY, SUSPEND, RESUME, LAPSE, WITHDRAW, ESCALATE,
)  # fmt: skip

# (kind, state, action) -> next state; WITHDRAW (to withdrawn) and ESCALATE (to the same
# state) are allowed from every state not final.
_MOVES: dict[tuple[str, str, str], str] = {
    (REVIEW, OPEN, CLAIM): CLAIMED,
    (REVIEW, CLAIMED, CLAIM): CLAIMED,  # only once the claim expired (checked by the caller)
    (REVIEW, CLAIMED, RELEASE): OPEN,
    (REVIEW, CLAIMED, DECIDE): DECIDED,
    (REVIEW, CLAIMED, REQUEST_SUPPLEMENT): AWAITING_SUPPLEMENT,
    (REVIEW, AWAITING_SUPPLEMENT, SUPPLY): OPEN,
    (REVIEW, CLAIMED, SUSPEND): SUSPENDED,
    (REVIEW, SUSPENDED, RESUME): CLAIMED,
    (SUPPLEMENT, SUPPLEMENT_PENDING, SUPPLY): SUPPLEMENTED,
    (SUPPLEMENT, SUPPLEMENT_PENDING, LAPSE): LAPSED,
}

# The states a task of each kind passes through (an instant case only ever is closed).
KIND_STATES = {
    REVIEW: frozenset({OPEN, CLAIMED, AWAITING_SUPPLEMENT, SUSPENDED, DECIDED, WITHDRAWN}),
    SUPPLEMENT: frozenset({SUPPLEMENT_PENDING, SUPPLEMENTED, LAPSED, WITHDRAWN}),
    INSTANT: frozenset({CLOSED}),
}

STATE_NAMES = {
    OPEN: "待认领",
    CLAIMED: "办理中",
    AWAITING_SUPPLEMENT: "待补正",
    SUSPENDED: "中止计时",
    DECIDED: "已办结",
    SUPPLEMENT_PENDING: "容缺待补",
    SUPPLEMENTED: "已补齐",
    LAPSED: "逾期未补",
    WITHDRAWN: "已撤回",
    CLOSED: "即办办结",
}


class IllegalTransition(MiaopiError):
    """An action the task's state does not allow (or an unknown action or kind)."""

    def __init__(self, kind: str, state: str, action: str, why: str = ""):
        self.kind, self.state, self.action = kind, state, action
        text = f"{kind} 任务处于 {state}（{STATE_NAMES.get(state, '?')}），不能 {action}"
        super().__init__(f"{text}：{why}" if why else text)


def next_state(kind: str, state: str, action: str) -> str:
    """The state `action` leads to from `state`, or IllegalTransition."""
    if action not in ACTIONS:
        raise IllegalTransition(kind, state, action, "未知的操作")
    if state not in KIND_STATES.get(kind, ()):
        raise IllegalTransition(kind, state, action, f"{kind} 任务没有这个状态")
    if state in FINAL:
        raise IllegalTransition(kind, state, action, "任务已结束")
    if action == WITHDRAW:
        return WITHDRAWN
    if action == ESCALATE:
        return state
    target = _MOVES.get((kind, state, action))
    if target is None:
        raise IllegalTransition(kind, state, action)
    return target


def initial_state(kind: str) -> str:
    return {INSTANT: CLOSED, REVIEW: OPEN, SUPPLEMENT: SUPPLEMENT_PENDING}[kind]
