"""Online adjudication of a disputed hazard (线上研判), pure logic.

When units disagree about a hazard (is it really a hazard, which category, general
or major, what must be done), they discuss it in a thread that stays with the
hazard; an authorised role (``DECIDE_ROLES``) then makes the one final decision,
which sets the hazard's category, level and rectification advice.  docs/review.md.

``check_comment(body)`` and ``check_decision(body, categories)`` return
``(fields, errors)``; errors are ``{"field", "reason"}`` with a reason code each.
"""

from __future__ import annotations

from hazards.model import LEVELS
from hazards.review import check_text

DISCUSS_ROLES = ("dispatcher", "officer", "admin")  # the units' officials
DECIDE_ROLES = ("admin",)  # the final decision
TEXT_MAX = 2000


def check_comment(body: object) -> tuple[dict, list[dict]]:
    if not isinstance(body, dict):
        return {}, [{"field": "body", "reason": "not_an_object"}]
    errors: list[dict] = []
    return {"comment": check_text(body, "comment", errors, required=True, max_len=TEXT_MAX)}, errors


def check_decision(body: object, categories) -> tuple[dict, list[dict]]:
    """The decision: ``category`` (an item of the catalogue), ``level``, ``advice``
    (the rectification advice, required), and an optional ``comment`` (the grounds)."""
    if not isinstance(body, dict):
        return {}, [{"field": "body", "reason": "not_an_object"}]
    errors: list[dict] = []
    category = body.get("category")
    if not isinstance(category, str) or category not in categories:
        errors.append({"field": "category", "reason": "unknown_category"})
    level = body.get("level")
    if level not in LEVELS:
        errors.append({"field": "level", "reason": "unknown_level"})
    advice = check_text(body, "advice", errors, required=True, max_len=TEXT_MAX)
    comment = check_text(body, "comment", errors, required=False, max_len=TEXT_MAX)
    return {"category": category, "level": level, "advice": advice, "comment": comment}, errors
