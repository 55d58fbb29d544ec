/* storage: everything beneath a share root, resolved by the kernel. */
#define _GNU_SOURCE
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"
#include "monotonic.h"
#include "netio.h"

#define STORAGE_RESOLVE \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* Digest text, size, mtime and inode: see STORAGE_XATTR_PREFIX. */
#define STORAGE_XATTR_VALUE_MAX (DIGEST_TEXT_MAX + 80)
#define STORAGE_XATTR_NAME_MAX 64

void (*storage_fault_hook)(const char *step);

/* A point where a crash test may stop the commit path. */
static void storage_step(const char *step)
{
	if (storage_fault_hook)
		storage_fault_hook(step);
}

/* A directory path held in its own buffer so it can be NUL-terminated. */
struct storage_split {
	char dir[PATH_MAX + 1];   /* "." when the name sits in the root */
	const char *name;         /* points into the caller's rel */
};

int storage_open_root(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int probe;

	if (fd < 0)
		return -errno;
	/* Fail here, not on every request, where openat2 is missing: kernels
	 * before 5.6, and seccomp filters that answer ENOSYS for it (systemd's
	 * RestrictSUIDSGID=, implied by DynamicUser=). */
	probe = storage_openat2(fd, ".", O_PATH | O_DIRECTORY);
	if (probe < 0) {
		close(fd);
		return probe;
	}
	close(probe);
	return fd;
}

int storage_openat2(int dir_fd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
		.resolve = STORAGE_RESOLVE,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : (int)fd;
}

/* STORAGE_STATE_DIR and the STORAGE_RESERVED_PREFIX names: c[0..len). */
static bool storage_reserved(const char *c, size_t len)
{
	static const char prefix[] = STORAGE_RESERVED_PREFIX;
	static const char state[] = STORAGE_STATE_DIR;

	/* Case-folding file systems (vfat, ext4 casefold) would let
	 * ".TCPFILED" reach the state directory. */
	if (len == sizeof(state) - 1 && strncasecmp(c, state, len) == 0)
		return true;
	return len >= sizeof(prefix) - 1 &&
	       strncasecmp(c, prefix, sizeof(prefix) - 1) == 0;
}

static bool storage_component_ok(const char *c, size_t len, const char **why)
{
	if (len == 0)
		*why = "empty path component";
	else if (len > NAME_MAX)
		*why = "path component too long";
	else if ((len == 1 && c[0] == '.') ||
		 (len == 2 && c[0] == '.' && c[1] == '.'))
		*why = "'.' or '..' in path";
	else if (storage_reserved(c, len))
		*why = "reserved name in path";
	else
		return true;
	return false;
}

int storage_check_path(const char *rel, size_t len, bool allow_empty,
		       const char **why)
{
	size_t start = 0;

	*why = NULL;
	if (len == 0) {
		if (allow_empty)
			return 0;
		*why = "empty path";
		return -EINVAL;
	}
	/* The kernel takes PATH_MAX bytes including the NUL. */
	if (len >= PATH_MAX) {
		*why = "path too long";
		return -EINVAL;
	}
	for (size_t i = 0; i <= len; i++) {
		if (i < len) {
			unsigned char c = (unsigned char)rel[i];

			if (c < 0x20 || c == 0x7f) {
				*why = "control character in path";
				return -EINVAL;
			}
			if (c != '/')
				continue;
		}
		if (!storage_component_ok(rel + start, i - start, why))
			return -EINVAL;
		start = i + 1;
	}
	return 0;
}

static int storage_check(const char *rel, bool allow_empty)
{
	const char *why;

	return storage_check_path(rel, strlen(rel), allow_empty, &why);
}

/* rel has passed storage_check_path, so it fits and has a non-empty name. */
static void storage_split(const char *rel, struct storage_split *sp)
{
	const char *slash = strrchr(rel, '/');

	if (!slash) {
		strcpy(sp->dir, ".");
		sp->name = rel;
		return;
	}
	memcpy(sp->dir, rel, (size_t)(slash - rel));
	sp->dir[slash - rel] = '\0';
	sp->name = slash + 1;
}

/* No O_NOFOLLOW: with O_DIRECTORY it turns a final symlink into ENOTDIR,
 * while RESOLVE_NO_SYMLINKS alone refuses it with ELOOP like any other. */
static int storage_open_subdir(int dir_fd, const char *rel)
{
	return storage_openat2(dir_fd, rel, O_RDONLY | O_DIRECTORY);
}

char storage_type(mode_t mode)
{
	if (S_ISREG(mode))
		return 'f';
	if (S_ISDIR(mode))
		return 'd';
	if (S_ISLNK(mode))
		return 'l';
	return 'o';
}

static void storage_fd_path(int fd, char *buf, size_t cap)
{
	snprintf(buf, cap, "/proc/self/fd/%d", fd);
}

/* Refuses what is not a regular file, by type alone. */
static int storage_regular_only(mode_t mode)
{
	if (S_ISREG(mode))
		return 0;
	if (S_ISDIR(mode))
		return -EISDIR;
	return S_ISLNK(mode) ? -ELOOP : -EPERM;
}

int storage_open_file(int root_fd, const char *rel, struct stat *st)
{
	char proc[64];
	int r, pfd, fd;

	r = storage_check(rel, false);
	if (r < 0)
		return r;
	/* Look before opening: opening a device node or a FIFO can have
	 * effects of its own (a tape rewinds, a FIFO writer wakes up). */
	pfd = storage_openat2(root_fd, rel, O_PATH | O_NOFOLLOW);
	if (pfd < 0)
		return pfd;
	if (fstat(pfd, st) < 0) {
		r = -errno;
		goto err_close_pfd;
	}
	r = storage_regular_only(st->st_mode);
	if (r < 0)
		goto err_close_pfd;
	/* Reopening the O_PATH descriptor opens that very inode: a name
	 * swapped meanwhile cannot slip a FIFO in. */
	storage_fd_path(pfd, proc, sizeof(proc));
	fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		goto err_close_pfd;
	}
	close(pfd);
	return fd;

err_close_pfd:
	close(pfd);
	return r;
}

