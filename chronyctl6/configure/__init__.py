"""Configuring chrony: platforms and settings, rendering, the plan of a change, applying it."""
