"""Staged outputs: every file a run writes is put in place only when the run succeeds; the folder lock."""
import contextlib
import errno
import io
import json
import os
import re
import signal
import stat
import sys
import tempfile
import time

import torch

from .errors import InputError, RunError, file_system_advice


TEMPORARY_MARK = ".dc-tmp-"  # in the name of every temporary this program makes, and of no other file
# A temporary of an output: "." + the output's name + the mark + 8 characters of tempfile.mkstemp
TEMPORARY = re.compile(r"^\.(?P<name>.+)" + re.escape(TEMPORARY_MARK) + r"[a-z0-9_]{8}$")


def temporary_beside(path):
    """A new empty file in the folder of `path` (so that renaming it onto `path` is atomic), named with the mark
    that only this program's temporaries carry, so that a later run removes only those."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + TEMPORARY_MARK, suffix="",
                                         dir=directory)
    os.close(handle)
    return temporary


def flush(temporary):
    """Flush a finished temporary file to disk, with the permissions a new file gets.

    Windows' fsync (_commit) needs a handle open for writing, hence "r+b".
    """
    with open(temporary, "r+b") as written:
        os.fsync(written.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)


def put_in_place(temporary, path, flushed=False):
    """Flush the finished temporary file to disk and rename it onto `path`.

    Windows refuses to replace a file another program holds open; a virus scanner may hold
    the new file for a moment, so the rename is tried a few times before the error names the file.
    """
    if not flushed:
        flush(temporary)
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


# Ctrl-C; a stop from timeout, CI, docker stop (SIGTERM); a closed terminal (SIGHUP, which Windows does not have)
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def stop_on_terminate():
    """SIGTERM and SIGHUP end a run as Ctrl-C does: whatever was staged is removed, the folder is left as it was."""
    def stop(*_):
        raise KeyboardInterrupt

    for number in STOP_SIGNALS[1:]:
        with contextlib.suppress(ValueError, OSError):  # only the main thread may set a handler
            signal.signal(number, stop)


class CommitInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM after this run replaced files: while it put its outputs in place (it waited until they
    all were), or after it finished what an earlier, stopped run left (`earlier`)."""

    def __init__(self, replaced, earlier=()):
        super().__init__(replaced)
        self.replaced, self.earlier = list(replaced), list(earlier)

    def message(self):
        said = []
        if self.replaced:
            said.append("Interrupted while the outputs were put in place; the run waited until all of them were: "
                        f"{', '.join(self.replaced)} replaced")
        if self.earlier:
            said.append(("Interrupted; " if not said else "before that, ") + "it had finished putting in place what "
                        f"an earlier, stopped run left: {', '.join(self.earlier)} replaced")
        if not self.replaced:
            said.append("no other file in the output folder was changed")
        return "; ".join(said)


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C and SIGTERM wait until the block is done, so that files are put in place together."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {number: signal.signal(number, lambda *_: received.append(True)) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


LOCK_NAME = ".DataClassifier.lock"
JOURNAL_NAME = ".DataClassifier.commit"  # what a commit under way renames, so that the next run can finish it
RESERVED_NAMES = (LOCK_NAME, JOURNAL_NAME)


def reserved_name_problem(name):
    """Why a file may not be called `name` by an output (None when it may): the lock, the journal and the
    temporaries' form are this program's own."""
    if name in RESERVED_NAMES:
        return "DataClassifier keeps its folder lock and commit journal under that name"
    if TEMPORARY.match(name):
        return f"names with '{TEMPORARY_MARK}' are DataClassifier's temporaries, which a later run removes"
    return None


