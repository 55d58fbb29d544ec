/* storage: everything beneath a share root.  Every path is resolved by the
 * kernel (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); uploads go to an
 * O_TMPFILE in the target directory and get a name only when complete. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "digest.h"

/* Extended attribute caching a file's digest (see storage_digest()):
 * STORAGE_XATTR_PREFIX + digest_alg_name(alg), e.g. "user.tcpfiled.sha256",
 * holding the text "<digest text> <size> <mtime_sec>.<mtime_nsec> <ino>"
 * (decimal; mtime_nsec always 9 digits), e.g.
 * "sha256:ba78...15ad 3 1700000000.000000042 1234". */
#define STORAGE_XATTR_PREFIX "user.tcpfiled."

/* Names beginning with this, and STORAGE_STATE_DIR itself, are
 * tcpfiled's own: storage_check_path() refuses them as path components and
 * storage_list() hides them. */
#define STORAGE_RESERVED_PREFIX ".tcpfiled."
/* Per-share state directory at the root (mode 0700, created on first
 * need).  An overwriting upload is linked here as "<pid>.<16 hex>" (pid:
 * the worker's) and renamed onto its final name, so a worker killed
 * between the two leaves a name that storage_sweep() can find and remove.
 * It is also the server-side partial area the protocol reserves for
 * resumable uploads. */
#define STORAGE_STATE_DIR ".tcpfiled"
/* Fallback temporary name of an overwriting upload, beside the target,
 * when the state directory is on another file system or cannot be made:
 * the prefix followed by 16 random hex digits. */
#define STORAGE_TMP_PREFIX ".tcpfiled.tmp."

/* Opens a share root directory (O_PATH|O_DIRECTORY|O_CLOEXEC) and checks
 * that openat2(2) works beneath it.  Returns the fd or -errno (-ENOSYS when
 * openat2 is unavailable or filtered). */
int storage_open_root(const char *path);

/* The one call site of openat2(2): opens rel beneath dir_fd with
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS; O_CLOEXEC is
 * always added.  It does NOT run storage_check_path() (every public
 * function below does), so the kernel alone refuses escapes (-EXDEV: "..",
 * absolute paths) and symlinks anywhere in rel (-ELOOP; with O_PATH|
 * O_NOFOLLOW a symlink as the last component is opened itself).  Returns
 * the fd or -errno. */
int storage_openat2(int dir_fd, const char *rel, int flags);

/* Checks a relative path before it reaches the kernel: non-empty, at most
 * PATH_MAX - 1 bytes (the kernel's limit with the NUL), components
 * 1..NAME_MAX bytes, no "." or "..", no empty component (leading, trailing
 * or doubled '/'), no byte < 0x20 (NUL included) or 0x7F, no component
 * starting with STORAGE_RESERVED_PREFIX.
 * A path is allowed to be empty only when allow_empty (the share root,
 * for LIST and STAT).  Returns 0, or -EINVAL with *why set. */
int storage_check_path(const char *rel, size_t len, bool allow_empty,
		       const char **why);

/* Opens an existing regular file for reading.  Returns the fd (O_RDONLY|
 * O_CLOEXEC) and fills *st, or -errno: -EINVAL (storage_check_path),
 * -ENOENT, -ENOTDIR, -EISDIR (a directory), -EPERM (a FIFO, socket or
 * device: never served; a FIFO does not block the open), -ELOOP (a
 * symlink anywhere in rel). */
int storage_open_file(int root_fd, const char *rel, struct stat *st);

/* Opens an existing directory (the root when rel is "") for listing.
 * Returns an O_RDONLY|O_DIRECTORY fd or -errno (-ENOTDIR). */
int storage_open_dir(int root_fd, const char *rel);

/* lstat beneath the root (rel "" = the root).  A symlink as the last
 * component is reported as a symlink; one earlier in rel is -ELOOP.
 * 0 or -errno. */
int storage_stat(int root_fd, const char *rel, struct stat *st);

/* The protocol's type letter for a file mode: 'f' regular file, 'd'
 * directory, 'l' symbolic link, 'o' anything else. */
char storage_type(mode_t mode);

/* One directory entry for LIST; name is valid only during the callback. */
struct storage_entry {
	char type;          /* 'f' file, 'd' directory, 'l' symlink, 'o' other */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;      /* permission bits */
	const char *name;
};

/* Reads the directory dir_fd (takes ownership and closes it, also on
 * failure), skipping ".", ".." and names starting with
 * STORAGE_RESERVED_PREFIX, calling fn once per entry in bytewise (strcmp)
 * name order; entries are lstat'ed, entries that vanish meanwhile are
 * skipped.  Returns 0, -errno, or fn's first non-zero return value. */
