"""The `studio` command line: thin commands over the same services as the pages."""
