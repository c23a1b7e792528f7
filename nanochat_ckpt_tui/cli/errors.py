"""The command line's exit codes and :class:`CliError`: all that ``cli/__init__`` needs before
it knows which command runs (:mod:`.common`, with the store under it, is imported by the
command's module, after :func:`.main` has started)."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOTHING, EXIT_PARTIAL, EXIT_DECLINED = 3, 4, 5


class CliError(Exception):
    """An error for the user: printed as one line on stderr."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code
