"""Errors that mean bad input (the CLI exits 2 with their message), importable at no cost: the CLI
catches them before it knows which command, and so which heavy module, will run."""

from __future__ import annotations

import os


class ConfigError(Exception):
    """A bad config: `str(err)` is the whole message a user sees (no traceback)."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source, self.key, self.message = source, key, message
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}" if key else f"{where}{message}")


def read_regular_text(path: str | os.PathLike, what: str = "file", encoding: str | None = None,
                      not_found: str | None = None) -> str:
    """The text of `path`, refusing anything but a regular file in one ConfigError naming it.

    A FIFO would block `read_text()` forever and a device would stream without end, so the file is
    opened without blocking and checked (fstat, on what was opened) before a byte is read.
    """
    import stat

    src = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(src, "", not_found or f"no such {what}") from None
    except OSError as exc:
        raise ConfigError(src, "", f"cannot read the {what}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a plain file")
            raise ConfigError(src, "", f"not a regular file (it is {kind}); the {what} must be a regular file")
        os.set_blocking(fd, True)
        with open(fd, encoding=encoding, closefd=False) as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(src, "", f"not valid UTF-8 text ({exc.reason} at byte {exc.start}); save the {what} as UTF-8") from None
    except OSError as exc:
        raise ConfigError(src, "", f"cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
