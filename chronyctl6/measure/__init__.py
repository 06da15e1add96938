"""Measuring the clock against Time Sync: the validated NTP exchange, the verdict, its reports."""