int storage_open_dir(int root_fd, const char *rel)
{
	int r = storage_check(rel, true);

	if (r < 0)
		return r;
	return storage_open_subdir(root_fd, rel[0] ? rel : ".");
}

int storage_stat(int root_fd, const char *rel, struct stat *st)
{
	int r, fd;

	r = storage_check(rel, true);
	if (r < 0)
		return r;
	if (!rel[0])
		return fstat(root_fd, st) < 0 ? -errno : 0;
	fd = storage_openat2(root_fd, rel, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return fd;
	r = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static bool storage_listed(const char *name)
{
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return !storage_reserved(name, strlen(name));
}

/* One entry as the directory yields it: nothing is kept between entries,
 * so a directory of any size lists in the same memory. */
static int storage_emit(DIR *d, const char *name,
			int (*fn)(const struct storage_entry *e, void *arg),
			void *arg)
{
	struct storage_entry e;
	struct stat st;

	if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	e.type = storage_type(st.st_mode);
	e.size = (uint64_t)st.st_size;
	e.mtime_sec = (int64_t)st.st_mtim.tv_sec;
	e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	e.mode = (uint32_t)(st.st_mode & 07777);
	e.name = name;
	return fn(&e, arg);
}

int storage_list(int dir_fd,
		 int (*fn)(const struct storage_entry *e, void *arg), void *arg)
{
	DIR *d;
	int r;

	if (dir_fd < 0)
		return -EBADF;
	d = fdopendir(dir_fd);
	if (!d) {
		r = -errno;
		close(dir_fd);
		return r;
	}
	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!storage_listed(de->d_name))
			continue;
		r = storage_emit(d, de->d_name, fn, arg);
		if (r != 0)
			break;
	}
	closedir(d);
	return r;
}

static int storage_unlink(int dir_fd, const char *name)
{
	struct stat st;
	int flags;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* A FIFO, socket or device node is not ours to remove. */
	if (!S_ISDIR(st.st_mode)) {
		int r = storage_regular_only(st.st_mode);

		if (r < 0)
			return r;
	}
	flags = S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0;
	if (unlinkat(dir_fd, name, flags) < 0) {
		/* Some file systems say EEXIST for a non-empty directory. */
		if (errno == EEXIST && flags)
			return -ENOTEMPTY;
		return -errno;
	}
	return 0;
}

int storage_delete(int root_fd, const char *rel, bool durable)
{
	struct storage_split sp;
	int r, dir_fd;

	if (!rel[0])
		return -EPERM;
	r = storage_check(rel, false);
	if (r < 0)
		return r;
	storage_split(rel, &sp);
	dir_fd = storage_open_subdir(root_fd, sp.dir);
	if (dir_fd < 0)
		return dir_fd;
	r = storage_unlink(dir_fd, sp.name);
	if (r == 0 && durable && fsync(dir_fd) < 0)
		r = -errno;
	close(dir_fd);
	return r;
}

static int storage_xattr_name(enum digest_alg alg, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s%s", STORAGE_XATTR_PREFIX, digest_alg_name(alg));

	return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

/* The part of the xattr value after the digest text. */
static int storage_xattr_tail(const struct stat *st, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%" PRIu64 " %" PRId64 ".%09ld %" PRIu64,
			 (uint64_t)st->st_size, (int64_t)st->st_mtim.tv_sec,
			 (long)st->st_mtim.tv_nsec, (uint64_t)st->st_ino);

	return n < 0 || (size_t)n >= cap ? -EINVAL : n;
}

static bool storage_xattr_ignorable(int err)
{
	return err == ENOTSUP || err == EROFS || err == EACCES || err == EPERM;
}

/* Stores d as valid for the file as st describes it.  File systems and
 * files that refuse user xattrs just go without a cache: 0. */
static int storage_xattr_store(int fd, const struct stat *st,
			       const struct digest_value *d)
{
	char name[STORAGE_XATTR_NAME_MAX], value[STORAGE_XATTR_VALUE_MAX];
	int r, n;

	r = storage_xattr_name(d->alg, name, sizeof(name));
	if (r < 0)
		return r;
	n = digest_format(d, value, sizeof(value));
	if (n < 0)
		return n;
	value[n++] = ' ';
	r = storage_xattr_tail(st, value + n, sizeof(value) - (size_t)n);
	if (r < 0)
		return r;
	n += r;
	if (fsetxattr(fd, name, value, (size_t)n, 0) < 0 &&
	    !storage_xattr_ignorable(errno))
		return -errno;
	return 0;
}

int storage_digest_cached(int fd, const struct stat *st, enum digest_alg alg,
			  struct digest_value *out)
{
	char name[STORAGE_XATTR_NAME_MAX], value[STORAGE_XATTR_VALUE_MAX];
	char tail[STORAGE_XATTR_VALUE_MAX];
	const char *sp;
	ssize_t n;

	if (storage_xattr_name(alg, name, sizeof(name)) < 0 ||
	    storage_xattr_tail(st, tail, sizeof(tail)) < 0)
		return -ENODATA;
	n = fgetxattr(fd, name, value, sizeof(value) - 1);
	if (n <= 0)
		return -ENODATA;
	value[n] = '\0';
	sp = memchr(value, ' ', (size_t)n);
	if (!sp || strcmp(sp + 1, tail) != 0)
		return -ENODATA;
	if (digest_parse(value, (size_t)(sp - value), out) < 0 || out->alg != alg)
		return -ENODATA;
	return 0;
}

