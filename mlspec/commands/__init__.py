"""One function per CLI command: each takes its output stream and returns an exit code (STYLE.md §7)."""