def plain_name(name):
    """Whether a name read from a journal names a file in the journal's own folder: no separator, no drive,
    not '.' or '..'."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(
        mark in name for mark in ("/", "\\", ":", "\0")) and not os.path.isabs(name)


def read_journal(folder):
    """The renames a journal in `folder` lists, each checked before any is made: (temporary, destination)
    plain names in this folder, the temporary one of this program's for that very destination. Anything else
    (a journal that is not this program's, or names a file elsewhere) is refused, and nothing is changed."""
    journal = os.path.join(folder, JOURNAL_NAME)

    def refuse(why):
        return InputError(f"{journal} is not a commit journal that DataClassifier wrote ({why}); nothing was changed. "
                          f"If this folder came from elsewhere, delete {JOURNAL_NAME} and run again")

    if os.path.islink(journal) or not os.path.isfile(journal):
        raise refuse("it is not a plain file")
    try:
        with open(journal, encoding="utf-8") as file:
            renames = json.load(file)
    except (OSError, ValueError):
        raise refuse("it is not readable JSON") from None
    if not isinstance(renames, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in renames):
        raise refuse("it is not a list of [temporary, destination] pairs")
    for temporary, destination in renames:
        if not plain_name(temporary) or not plain_name(destination):
            raise refuse(f"it names {temporary!r} and {destination!r}; a journal names only files in its own folder")
        found = TEMPORARY.match(temporary)
        if not found or found.group("name") != destination or reserved_name_problem(destination):
            raise refuse(f"{temporary!r} is not a temporary of {destination!r} that DataClassifier makes")
        source = os.path.join(folder, temporary)
        if os.path.lexists(source) and (os.path.islink(source) or not os.path.isfile(source)):
            raise refuse(f"{temporary!r} is not a plain file")
    return renames


def finish_commit(folder):
    """Finish the commit of a run that was killed while it put its outputs in place (SIGKILL, a power cut):
    the renames its journal lists whose temporary is still there. Then remove the temporaries that killed
    runs left (only files with this program's mark). Returns the names it put in place. Called with the
    folder locked; Ctrl-C and SIGTERM wait until the journal is finished (then CommitInterrupted says what)."""
    done = []
    try:
        with interrupts_deferred():
            if os.path.lexists(os.path.join(folder, JOURNAL_NAME)):
                for temporary, destination in read_journal(folder):
                    if os.path.isfile(os.path.join(folder, temporary)):
                        os.replace(os.path.join(folder, temporary), os.path.join(folder, destination))
                        done.append(destination)
                sync_folder(folder)
                os.unlink(os.path.join(folder, JOURNAL_NAME))
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if TEMPORARY.match(name) and os.path.isfile(path) and not os.path.islink(path):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
    except KeyboardInterrupt:
        report_finished(folder, done)
        raise CommitInterrupted([], earlier=done) from None
    return done


def finish_stopped_commit(folder):
    """Before a trained model is read from `folder`: finish the commit a killed run left there and remove its
    temporaries, under the folder's lock, so that its weights and record are a matching pair. A folder that
    cannot be locked (read-only, or another run is writing to it) is read as it is. Returns the names it put
    in place."""
    if not os.path.isdir(folder) or not any(name == JOURNAL_NAME or TEMPORARY.match(name)
                                            for name in os.listdir(folder)):
        return []
    try:
        lock = FolderLock(folder)
    except InputError:
        return []
    try:
        done = finish_commit(folder)
        report_finished(folder, done)
        return done
    finally:
        lock.release()


def report_finished(folder, names):
    if names:
        print(f"note: a run stopped in {folder} while it put its outputs in place; this one finished that first "
              f"({', '.join(names)} put in place)", file=sys.stderr)


def write_journal(folder, renames):
    """The renames a commit is about to make in `folder`, on disk before the first of them."""
    journal = os.path.join(folder, JOURNAL_NAME)
    temporary = temporary_beside(journal)
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump([[os.path.basename(source), os.path.basename(target)] for source, target in renames], file)
    flush(temporary)
    os.replace(temporary, journal)
    sync_folder(folder)


def sync_folder(folder):
    """Make the renames in a folder durable (POSIX; Windows' renames need no such step and cannot open folders)."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):  # not every file system can sync a folder; the renames are still atomic
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


class FolderLock:
    """Keeps a second DataClassifier run from writing into the same folder at the same time.

    An operating-system lock on a small file in the folder: released when the process ends
    however it ends, so a killed run never leaves the folder locked. The lock file is never
    followed through a link, and a file of that name that is not a lock is never written to.
    """

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK_NAME)
        self.handle = None
        for _ in range(5):
            handle = self.open(folder)
            if not self.try_lock(handle):
                holder = self.holder()
                os.close(handle)
                raise InputError(f"another DataClassifier run{holder} is writing to {folder}; wait for it to "
                                 "finish, or choose another --output-dir")
            if self.still_named(handle):
                self.check_is_a_lock(handle)
                os.ftruncate(handle, 0)
                os.write(handle, str(os.getpid()).encode())
                self.handle = handle
                return
            os.close(handle)  # the run that held it removed the file meanwhile: lock the new one
        raise RunError(f"could not lock {self.path}")

    def open(self, folder):
        if os.path.islink(self.path):
            raise InputError(f"{self.path} is a link, not DataClassifier's lock file; remove it and run again")
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise InputError(f"{self.path} is a link, not DataClassifier's lock file; remove it and run "
                                 "again") from None
            raise InputError(f"{folder} cannot be written to ({error.strerror}); make it writable, or choose "
                             "another --output-dir") from None

    def check_is_a_lock(self, handle):
        """Refuse a file of the lock's name that holds something else than a process number."""
        info = os.fstat(handle)
        os.lseek(handle, 0, os.SEEK_SET)
        content = os.read(handle, 64)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 20 or not content.strip().isdigit() and content:
            os.close(handle)
            raise InputError(f"{self.path} is not DataClassifier's lock file (it holds something else); move it "
                             "away and run again")

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

    def __init__(self, outputs, inputs, folder):
        for what, path in outputs:
            problem = reserved_name_problem(os.path.basename(path))
            if problem:
                raise InputError(f"{path} would be written as {what}, but {problem}; choose another name")
        for what, path in outputs:
            if os.path.normcase(os.path.dirname(os.path.abspath(path))) != os.path.normcase(os.path.abspath(folder)):
                raise InputError(f"{path} would be written as {what} outside the output folder {folder}; a run writes "
                                 "all its outputs into one folder, so that they are replaced together: put it in "
                                 f"{folder}, or choose that folder with --output-dir")
        for number, (what, path) in enumerate(outputs):
            for other_what, other in outputs[:number] + inputs:
                if same_file(path, other):
                    raise InputError(f"{path} would be written as {what}, but it is also {other_what}; "
                                     "choose another --checkpoint or --output-dir")
        self.folder = os.path.abspath(folder)
        self.outputs = [path for _, path in outputs]
        self.staged = {}
        self.created = []
        self.lock = None
        self.writing = None
        self.finished = []  # what this run put in place for an earlier, stopped run

    def __enter__(self):
        try:
            self.make_folder(self.folder)
            self.lock = FolderLock(self.folder)
            self.finished = finish_commit(self.folder)
            report_finished(self.folder, self.finished)
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
        if self.lock:
            self.lock.release()
            self.lock = None
        if exception and exception[0] is not None:
            for folder in reversed(self.created):  # a failed run leaves no new empty folder behind
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            error = exception[1]
            if isinstance(error, KeyboardInterrupt) and not isinstance(error, CommitInterrupted) and self.finished:
                raise CommitInterrupted([], earlier=self.finished) from None
            if isinstance(error, OSError) and not error.filename and file_system_advice(error) and self.writing:
                raise InputError(f"{self.writing} cannot be written ({error.strerror}){file_system_advice(error)}") \
                    from None

    def stage(self, path):
        """A temporary path to write `path`'s new content to."""
        self.writing = path  # named if the disk fills up while it is written
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
        """Put the staged files (or only `paths`) in place, all of them or, if one is held open, none.

        Ctrl-C and SIGTERM wait until every file is in place (then CommitInterrupted names them).
        Against a kill that cannot wait (SIGKILL, a power cut), each folder's renames are written
        to a journal first, which the next run in that folder finishes (finish_commit): the
        folder never keeps a new NetModel.pth beside the old NetModel.json.
        """
        paths = [path for path in self.staged if paths is None or path in paths]
        for path in paths:
            check_replaceable(path)
        try:
            with interrupts_deferred():
                for path in paths:
                    flush(self.staged[path])
                write_journal(self.folder, [(self.staged[path], path) for path in paths])
                for path in paths:
                    put_in_place(self.staged.pop(path), path, flushed=True)
                sync_folder(self.folder)
                os.unlink(os.path.join(self.folder, JOURNAL_NAME))
        except KeyboardInterrupt:
            raise CommitInterrupted([path for path in paths if path not in self.staged], self.finished) from None


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
