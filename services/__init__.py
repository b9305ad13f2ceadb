"""Services: one plain function per user action, DB session first (what pages and the CLI call)."""
