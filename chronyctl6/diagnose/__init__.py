"""Diagnosing an instance: facts gathered once, doctor's checks, status."""
