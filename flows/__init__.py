"""Prefect flows wiring the tasks of physlm."""
