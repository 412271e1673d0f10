"""Pipeline stages: one module per stage (pure functions plus one Prefect task), and what they share."""
