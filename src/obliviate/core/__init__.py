"""Core: run directories (and, as the package grows, errors and atomic IO)."""
