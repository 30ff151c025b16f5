# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Making a file hold exactly some bytes, with a mode (and owner), atomically and only when it differs.

Shared by the module ikemesh.mesh.files (all of a role's files on a node in one module run) and the
action ikemesh.mesh.render_configs (every node's files on the controller).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat


class ValidationError(Exception):
    """The validation command rejected the new content (nothing was written)."""


def parse_mode(value):
    """Octal string ("0640", "640") or int -> int permission bits."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{3,4}", value.strip()):
        mode = int(value.strip(), 8)
    else:
        raise ValueError(f"mode must be an octal string like '0640', got {value!r}")
    if mode > 0o7777:
        raise ValueError(f"mode {value!r} is out of range")
    return mode


def _same_content(path, st, data):
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
        return False
    with open(path, "rb") as handle:
        return handle.read() == data


def sync_file(path, data, mode, check_mode=False, made_dirs=None, uid=-1, gid=-1, validate=None):
    """Make path hold exactly data (bytes) with permission bits mode (and owner uid/gid, -1: keep);
    return True if anything changed.

    Writes atomically and durably (a temporary file in the same directory, synced to disk, renamed over
    path, the directory synced). made_dirs: an optional set of directories known to exist (saves a
    makedirs per file). validate: an optional callable given the temporary file's path before the
    rename; it raises ValidationError to refuse.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if _same_content(path, st, data):
        wrong_mode = stat.S_IMODE(st.st_mode) != mode
        wrong_owner = (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid)
        if not (wrong_mode or wrong_owner):
            return False
        if not check_mode:
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return True
    if check_mode:
        return True
    directory = os.path.dirname(path)
    if made_dirs is None or directory not in made_dirs:
        os.makedirs(directory, exist_ok=True)
        if made_dirs is not None:
            made_dirs.add(directory)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            # On disk before the rename: a node that loses power right after a run must not come back
            # with an empty file (ext4 commits the rename before delayed data; the kernel lab's hub
            # power-off found an empty sysctl file).
            handle.flush()
            os.fsync(handle.fileno())
        if validate is not None:
            validate(tmp)
        os.replace(tmp, path)
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def read_text(path, limit):
    """A file's text for a diff: '' if missing, None if not text or larger than limit bytes."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return ""
    except IsADirectoryError:
        return None
    if len(data) > limit or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
