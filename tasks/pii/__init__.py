"""PII redaction, shared by the stages that write text a person wrote or a teacher may echo.

`RedactConfig` (tasks.pii.config), `Redactor` (tasks.pii.redactor: Presidio plus our recognizers,
tasks.pii.recognizers) and the placeholders it writes (tasks.pii.placeholders).
"""

from tasks.pii.config import RedactConfig
from tasks.pii.redactor import Redaction, Redactor

__all__ = ["RedactConfig", "Redaction", "Redactor"]
