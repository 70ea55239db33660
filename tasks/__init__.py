"""Thin Prefect tasks, one per physlm step."""
