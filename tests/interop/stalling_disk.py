"""A disk whose writes can be made to stall: a FUSE pass-through file system over a
backing directory. While its flag file exists, every write and every fsync (of files
and of directories) waits; reads, lookups and renames go on. That is how a slow or
stuck disk looks to a server: its log appends and syncs do not return, while it can
still read what it has. A flag holding `directories` stalls only the syncs of
directories (what makes a new file's name durable).

Run as a program it serves the file system in the foreground (the test's own process
stays free of FUSE threads):

    python3 stalling_disk.py BACKING_DIR MOUNT_POINT FLAG_FILE

`StallingDisk` starts and stops that program. It needs /dev/fuse, Debian's libfuse2
and PyPI's fusepy (tests/run-all.sh installs both).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time

STAT_FIELDS = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid",
               "st_blocks")
STATVFS_FIELDS = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag",
                  "f_frsize", "f_namemax")
# How often a stalled write looks at the flag again.
STALL_POLL_S = 0.005
MOUNT_TIMEOUT_S = 30.0


class StallingDisk:
    """The file system mounted at `mount_point`, its files kept in `<mount_point>.backing`."""

    def __init__(self, mount_point: str):
        self.mount_point = mount_point
        self.backing = mount_point + ".backing"
        self.flag = mount_point + ".stalled"
        self.proc = None

    def start(self) -> StallingDisk:
        os.makedirs(self.mount_point, exist_ok=True)
        os.makedirs(self.backing, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.backing, self.mount_point,
                                      self.flag], stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.mount_point):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the stalling file system exited with {self.proc.returncode} "
                                   "(it needs /dev/fuse, libfuse2 and fusepy)")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.mount_point} not mounted within {MOUNT_TIMEOUT_S} s")
            time.sleep(0.01)
        return self

    def stall(self, only_directories: bool = False):
        with open(self.flag, "w") as flag:
            flag.write("directories" if only_directories else "")

    def resume(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.flag)

    def stop(self):
        """Resumes and unmounts (after the server using it has stopped)."""
        self.resume()
        if self.proc is not None:
            # libfuse unmounts on SIGTERM; a lazy unmount covers a file system that died.
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        if os.path.ismount(self.mount_point):
            subprocess.run(["umount", "-l", self.mount_point], check=False)


def serve(backing: str, mount_point: str, flag: str):
    from fuse import FUSE, FuseOSError, Operations

    def stalled(directory: bool) -> bool:
        try:
            with open(flag) as f:
                what = f.read()
        except FileNotFoundError:
            return False
        return what == "" or (directory and what == "directories")

    def wait_while_stalled(directory: bool = False):
        while stalled(directory):
            time.sleep(STALL_POLL_S)

    class PassThrough(Operations):
        """Every call on `path` goes to the same path under `backing`. raw_fi: open and
        create see the caller's flags, and the file handle is the backing descriptor."""

        def _path(self, path):
            return os.path.join(backing, path.lstrip("/"))

        def access(self, path, mode):
            if not os.access(self._path(path), mode):
                raise FuseOSError(errno.EACCES)

        def getattr(self, path, fh=None):
            st = os.lstat(self._path(path))
            return {field: getattr(st, field) for field in STAT_FIELDS}

        def readdir(self, path, fh):
            return [".", ".."] + os.listdir(self._path(path))

        def statfs(self, path):
            st = os.statvfs(self._path(path))
            return {field: getattr(st, field) for field in STATVFS_FIELDS}

        def mkdir(self, path, mode):
            os.mkdir(self._path(path), mode)

        def rmdir(self, path):
            os.rmdir(self._path(path))

        def unlink(self, path):
            os.unlink(self._path(path))

        def rename(self, old, new):
            os.rename(self._path(old), self._path(new))

        def chmod(self, path, mode):
            os.chmod(self._path(path), mode)

        def utimens(self, path, times=None):
            os.utime(self._path(path), times)

        def open(self, path, fi):
            # The backing file takes every flag but O_DIRECT, which FUSE itself handles.
            fi.fh = os.open(self._path(path), fi.flags & ~os.O_DIRECT)
            return 0

        def create(self, path, mode, fi):
            fi.fh = os.open(self._path(path), (fi.flags & ~os.O_DIRECT) | os.O_CREAT, mode)
            return 0

        def read(self, path, size, offset, fi):
            return os.pread(fi.fh, size, offset)

        def write(self, path, data, offset, fi):
            wait_while_stalled()
            return os.pwrite(fi.fh, data, offset)

        def truncate(self, path, length, fi=None):
            if fi is not None:
                os.ftruncate(fi.fh, length)
            else:
                os.truncate(self._path(path), length)

        def flush(self, path, fi):
            return 0

        def release(self, path, fi):
            os.close(fi.fh)
            return 0

        def fsync(self, path, datasync, fi):
            wait_while_stalled()
            os.fdatasync(fi.fh) if datasync else os.fsync(fi.fh)
            return 0

        def fsyncdir(self, path, datasync, fi):
            wait_while_stalled(directory=True)
            descriptor = os.open(self._path(path), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            return 0

    FUSE(PassThrough(), mount_point, foreground=True, raw_fi=True, nothreads=False)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
