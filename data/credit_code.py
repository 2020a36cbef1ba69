"""The GB 32100-2015 unified social credit code (统一社会信用代码): its charset and check character.

Production code (the importer validates the codes of an enterprise register) and the
demo city generator (which draws valid codes) both use this one definition.
"""

from __future__ import annotations

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28


def credit_check_char(body17: str) -> str:
    """The 18th character of a unified social credit code for its first 17."""
    total = sum(CREDIT_CHARSET.index(c) * w for c, w in zip(body17, CREDIT_WEIGHTS))
    return CREDIT_CHARSET[(31 - total % 31) % 31]


def is_valid_credit_code(code: object) -> bool:
    """True for an 18-character code over the GB 32100 charset with the right check character."""
    if not isinstance(code, str) or len(code) != 18:
        return False
    code = code.upper()
    if any(c not in CREDIT_CHARSET for c in code):
        return False
    return credit_check_char(code[:17]) == code[17]
