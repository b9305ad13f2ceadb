"""The one exception type users see.

Anything a user can fix (a bad setting, an unknown model, a malformed file) is raised as
``StudioError`` with a message written for that user. Pages show it with ``st.error``; the CLI
prints it without a traceback and exits non-zero.
"""


class StudioError(Exception):
    """An error the user can fix; ``str(err)`` says what is wrong and how to fix it."""
