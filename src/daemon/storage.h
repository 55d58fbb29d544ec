/* storage: everything beneath a share root.  Every path is resolved by the
 * kernel (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); uploads are written
 * to a temporary file in the share's state directory and get their name
 * (and their missing parent directories) only when complete. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "digest.h"

/* Extended attribute caching a file's digest (see storage_digest_cached()):
 * STORAGE_XATTR_PREFIX + digest_alg_name(alg), e.g. "user.tcpfiled.sha256",
 * holding the text "<digest text> <size> <mtime_sec>.<mtime_nsec> <ino>"
 * (decimal; mtime_nsec always 9 digits), e.g.
 * "sha256:ba78...15ad 3 1700000000.000000042 1234". */
#define STORAGE_XATTR_PREFIX "user.tcpfiled."

/* Names beginning with this, and STORAGE_STATE_DIR itself, compared
 * without regard to ASCII case (case-folding file systems), are tcpfiled's
 * own: storage_check_path() refuses them as path components and
 * storage_list() hides them. */
#define STORAGE_RESERVED_PREFIX ".tcpfiled."
/* Per-share state directory at the root (mode 0700, owned by the
 * daemon's effective uid, created on first need).  Every upload is written
 * here as "<pid>.<16 hex>" (pid: the worker's) and renamed onto its final
 * name at commit, so a worker killed before leaves a name that
 * storage_sweep() can find and remove.  It is also the server-side partial
 * area the protocol reserves for resumable uploads. */
#define STORAGE_STATE_DIR ".tcpfiled"
/* Fallback temporary name of an overwriting upload, beside the target,
 * when the state directory is on another file system or cannot be made
 * (the upload is then an O_TMPFILE): the prefix followed by 16 random hex
 * digits. */
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

