"""The landing folder, read as untrusted input: what the new-data sensor judges, and how.

Anyone who can write to the folder can drop anything there: links, FIFOs, huge
sparse files, files holding secrets. So:

* only regular files directly in the folder count (``lstat``: a link is reported,
  never followed; a FIFO or device is never opened);
* a file's size is checked before anything is read, and a tick reads at most
  ``TICK_BYTE_BUDGET`` bytes (the rest waits for the next tick);
* a file already judged is not read again while its inode, size and modification
  time stay the same;
* a problem says where and why, never what the file holds.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from iris_assets.data.schema import IrisDataError, parse_iris_csv, read_bounded

PATTERN_SUFFIX = ".csv"
TICK_BYTE_BUDGET = 256 * 1024 * 1024
TICK_FILE_BUDGET = 200


@dataclass(frozen=True)
class Judgement:
    """What the sensor concluded about one file, remembered in its cursor."""

    name: str
    fingerprint: str  # inode:size:mtime; a file with the same fingerprint is not re-read
    sha256: str = ""  # of a file that was read
    problem: Optional[str] = None  # why it starts no run

    def to_cursor(self) -> list[str]:
        return [self.fingerprint, self.sha256, "" if self.problem is None else "invalid"]


def fingerprint(status: os.stat_result) -> str:
    return f"{status.st_ino}:{status.st_size}:{status.st_mtime_ns}"


def csv_entries(folder: Path) -> list[os.DirEntry]:
    """The ``*.csv`` entries of ``folder`` (none if it does not exist), by name."""
    try:
        return sorted((e for e in os.scandir(folder) if e.name.endswith(PATTERN_SUFFIX)), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def new_files(
    folder: Path, entries: list[os.DirEntry], seen: dict[str, list[str]], max_bytes: int
) -> Iterator[Judgement]:
    """Judgements of the entries that are new or changed since ``seen``."""
    budget_bytes, budget_files = TICK_BYTE_BUDGET, TICK_FILE_BUDGET
    for entry in entries:
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # removed since the listing
        mark = fingerprint(status)
        if seen.get(entry.name, [""])[0] == mark:
            continue
        path = str(folder / entry.name)
        kind = _not_a_regular_file(status)
        if kind:
            yield Judgement(entry.name, mark, problem=f"{path}: is {kind}; only regular files are read")
            continue
        if status.st_size > max_bytes:
            yield Judgement(
                entry.name,
                mark,
                problem=f"{path}: is {status.st_size:,} bytes; an Iris CSV may hold at most {max_bytes:,} bytes "
                "($IRIS_MAX_CSV_BYTES)",
            )
            continue
        if status.st_size > budget_bytes or budget_files == 0:
            return  # the next tick goes on from here
        budget_bytes -= status.st_size
        budget_files -= 1
        yield _judge(entry.name, path, max_bytes, mark)


def _judge(name: str, path: str, max_bytes: int, listed: str) -> Judgement:
    try:
        data = read_bounded(path, max_bytes, follow_links=False)
    except IrisDataError as error:
        return Judgement(name, listed, problem=str(error))
    # The fingerprint of what was read: the file may have changed since the listing.
    try:
        mark = fingerprint(os.stat(path, follow_symlinks=False))
    except OSError:
        mark = listed
    judged = Judgement(name, mark, hashlib.sha256(data).hexdigest())
    try:
        parse_iris_csv(data, path)
    except IrisDataError as error:
        return Judgement(name, judged.fingerprint, judged.sha256, problem=str(error))
    return judged


def _not_a_regular_file(status: os.stat_result) -> str:
    mode = status.st_mode
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a device or socket"