int storage_list(int dir_fd,
		 int (*fn)(const struct storage_entry *e, void *arg), void *arg);

/* Deletes a file or an empty directory (fsyncing its parent when
 * durable).  0 or -errno: -ENOTEMPTY, -ENOENT, -ELOOP (a symlink, even as
 * the last component: never removed), -EPERM (rel "" = the root),
 * -EINVAL (storage_check_path). */
int storage_delete(int root_fd, const char *rel, bool durable);

/* An upload in progress: an unnamed file in its target directory.  Active
 * while name != NULL, so a zeroed struct is an inactive upload. */
struct storage_upload {
	int root_fd;        /* share root (not owned): for STORAGE_STATE_DIR */
	int dir_fd;         /* target directory */
	int fd;             /* O_TMPFILE, -1 when none */
	char *name;         /* last path component */
	uint64_t size;      /* announced size */
	uint64_t written;
};

/* Starts an upload of size bytes to rel: validates the path, creates
 * missing parent directories (mode 0755) beneath the root, opens an
 * O_TMPFILE there with mode (permission bits, umask applies; setuid, setgid
 * and sticky are dropped) and reserves size bytes with fallocate.  When
 * !overwrite and the name exists, fails early with -EEXIST.  Errors:
 * -EINVAL, -EEXIST, -EISDIR (a directory has that name), -ELOOP (a symlink
 * anywhere in rel, also as the name), -EPERM (a FIFO/socket/device has that
 * name), -ENOTDIR, -ENOSPC/-EDQUOT, -EFBIG (size beyond the file system's
 * or off_t's limit), -errno.  On
 * success *up must be finished with commit or abort. */
int storage_upload_begin(int root_fd, const char *rel, uint64_t size,
			 unsigned mode, bool overwrite,
			 struct storage_upload *up);

/* Appends body bytes (pwrite at up->written).  0 or -errno (-EFBIG past
 * the announced size, -EBADF on an inactive upload). */
int storage_upload_write(struct storage_upload *up, const void *buf, size_t len);

/* Names the file: sets mtime (if non-NULL), stores the digest xattr (best
 * effort), fsyncs the data when durable, links it under its name
 * (atomically replacing an existing file when overwrite, failing with
 * -EEXIST otherwise), fsyncs the directory when durable, and releases *up.
 * A replacement goes through STORAGE_STATE_DIR (created on demand; a
 * symlink or non-directory there fails the commit with -ELOOP/-ENOTDIR);
 * it falls back to a STORAGE_TMP_PREFIX name beside the target only when
 * that directory is on another file system (-EXDEV) or may not be created
 * (-EACCES, -EPERM, -EROFS).
 * Fails with -EIO if fewer than size bytes were written, -EEXIST (!overwrite
 * and the name appeared), -EISDIR (a directory took the name), -EBADF on an
 * inactive upload.  On failure nothing is visible under the name and *up is
 * released -- except when only the final directory fsync fails: the file is
 * then named and the error still returned. */
int storage_upload_commit(struct storage_upload *up, bool overwrite,
			  bool durable, const struct timespec *mtime,
			  const struct digest_value *digest);

/* Drops the unnamed file; no-op on a released or zeroed upload. */
void storage_upload_abort(struct storage_upload *up);

/* Digest of an open regular file: from its xattr cache when that still
 * matches the file's size, mtime and inode, else computed and stored back
 * (best effort: read-only or xattr-less file systems just recompute).
 * Returns 0 or -errno. */
int storage_digest(int fd, const struct stat *st, enum digest_alg alg,
		   struct digest_value *out);

/* The cached digest of an open regular file when its xattr still matches
 * st's size, mtime and inode: 0, or -ENODATA (never computes). */
int storage_digest_cached(int fd, const struct stat *st, enum digest_alg alg,
			  struct digest_value *out);
/* Caches dv for the file as st describes it (best effort). */
void storage_digest_store(int fd, const struct stat *st, const struct digest_value *dv);

/* Removes the temporary names STORAGE_STATE_DIR holds for pid's
 * interrupted replacing uploads, or everybody's when pid == 0: only
 * regular files named "<decimal digits>.<16 lower-case hex digits>";
 * anything else there (other names, symlinks, directories) is left
 * alone, and symlinks are never followed, not even as the state directory
 * itself (-ELOOP).  Call it only when no process of pid (pid == 0: no
 * worker at all) can still be committing into the share.  Returns the
 * number of names removed (0 when the directory does not exist) or the
 * first -errno; on an unlink error the other names are still tried. */
int storage_sweep(int root_fd, pid_t pid);
