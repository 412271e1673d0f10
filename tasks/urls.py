"""URLs as they may be shown: in params, logs, messages and deployment parameters, never with a password."""

import re

# user:password@ up to the last @ before the path (a password may hold an unencoded @, never a /); ?password=
_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^\s/]*@|([?&]password=)[^&\s]+", re.IGNORECASE)


def masked(text: str) -> str:
    """`text` with every URL password replaced by `***`: `postgresql://u:***@host/db`, `…?password=***`."""
    return _PASSWORD.sub(lambda m: f"{m[1]}***@" if m[1] else f"{m[2]}***", text)
