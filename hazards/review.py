"""Remote review of an inspection (远程点评), pure logic: what a reviewer may post.

A reviewer watching an inspector's body camera leaves time-coded comments
(``at_s`` seconds into the stream) and a verdict on the inspection: ``compliant``
or ``non_compliant`` with one or more reasons from ``REASONS`` (their words, in
Chinese and English, are in dashboard/i18n.py's catalogue as ``review.reason.<code>``).
A later verdict replaces the earlier one as the visit's verdict; every one stays in
the record.  docs/review.md.

``check_review(body)`` reads a posted body and returns ``(kind, fields, errors)``:
``errors`` is a list of ``{"field", "reason"}`` with a reason code each (the API
answers 400 with them); ``kind`` is ``comment`` or ``verdict`` when there are none.
"""

from __future__ import annotations

import math

REVIEW_ROLES = ("dispatcher", "admin")  # who may review (post); docs/review.md
VERDICTS = ("compliant", "non_compliant")
# Why an inspection was not done by the book; the order is the form's.
REASONS = (
    "no_credentials_shown",  # 未出示执法证件
    "checklist_incomplete",  # 检查项目不全
    "hazard_missed",  # 隐患未识别
    "hazard_misjudged",  # 隐患类别或等级判断错误
    "no_rectification_order",  # 未下达整改要求
    "record_incomplete",  # 检查记录不完整
    "camera_interrupted",  # 执法记录仪中断或遮挡
    "improper_conduct",  # 执法行为不规范
    "other",  # 其他(见备注)
)
COMMENT_MAX = 2000
# A stream's offset: a body camera records a working day at most.
AT_S_MAX = 86400.0


def has_control_characters(text: str) -> bool:
    """Whether free text holds control characters other than a newline and a tab: NUL
    cuts text short in SQLite and PostgreSQL cannot store it; the rest no person types.
    Every free-text field of the API is checked with it."""
    return any(ord(c) < 32 and c not in "\n\t" or 0x7F <= ord(c) <= 0x9F for c in text)


def check_text(body: dict, name: str, errors: list, required: bool, max_len: int = COMMENT_MAX) -> str | None:
    """A free-text field of a JSON body, stripped; each problem appended to ``errors`` as
    ``{field, reason}`` (required, not_a_string, too_long, control_character)."""
    v = body.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            errors.append({"field": name, "reason": "required"})
        return None
    if not isinstance(v, str):
        errors.append({"field": name, "reason": "not_a_string"})
        return None
    if len(v) > max_len:
        errors.append({"field": name, "reason": "too_long"})
        return None
    if has_control_characters(v):
        errors.append({"field": name, "reason": "control_character"})
        return None
    return v.strip()


def _stream_id(body: dict, errors: list) -> int | None:
    v = body.get("stream_id")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        errors.append({"field": "stream_id", "reason": "not_an_id"})
        return None
    return v


def check_review(body: object) -> tuple[str | None, dict, list[dict]]:
    """``(kind, fields, errors)`` of a posted review; see the module docstring."""
    errors: list[dict] = []
    if not isinstance(body, dict):
        return None, {}, [{"field": "body", "reason": "not_an_object"}]
    is_verdict = "verdict" in body
    is_comment = "at_s" in body
    if is_verdict and is_comment:
        return None, {}, [{"field": "body", "reason": "comment_or_verdict"}]
    if is_verdict:
        verdict = body.get("verdict")
        if verdict not in VERDICTS:
            errors.append({"field": "verdict", "reason": "unknown_verdict"})
        reasons = body.get("reasons", [])
        if reasons is None:
            reasons = []
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            errors.append({"field": "reasons", "reason": "not_a_list"})
            reasons = []
        elif any(r not in REASONS for r in reasons):
            errors.append({"field": "reasons", "reason": "unknown_reason"})
        elif len(set(reasons)) != len(reasons):
            errors.append({"field": "reasons", "reason": "repeated_reason"})
        elif verdict == "non_compliant" and not reasons:
            errors.append({"field": "reasons", "reason": "reasons_required"})
        elif verdict == "compliant" and reasons:
            errors.append({"field": "reasons", "reason": "no_reasons_when_compliant"})
        comment = check_text(body, "comment", errors, required=False)
        if "other" in reasons and not comment:
            errors.append({"field": "comment", "reason": "required_with_other"})
        stream_id = _stream_id(body, errors)
        fields = {"verdict": verdict, "reasons": [r for r in REASONS if r in reasons], "comment": comment,
                  "stream_id": stream_id, "at_s": None}
        return (None if errors else "verdict"), fields, errors
    if is_comment:
        at_s = body.get("at_s")
        if isinstance(at_s, bool) or not isinstance(at_s, (int, float)) or not math.isfinite(at_s):
            errors.append({"field": "at_s", "reason": "not_a_number"})
            at_s = None
        elif not 0 <= at_s <= AT_S_MAX:
            errors.append({"field": "at_s", "reason": "out_of_range"})
            at_s = None
        comment = check_text(body, "comment", errors, required=True)
        stream_id = _stream_id(body, errors)
        fields = {"at_s": None if at_s is None else round(float(at_s), 3), "comment": comment,
                  "stream_id": stream_id, "verdict": None, "reasons": None}
        return (None if errors else "comment"), fields, errors
    return None, {}, [{"field": "body", "reason": "comment_or_verdict"}]


def current_verdict(entries: list[dict]) -> dict | None:
    """The newest verdict of a visit's review entries (oldest first), or None."""
    verdicts = [e for e in entries if e.get("kind") == "verdict"]
    return verdicts[-1] if verdicts else None
