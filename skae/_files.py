"""Writing a file safely: atomically, over a regular file only, keeping its mode.

Knows nothing of what is written: ``atomic_write(path, write, check_target)``
calls ``write(fileobj)`` on a temporary file beside ``path`` and renames it
over ``path``.
"""

import contextlib
import os
import re
import secrets
import stat

try:
    import fcntl
except ImportError:  # Windows: stale temporaries are left (see atomic_write).
    fcntl = None


def fspath(path):
    # os.fspath's own TypeError names neither the argument nor its value.
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(
            "Expected path to be a str or an os.PathLike. "
            f"Received: path={path!r} of type {type(path).__name__}"
        ) from None


def check_target(target, path, overwrite):
    """The ``os.stat`` of the regular file saving would replace, or None.

    Refuses a device, FIFO or socket (a rename would replace /dev/null by a
    file), any file with overwrite=False, and with overwrite=None a read-only
    one (by its mode bits too: root may write anything)."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    link = target != os.path.abspath(path)
    where = f"path={path!r}" + (f" (a link to {target!r})" if link else "")
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(
            f"Expected a file path to save to. Received: {where}, a directory"
        )
    if not stat.S_ISREG(st.st_mode):
        kinds = {"c": "character device", "b": "block device", "p": "FIFO"}
        kind = kinds.get(stat.filemode(st.st_mode)[0], "socket or other special file")
        raise OSError(
            "Expected a regular file or no file at path; save replaces nothing "
            f"else. Received: {where}, a {kind}"
        )
    if overwrite is False:
        raise FileExistsError(
            f"Expected no file at path with overwrite=False. Received: {where}, "
            "an existing file, left as it was"
        )
    if overwrite is None and (not st.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise PermissionError(
            f"Expected a writable file at path. Received: {where}, read-only "
            f"(mode {stat.filemode(st.st_mode)}), left as it was; pass "
            "overwrite=True to replace it anyway"
        )
    return st


def atomic_write(path, write, check_target):
    """Call ``write(fileobj)`` on a temporary file, then rename it over ``path``.

    ``check_target()`` (see :func:`check_target`) runs first and just before
    the rename. The temporary file is locked until renamed: a later save
    deletes one no process holds, left by a killed save."""
    directory, name = os.path.split(path)
    if fcntl is not None:
        _remove_stale_temporaries(directory, name)
    existing = check_target()
    while True:
        tmp_path = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            # Mode 0o666 as open() uses, so the umask applies as for any new file.
            fd = os.open(
                tmp_path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                0o666,
            )
        except FileExistsError:
            continue
        except OSError as exc:
            # Name the target, not the temporary file the user never asked for.
            raise OSError(exc.errno, exc.strerror, path) from exc
        break
    lock = None
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:  # held past the close, to the rename
                lock = os.dup(fd)
                # Where locks fail, no later save can lock it to delete it either.
                with contextlib.suppress(OSError):
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if existing is not None:
                # Before any data: a private model is never readable by others.
                _copy_permissions(fd, existing)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # The target may have become something else while the file was written.
        check_target()
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        # Errors of check_target() (no errno) already name the path.
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(
                exc.errno,
                f"{exc.strerror or exc} (the file was left as it was)",
                path,
            ) from exc
        raise
    finally:
        if lock is not None:
            os.close(lock)
    # Makes the rename itself durable; not possible on every platform.
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _copy_permissions(fd, existing):
    with contextlib.suppress(OSError, AttributeError):  # root only; not on Windows
        os.fchown(fd, existing.st_uid, existing.st_gid)
    mode = stat.S_IMODE(existing.st_mode) & 0o777  # never set-user-ID and the like
    if os.fstat(fd).st_gid != existing.st_gid:
        mode &= ~0o070  # granted to a group the new file is not in
    if hasattr(os, "fchmod"):  # not on Windows
        os.fchmod(fd, mode)


def _remove_stale_temporaries(directory, name):
    """Delete temporaries of saves to ``name`` that no save holds (killed ones)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{8}}\.tmp")
    entries = []
    with contextlib.suppress(OSError):
        entries = [e for e in os.listdir(directory or ".") if pattern.fullmatch(e)]
    for entry in entries:
        tmp_path = os.path.join(directory, entry)
        with contextlib.suppress(OSError):
            fd = os.open(tmp_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                # BlockingIOError (an OSError) while a save is writing it.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if stat.S_ISREG(st.st_mode) and os.lstat(tmp_path).st_ino == st.st_ino:
                    os.unlink(tmp_path)
            finally:
                os.close(fd)
