"""Untracked policy as resolved values, and the reference verdict every dataplane is tested against. Pure."""
