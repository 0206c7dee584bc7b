"""Windows' rules that Linux does not enforce, applied on Linux so that the tests catch code that breaks them.

- os.fsync on Windows is _commit, which fails with EBADF on a handle opened read-only.
- A file another program holds open (Excel, an app using the model) cannot be opened for
  writing, replaced or removed: `hold_open` marks paths as held.
"""
import builtins
import errno
import os

HELD = set()  # absolute paths "another program" holds open


def held(path):
    try:
        return os.path.abspath(os.fspath(path)) in HELD
    except TypeError:  # a file descriptor
        return False


def windows_fsync(original):
    def fsync(descriptor):
        if hasattr(descriptor, "fileno"):
            descriptor = descriptor.fileno()
        if os.name == "posix":
            import fcntl

            if fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
                raise OSError(errno.EBADF, "Bad file descriptor")
        return original(descriptor)
    return fsync


def windows_open(original):
    def open_(file, mode="r", *args, **kwargs):
        if held(file) and any(flag in mode for flag in "wax+"):
            raise PermissionError(errno.EACCES, "The process cannot access the file because it is being used by "
                                                "another process", os.fspath(file))
        return original(file, mode, *args, **kwargs)
    return open_


def windows_replace(original):
    def replace(source, destination, *args, **kwargs):
        if held(destination) or held(source):
            raise PermissionError(errno.EACCES, "Access is denied", os.fspath(source), None, os.fspath(destination))
        return original(source, destination, *args, **kwargs)
    return replace


def install(setattr_=setattr):
    """Apply the rules (setattr_: pytest's monkeypatch.setattr, to undo them after a test)."""
    setattr_(os, "fsync", windows_fsync(os.fsync))
    setattr_(builtins, "open", windows_open(builtins.open))
    setattr_(os, "replace", windows_replace(os.replace))