static bool storage_same_version(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int storage_digest_store(int fd, const struct stat *st,
			 const struct digest_value *dv)
{
	struct stat now;

	/* A file changed while we read it must not get a cache entry that
	 * vouches for bytes it never held. */
	if (fstat(fd, &now) < 0)
		return -errno;
	if (!storage_same_version(st, &now))
		return 0;
	return storage_xattr_store(fd, st, dv);
}

int storage_digest(int fd, const struct stat *st, enum digest_alg alg,
		   struct digest_value *out)
{
	int r;

	if (storage_digest_cached(fd, st, alg, out) == 0)
		return 0;
	r = digest_fd(alg, fd, out);
	return r < 0 ? r : 1;
}

/* --- uploads ------------------------------------------------------------ */

static pid_t storage_cached_pid;

static void storage_forget_pid(void)
{
	storage_cached_pid = 0;
}

/* getpid() is a system call, and every upload names its temporary after
 * the process: ask once per process (a fork forgets the answer). */
static pid_t storage_pid(void)
{
	static bool registered;

	if (!registered)
		registered = pthread_atfork(NULL, NULL, storage_forget_pid) == 0;
	if (!registered || storage_cached_pid == 0)
		storage_cached_pid = getpid();
	return storage_cached_pid;
}

/* prefix followed by 16 lower-case hex digits: random once per process
 * (pid: the caller's getpid()), then counted, so that a name costs no
 * system call of its own. */
static int storage_random_name(const char *prefix, pid_t pid, char *buf, size_t cap)
{
	static uint64_t next;
	static pid_t owner;
	uint64_t v;
	int len;

	if (owner != pid) {
		uint8_t rnd[8];
		ssize_t n;

		do
			n = getrandom(rnd, sizeof(rnd), 0);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if ((size_t)n != sizeof(rnd))
			return -EIO;
		memcpy(&next, rnd, sizeof(next));
		owner = pid;
	}
	v = next++;
	len = snprintf(buf, cap, "%s%016" PRIx64, prefix, v);
	return len < 0 || (size_t)len >= cap ? -EINVAL : 0;
}

/* The state directory must be ours alone: a directory owned by our
 * effective uid with mode 0700. */
static int storage_state_check(int fd, struct stat *st)
{
	static uid_t euid = (uid_t)-1;

	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISDIR(st->st_mode))
		return -ENOTDIR;
	/* A process keeps its effective uid: ask once. */
	if (euid == (uid_t)-1)
		euid = geteuid();
	if (st->st_uid != euid || (st->st_mode & 07777) != 0700) {
		log_err("share state directory %s has owner %u and mode %04o, "
			"expected owner %u and mode 0700: refusing uploads to "
			"this share until it is fixed", STORAGE_STATE_DIR,
			(unsigned)st->st_uid, (unsigned)(st->st_mode & 07777),
			(unsigned)euid);
		return -EUCLEAN;
	}
	return 0;
}

/* Opens STORAGE_STATE_DIR, creating it on first need, and checks it (its
 * stat in *st).  Through openat2 so that a symlink planted under that name
 * is refused, never followed. */
static int storage_state_open(int root_fd, bool create, struct stat *st)
{
	int fd = storage_open_subdir(root_fd, STORAGE_STATE_DIR);
	bool made = false;
	int r;

	if (fd == -ENOENT && create) {
		if (mkdirat(root_fd, STORAGE_STATE_DIR, 0700) < 0) {
			if (errno != EEXIST)
				return -errno;
		} else {
			made = true;
		}
		fd = storage_open_subdir(root_fd, STORAGE_STATE_DIR);
	}
	if (fd < 0)
		return fd;
	/* A restrictive process umask must not make it unusable. */
	if (made && fchmod(fd, 0700) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	r = storage_state_check(fd, st);
	if (r < 0)
		goto err_close_fd;
	return fd;

err_close_fd:
	close(fd);
	return r;
}

/* A root where we may not create the state directory still takes uploads,
 * through the O_TMPFILE path. */
static bool storage_state_unusable(int r)
{
	return r == -EACCES || r == -EPERM || r == -EROFS;
}

/* Refuses what the name must not be before any body byte is read; the
 * final rename decides again, atomically.  1 when a file is there to be
 * replaced, 0 when the name is free. */
static int storage_check_target(int dir_fd, const char *name, bool overwrite)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	return overwrite ? 1 : -EEXIST;
}

/* Opens the deepest existing directory of dir (which is modified in
 * place and restored); *whole tells whether that is dir itself. */
static int storage_open_existing(int root_fd, char *dir, bool *whole)
{
	char *end = dir + strlen(dir);
	int fd;

	*whole = true;
	for (;;) {
		char *slash;

		fd = storage_open_subdir(root_fd, dir);
		if (fd != -ENOENT || strcmp(dir, ".") == 0)
			break;
		*whole = false;
		slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
		} else {
			fd = storage_open_subdir(root_fd, ".");
			break;
		}
	}
	/* Undo the cuts. */
	for (char *p = dir; p < end; p++)
		if (*p == '\0')
			*p = '/';
	return fd;
}

/* --- what consecutive uploads share ------------------------------------ */

/* A directory descriptor held by a storage_cache and by the uploads that
 * borrowed it: closed when the last of them lets go, so that dropping the
 * cache never pulls a descriptor from under an upload in the batch. */
struct storage_fdref {
	int fd;
	unsigned refs;
	dev_t dev;      /* the file system it lies on */
	bool gone;      /* found removed: not to be handed out again */
};

/* Takes fd over, with one reference for the caller; NULL (fd still the
 * caller's) without memory. */
static struct storage_fdref *storage_fdref_new(int fd, dev_t dev)
{
	struct storage_fdref *ref = malloc(sizeof(*ref));

	if (ref)
		*ref = (struct storage_fdref){ .fd = fd, .refs = 1, .dev = dev };
	return ref;
}

static struct storage_fdref *storage_fdref_get(struct storage_fdref *ref)
{
	ref->refs++;
	return ref;
}

static void storage_fdref_put(struct storage_fdref *ref)
{
	if (ref && --ref->refs == 0) {
		close(ref->fd);
		free(ref);
	}
}

/* Lets go of *fd: returns the reference it was borrowed through, or
 * closes it when owned. */
static void storage_release_fd(int *fd, struct storage_fdref **ref)
{
	if (*ref)
		storage_fdref_put(*ref);
	else if (*fd >= 0)
		close(*fd);
	*ref = NULL;
	*fd = -1;
}

void storage_cache_init(struct storage_cache *c)
{
	*c = (struct storage_cache){ .root_fd = -1 };
}

void storage_cache_reset(struct storage_cache *c)
{
	storage_fdref_put(c->state);
	storage_fdref_put(c->dir);
	free(c->dir_rel);
	storage_cache_init(c);
}

