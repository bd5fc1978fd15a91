"""Prefect 3 flows: thin wrappers that call the package's stage entry points.

Deployments and schedules are in ``prefect.yaml``; docs/operations.md says how to serve them.
"""
