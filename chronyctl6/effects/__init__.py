"""Everything that touches the world: files, commands, the service manager, metadata, the host."""