/* Makes c usable for an upload beneath root_fd: emptied first when it
 * belongs to another root or its descriptors have expired.
 *
 * Why a cached directory descriptor is safe to keep for STORAGE_CACHE_MS.
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) proved, when it opened the
 * directory, that the path led there beneath the root without a symbolic
 * link.  The descriptor keeps naming that same directory inode: names
 * made through it are single components, so no symbolic link can ever be
 * followed through it, whatever is renamed or replaced by a link later.
 * What it no longer proves is that the directory still sits at that path:
 * renamed, its new files land where it now is; removed, naming fails with
 * ENOENT and storage_name() walks the path afresh.  An uncached upload
 * has the same window between its begin and its commit, as long as the
 * body takes; the cache extends it by at most STORAGE_CACHE_MS.  The state
 * directory's owner and mode, checked at open, are checked again when the
 * cache expires. */
static void storage_cache_start(struct storage_cache *c, int root_fd)
{
	uint64_t now = monotonic_ms();

	if (c->root_fd == root_fd && now - c->opened_ms < STORAGE_CACHE_MS)
		return;
	storage_cache_reset(c);
	c->root_fd = root_fd;
	c->opened_ms = now;
}

/* The deepest existing directory of sp->dir (storage_open_existing), from
 * c when it holds sp->dir.  *ref is set when the fd is borrowed (the
 * caller then holds a reference) and NULL when the caller owns it. */
static int storage_open_base(struct storage_upload *up, struct storage_cache *c,
			     struct storage_split *sp, bool *whole,
			     struct storage_fdref **ref)
{
	struct storage_fdref *fresh;
	struct stat st;
	char *rel;
	int fd;

