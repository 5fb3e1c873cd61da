"""The tables' handles: for the queries here, and for readers of their own (the report, the export)."""

from __future__ import annotations

from sqlalchemy import Table

from storage.models import (
    CheckIn,
    Cohort,
    Conversion,
    ItemRun,
    Leave,
    Member,
    MessageCount,
    Notice,
    OperatorAction,
    Outgoing,
    Question,
    RewardGrant,
    SurveyAnswer,
    SurveyProgress,
    Testimonial,
    WebLogin,
    WebSecret,
)

cohort_t: Table = Cohort.__table__  # type: ignore[attr-defined]
member_t: Table = Member.__table__  # type: ignore[attr-defined]
checkin_t: Table = CheckIn.__table__  # type: ignore[attr-defined]
grant_t: Table = RewardGrant.__table__  # type: ignore[attr-defined]
item_t: Table = ItemRun.__table__  # type: ignore[attr-defined]
out_t: Table = Outgoing.__table__  # type: ignore[attr-defined]
notice_t: Table = Notice.__table__  # type: ignore[attr-defined]
leave_t: Table = Leave.__table__  # type: ignore[attr-defined]
action_t: Table = OperatorAction.__table__  # type: ignore[attr-defined]
message_t: Table = MessageCount.__table__  # type: ignore[attr-defined]
question_t: Table = Question.__table__  # type: ignore[attr-defined]
progress_t: Table = SurveyProgress.__table__  # type: ignore[attr-defined]
answer_t: Table = SurveyAnswer.__table__  # type: ignore[attr-defined]
testimonial_t: Table = Testimonial.__table__  # type: ignore[attr-defined]
conversion_t: Table = Conversion.__table__  # type: ignore[attr-defined]
web_login_t: Table = WebLogin.__table__  # type: ignore[attr-defined]
web_secret_t: Table = WebSecret.__table__  # type: ignore[attr-defined]
