"""Reading prompt logs as they really come: `read` (formats, bytes decoded row by row) and `rows` (which
column holds what, and what makes a row unusable)."""
