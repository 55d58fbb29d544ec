/* storage: everything beneath a share root, resolved by the kernel. */
#define _GNU_SOURCE
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "netio.h"

#define STORAGE_RESOLVE \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* Digest text, size, mtime and inode: see STORAGE_XATTR_PREFIX. */
#define STORAGE_XATTR_VALUE_MAX (DIGEST_TEXT_MAX + 80)
#define STORAGE_XATTR_NAME_MAX 64

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

	if (len == sizeof(state) - 1 && memcmp(c, state, len) == 0)
		return true;
	return len >= sizeof(prefix) - 1 &&
	       memcmp(c, prefix, sizeof(prefix) - 1) == 0;
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

/* Walks dir one component at a time, creating what is missing.  Each new
 * directory is opened again through openat2, so a symlink swapped in
 * between mkdirat and the open is refused rather than followed. */
static int storage_mkdirs(int root_fd, char *dir)
{
	int cur = -1;
	char *comp = dir;

	for (;;) {
		char *slash = strchr(comp, '/');
		int base = cur >= 0 ? cur : root_fd;
		int fd;

		if (slash)
			*slash = '\0';
		fd = storage_open_subdir(base, comp);
		if (fd == -ENOENT) {
			if (mkdirat(base, comp, 0755) < 0 && errno != EEXIST)
				fd = -errno;
			else
				fd = storage_open_subdir(base, comp);
		}
		if (slash)
			*slash = '/';
		if (cur >= 0)
			close(cur);
		if (fd < 0 || !slash)
			return fd;
		cur = fd;
		comp = slash + 1;
	}
}

