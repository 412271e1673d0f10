"""Prefect flows: the distillation DAG and the `redistill` command."""
