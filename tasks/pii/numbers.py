"""Numbers about a person, whatever their checksum or national format: IBAN-shaped strings, long digit
groups (accounts, mistyped cards), phone numbers. Digits next to an arithmetic operator are operands
and stay; so do dates.
"""

OPERATOR = r"[-+*/×÷=^<>%]"
# an operator makes digits operands only with a number on its other side: `2^31 - 1 = 2147483647`, not `acct=…`
_NOT_OPERAND_BEFORE = rf"(?<!\d[ \t]?{OPERATOR}[ \t]?)(?<![\w.,])"
_NOT_OPERAND_AFTER = rf"(?![\w])(?![ \t]?{OPERATOR}[ \t]?\d)"
_DATE = r"(?!\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b)(?!\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b)"

IBAN_SHAPED = r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,8}(?:[ -]?[A-Z0-9]{1,3})?\b"
# nine digits or more, in groups of two or more split by single spaces or dashes; not a decimal's digits
DIGIT_GROUPS = (
    rf"{_NOT_OPERAND_BEFORE}{_DATE}(?=(?:[ -]?\d){{9}})\d{{2,}}(?:[ -]?\d{{2,}})*{_NOT_OPERAND_AFTER}(?!\.\d)"
)
_PHONE_PART = r"(?:\(\+?\d{1,5}\)|\d)"
# how a phone number starts: +, 00, (, a group of two or more digits, or a trunk digit before "(776)" or "741 "
_PHONE_START = r"(?=\+|00|\(|\d{2,5}[ .\-/(]|\d[ ]?(?:\(|\d{3}[ .\-]))"
PHONE = (  # seven digits or more; a run without separators is a phone only with + or (, else an account number's
    rf"(?<![\w+]){_NOT_OPERAND_BEFORE}{_DATE}(?=(?:[ .\-/()+]*\d){{7}}){_PHONE_START}"
    rf"(?:\+|00)?(?:\(\+?\d{{1,5}}\)[ ]?|\d)"
    rf"(?:(?:[ .\-/]|[ ]?(?=\())?{_PHONE_PART}){{3,16}}(?:[ ]?(?:x|ext\.?|#)[ ]?\d{{1,6}})?{_NOT_OPERAND_AFTER}"
)
