"""Numbers about a person, whatever their checksum or national format: IBAN-shaped strings, long digit
groups (accounts, mistyped cards), phone numbers. Digits next to an arithmetic operator are operands
and stay; so do dates.
"""

OPERATOR = r"[-+*/×÷=^<>%]"
_NOT_OPERAND_BEFORE = rf"(?<!{OPERATOR}[ \t]?)(?<![\w.,])"
_NOT_OPERAND_AFTER = rf"(?![\w])(?![ \t]?{OPERATOR}[ \t]?\d)"
_DATE = r"(?!\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b)(?!\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b)"

IBAN_SHAPED = r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,8}(?:[ -]?[A-Z0-9]{1,3})?\b"
DIGIT_GROUPS = rf"{_NOT_OPERAND_BEFORE}{_DATE}\d(?:[ -]?\d){{8,}}{_NOT_OPERAND_AFTER}"
_PHONE_PART = r"(?:\(\+?\d{1,5}\)|\d)"
PHONE = (
    # seven digits or more; a run without separators is a phone only with + or (: else an account number's
    rf"(?<![\w+]){_NOT_OPERAND_BEFORE}{_DATE}(?=(?:[ .\-/()+]*\d){{7}})(?=\+|00|\(|\d{{1,5}}[ .\-/(])"
    rf"(?:\+|00)?(?:\(\+?\d{{1,5}}\)[ ]?|\d)"
    rf"(?:(?:[ .\-/]|[ ]?(?=\())?{_PHONE_PART}){{3,16}}(?:[ ]?(?:x|ext\.?|#)[ ]?\d{{1,6}})?{_NOT_OPERAND_AFTER}"
)
