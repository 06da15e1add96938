"""Reading chrony's configuration as chronyd does, and deciding what a takeover keeps (pure)."""
