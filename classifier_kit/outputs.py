"""Staged outputs: every file a run writes is put in place only when the run succeeds; the folder lock."""
import contextlib
import io
import json
import os
import signal
import tempfile
import time

import torch

from .errors import InputError, RunError


def temporary_beside(path):
    """A new empty file in the folder of `path` (so that renaming it onto `path` is atomic)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(handle)
    return temporary


def put_in_place(temporary, path):
    """Flush the finished temporary file to disk and rename it onto `path`.

    Windows' fsync (_commit) needs a handle open for writing, hence "r+b". Windows also
    refuses to replace a file another program holds open; a virus scanner may hold the new
    file for a moment, so the rename is tried a few times before the error names the file.
    """
    with open(temporary, "r+b") as written:
        os.fsync(written.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    for attempt in range(3):
        try:
            os.replace(temporary, path)
            return
        except PermissionError:
            if attempt == 2:
                raise InputError(in_use_message(path)) from None
            time.sleep(0.2)


def in_use_message(path):
    return (f"{path} cannot be replaced: another program has it open (Excel, an app or viewer using the model) "
            "or it is read-only; close it and run again")


def check_replaceable(path):
    """Refuse, before anything is put in place, a destination another program holds open.

    Opening for writing is what fails on Windows while Excel or an app has the file open.
    """
    if not os.path.exists(path):
        return
    try:
        with open(path, "r+b"):
            pass
    except PermissionError:
        raise InputError(in_use_message(path)) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; it cannot be replaced by a file") from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`, renamed onto it only when the block succeeds.

    A crash, a full disk or a kill at any moment leaves either the old file or the
    complete new one, never a torn one.
    """
    check_replaceable(path)
    temporary = temporary_beside(path)
    try:
        yield temporary
        put_in_place(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C waits until the block is done, so that files are put in place together."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


LOCK_NAME = ".DataClassifier.lock"


class FolderLock:
    """Keeps a second DataClassifier run from writing into the same folder at the same time.

    An operating-system lock on a small file in the folder: released when the process ends
    however it ends, so a killed run never leaves the folder locked.
    """

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK_NAME)
        self.handle = None
        for _ in range(5):
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not self.try_lock(handle):
                holder = self.holder()
                os.close(handle)
                raise InputError(f"another DataClassifier run{holder} is writing to {folder}; wait for it to "
                                 "finish, or choose another --output-dir")
            if self.still_named(handle):
                os.ftruncate(handle, 0)
                os.write(handle, str(os.getpid()).encode())
                self.handle = handle
                return
            os.close(handle)  # the run that held it removed the file meanwhile: lock the new one
        raise RunError(f"could not lock {self.path}")

    @staticmethod
    def try_lock(handle):
        try:
            if os.name == "nt":
                import msvcrt

                os.lseek(handle, 1024, os.SEEK_SET)  # lock a byte past the process number, which stays readable
                msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
                os.lseek(handle, 0, os.SEEK_SET)
            else:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def still_named(self, handle):
        if os.name == "nt":  # Windows cannot remove a file that is open
            return True
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(handle)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def holder(self):
        with contextlib.suppress(OSError, ValueError):
            with open(self.path, encoding="ascii") as file:
                return f" (process {int(file.read(20))})"
        return ""

    def release(self):
        if self.handle is None:
            return
        if os.name != "nt":
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # removed while still locked: the next run locks a new file
        os.close(self.handle)
        self.handle = None
        if os.name == "nt":
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def same_file(first, second):
    """Whether two paths name one file (case-insensitively on Windows, through links everywhere)."""
    if os.path.normcase(os.path.realpath(first)) == os.path.normcase(os.path.realpath(second)):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


class OutputFiles:
    """The files a run writes, each staged under a temporary name and put in place at the end.

    Before anything is written, an output that is one of the run's inputs or another of its
    outputs is refused. While the run works, its output folders are locked and every file
    is written beside its destination under a temporary name; commit() renames them into
    place. Any failure before that removes the temporaries: the folder is left as it was.
    outputs and inputs: lists of (what it is, path).
    """

    def __init__(self, outputs, inputs):
        for number, (what, path) in enumerate(outputs):
            for other_what, other in outputs[:number] + inputs:
                if same_file(path, other):
                    raise InputError(f"{path} would be written as {what}, but it is also {other_what}; "
                                     "choose another --checkpoint or --output-dir")
        self.outputs = [path for _, path in outputs]
        self.staged = {}
        self.created = []
        self.locks = []

    def __enter__(self):
        try:
            for folder in sorted({os.path.dirname(os.path.abspath(path)) for path in self.outputs}):
                self.make_folder(folder)
                self.locks.append(FolderLock(folder))
        except BaseException:
            self.__exit__()
            raise
        return self

    def make_folder(self, folder):
        if os.path.isdir(folder):
            return
        if os.path.exists(folder):
            raise InputError(f"{folder} is a file; give a folder for the outputs")
        parent = os.path.dirname(folder)
        if parent != folder:
            self.make_folder(parent)
        try:
            os.mkdir(folder)
        except OSError as error:
            raise InputError(f"the output folder {folder} cannot be created: {error.strerror}") from None
        self.created.append(folder)

    def __exit__(self, *exception):
        for temporary in self.staged.values():
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        self.staged.clear()
        for lock in reversed(self.locks):
            lock.release()
        self.locks.clear()
        if exception and exception[0] is not None:
            for folder in reversed(self.created):  # a failed run leaves no new empty folder behind
                with contextlib.suppress(OSError):
                    os.rmdir(folder)

    def stage(self, path):
        """A temporary path to write `path`'s new content to."""
        if path in self.staged:
            return self.staged[path]
        try:
            self.staged[path] = temporary_beside(path)
        except OSError as error:
            raise InputError(f"{path} cannot be written: {error.strerror}; choose another folder") from None
        return self.staged[path]

    def discard(self, path):
        """Forget a staged file: it is not written after all."""
        with contextlib.suppress(OSError):
            os.unlink(self.staged.pop(path))

    def commit(self, paths=None):
        """Put the staged files (or only `paths`) in place, all of them or, if one is held open, none."""
        paths = [path for path in self.staged if paths is None or path in paths]
        for path in paths:
            check_replaceable(path)
        with interrupts_deferred():
            for path in paths:
                put_in_place(self.staged.pop(path), path)


def write_model(state_dict, path):
    """torch.save through memory, where torch names the archive "archive": the same weights give the
    same bytes, whatever the file is called."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    with open(path, "wb") as file:
        file.write(buffer.getbuffer())


def write_json(content, path):
    """NetModel.json and --metrics: UTF-8, indented, the same bytes on every system."""
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(content, file, indent=2, ensure_ascii=False)
        file.write("\n")
