"""What goes wrong, and how it is said: the two kinds of error a run ends with, and the phrases messages share."""
import errno


class InputError(Exception):
    """Bad input or usage: the run stops with `error: <message>` and exit code 2."""

    exit_code = 2


class RunError(Exception):
    """A fault that is not the input's: the run stops with `error: <message>` and exit code 1."""

    exit_code = 1


def first_line(error):
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def column_list(columns):
    columns = [f"'{column}'" for column in columns]
    return ", ".join(columns[:30]) + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")


def spreadsheet_rows(index, limit=5):
    """Spreadsheet row numbers of table rows (the header is row 1), the first few of them."""
    rows = [str(position + 2) for position in list(index[:limit])]
    return ", ".join(rows) + (f" and {len(index) - limit} more" if len(index) > limit else "")


def file_system_advice(error):
    """For an error of the file system that is the input's or the places it names (no permission, a read-only
    or full disk), what to do about it; else None."""
    advice = {errno.EACCES: "; give the run permission to read and write it, or choose another file or --output-dir",
              errno.EPERM: "; give the run permission to read and write it, or choose another file or --output-dir",
              errno.EROFS: "; the disk is read-only: choose another --output-dir",
              errno.ENOSPC: "; the disk is full: free some space, or choose another --output-dir",
              getattr(errno, "EDQUOT", -1): "; the disk quota is used up: free some space, or choose another "
                                            "--output-dir"}
    return advice.get(error.errno)
