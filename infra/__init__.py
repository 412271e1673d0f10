"""Local services as plain processes: the stack (`redistill stack`) and the test servers."""