/* Opens an existing regular file for reading.  The type is checked on an
 * O_PATH descriptor first, so a FIFO, socket or device node is never
 * opened.  Returns the fd (O_RDONLY|O_CLOEXEC) and fills *st, or -errno:
 * -EINVAL (storage_check_path), -ENOENT, -ENOTDIR, -EISDIR (a directory),
 * -EPERM (a FIFO, socket or device), -ELOOP (a symlink anywhere in rel). */
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
 * failure), skipping ".", ".." and the reserved names, calling fn once per
 * entry as the directory yields it (unsorted: the file system's order), in
 * memory that does not grow with the directory; entries are lstat'ed,
 * entries that vanish meanwhile are skipped.  Returns 0, -errno, or fn's
 * first non-zero return value. */
int storage_list(int dir_fd,
		 int (*fn)(const struct storage_entry *e, void *arg), void *arg);

/* Deletes a regular file or an empty directory (fsyncing its parent when
 * durable).  The type is checked before anything is removed.  0 or
 * -errno: -ENOTEMPTY, -ENOENT, -ELOOP (a symlink, even as the last
 * component: never removed), -EPERM (a FIFO, socket or device node: never
 * removed; or rel "" = the root), -EINVAL (storage_check_path). */
int storage_delete(int root_fd, const char *rel, bool durable);

/* The size of an upload whose length is known only at its end. */
#define STORAGE_SIZE_UNKNOWN UINT64_MAX
/* Uploads of at least this size are reserved with fallocate, in steps of
 * STORAGE_RESERVE_STEP: a stalled upload holds what it sent plus at most
 * one step.  Smaller ones are not reserved at all (it costs more than it
 * saves); free space is still checked before their first byte. */
#define STORAGE_PREALLOC_MIN (UINT64_C(1) << 20)
#define STORAGE_RESERVE_STEP (UINT64_C(64) << 20)

/* A share's policy for uploads. */
struct storage_limits {
	uint64_t max_file_size;     /* 0 = unlimited */
	/* Space to keep free for everybody else: the larger of min_free_bytes
	 * and min_free_percent of the file system's size.  The same fraction
	 * of the file system's inodes is kept free too (file systems without
	 * an inode count, f_files == 0, are not checked for inodes). */
	uint64_t min_free_bytes;
	unsigned min_free_percent;  /* 0..100 */
	unsigned umask;             /* permission bits cleared from every mode */
	bool read_only;             /* storage_upload_begin refuses: -EROFS */
};

/* A directory descriptor shared by a storage_cache and the uploads that
 * borrowed it (storage.c's own). */
struct storage_fdref;

/* How long a storage_cache trusts what it opened and read (see below). */
#define STORAGE_CACHE_MS 100

/* What consecutive uploads of one connection can share instead of asking
 * the file system again for every file: the share's state directory
 * (opened and checked for owner, mode and file system once), the last
 * target directory, and the file system's free space (read once, then
 * reduced by what each upload begun since may take).  Everything in it is
 * dropped after STORAGE_CACHE_MS, when uploads move to another share root
 * or after STORAGE_PREALLOC_MIN bytes were charged against the space read,
 * and by storage_cache_reset().  Zero-initialise it or call
 * storage_cache_init(); storage_cache_reset() releases it. */
/* A file system's space and inodes, as statvfs reports them (sizes in
 * bsize units; the available counts are what unprivileged users get). */
struct storage_space {
	uint64_t bsize, blocks, bavail, files, favail;
};

struct storage_cache {
	int root_fd;                  /* the share root the entries belong to */
	uint64_t opened_ms;           /* when the descriptors were opened */
	struct storage_fdref *state;  /* STORAGE_STATE_DIR, checked; or NULL */
	struct storage_fdref *dir;    /* the last target directory, or NULL */
	char *dir_rel;                /* its path beneath the root ("." = root) */
	bool space_valid;
	dev_t space_dev;              /* the file system space was read from */
	uint64_t space_ms;            /* when */
	uint64_t space_charged;       /* bytes charged since */
	struct storage_space space;   /* as read, less the charges */
};

void storage_cache_init(struct storage_cache *c);
/* Drops every entry (uploads that borrowed a descriptor keep it until they
 * end).  Call it when the configuration changes and at the end of the
 * connection. */
void storage_cache_reset(struct storage_cache *c);

/* An upload in progress: a temporary file that gets its name at commit.
 * Active while name != NULL, so a zeroed struct is an inactive upload.
 * The fields are storage's own. */
struct storage_upload {
	int root_fd;        /* share root (not owned) */
	int dir_fd;         /* target directory, -1 until it exists */
	int tmp_dir_fd;     /* directory holding the temporary name, -1 for an
	                     * unnamed (O_TMPFILE) file */
	struct storage_fdref *dir_ref;      /* non-NULL: dir_fd is borrowed */
	struct storage_fdref *tmp_dir_ref;  /* non-NULL: tmp_dir_fd is borrowed */
	int fd;             /* the file being written, -1 when none */
	char tmp[40];       /* temporary name in tmp_dir_fd */
	char *rel;          /* copy of the path */
	char *name;         /* last component, inside rel; NULL when inactive */
	unsigned mode;      /* final permission bits */
	uint64_t size;      /* announced, or STORAGE_SIZE_UNKNOWN */
	uint64_t written;
	uint64_t reserved;  /* bytes checked against free space (and, for
	                     * large known sizes, fallocated) so far */
	struct storage_limits lim;
	size_t *created;    /* ends (in rel) of the directories commit made */
	size_t n_created;
};

/* Starts an upload to rel.  Checks, in this order and before anything is
 * created: the path, lim->read_only (-EROFS), the size (-EFBIG beyond
 * lim->max_file_size or off_t), what holds the name (-EEXIST when
 * !overwrite, -EISDIR, -ELOOP for a symlink, -EPERM for a FIFO, socket or
 * device), and free space: a known size plus the lim margin must fit in
 * the space and inodes available to unprivileged users, else -ENOSPC (an
 * unknown size must find the margin free).  Then creates the temporary
 * file with mode & 0777 & ~lim->umask (exactly: the process umask does
 * not apply) and, for sizes of at least STORAGE_PREALLOC_MIN, reserves the
 * first STORAGE_RESERVE_STEP bytes.
 *
 * The temporary file is "<pid>.<16 hex>" in STORAGE_STATE_DIR (created
 * mode 0700 on first need; it must be a directory owned by the effective
 * uid with mode 0700, else -EUCLEAN and an error is logged; a symlink
 * there: -ELOOP; a file: -ENOTDIR).  When the target lies on another file
 * system than the state directory (a mount inside the share), or the
 * state directory may not be created (-EACCES, -EPERM, -EROFS), the file
 * is an unnamed O_TMPFILE in the deepest existing directory of the path
 * instead.  Missing parent directories are created only at commit.
 * Nothing is visible under rel, and no directory is created, until then.
 * On success *up must be finished with commit, storage_batch_add or
 * abort; on failure nothing was created (except the state directory). */
int storage_upload_begin(int root_fd, const char *rel, uint64_t size,
			 unsigned mode, bool overwrite,
			 const struct storage_limits *lim,
			 struct storage_upload *up);

/* storage_upload_begin, taking from and filling c (may be NULL) what
 * consecutive uploads share; see struct storage_cache.  A target directory
 * taken from c is the one that was reached beneath the root, without
 * symbolic links, at most STORAGE_CACHE_MS before; if it was removed since,
 * the commit creates the path again.  The free-space check is made against
 * the space read at most STORAGE_CACHE_MS (and STORAGE_PREALLOC_MIN bytes
 * of uploads) before, less what each upload begun since may take. */
int storage_upload_begin_cached(struct storage_cache *c, int root_fd,
				const char *rel, uint64_t size, unsigned mode,
				bool overwrite, const struct storage_limits *lim,
				struct storage_upload *up);

/* Appends body bytes (pwrite at up->written).  Checks free space again
 * before each further STORAGE_RESERVE_STEP of a known size (that step plus
 * the margin must be free; sizes of at least STORAGE_PREALLOC_MIN reserve
 * it), and before each further STORAGE_PREALLOC_MIN of an unknown size
 * (the margin must still be free).  0 or -errno: -EFBIG (past the announced size,
 * or past max_file_size when the size is unknown), -ENOSPC/-EDQUOT, -EBADF
 * on an inactive upload.  After an error the upload stays active: abort
 * it. */
int storage_upload_write(struct storage_upload *up, const void *buf, size_t len);

/* Names the file: sets mtime (if non-NULL), stores the digest xattr when
 * digest is non-NULL (best effort; pass NULL where the cache will not be
 * read), fsyncs the file when durable, creates the missing parent
 * directories (mode 0755 & ~lim.umask), and moves the file to its name
 * (atomically replacing a regular file there when overwrite; failing with
 * -EEXIST otherwise).  When durable, every directory from the target's up
 * to the share root is then fsynced (so the directories this upload
 * created are durable too, and so are those a concurrent upload created).
 * Releases *up in every case.
 * Fails with -EIO if fewer than a known size were written, -EEXIST (!overwrite
 * and the name appeared), -EISDIR (a directory took the name), -EBADF on an
 * inactive upload.  On failure nothing remains: no temporary file and no
 * directory this upload created (those still empty are removed) -- except
 * when only a directory fsync fails: the file is then named and the error
 * returned. */
int storage_upload_commit(struct storage_upload *up, bool overwrite,
			  bool durable, const struct timespec *mtime,
			  const struct digest_value *digest);

/* Drops the temporary file; no-op on a released or zeroed upload.
 * Nothing the upload made remains. */
void storage_upload_abort(struct storage_upload *up);

/* Group commit: many uploads made durable together, for fsync = yes.
 *
 * Calling protocol (one batch per session; answers wait for the flush):
 *   1. storage_batch_init(&b) once.
 *   2. For each upload whose body is complete and checked: instead of
 *      storage_upload_commit, call storage_batch_add(&b, &up, overwrite,
 *      mtime, digest).  It finishes the file's data (mtime, xattr), starts
 *      its write-back, and takes the upload over (*up is released, also on
 *      failure).  It returns the entry's index, or -errno: that upload
 *      failed (answer it in its turn) and nothing of it remains.  -ENOBUFS
 *      when the batch already holds STORAGE_BATCH_MAX uploads: flush first.
 *      Do NOT answer the upload yet.
 *   3. When no further request is ready to be read without blocking (or
 *      the batch is full, or before any other request's answer that must
 *      not be reordered), call storage_batch_commit(&b, durable).  It syncs
 *      the data of every entry, names each in the order they were added
 *      (as storage_upload_commit would), then fsyncs every distinct
 *      directory chain once.  Then, for i in 0..storage_batch_count(&b)-1,
 *      send the answer of entry i with storage_batch_result(&b, i) (0 or
 *      the -errno storage_upload_commit would have returned), and call
 *      storage_batch_reset(&b) before adding again.
 *   4. storage_batch_finish(&b) at the end of the session (drops whatever
 *      was added and not committed: a connection lost before the flush).
 * Invariant: when storage_batch_commit returns with durable, every entry
 * whose result is 0 has its data, its name and the directory entries up to
 * the share root on stable storage; an entry that failed left nothing. */
#define STORAGE_BATCH_MAX 64

struct storage_pending {
	struct storage_upload up;
	bool overwrite;
	int result;
};

struct storage_batch {
	struct storage_pending *v;
	size_t n, cap;
};

void storage_batch_init(struct storage_batch *b);
int storage_batch_add(struct storage_batch *b, struct storage_upload *up,
		      bool overwrite, const struct timespec *mtime,
		      const struct digest_value *digest);
int storage_batch_commit(struct storage_batch *b, bool durable);
size_t storage_batch_count(const struct storage_batch *b);
int storage_batch_result(const struct storage_batch *b, size_t i);
void storage_batch_reset(struct storage_batch *b);
void storage_batch_finish(struct storage_batch *b);

/* The digest cache: an xattr valid while the file keeps the size, mtime
 * and inode it was stored for (see STORAGE_XATTR_PREFIX).
 * storage_digest_cached fills *out and returns 0 when the cache holds a
 * valid alg digest for the file st describes, -ENODATA otherwise; it never
 * computes nor writes. */
int storage_digest_cached(int fd, const struct stat *st, enum digest_alg alg,
			  struct digest_value *out);

/* Stores dv as the file's digest, valid for st -- unless the file no longer
 * matches st (it changed while being read): best effort, file systems and
 * files without user xattrs just go without.  It writes to the file (its
 * ctime changes): never call it for a read_only share.  0 or -errno. */
int storage_digest_store(int fd, const struct stat *st,
			 const struct digest_value *dv);

/* The digest of an open regular file: from the cache when valid (returns
 * 0), else computed by reading the file (returns 1; the caller may then
 * storage_digest_store it).  Never writes.  -errno on failure. */
int storage_digest(int fd, const struct stat *st, enum digest_alg alg,
		   struct digest_value *out);

/* Test-only fault injection: when non-NULL, called with the step's name
 * after each change on disk of the commit path ("data", "data-sync",
 * "mkdir", "link-tmp", "link", "name", "dir-sync", "synced"), so that a
 * test can _exit() there or count the steps.  Never set in the daemon. */
extern void (*storage_fault_hook)(const char *step);

/* Removes the temporary names STORAGE_STATE_DIR holds for pid's
 * interrupted uploads, or everybody's when pid == 0: only
 * regular files named "<decimal digits>.<16 lower-case hex digits>";
 * anything else there (other names, symlinks, directories) is left
 * alone, and symlinks are never followed, not even as the state directory
 * itself (-ELOOP).  Call it only when no process of pid (pid == 0: no
 * worker at all) can still be committing into the share.  Returns the
 * number of names removed (0 when the directory does not exist) or the
 * first -errno; on an unlink error the other names are still tried. */
int storage_sweep(int root_fd, pid_t pid);