/* Opens the directory holding sp->name (a real fd: fsync needs one). */
static int storage_open_parent(int root_fd, struct storage_split *sp,
			       bool create)
{
	int fd = storage_open_subdir(root_fd, sp->dir);

	if (fd == -ENOENT && create)
		fd = storage_mkdirs(root_fd, sp->dir);
	return fd;
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

int storage_open_file(int root_fd, const char *rel, struct stat *st)
{
	int r, fd;

	r = storage_check(rel, false);
	if (r < 0)
		return r;
	/* O_NONBLOCK so that a FIFO planted in the share cannot hang us. */
	fd = storage_openat2(root_fd, rel,
			     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	if (!S_ISREG(st->st_mode)) {
		r = S_ISDIR(st->st_mode) ? -EISDIR : -EPERM;
		goto err_close_fd;
	}
	r = fd_set_nonblock(fd, false);
	if (r < 0)
		goto err_close_fd;
	return fd;

err_close_fd:
	close(fd);
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

struct storage_names {
	char **v;
	size_t n;
	size_t cap;
};

static void storage_names_free(struct storage_names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static int storage_names_add(struct storage_names *ns, const char *name)
{
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		char **v = reallocarray(ns->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n] = strdup(name);
	if (!ns->v[ns->n])
		return -ENOMEM;
	ns->n++;
	return 0;
}

static int storage_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool storage_listed(const char *name)
{
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return !storage_reserved(name, strlen(name));
}

static int storage_read_names(DIR *d, struct storage_names *ns)
{
	for (;;) {
		struct dirent *de;
		int r;

		errno = 0;
		de = readdir(d);
		if (!de)
			return errno ? -errno : 0;
		if (!storage_listed(de->d_name))
			continue;
		r = storage_names_add(ns, de->d_name);
		if (r < 0)
			return r;
	}
}

static int storage_emit(int dir_fd, const struct storage_names *ns,
			int (*fn)(const struct storage_entry *e, void *arg),
			void *arg)
{
	for (size_t i = 0; i < ns->n; i++) {
		struct storage_entry e;
		struct stat st;
		int r;

		if (fstatat(dir_fd, ns->v[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		e.type = storage_type(st.st_mode);
		e.size = (uint64_t)st.st_size;
		e.mtime_sec = (int64_t)st.st_mtim.tv_sec;
		e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
		e.mode = (uint32_t)(st.st_mode & 07777);
		e.name = ns->v[i];
		r = fn(&e, arg);
		if (r != 0)
			return r;
	}
	return 0;
}

int storage_list(int dir_fd,
		 int (*fn)(const struct storage_entry *e, void *arg), void *arg)
{
	struct storage_names ns = { 0 };
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
	r = storage_read_names(d, &ns);
	if (r < 0)
		goto out;
	if (ns.n > 1)
		qsort(ns.v, ns.n, sizeof(*ns.v), storage_names_cmp);
	r = storage_emit(dirfd(d), &ns, fn, arg);
out:
	storage_names_free(&ns);
	closedir(d);
	return r;
}

static int storage_unlink(int dir_fd, const char *name)
{
	struct stat st;
	int flags;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
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
	dir_fd = storage_open_parent(root_fd, &sp, false);
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

/* Returns true and fills *out when the cached value matches st. */
static bool storage_xattr_load(int fd, const struct stat *st,
			       enum digest_alg alg, struct digest_value *out)
{
	char name[STORAGE_XATTR_NAME_MAX], value[STORAGE_XATTR_VALUE_MAX];
	char tail[STORAGE_XATTR_VALUE_MAX];
	const char *sp;
	ssize_t n;

	if (storage_xattr_name(alg, name, sizeof(name)) < 0 ||
	    storage_xattr_tail(st, tail, sizeof(tail)) < 0)
		return false;
	n = fgetxattr(fd, name, value, sizeof(value) - 1);
	if (n <= 0)
		return false;
	value[n] = '\0';
	sp = memchr(value, ' ', (size_t)n);
	if (!sp || strcmp(sp + 1, tail) != 0)
		return false;
	if (digest_parse(value, (size_t)(sp - value), out) < 0)
		return false;
	return out->alg == alg;
}

static bool storage_same_version(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int storage_digest_cached(int fd, const struct stat *st, enum digest_alg alg,
			  struct digest_value *out)
{
	return storage_xattr_load(fd, st, alg, out) ? 0 : -ENODATA;
}

void storage_digest_store(int fd, const struct stat *st, const struct digest_value *dv)
{
	(void)storage_xattr_store(fd, st, dv);
}

int storage_digest(int fd, const struct stat *st, enum digest_alg alg,
		   struct digest_value *out)
{
	struct stat now;
	int r;

	if (storage_xattr_load(fd, st, alg, out))
		return 0;
	r = digest_fd(alg, fd, out);
	if (r < 0)
		return r;
	/* A file changed while we read it must not get a cache entry that
	 * vouches for bytes it never held. */
	if (fstat(fd, &now) == 0 && storage_same_version(st, &now))
		(void)storage_xattr_store(fd, st, out);
	return 0;
}

void storage_upload_abort(struct storage_upload *up)
{
	if (!up->name)
		return;
	if (up->fd >= 0)
		close(up->fd);
	if (up->dir_fd >= 0)
		close(up->dir_fd);
	free(up->name);
	up->name = NULL;
	up->fd = -1;
	up->dir_fd = -1;
}

/* Refuses what the name must not be before any body byte is read; the
 * final link decides again, atomically. */
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
	return overwrite ? 0 : -EEXIST;
}

static int storage_reserve(int fd, uint64_t size)
{
	int r;

	if (size == 0)
		return 0;
	do
		r = fallocate(fd, 0, 0, (off_t)size);
	while (r < 0 && errno == EINTR);
	/* Without fallocate a full disk shows up in the body writes. */
	if (r < 0 && errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

int storage_upload_begin(int root_fd, const char *rel, uint64_t size,
			 unsigned mode, bool overwrite,
			 struct storage_upload *up)
{
	struct storage_split sp;
	int r;

	*up = (struct storage_upload){ .root_fd = root_fd, .dir_fd = -1, .fd = -1 };
	r = storage_check(rel, false);
	if (r < 0)
		return r;
	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	storage_split(rel, &sp);
	up->dir_fd = storage_open_parent(root_fd, &sp, true);
	if (up->dir_fd < 0)
		return up->dir_fd;
	r = storage_check_target(up->dir_fd, sp.name, overwrite);
	if (r < 0)
		goto err_close_dir;
	up->fd = openat(up->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC,
			(mode_t)(mode & 0777));
	if (up->fd < 0) {
		r = -errno;
		goto err_close_dir;
	}
	r = storage_reserve(up->fd, size);
	if (r < 0)
		goto err_close_file;
	up->name = strdup(sp.name);
	if (!up->name) {
		r = -ENOMEM;
		goto err_close_file;
	}
	up->size = size;
	return 0;

err_close_file:
	close(up->fd);
	up->fd = -1;
err_close_dir:
	close(up->dir_fd);
	up->dir_fd = -1;
	return r;
}

int storage_upload_write(struct storage_upload *up, const void *buf, size_t len)
{
	int r;

	if (!up->name)
		return -EBADF;
	if (len > up->size - up->written)
		return -EFBIG;
	r = pwrite_full(up->fd, buf, len, (off_t)up->written);
	if (r < 0)
		return r;
	up->written += len;
	return 0;
}

static void storage_fd_path(int fd, char *buf, size_t cap)
{
	snprintf(buf, cap, "/proc/self/fd/%d", fd);
}

/* Fails with EEXIST, atomically, when the name exists. */
static int storage_link_new(struct storage_upload *up)
{
	char src[64];

	storage_fd_path(up->fd, src, sizeof(src));
	if (linkat(AT_FDCWD, src, up->dir_fd, up->name, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	return 0;
}

/* prefix followed by 16 random lower-case hex digits. */
static int storage_random_name(const char *prefix, char *buf, size_t cap)
{
	uint8_t rnd[8];
	ssize_t n;
	int len;

	do
		n = getrandom(rnd, sizeof(rnd), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(rnd))
		return -EIO;
	len = snprintf(buf, cap, "%s", prefix);
	for (size_t i = 0; i < sizeof(rnd) && len >= 0 && (size_t)len < cap; i++)
		len += snprintf(buf + len, cap - (size_t)len, "%02x", rnd[i]);
	return len < 0 || (size_t)len >= cap ? -EINVAL : 0;
}

/* Links the unnamed file into dir_fd under a fresh random name (in tmp). */
static int storage_link_tmp(struct storage_upload *up, int dir_fd,
			    const char *prefix, char *tmp, size_t cap)
{
	char src[64];
	int r, tries = 0;

	storage_fd_path(up->fd, src, sizeof(src));
	do {
		r = storage_random_name(prefix, tmp, cap);
		if (r < 0)
			return r;
		r = linkat(AT_FDCWD, src, dir_fd, tmp, AT_SYMLINK_FOLLOW) < 0
			? -errno : 0;
	} while (r == -EEXIST && ++tries < 4);
	return r;
}

/* Renames tmp (in dir_fd) over the final name, or drops it. */
static int storage_rename_over(struct storage_upload *up, int dir_fd,
			       const char *tmp)
{
	int r;

	if (renameat(dir_fd, tmp, up->dir_fd, up->name) == 0)
		return 0;
	r = -errno;
	(void)unlinkat(dir_fd, tmp, 0);
	return r;
}

/* Opens STORAGE_STATE_DIR, creating it on first need.  Through openat2 so
 * that a symlink planted under that name is refused, never followed. */
static int storage_state_open(int root_fd, bool create)
{
	int fd = storage_open_subdir(root_fd, STORAGE_STATE_DIR);

	if (fd != -ENOENT || !create)
		return fd;
	/* 0700: half-committed uploads are nobody else's business. */
	if (mkdirat(root_fd, STORAGE_STATE_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	return storage_open_subdir(root_fd, STORAGE_STATE_DIR);
}

/* The temporary name carries our pid, so that when we die between link
 * and rename the master can sweep exactly our names (storage_sweep). */
static int storage_replace_via_state(struct storage_upload *up)
{
	char prefix[24], tmp[sizeof(prefix) + 16];
	int r, state_fd;

	state_fd = storage_state_open(up->root_fd, true);
	if (state_fd < 0)
		return state_fd;
	snprintf(prefix, sizeof(prefix), "%d.", (int)getpid());
	r = storage_link_tmp(up, state_fd, prefix, tmp, sizeof(tmp));
	if (r == 0)
		r = storage_rename_over(up, state_fd, tmp);
	close(state_fd);
	return r;
}

/* A target on another file system than the root (EXDEV), or a root where
 * we may not create the state directory, still gets its replacement. */
static bool storage_state_unusable(int r)
{
	return r == -EXDEV || r == -EACCES || r == -EPERM || r == -EROFS;
}

/* An O_TMPFILE cannot be renamed, and linkat cannot replace: link it under
 * a temporary name, then rename that over the final name. */
static int storage_link_replace(struct storage_upload *up)
{
	char tmp[sizeof(STORAGE_TMP_PREFIX) + 16];
	int r;

	/* Most uploads create a new name: one link does it, atomically. */
	r = storage_link_new(up);
	if (r != -EEXIST)
		return r;
	r = storage_replace_via_state(up);
	if (!storage_state_unusable(r))
		return r;
	r = storage_link_tmp(up, up->dir_fd, STORAGE_TMP_PREFIX, tmp, sizeof(tmp));
	if (r < 0)
		return r;
	return storage_rename_over(up, up->dir_fd, tmp);
}

static int storage_set_mtime(int fd, const struct timespec *mtime)
{
	struct timespec ts[2] = {
		{ .tv_sec = 0, .tv_nsec = UTIME_OMIT },
		*mtime,
	};

	return futimens(fd, ts) < 0 ? -errno : 0;
}

/* Everything that happens to the unnamed file before it gets its name. */
static int storage_finish_data(struct storage_upload *up, bool durable,
			       const struct timespec *mtime,
			       const struct digest_value *digest)
{
	struct stat st;
	int r;

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
	if (durable && fsync(up->fd) < 0)
		return -errno;
	return 0;
}

int storage_upload_commit(struct storage_upload *up, bool overwrite,
			  bool durable, const struct timespec *mtime,
			  const struct digest_value *digest)
{
	int r;

	if (!up->name)
		return -EBADF;
	if (up->written != up->size) {
		r = -EIO;
		goto out;
	}
	r = storage_finish_data(up, durable, mtime, digest);
	if (r < 0)
		goto out;
	r = overwrite ? storage_link_replace(up) : storage_link_new(up);
	if (r < 0)
		goto out;
	if (durable && fsync(up->dir_fd) < 0)
		r = -errno;
out:
	storage_upload_abort(up);
	return r;
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
	DIR *d;
	int fd, r;

	if (pid < 0)
		return -EINVAL;
	if (pid > 0)
		snprintf(pid_dot, sizeof(pid_dot), "%d.", (int)pid);
	fd = storage_state_open(root_fd, false);
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