	*ref = NULL;
	if (c && c->dir && !c->dir->gone && strcmp(c->dir_rel, sp->dir) == 0) {
		*whole = true;
		*ref = storage_fdref_get(c->dir);
		return c->dir->fd;
	}
	fd = storage_open_existing(up->root_fd, sp->dir, whole);
	if (fd < 0 || !c || !*whole)
		return fd;
	/* Kept for the uploads into the same directory that follow. */
	if (fstat(fd, &st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	rel = strdup(sp->dir);
	fresh = rel ? storage_fdref_new(fd, st.st_dev) : NULL;
	if (!fresh) {
		free(rel);
		return fd;   /* not cached, the caller's */
	}
	storage_fdref_put(c->dir);
	free(c->dir_rel);
	c->dir = fresh;
	c->dir_rel = rel;
	*ref = storage_fdref_get(fresh);
	return fd;
}

/* storage_state_open(create), from c when it holds it; *ref as for
 * storage_open_base, *dev the state directory's file system. */
static int storage_state_get(int root_fd, struct storage_cache *c, dev_t *dev,
			     struct storage_fdref **ref)
{
	struct stat st;
	int fd;

	*ref = NULL;
	if (c && c->state) {
		*dev = c->state->dev;
		*ref = storage_fdref_get(c->state);
		return c->state->fd;
	}
	fd = storage_state_open(root_fd, true, &st);
	if (fd < 0)
		return fd;
	*dev = st.st_dev;
	if (c && (c->state = storage_fdref_new(fd, st.st_dev)) != NULL)
		*ref = storage_fdref_get(c->state);
	return fd;
}

/* ceil(total * num / den) without overflow for file-system sized values. */
static uint64_t storage_fraction(uint64_t total, uint64_t num, uint64_t den)
{
	__extension__ typedef unsigned __int128 u128;
	u128 v = (u128)total * num;

	if (den == 0)
		return 0;
	v = (v + den - 1) / den;
	return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

static void storage_space_from(const struct statvfs *vfs, struct storage_space *sp)
{
	sp->bsize = vfs->f_frsize ? vfs->f_frsize : vfs->f_bsize;
	sp->blocks = vfs->f_blocks;
	sp->bavail = vfs->f_bavail;
	sp->files = vfs->f_files;
	sp->favail = vfs->f_favail;
}

/* Checks that need more bytes (and one inode, when inode) fit beside the
 * share's margin in the space sp describes.  0 or -ENOSPC. */
static int storage_space_fits(const struct storage_space *sp,
			      const struct storage_limits *lim, uint64_t need, bool inode)
{
	uint64_t fs_bytes, avail, margin, inode_margin;

	fs_bytes = sp->blocks * sp->bsize;
	if (fs_bytes == 0)
		return 0;   /* a file system that does not count its space */
	avail = sp->bavail * sp->bsize;
	margin = storage_fraction(fs_bytes, lim->min_free_percent, 100);
	if (lim->min_free_bytes > margin)
		margin = lim->min_free_bytes;
	if (avail < margin || avail - margin < need)
		return -ENOSPC;
	if (!inode || sp->files == 0)
		return 0;
	/* The same fraction of the inodes as the margin is of the bytes. */
	inode_margin = storage_fraction(sp->files, margin > fs_bytes ? fs_bytes : margin,
					fs_bytes);
	if (sp->favail <= inode_margin)
		return -ENOSPC;
	return 0;
}

/* storage_space_fits on the file system of fd as it is now. */
static int storage_space_check(int fd, const struct storage_limits *lim,
			       uint64_t need, bool inode)
{
	struct storage_space sp;
	struct statvfs vfs;

	if (fstatvfs(fd, &vfs) < 0)
		return -errno;
	storage_space_from(&vfs, &sp);
	return storage_space_fits(&sp, lim, need, inode);
}

/* storage_space_check for an upload of need bytes (and one inode) into
 * fd, on file system dev, against the space c read at most
 * STORAGE_CACHE_MS and STORAGE_PREALLOC_MIN charged bytes ago, less those
 * charges; then charges this upload, in whole blocks, so that the next
 * check sees it taken.  A refusal is always decided on a fresh reading:
 * space others freed meanwhile counts. */
static int storage_space_check_cached(struct storage_cache *c, int fd, dev_t dev,
				      const struct storage_limits *lim, uint64_t need)
{
	uint64_t now = monotonic_ms(), blocks;
	bool fresh = false;
	int r;

	for (;;) {
		if (!c->space_valid || c->space_dev != dev ||
		    now - c->space_ms >= STORAGE_CACHE_MS ||
		    c->space_charged >= STORAGE_PREALLOC_MIN) {
			struct statvfs vfs;

			if (fstatvfs(fd, &vfs) < 0)
				return -errno;
			storage_space_from(&vfs, &c->space);
			c->space_valid = true;
			c->space_dev = dev;
			c->space_ms = now;
			c->space_charged = 0;
			fresh = true;
		}
		r = storage_space_fits(&c->space, lim, need, true);
		if (r == 0 || fresh)
			break;
		c->space_valid = false;
	}
	if (r < 0)
		return r;
	blocks = c->space.bsize ? need / c->space.bsize + (need % c->space.bsize != 0) : 0;
	c->space.bavail -= blocks < c->space.bavail ? blocks : c->space.bavail;
	if (c->space.favail > 0)
		c->space.favail--;
	c->space_charged += need;
	return 0;
}

static int storage_fallocate(int fd, uint64_t off, uint64_t len)
{
	int r;

	do
		r = fallocate(fd, 0, (off_t)off, (off_t)len);
	while (r < 0 && errno == EINTR);
	/* Without fallocate a full disk shows up in the body writes. */
	if (r < 0 && errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

/* Covers the bytes up to at least end: checks free space for the next
 * step and, for large known sizes, reserves it. */
static int storage_reserve_to(struct storage_upload *up, uint64_t end)
{
	while (up->reserved < end) {
		bool unknown = up->size == STORAGE_SIZE_UNKNOWN;
		/* Checking costs one statfs: a stream without a reservation
		 * is checked every MiB. */
		uint64_t step = unknown ? STORAGE_PREALLOC_MIN : STORAGE_RESERVE_STEP;
		bool prealloc = !unknown && up->size >= STORAGE_PREALLOC_MIN;
		int r;

		if (up->size != STORAGE_SIZE_UNKNOWN && step > up->size - up->reserved)
			step = up->size - up->reserved;
		/* A stream of unknown length has nothing reserved: it runs
		 * while the margin stays free. */
		r = storage_space_check(up->fd, &up->lim,
					up->size == STORAGE_SIZE_UNKNOWN ? 0 : step, false);
		if (r < 0)
			return r;
		if (prealloc) {
			r = storage_fallocate(up->fd, up->reserved, step);
			if (r < 0)
				return r;
		}
		up->reserved += step;
	}
	return 0;
}

/* The process umask would clear bits the share's umask keeps: read it once
 * (a worker is single-threaded, so the two umask() calls cannot race). */
static mode_t storage_process_umask(void)
{
	static int cached = -1;

	if (cached < 0) {
		mode_t m = umask(022);

		umask(m);
		cached = (int)m;
	}
	return (mode_t)cached;
}

/* Creates the temporary file: named in the state directory when the target
 * lies on its file system, else unnamed in the target's deepest existing
 * directory (base_fd). */
static int storage_create_tmp(struct storage_upload *up, struct storage_cache *c,
			      int base_fd, const struct storage_fdref *base_ref,
			      bool replacing)
{
	char prefix[24];
	struct stat base_st;
	dev_t state_dev = 0, base_dev;
	pid_t pid = storage_pid();
	int r, tries = 0;

	r = storage_state_get(up->root_fd, c, &state_dev, &up->tmp_dir_ref);
	if (r < 0 && !storage_state_unusable(r))
		return r;
	up->tmp_dir_fd = r;
	if (up->tmp_dir_fd >= 0) {
		if (base_ref) {
			base_dev = base_ref->dev;
		} else {
			if (fstat(base_fd, &base_st) < 0)
				return -errno;
			base_dev = base_st.st_dev;
		}
		if (base_dev != state_dev)
			storage_release_fd(&up->tmp_dir_fd, &up->tmp_dir_ref);
	}
	if (up->tmp_dir_fd < 0) {
		up->fd = openat(base_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC,
				(mode_t)up->mode);
		return up->fd < 0 ? -errno : 0;
	}
	/* Measured on ext4: a new name costs least as O_TMPFILE + linkat,
	 * a replacement as a named file + one rename (linkat cannot
	 * replace, so an unnamed file needs a link and a rename). */
	if (!replacing) {
		up->fd = openat(up->tmp_dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC,
				(mode_t)up->mode);
		if (up->fd >= 0)
			return 0;
		/* Only a file system without O_TMPFILE gets a named file. */
		if (errno != EOPNOTSUPP && errno != EISDIR)
			return -errno;
	}
	snprintf(prefix, sizeof(prefix), "%d.", (int)pid);
	do {
		r = storage_random_name(prefix, pid, up->tmp, sizeof(up->tmp));
		if (r < 0)
			return r;
		up->fd = openat(up->tmp_dir_fd, up->tmp,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				(mode_t)up->mode);
	} while (up->fd < 0 && errno == EEXIST && ++tries < 4);
	if (up->fd < 0) {
		up->tmp[0] = '\0';
		return -errno;
	}
	return 0;
}

/* The checks of storage_upload_begin that need the directory of the name
 * (or, when it does not exist yet, its deepest existing ancestor), which
 * is left in *base_fd (borrowed through *base_ref when non-NULL). */
static int storage_begin_target(struct storage_upload *up, struct storage_cache *c,
				struct storage_split *sp, bool overwrite, int *base_fd,
				struct storage_fdref **base_ref, bool *whole,
				bool *replacing)
{
	uint64_t need = up->size == STORAGE_SIZE_UNKNOWN ? 0 : up->size;
	int r;

	*replacing = false;
	*base_fd = storage_open_base(up, c, sp, whole, base_ref);
	if (*base_fd < 0)
		return *base_fd;
	if (*whole) {
		r = storage_check_target(*base_fd, sp->name, overwrite);
		if (r < 0)
			return r;
		*replacing = r == 1;
	}
	/* Sizes checked whole here may use the space c read; the others are
	 * checked afresh at every reservation step anyway. */
	if (*base_ref && up->size < STORAGE_PREALLOC_MIN)
		return storage_space_check_cached(c, *base_fd, (*base_ref)->dev, &up->lim,
						  need);
	/* A large or unknown size takes space the reading c holds would not
	 * show: the next small upload reads afresh. */
	if (c)
		c->space_valid = false;
	return storage_space_check(*base_fd, &up->lim, need, true);
}

int storage_upload_begin(int root_fd, const char *rel, uint64_t size,
			 unsigned mode, bool overwrite,
			 const struct storage_limits *lim,
			 struct storage_upload *up)
{
	return storage_upload_begin_cached(NULL, root_fd, rel, size, mode, overwrite,
					   lim, up);
}

int storage_upload_begin_cached(struct storage_cache *c, int root_fd,
				const char *rel, uint64_t size, unsigned mode,
				bool overwrite, const struct storage_limits *lim,
				struct storage_upload *up)
{
	struct storage_fdref *base_ref = NULL;
	struct storage_split sp;
	int r, base_fd = -1;
	bool whole, replacing;

	*up = (struct storage_upload){ .root_fd = root_fd, .dir_fd = -1,
				       .tmp_dir_fd = -1, .fd = -1, .size = size,
				       .lim = *lim };
	r = storage_check(rel, false);
	if (r < 0)
		return r;
	if (lim->read_only)
		return -EROFS;
	if (size != STORAGE_SIZE_UNKNOWN &&
	    (size > (uint64_t)INT64_MAX ||
	     (lim->max_file_size && size > lim->max_file_size)))
		return -EFBIG;
	up->mode = mode & 0777 & ~lim->umask;
	up->rel = strdup(rel);
	if (!up->rel)
		return -ENOMEM;
	storage_split(up->rel, &sp);
	if (c)
		storage_cache_start(c, root_fd);
	r = storage_begin_target(up, c, &sp, overwrite, &base_fd, &base_ref, &whole,
				 &replacing);
	if (r < 0)
		goto err_release;
	r = storage_create_tmp(up, c, base_fd, base_ref, replacing);
	/* The target's own directory is kept for the commit. */
	if (whole) {
		up->dir_fd = base_fd;
		up->dir_ref = base_ref;
		base_fd = -1;
		base_ref = NULL;
	}
	storage_release_fd(&base_fd, &base_ref);
	if (r < 0)
		goto err_release;
	/* The state copy of the name, with the process umask undone. */
	if ((up->mode & storage_process_umask()) && fchmod(up->fd, (mode_t)up->mode) < 0) {
		r = -errno;
		goto err_release;
	}
	/* Small known sizes were checked whole above; the rest is checked
	 * (and reserved) a step at a time. */
	if (size != STORAGE_SIZE_UNKNOWN && size < STORAGE_PREALLOC_MIN)
		up->reserved = size;
	else if (size != STORAGE_SIZE_UNKNOWN) {
		r = storage_reserve_to(up, 1);
		if (r < 0)
			goto err_release;
	}
	up->name = up->rel + (sp.name - up->rel);
	return 0;

err_release:
	storage_release_fd(&base_fd, &base_ref);
	up->name = up->rel;   /* so that abort releases it */
	storage_upload_abort(up);
	return r;
}

int storage_upload_write(struct storage_upload *up, const void *buf, size_t len)
{
	int r;

	if (!up->name)
		return -EBADF;
	if (up->size != STORAGE_SIZE_UNKNOWN) {
		if (len > up->size - up->written)
			return -EFBIG;
	} else if ((up->lim.max_file_size &&
		    len > up->lim.max_file_size - up->written) ||
		   len > (uint64_t)INT64_MAX - up->written) {
		return -EFBIG;
	}
	if (len == 0)
		return 0;
	r = storage_reserve_to(up, up->written + len);
	if (r < 0)
		return r;
	r = pwrite_full(up->fd, buf, len, (off_t)up->written);
	if (r < 0)
		return r;
	up->written += len;
	return 0;
}

/* Removes the directories this upload created that are still empty,
 * deepest first. */
static void storage_remove_created(struct storage_upload *up)
{
	while (up->n_created > 0) {
		size_t end = up->created[--up->n_created];
		char dir[PATH_MAX];

		memcpy(dir, up->rel, end);
		dir[end] = '\0';
		if (unlinkat(up->root_fd, dir, AT_REMOVEDIR) < 0)
			break;
	}
	up->n_created = 0;
}

void storage_upload_abort(struct storage_upload *up)
{
	if (!up->name)
		return;
	if (up->fd >= 0)
		close(up->fd);
	if (up->tmp_dir_fd >= 0 && up->tmp[0])
		(void)unlinkat(up->tmp_dir_fd, up->tmp, 0);
	storage_release_fd(&up->tmp_dir_fd, &up->tmp_dir_ref);
	storage_release_fd(&up->dir_fd, &up->dir_ref);
	storage_remove_created(up);
	free(up->created);
	free(up->rel);
	*up = (struct storage_upload){ .dir_fd = -1, .tmp_dir_fd = -1, .fd = -1 };
}

/* Creates the missing directories of the target's path, one component at
 * a time beneath the root, remembering which ones it made.  Each is opened
 * again through openat2, so a symlink swapped in between mkdirat and the
 * open is refused rather than followed. */
static int storage_make_parents(struct storage_upload *up)
{
	size_t dir_len = (size_t)(up->name - up->rel);
	int cur = -1;

	if (dir_len == 0)
		return storage_open_subdir(up->root_fd, ".");
	up->created = calloc(dir_len / 2 + 1, sizeof(*up->created));
	if (!up->created)
		return -ENOMEM;
	for (size_t start = 0; start < dir_len;) {
		size_t end = start + strcspn(up->rel + start, "/");
		int base = cur >= 0 ? cur : up->root_fd;
		char comp[NAME_MAX + 1];
		int fd;

		memcpy(comp, up->rel + start, end - start);
		comp[end - start] = '\0';
		fd = storage_open_subdir(base, comp);
		if (fd == -ENOENT) {
			mode_t mode = 0755 & ~(mode_t)up->lim.umask;
			bool made = false;

			if (mkdirat(base, comp, mode) == 0) {
				up->created[up->n_created++] = end;
				made = true;
				storage_step("mkdir");
			} else if (errno != EEXIST) {
				fd = -errno;
			}
			if (fd == -ENOENT)
				fd = storage_open_subdir(base, comp);
			/* The share's umask decides, not the process's. */
			if (made && fd >= 0 && (mode & storage_process_umask()) &&
			    fchmod(fd, mode) < 0) {
				int err = -errno;

				close(fd);
				fd = err;
			}
		}
		if (cur >= 0)
			close(cur);
		if (fd < 0)
			return fd;
		cur = fd;
		start = end + 1;
	}
	return cur;
}

/* Fails with EEXIST, atomically, when the name exists. */
static int storage_link_unnamed(struct storage_upload *up, int dir_fd,
				const char *name)
{
	char src[64];

	storage_fd_path(up->fd, src, sizeof(src));
	if (linkat(AT_FDCWD, src, dir_fd, name, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	return 0;
}

/* Renames from (in from_fd) over the final name, or drops it. */
static int storage_rename_over(struct storage_upload *up, int from_fd,
			       const char *from)
{
	int r;

	if (renameat(from_fd, from, up->dir_fd, up->name) == 0)
		return 0;
	r = -errno;
	(void)unlinkat(from_fd, from, 0);
	return r;
}

/* The O_TMPFILE path: an unnamed file cannot be renamed, and linkat cannot
 * replace, so a replacement is linked beside the target under a temporary
 * name and renamed over. */
static int storage_name_unnamed(struct storage_upload *up, bool overwrite)
{
	char tmp[sizeof(STORAGE_TMP_PREFIX) + 24], prefix[sizeof(STORAGE_TMP_PREFIX)];
	int via = up->tmp_dir_fd >= 0 ? up->tmp_dir_fd : up->dir_fd;
	pid_t pid = storage_pid();
	int r, tries = 0;

	r = storage_link_unnamed(up, up->dir_fd, up->name);
	if (r != -EEXIST || !overwrite)
		return r;
	/* In the state directory the name carries our pid, so that when we
	 * die between link and rename storage_sweep() finds it. */
	if (up->tmp_dir_fd >= 0)
		snprintf(prefix, sizeof(prefix), "%d.", (int)pid);
	else
		snprintf(prefix, sizeof(prefix), "%s", STORAGE_TMP_PREFIX);
	do {
		r = storage_random_name(prefix, pid, tmp, sizeof(tmp));
		if (r == 0)
			r = storage_link_unnamed(up, via, tmp);
	} while (r == -EEXIST && ++tries < 4);
	if (r < 0)
		return r;
	storage_step("link-tmp");
	return storage_rename_over(up, via, tmp);
}

/* The state-directory path: one rename gives the file its name. */
static int storage_name_tmp(struct storage_upload *up, bool overwrite)
{
	int r;

	if (overwrite)
		r = renameat(up->tmp_dir_fd, up->tmp, up->dir_fd, up->name);
	else
		r = renameat2(up->tmp_dir_fd, up->tmp, up->dir_fd, up->name,
			      RENAME_NOREPLACE);
	if (r == 0) {
		up->tmp[0] = '\0';
		return 0;
	}
	r = -errno;
	/* A file system without RENAME_NOREPLACE: link refuses atomically. */
	if (r != -EINVAL || overwrite)
		return r;
	if (linkat(up->tmp_dir_fd, up->tmp, up->dir_fd, up->name, 0) < 0)
		return -errno;
	storage_step("link");
	(void)unlinkat(up->tmp_dir_fd, up->tmp, 0);
	up->tmp[0] = '\0';
	return 0;
}

static int storage_set_mtime(int fd, const struct timespec *mtime)
{
	struct timespec ts[2] = {
		{ .tv_sec = 0, .tv_nsec = UTIME_OMIT },
		*mtime,
	};

	return futimens(fd, ts) < 0 ? -errno : 0;
}

/* Everything that happens to the file's data and metadata before it gets
 * its name, short of making it durable. */
static int storage_finish_data(struct storage_upload *up,
			       const struct timespec *mtime,
			       const struct digest_value *digest)
{
	struct stat st;
	int r;

	if (!up->name)
		return -EBADF;
	if (up->size != STORAGE_SIZE_UNKNOWN && up->written != up->size)
		return -EIO;
	if (mtime) {
		r = storage_set_mtime(up->fd, mtime);
		if (r < 0)
			return r;
	}
	/* The cache entry names the final mtime, so it goes in after it. */
	if (digest) {
		if (fstat(up->fd, &st) < 0)
			return -errno;
		r = storage_xattr_store(up->fd, &st, digest);
		if (r < 0)
			return r;
	}
	storage_step("data");
	return 0;
}

/* Gives the finished file its name, creating the missing directories; on
 * failure removes what this upload created. */
static int storage_name(struct storage_upload *up, bool overwrite)
{
	int r;

	for (;;) {
		if (up->dir_fd < 0) {
			up->dir_fd = storage_make_parents(up);
			if (up->dir_fd < 0) {
				r = up->dir_fd;
				goto err_remove;
			}
		}
		r = up->tmp[0] ? storage_name_tmp(up, overwrite)
			       : storage_name_unnamed(up, overwrite);
		/* A directory from the cache may have been removed since it
		 * was opened: the name goes where a fresh walk of the path
		 * puts it (once: that directory is not borrowed). */
		if (r != -ENOENT || !up->dir_ref)
			break;
		up->dir_ref->gone = true;
		storage_release_fd(&up->dir_fd, &up->dir_ref);
	}
	if (r < 0)
		goto err_remove;
	storage_step("name");
	return 0;

err_remove:
	storage_remove_created(up);
	return r;
}

/* Directories already fsynced in this commit, so that a batch syncs each
 * once. */
struct storage_synced {
	struct { dev_t dev; ino_t ino; } v[64];
	size_t n;
};

static bool storage_synced_add(struct storage_synced *ss, const struct stat *st)
{
	for (size_t i = 0; i < ss->n; i++)
		if (ss->v[i].dev == st->st_dev && ss->v[i].ino == st->st_ino)
			return false;
	if (ss->n < sizeof(ss->v) / sizeof(ss->v[0])) {
		ss->v[ss->n].dev = st->st_dev;
		ss->v[ss->n].ino = st->st_ino;
		ss->n++;
	}
	return true;
}

static int storage_fsync_dir(int fd, struct storage_synced *ss)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!storage_synced_add(ss, &st))
		return 0;
	if (fsync(fd) < 0)
		return -errno;
	storage_step("dir-sync");
	return 0;
}

/* fsyncs the target's directory and every directory above it up to the
 * share root: a directory this upload (or a concurrent one) created is
 * durable only once its parent's entry is. */
static int storage_sync_chain(struct storage_upload *up, struct storage_synced *ss)
{
	size_t len = (size_t)(up->name - up->rel);
	char dir[PATH_MAX];
	int r;

	r = storage_fsync_dir(up->dir_fd, ss);
	while (r == 0 && len > 0) {
		int fd;

		/* Drop the last component (and its slash). */
		while (len > 0 && up->rel[len - 1] == '/')
			len--;
		while (len > 0 && up->rel[len - 1] != '/')
			len--;
		memcpy(dir, up->rel, len);
		dir[len] = '\0';
		if (len > 0)
			dir[len - 1] = '\0';
		fd = storage_open_subdir(up->root_fd, len > 0 ? dir : ".");
		if (fd < 0)
			return fd;
		r = storage_fsync_dir(fd, ss);
		close(fd);
	}
	return r;
}

/* Commits the first n uploads of v, whose data is finished: syncs the
 * data (when durable), names each, then syncs each directory chain once.
 * results[i] receives each one's outcome; every upload is released. */
static void storage_commit_all(struct storage_pending *v, size_t n, bool durable)
{
	struct storage_synced ss = { .n = 0 };

	for (size_t i = 0; i < n && durable; i++) {
		if (v[i].result == 0 && fsync(v[i].up.fd) < 0)
			v[i].result = -errno;
		if (v[i].result == 0)
			storage_step("data-sync");
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].result == 0)
			v[i].result = storage_name(&v[i].up, v[i].overwrite);
	for (size_t i = 0; i < n && durable; i++) {
		if (v[i].result == 0) {
			v[i].result = storage_sync_chain(&v[i].up, &ss);
			if (v[i].result == 0)
				storage_step("synced");
		}
	}
	/* A failed naming removed its directories already; a named file's
	 * directories hold it.  Only an unnamed temporary is left to drop. */
	for (size_t i = 0; i < n; i++) {
		v[i].up.n_created = 0;
		storage_upload_abort(&v[i].up);
	}
}

int storage_upload_commit(struct storage_upload *up, bool overwrite,
			  bool durable, const struct timespec *mtime,
			  const struct digest_value *digest)
{
	struct storage_pending p = { .overwrite = overwrite };

	if (!up->name)
		return -EBADF;
	p.result = storage_finish_data(up, mtime, digest);
	p.up = *up;
	*up = (struct storage_upload){ .dir_fd = -1, .tmp_dir_fd = -1, .fd = -1 };
	storage_commit_all(&p, 1, durable);
	return p.result;
}

void storage_batch_init(struct storage_batch *b)
{
	*b = (struct storage_batch){ .v = NULL };
}

int storage_batch_add(struct storage_batch *b, struct storage_upload *up,
		      bool overwrite, const struct timespec *mtime,
		      const struct digest_value *digest)
{
	int r;

	if (!up->name)
		return -EBADF;
	r = b->n >= STORAGE_BATCH_MAX ? -ENOBUFS : 0;
	if (r == 0 && b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct storage_pending *v = reallocarray(b->v, cap, sizeof(*v));

		if (!v)
			r = -ENOMEM;
		else {
			b->v = v;
			b->cap = cap;
		}
	}
	if (r == 0)
		r = storage_finish_data(up, mtime, digest);
	if (r < 0) {
		storage_upload_abort(up);
		return r;
	}
	/* Start the write-back now, so that the flush finds it under way. */
	(void)sync_file_range(up->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	b->v[b->n] = (struct storage_pending){ .up = *up, .overwrite = overwrite };
	*up = (struct storage_upload){ .dir_fd = -1, .tmp_dir_fd = -1, .fd = -1 };
	return (int)b->n++;
}

int storage_batch_commit(struct storage_batch *b, bool durable)
{
	int r = 0;

	storage_commit_all(b->v, b->n, durable);
	for (size_t i = 0; i < b->n && r == 0; i++)
		r = b->v[i].result;
	return r;
}

size_t storage_batch_count(const struct storage_batch *b)
{
	return b->n;
}

int storage_batch_result(const struct storage_batch *b, size_t i)
{
	return i < b->n ? b->v[i].result : -EINVAL;
}

void storage_batch_reset(struct storage_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		storage_upload_abort(&b->v[i].up);
	b->n = 0;
}

void storage_batch_finish(struct storage_batch *b)
{
	storage_batch_reset(b);
	free(b->v);
	*b = (struct storage_batch){ .v = NULL };
}

/* "<digits>.<16 lower-case hex>", and pid's when pid_dot ("<pid>.") is
 * non-empty. */
static bool storage_sweepable(const char *name, const char *pid_dot)
{
	size_t digits = strspn(name, "0123456789");
	const char *hex = name + digits + 1;

	if (digits == 0 || name[digits] != '.')
		return false;
	if (pid_dot[0] && strncmp(name, pid_dot, digits + 1) != 0)
		return false;
	return strspn(hex, "0123456789abcdef") == 16 && hex[16] == '\0';
}

/* 1 when removed, 0 when not a regular file (left alone) or gone. */
static int storage_sweep_one(int dir_fd, const char *name)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	if (unlinkat(dir_fd, name, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

static int storage_sweep_dir(DIR *d, const char *pid_dot)
{
	int r = 0, n = 0;

	for (;;) {
		struct dirent *de;
		int one;

		errno = 0;
		de = readdir(d);
		if (!de)
			return errno ? -errno : r < 0 ? r : n;
		if (!storage_sweepable(de->d_name, pid_dot))
			continue;
		/* One stubborn name must not shield the others. */
		one = storage_sweep_one(dirfd(d), de->d_name);
		if (one < 0 && r == 0)
			r = one;
		else if (one > 0)
			n++;
	}
}

int storage_sweep(int root_fd, pid_t pid)
{
	char pid_dot[24] = "";
	struct stat st;
	DIR *d;
	int fd, r;

	if (pid < 0)
		return -EINVAL;
	if (pid > 0)
		snprintf(pid_dot, sizeof(pid_dot), "%d.", (int)pid);
	fd = storage_state_open(root_fd, false, &st);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	r = storage_sweep_dir(d, pid_dot);
	closedir(d);
	return r;
}
