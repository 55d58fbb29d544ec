/* test_storage: hostile paths, uploads, the digest cache, LIST, STAT, DEL
 * and the sweep of interrupted replacements. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "storage.h"

/* Expected digests were produced outside this code base:
 *   printf abc | sha256sum   (also the FIPS 180-2 example)
 *   printf ''  | xxh128sum   (xxhash 0.8.1 CLI) */
#define SHA256_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define XXH3_EMPTY "99aa06d3014798d86001c324468d497f"

/* Every test runs in base/share (the root) next to base/outside, which
 * nothing may ever touch. */
static char base[PATH_MAX];
static char share[PATH_MAX];
static char outside[PATH_MAX];
static int root_fd = -1;
/* No margin, the umask the tests had before shares had their own. */
static const struct storage_limits nolim = { .umask = 022 };

static void xpath(char *buf, size_t cap, const char *dir, const char *rel)
{
	int n = snprintf(buf, cap, "%s/%s", dir, rel);

	cr_assert(n > 0 && (size_t)n < cap, "path too long for the test");
}

static void put_file(const char *dir, const char *rel, const char *content)
{
	char p[PATH_MAX];
	int fd;

	xpath(p, sizeof(p), dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "create %s: %s", p, strerror(errno));
	cr_assert_eq(write(fd, content, strlen(content)),
		     (ssize_t)strlen(content));
	cr_assert_eq(close(fd), 0);
}

static void put_link(const char *target, const char *rel)
{
	char p[PATH_MAX];

	xpath(p, sizeof(p), share, rel);
	cr_assert_eq(symlink(target, p), 0, "symlink %s: %s", p,
		     strerror(errno));
}

static void put_dir(const char *rel)
{
	char p[PATH_MAX];

	xpath(p, sizeof(p), share, rel);
	cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s: %s", p, strerror(errno));
}

/* Reads a file of the share into a NUL-terminated heap buffer (or NULL
 * when it cannot be opened), bypassing the code under test. */
static char *slurp(const char *rel, size_t *len)
{
	char p[PATH_MAX];
	struct stat st;
	char *buf;
	int fd;

	xpath(p, sizeof(p), share, rel);
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	if (len)
		*len = (size_t)st.st_size;
	return buf;
}

static void expect_content(const char *rel, const char *want)
{
	char *got = slurp(rel, NULL);

	cr_assert_not_null(got, "%s missing", rel);
	cr_expect_str_eq(got, want, "%s", rel);
	free(got);
}

static bool exists(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	xpath(p, sizeof(p), share, rel);
	return lstat(p, &st) == 0;
}

/* Entries of a share directory, hidden and temporary names included --
 * except the state directory at the root, which uploads create on first
 * need and keep: tests check it with state_is_empty(). */
static int count_entries(const char *rel)
{
	char p[PATH_MAX];
	struct dirent *de;
	int n = 0;
	DIR *d;

	xpath(p, sizeof(p), share, rel);
	d = opendir(p);
	cr_assert_not_null(d, "opendir %s: %s", p, strerror(errno));
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    (rel[0] || strcmp(de->d_name, ".tcpfiled")))
			n++;
	closedir(d);
	return n;
}

/* The state directory holds no name (or does not exist). */
static bool state_is_empty(void)
{
	char p[PATH_MAX];
	struct stat st;

	xpath(p, sizeof(p), share, ".tcpfiled");
	if (lstat(p, &st) < 0)
		return errno == ENOENT;
	return S_ISDIR(st.st_mode) && count_entries(".tcpfiled") == 0;
}

/* The state directory as the daemon makes it. */
static void put_state_dir(void)
{
	char p[PATH_MAX];

	xpath(p, sizeof(p), share, ".tcpfiled");
	cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
	cr_assert_eq(chmod(p, 0700), 0);
}

/* A listing of a whole tree (names, types, sizes, mtimes, inodes), to
 * prove that an operation changed nothing. */
static struct {
	char **lines;
	size_t n;
	size_t prefix;
} snap;

static int snapshot_one(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	char *line;

	if (asprintf(&line, "%s %o %jd %jd.%09ld %ju", path + snap.prefix,
		     (unsigned)st->st_mode, (intmax_t)st->st_size,
		     (intmax_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec,
		     (uintmax_t)st->st_ino) < 0)
		return -1;
	snap.lines = reallocarray(snap.lines, snap.n + 1, sizeof(char *));
	if (!snap.lines)
		return -1;
	snap.lines[snap.n++] = line;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *snapshot(const char *dir)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	snap.lines = NULL;
	snap.n = 0;
	snap.prefix = strlen(dir);
	cr_assert_eq(nftw(dir, snapshot_one, 16, FTW_PHYS), 0);
	qsort(snap.lines, snap.n, sizeof(char *), cmp_str);
	f = open_memstream(&out, &len);
	cr_assert_not_null(f);
	for (size_t i = 0; i < snap.n; i++) {
		fprintf(f, "%s\n", snap.lines[i]);
		free(snap.lines[i]);
	}
	free(snap.lines);
	fclose(f);
	return out;
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	return remove(path);
}

static void setup(void)
{
	umask(022);
	snprintf(base, sizeof(base), "/tmp/test_storage.XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	xpath(share, sizeof(share), base, "share");
	xpath(outside, sizeof(outside), base, "outside");
	cr_assert_eq(mkdir(share, 0755), 0);
	cr_assert_eq(mkdir(outside, 0755), 0);
	put_file(outside, "secret", "secret");

	put_dir("a");
	put_file(share, "a/f", "abc");
	put_link("/etc", "link_etc");
	put_link("..", "link_up");
	put_link("../outside", "link_out");
	put_link("../outside/secret", "link_secret");
	put_link("a", "link_in");
	put_link("a/f", "link_file");
	put_link("../../outside", "a/deep_up");
	put_link("/nonexistent-tcpfiled-test", "link_dangling");
	{
		char p[PATH_MAX];

		xpath(p, sizeof(p), share, "fifo");
		cr_assert_eq(mkfifo(p, 0644), 0);
	}
	root_fd = storage_open_root(share);
	cr_assert(root_fd >= 0, "storage_open_root: %s", strerror(-root_fd));
}

static void teardown(void)
{
	if (root_fd >= 0)
		close(root_fd);
	root_fd = -1;
	nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* --- storage_check_path ------------------------------------------------ */

Test(check_path, accepts_ordinary_names)
{
	static const char *const ok[] = {
		"f", "a/b/c", "with space", "\303\274nic\303\266de.txt",
		"...", "..a", "a..", ".hidden", ".tcpfiledx", ".tcpfile",
		"a/.tcpfiled_", "x.tcpfiled.tmp.1",
		"%41", "back\\slash", "-dash", "a b/c d", "~", "*?[",
	};
	char comp[NAME_MAX + 1], path[PATH_MAX];
	const char *why = "unset";

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		cr_expect_eq(storage_check_path(ok[i], strlen(ok[i]), false,
						&why), 0, "%s", ok[i]);
	memset(comp, 'n', NAME_MAX);
	comp[NAME_MAX] = '\0';
	cr_expect_eq(storage_check_path(comp, NAME_MAX, false, &why), 0);
	/* PATH_MAX - 1 bytes: "d/d/.../d" then one more "d". */
	for (size_t i = 0; i < PATH_MAX - 1; i++)
		path[i] = i % 2 ? '/' : 'd';
	path[PATH_MAX - 1] = '\0';
	cr_expect_eq(storage_check_path(path, PATH_MAX - 1, false, &why), 0);
	cr_expect_eq(storage_check_path("", 0, true, &why), 0);
}

Test(check_path, explains_refusals)
{
	const char *why = NULL;

	cr_expect_eq(storage_check_path("a//b", 4, false, &why), -EINVAL);
	cr_expect_not_null(why);
	why = NULL;
	cr_expect_eq(storage_check_path("", 0, false, &why), -EINVAL);
	cr_expect_not_null(why);
	/* A NUL cannot reach the other calls, but can reach this one. */
	why = NULL;
	cr_expect_eq(storage_check_path("a\0b", 3, false, &why), -EINVAL);
	cr_expect_not_null(why);
	why = NULL;
	cr_expect_eq(storage_check_path("a/\0", 3, false, &why), -EINVAL);
	cr_expect_not_null(why);
}

/* --- hostile paths through every public entry point --------------------- */

enum op {
	OP_READ = 1,     /* storage_open_file */
	OP_WRITE = 2,    /* upload with overwrite */
	OP_CREATE = 4,   /* upload without overwrite */
	OP_DELETE = 8,
	OP_STAT = 16,
	OP_LIST = 32,    /* storage_open_dir */
};
#define OP_ALL (OP_READ | OP_WRITE | OP_CREATE | OP_DELETE | OP_STAT | OP_LIST)
#define OP_NOT_ROOT (OP_READ | OP_WRITE | OP_CREATE | OP_DELETE)

struct hostile {
	const char *path;
	unsigned ops;
	int err;
	const char *what;
};

static char long_comp[NAME_MAX + 2];       /* 256 bytes */
static char long_path[PATH_MAX + 2];       /* 4097 bytes */
static char max_path[PATH_MAX + 1];        /* 4096 bytes */
static char long_in_dir[NAME_MAX + 4];     /* "a/" + 256 bytes */

static const struct hostile hostile[] = {
	{ "../x", OP_ALL, -EINVAL, "parent escape" },
	{ "../outside/secret", OP_ALL, -EINVAL, "parent escape to sibling" },
	{ "a/../../x", OP_ALL, -EINVAL, "nested parent escape" },
	{ "a/../a/f", OP_ALL, -EINVAL, "parent that stays inside" },
	{ "..", OP_ALL, -EINVAL, "bare parent" },
	{ ".", OP_ALL, -EINVAL, "bare dot" },
	{ "./a", OP_ALL, -EINVAL, "leading dot" },
	{ "a/.", OP_ALL, -EINVAL, "trailing dot" },
	{ "a/./f", OP_ALL, -EINVAL, "inner dot" },
	{ "a/..", OP_ALL, -EINVAL, "trailing parent" },
	{ "link_etc/..", OP_ALL, -EINVAL, "parent after a symlink" },
	{ "/etc/passwd", OP_ALL, -EINVAL, "absolute path" },
	{ "/a", OP_ALL, -EINVAL, "leading slash" },
	{ "/", OP_ALL, -EINVAL, "slash alone" },
	{ "//", OP_ALL, -EINVAL, "double slash alone" },
	{ "a//f", OP_ALL, -EINVAL, "empty inner component" },
	{ "a/", OP_ALL, -EINVAL, "trailing slash on a dir" },
	{ "a/f/", OP_ALL, -EINVAL, "trailing slash on a file" },
	{ "\x01", OP_ALL, -EINVAL, "control byte 0x01 alone" },
	{ "a\001b", OP_ALL, -EINVAL, "control byte 0x01" },
	{ "a\x1f", OP_ALL, -EINVAL, "control byte 0x1f" },
	{ "a\x7f", OP_ALL, -EINVAL, "DEL byte" },
	{ "a/b\nc", OP_ALL, -EINVAL, "newline" },
	{ "tab\tname", OP_ALL, -EINVAL, "tab" },
	{ "\x1b[31mred", OP_ALL, -EINVAL, "terminal escape" },
	{ "a\r", OP_ALL, -EINVAL, "carriage return" },
	{ ".tcpfiled.tmp.x", OP_ALL, -EINVAL, "temporary name" },
	{ "a/.tcpfiled.tmp.0123456789abcdef", OP_ALL, -EINVAL,
	  "temporary name in a subdir" },
	{ ".tcpfiled.other", OP_ALL, -EINVAL, "reserved name" },
	{ ".tcpfiled.", OP_ALL, -EINVAL, "reserved prefix alone" },
	{ ".tcpfiled", OP_ALL, -EINVAL, "state directory" },
	{ ".tcpfiled/1.0123456789abcdef", OP_ALL, -EINVAL,
	  "name in the state directory" },
	{ "a/.tcpfiled", OP_ALL, -EINVAL, "state directory name in a subdir" },
	{ long_comp, OP_ALL, -EINVAL, "256-byte component" },
	{ long_in_dir, OP_ALL, -EINVAL, "256-byte component in a subdir" },
	{ long_path, OP_ALL, -EINVAL, "4097-byte path" },
	{ max_path, OP_ALL, -EINVAL, "4096-byte path (no room for NUL)" },
	{ "", OP_READ | OP_WRITE | OP_CREATE, -EINVAL, "empty path" },
	{ "", OP_DELETE, -EPERM, "deleting the root" },

	{ "link_etc", OP_NOT_ROOT | OP_LIST, -ELOOP, "symlink to /etc" },
	{ "link_etc/passwd", OP_ALL, -ELOOP, "through a symlink to /etc" },
	{ "link_etc/new", OP_WRITE | OP_CREATE, -ELOOP, "create in /etc" },
	{ "link_up", OP_NOT_ROOT | OP_LIST, -ELOOP, "symlink to .." },
	{ "link_up/outside/secret", OP_ALL, -ELOOP, "through a symlink to .." },
	{ "link_up/outside/new", OP_WRITE | OP_CREATE, -ELOOP,
	  "create through a symlink to .." },
	{ "link_out/secret", OP_ALL, -ELOOP, "through a symlink to outside" },
	{ "link_out/new", OP_WRITE | OP_CREATE, -ELOOP,
	  "create through a symlink to outside" },
	{ "link_out/sub/new", OP_WRITE | OP_CREATE, -ELOOP,
	  "mkdir through a symlink to outside" },
	{ "link_secret", OP_NOT_ROOT | OP_LIST, -ELOOP,
	  "final symlink to an outside file" },
	{ "a/deep_up/secret", OP_ALL, -ELOOP, "nested symlink to outside" },
	{ "a/deep_up/new", OP_WRITE | OP_CREATE, -ELOOP,
	  "create through a nested symlink" },
	{ "link_in/f", OP_ALL, -ELOOP, "intermediate symlink inside the share" },
	{ "link_in/new", OP_WRITE | OP_CREATE, -ELOOP,
	  "create through an inside symlink" },
	{ "link_in/sub/new", OP_WRITE | OP_CREATE, -ELOOP,
	  "mkdir through an inside symlink" },
	{ "link_file", OP_NOT_ROOT | OP_LIST, -ELOOP,
	  "final symlink to an inside file" },
	{ "link_dangling", OP_NOT_ROOT, -ELOOP, "dangling symlink" },
	{ "link_dangling/x", OP_ALL, -ELOOP, "through a dangling symlink" },
	{ "link_dangling/x/y", OP_WRITE, -ELOOP,
	  "mkdir through a dangling symlink" },

	{ "a/f/x", OP_ALL, -ENOTDIR, "file as a directory" },
	{ "a/f/x/y", OP_WRITE, -ENOTDIR, "mkdir below a file" },
	{ "a", OP_READ | OP_WRITE | OP_CREATE, -EISDIR, "directory as a file" },
	{ "a/f", OP_LIST, -ENOTDIR, "file as a directory to list" },
	{ "fifo", OP_READ | OP_WRITE | OP_CREATE, -EPERM, "FIFO" },
	{ "missing/x", OP_READ | OP_DELETE | OP_STAT | OP_LIST, -ENOENT,
	  "missing parent" },
	{ "a/f", OP_CREATE, -EEXIST, "existing file without overwrite" },
};

static void hostile_init(void)
{
	size_t i;

	memset(long_comp, 'c', NAME_MAX + 1);
	long_comp[NAME_MAX + 1] = '\0';
	memcpy(long_in_dir, "a/", 2);
	memcpy(long_in_dir + 2, long_comp, NAME_MAX + 2);
	for (i = 0; i < PATH_MAX + 1; i++)
		long_path[i] = i % 2 ? '/' : 'p';
	long_path[PATH_MAX + 1] = '\0';
	for (i = 0; i < PATH_MAX; i++)
		max_path[i] = i % 2 ? '/' : 'p';
	/* The last component must not be empty: end on a name byte. */
	max_path[PATH_MAX - 1] = 'p';
	max_path[PATH_MAX] = '\0';
	cr_assert_eq(strlen(long_comp), 256);
	cr_assert_eq(strlen(long_path), 4097);
	cr_assert_eq(strlen(max_path), 4096);
}

static const char *op_name(unsigned op)
{
	switch (op) {
	case OP_READ: return "read";
	case OP_WRITE: return "write";
	case OP_CREATE: return "create";
	case OP_DELETE: return "delete";
	case OP_STAT: return "stat";
	default: return "list";
	}
}

/* An upload that is let through is completed, so an escape shows. */
static int try_upload(const char *path, bool overwrite)
{
	struct storage_upload up;
	int r;

	r = storage_upload_begin(root_fd, path, 6, 0644, overwrite, &nolim, &up);
	if (r < 0)
		return r;
	r = storage_upload_write(&up, "PWNED\n", 6);
	if (r < 0) {
		storage_upload_abort(&up);
		return r;
	}
	return storage_upload_commit(&up, overwrite, false, NULL, NULL);
}

static int run_op(unsigned op, const char *path)
{
	struct stat st;
	int fd;

	switch (op) {
	case OP_READ:
		fd = storage_open_file(root_fd, path, &st);
		break;
	case OP_WRITE:
		return try_upload(path, true);
	case OP_CREATE:
		return try_upload(path, false);
	case OP_DELETE:
		return storage_delete(root_fd, path, false);
	case OP_STAT:
		return storage_stat(root_fd, path, &st);
	default:
		fd = storage_open_dir(root_fd, path);
		break;
	}
	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : 0;
}

Test(hostile, table_has_enough_paths)
{
	cr_assert_geq(sizeof(hostile) / sizeof(hostile[0]), 40);
}

Test(hostile, nothing_escapes_or_changes, .init = setup, .fini = teardown)
{
	size_t runs = 0;

	hostile_init();
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		const struct hostile *h = &hostile[i];

		for (unsigned op = 1; op <= OP_LIST; op <<= 1) {
			char *out_before, *share_before, *out_after, *share_after;
			int r;

			if (!(h->ops & op))
				continue;
			out_before = snapshot(outside);
			share_before = snapshot(share);
			r = run_op(op, h->path);
			out_after = snapshot(outside);
			share_after = snapshot(share);
			cr_expect_eq(r, h->err, "#%zu %s (%s): got %d (%s), want %d",
				     i, h->what, op_name(op), r, strerror(-r),
				     h->err);
			cr_expect_str_eq(out_after, out_before,
					 "#%zu %s (%s) touched outside", i,
					 h->what, op_name(op));
			cr_expect_str_eq(share_after, share_before,
					 "#%zu %s (%s) changed the share", i,
					 h->what, op_name(op));
			free(out_before);
			free(share_before);
			free(out_after);
			free(share_after);
			runs++;
		}
	}
	expect_content("a/f", "abc");
	cr_expect_geq(runs, 200);
}

/* Below storage_check_path, the kernel alone must still hold the line. */
Test(hostile, openat2_refuses_without_the_check, .init = setup,
     .fini = teardown)
{
	static const struct {
		const char *path;
		int err;
	} raw[] = {
		{ "../outside/secret", -EXDEV },
		{ "a/../../outside/secret", -EXDEV },
		{ "..", -EXDEV },
		{ "/etc/passwd", -EXDEV },
		{ "/proc/self/root/etc/passwd", -EXDEV },
		{ "link_etc/passwd", -ELOOP },
		{ "link_up/outside/secret", -ELOOP },
		{ "link_out/secret", -ELOOP },
		{ "link_secret", -ELOOP },
		{ "a/deep_up/secret", -ELOOP },
		{ "link_in/f", -ELOOP },
		{ "link_file", -ELOOP },
	};
	struct stat st;
	int fd;

	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		fd = storage_openat2(root_fd, raw[i].path, O_RDONLY);
		cr_expect_eq(fd, raw[i].err, "%s: got %d", raw[i].path, fd);
		if (fd >= 0)
			close(fd);
	}
	/* ".." that stays beneath the root is the kernel's to allow. */
	fd = storage_openat2(root_fd, "a/../a/f", O_RDONLY);
	cr_expect(fd >= 0, "a/../a/f: %d", fd);
	if (fd >= 0)
		close(fd);
	/* O_PATH|O_NOFOLLOW opens a final symlink itself (what STAT uses). */
	fd = storage_openat2(root_fd, "link_etc", O_PATH | O_NOFOLLOW);
	cr_assert(fd >= 0, "link_etc O_PATH: %d", fd);
	cr_expect_eq(fstat(fd, &st), 0);
	cr_expect(S_ISLNK(st.st_mode));
	cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

/* A hard link to an outside file cannot be told apart from any other
 * file: only someone with write access to both places can make one, and
 * it is served like a file of the share.  What storage does guarantee is
 * that replacing it never writes into the outside inode. */
Test(hostile, hardlink_overwrite_leaves_outside_inode, .init = setup,
     .fini = teardown)
{
	char src[PATH_MAX], dst[PATH_MAX];
	struct storage_upload up;
	struct stat st;
	int fd;

	xpath(src, sizeof(src), outside, "secret");
	xpath(dst, sizeof(dst), share, "hl");
	cr_assert_eq(link(src, dst), 0);
	fd = storage_open_file(root_fd, "hl", &st);
	cr_expect(fd >= 0, "a hard link is an ordinary file: %d", fd);
	if (fd >= 0)
		close(fd);
	cr_assert_eq(storage_upload_begin(root_fd, "hl", 3, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "new", 3), 0);
	cr_assert_eq(storage_upload_commit(&up, true, false, NULL, NULL), 0);
	expect_content("hl", "new");
	fd = open(src, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	{
		char buf[16] = { 0 };

		cr_expect_eq(read(fd, buf, sizeof(buf) - 1), 6);
		cr_expect_str_eq(buf, "secret");
	}
	cr_expect_eq(fstat(fd, &st), 0);
	cr_expect_eq(st.st_nlink, 1);
	close(fd);
}

/* --- uploads -------------------------------------------------------------- */

static void fill_pattern(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 7 + 3) & 0xff);
}

static void upload_and_check(const char *rel, size_t size)
{
	uint8_t *data = malloc(size ? size : 1);
	struct storage_upload up;
	size_t off = 0, got_len = 0;
	char *got;

	cr_assert_not_null(data);
	fill_pattern(data, size);
	cr_assert_eq(storage_upload_begin(root_fd, rel, size, 0644, false, &nolim, &up),
		     0);
	cr_expect_not(exists(rel), "visible before commit");
	while (off < size) {
		size_t n = size - off < 65536 ? size - off : 65536;

		cr_assert_eq(storage_upload_write(&up, data + off, n), 0);
		off += n;
	}
	cr_assert_eq(storage_upload_commit(&up, false, true, NULL, NULL), 0);
	cr_expect_null(up.name, "commit releases the upload");
	got = slurp(rel, &got_len);
	cr_assert_not_null(got);
	cr_assert_eq(got_len, size);
	cr_expect_eq(memcmp(got, data, size), 0);
	free(got);
	free(data);
}

Test(upload, roundtrip_empty, .init = setup, .fini = teardown)
{
	upload_and_check("empty", 0);
}

Test(upload, roundtrip_one_byte, .init = setup, .fini = teardown)
{
	upload_and_check("one", 1);
}

Test(upload, roundtrip_one_mib, .init = setup, .fini = teardown)
{
	upload_and_check("a/mib", 1 << 20);
	cr_expect_eq(count_entries("a"), 3);
}

Test(upload, names_with_spaces_and_utf8, .init = setup, .fini = teardown)
{
	upload_and_check("with space", 5);
	upload_and_check("\303\274nic\303\266de \342\202\254", 5);
	upload_and_check("...", 5);
	upload_and_check("sp ace/d\303\256r/f", 5);
}

Test(upload, creates_missing_parents, .init = setup, .fini = teardown)
{
	char p[PATH_MAX];
	struct stat st;

	upload_and_check("x/y/z/f", 10);
	xpath(p, sizeof(p), share, "x/y");
	cr_assert_eq(lstat(p, &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0755);
	/* Existing parents are reused. */
	upload_and_check("x/y/g", 1);
	cr_expect_eq(count_entries("x/y"), 2);
}

static struct stat stat_share(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	xpath(p, sizeof(p), share, rel);
	cr_assert_eq(lstat(p, &st), 0, "%s: %s", rel, strerror(errno));
	return st;
}

Test(upload, mode_drops_special_bits, .init = setup, .fini = teardown)
{
	struct storage_upload up;

	cr_assert_eq(storage_upload_begin(root_fd, "m1", 0, 07755, false, &nolim, &up),
		     0);
	cr_assert_eq(storage_upload_commit(&up, false, false, NULL, NULL), 0);
	cr_expect_eq(stat_share("m1").st_mode & 07777, 0755);
	cr_assert_eq(storage_upload_begin(root_fd, "m2", 0, 0666, false, &nolim, &up),
		     0);
	cr_assert_eq(storage_upload_commit(&up, false, false, NULL, NULL), 0);
	cr_expect_eq(stat_share("m2").st_mode & 07777, 0644, "umask applies");
	cr_assert_eq(storage_upload_begin(root_fd, "m3", 0, 0600, false, &nolim, &up),
		     0);
	cr_assert_eq(storage_upload_commit(&up, false, false, NULL, NULL), 0);
	cr_expect_eq(stat_share("m3").st_mode & 07777, 0600);
}

Test(upload, mtime_applied, .init = setup, .fini = teardown)
{
	const struct timespec mt = { .tv_sec = 1234567890, .tv_nsec = 123456789 };
	struct storage_upload up;
	struct stat st;

	cr_assert_eq(storage_upload_begin(root_fd, "t", 2, 0644, false, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "hi", 2), 0);
	cr_assert_eq(storage_upload_commit(&up, false, false, &mt, NULL), 0);
	st = stat_share("t");
	cr_expect_eq(st.st_mtim.tv_sec, 1234567890);
	cr_expect_eq(st.st_mtim.tv_nsec, 123456789);
	cr_expect_gt(st.st_atim.tv_sec, 1234567890, "atime left alone");
}

static void hex_to_digest(enum digest_alg alg, const char *hex,
			  struct digest_value *d)
{
	size_t n = strlen(hex) / 2;

	cr_assert_leq(n, sizeof(d->bytes));
	memset(d, 0, sizeof(*d));
	d->alg = alg;
	d->len = n;
	for (size_t i = 0; i < n; i++) {
		unsigned byte;

		cr_assert_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
		d->bytes[i] = (uint8_t)byte;
	}
}

static void expect_xattr(const char *rel, const char *name, const char *want)
{
	char p[PATH_MAX], got[256];
	ssize_t n;

	xpath(p, sizeof(p), share, rel);
	n = lgetxattr(p, name, got, sizeof(got) - 1);
	cr_assert(n > 0, "%s %s: %s", rel, name, strerror(errno));
	got[n] = '\0';
	cr_expect_str_eq(got, want);
}

Test(upload, digest_xattr_written_at_commit, .init = setup, .fini = teardown)
{
	const struct timespec mt = { .tv_sec = 1700000000, .tv_nsec = 42 };
	struct digest_value d;
	struct storage_upload up;
	char want[256];

	hex_to_digest(DIGEST_SHA256, SHA256_ABC, &d);
	cr_assert_eq(storage_upload_begin(root_fd, "x", 3, 0644, false, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "abc", 3), 0);
	cr_assert_eq(storage_upload_commit(&up, false, true, &mt, &d), 0);
	snprintf(want, sizeof(want), "sha256:" SHA256_ABC " 3 1700000000.000000042 %ju",
		 (uintmax_t)stat_share("x").st_ino);
	expect_xattr("x", "user.tcpfiled.sha256", want);
}

Test(upload, overwrite_replaces_atomically, .init = setup, .fini = teardown)
{
	struct storage_upload up;
	struct stat old_st, new_st;
	char buf[8] = { 0 };
	int old_fd;

	old_st = stat_share("a/f");
	old_fd = storage_open_file(root_fd, "a/f", &old_st);
	cr_assert(old_fd >= 0);
	cr_assert_eq(storage_upload_begin(root_fd, "a/f", 5, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "fresh", 5), 0);
	expect_content("a/f", "abc");
	cr_assert_eq(storage_upload_commit(&up, true, true, NULL, NULL), 0);
	expect_content("a/f", "fresh");
	new_st = stat_share("a/f");
	cr_expect_neq(new_st.st_ino, old_st.st_ino, "replaced, not rewritten");
	cr_expect_eq(pread(old_fd, buf, sizeof(buf) - 1, 0), 3);
	cr_expect_str_eq(buf, "abc", "readers of the old file are unaffected");
	close(old_fd);
	cr_expect_eq(count_entries("a"), 2, "no temporary name left");
	cr_expect_eq(count_entries(".tcpfiled"), 0, "no name in the state dir");
}

Test(upload, exclusive_refuses_existing_early, .init = setup, .fini = teardown)
{
	struct storage_upload up;

	cr_expect_eq(storage_upload_begin(root_fd, "a/f", 1, 0644, false, &nolim, &up),
		     -EEXIST);
	cr_expect_null(up.name);
	storage_upload_abort(&up);
	expect_content("a/f", "abc");
	cr_expect_eq(count_entries("a"), 2);
}

Test(upload, exclusive_race_loser_gets_eexist, .init = setup, .fini = teardown)
{
	struct storage_upload one, two;

	cr_assert_eq(storage_upload_begin(root_fd, "n", 3, 0644, false, &nolim, &one), 0);
	cr_assert_eq(storage_upload_begin(root_fd, "n", 3, 0644, false, &nolim, &two), 0);
	cr_assert_eq(storage_upload_write(&one, "one", 3), 0);
	cr_assert_eq(storage_upload_write(&two, "two", 3), 0);
	cr_expect_eq(storage_upload_commit(&one, false, false, NULL, NULL), 0);
	cr_expect_eq(storage_upload_commit(&two, false, false, NULL, NULL),
		     -EEXIST);
	cr_expect_null(two.name);
	expect_content("n", "one");
}

Test(upload, short_write_is_eio_and_invisible, .init = setup, .fini = teardown)
{
	struct storage_upload up;
	int before = count_entries("");

	cr_assert_eq(storage_upload_begin(root_fd, "s", 10, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "12345", 5), 0);
	cr_expect_eq(storage_upload_commit(&up, true, false, NULL, NULL), -EIO);
	cr_expect_null(up.name);
	cr_expect_not(exists("s"));
	cr_expect_eq(count_entries(""), before);
	cr_expect(state_is_empty());
}

Test(upload, abort_leaves_no_litter, .init = setup, .fini = teardown)
{
	struct storage_upload up, zero;
	int before = count_entries("a");

	cr_assert_eq(storage_upload_begin(root_fd, "a/f", 4, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "ab", 2), 0);
	storage_upload_abort(&up);
	cr_expect_eq(count_entries("a"), before);
	expect_content("a/f", "abc");
	storage_upload_abort(&up);
	cr_expect_eq(storage_upload_write(&up, "c", 1), -EBADF);
	cr_expect_eq(storage_upload_commit(&up, true, false, NULL, NULL), -EBADF);
	/* A zeroed upload is inactive: aborting it must not close fd 0. */
	memset(&zero, 0, sizeof(zero));
	storage_upload_abort(&zero);
	cr_expect_eq(zero.fd, 0);
	cr_expect_eq(zero.dir_fd, 0);
}

Test(upload, write_past_size_is_efbig, .init = setup, .fini = teardown)
{
	struct storage_upload up;

	cr_assert_eq(storage_upload_begin(root_fd, "p", 2, 0644, false, &nolim, &up), 0);
	cr_expect_eq(storage_upload_write(&up, "abc", 3), -EFBIG);
	cr_assert_eq(storage_upload_write(&up, "ab", 2), 0);
	cr_expect_eq(storage_upload_write(&up, "c", 1), -EFBIG);
	cr_expect_eq(storage_upload_commit(&up, false, false, NULL, NULL), 0);
	expect_content("p", "ab");
}

Test(upload, impossible_sizes_refused, .init = setup, .fini = teardown)
{
	struct storage_upload up;
	int before = count_entries("");
	int r;

	cr_expect_eq(storage_upload_begin(root_fd, "h", UINT64_MAX - 1, 0644, false, &nolim,
					  &up), -EFBIG);
	/* Beyond ext4's file size limit: EFBIG; a file system without one
	 * runs out of space instead. */
	r = storage_upload_begin(root_fd, "h", (uint64_t)INT64_MAX, 0644, false, &nolim,
				 &up);
	cr_expect(r == -EFBIG || r == -ENOSPC, "got %d", r);
	cr_expect_eq(count_entries(""), before);
}

Test(upload, directory_taking_the_name_before_commit, .init = setup,
     .fini = teardown)
{
	struct storage_upload up;
	int before = count_entries("");

	cr_assert_eq(storage_upload_begin(root_fd, "d", 1, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "x", 1), 0);
	put_dir("d");
	cr_expect_eq(storage_upload_commit(&up, true, false, NULL, NULL),
		     -EISDIR);
	cr_expect(S_ISDIR(stat_share("d").st_mode));
	cr_expect_eq(count_entries("d"), 0);
	/* d itself, and the state directory the attempt created. */
	cr_expect_eq(count_entries(""), before + 1, "no temporary name left");
	cr_expect_eq(count_entries(".tcpfiled"), 0, "no name in the state dir");

	cr_assert_eq(storage_upload_begin(root_fd, "e", 1, 0644, false, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "x", 1), 0);
	put_dir("e");
	cr_expect_eq(storage_upload_commit(&up, false, false, NULL, NULL),
		     -EEXIST);
	cr_expect_eq(count_entries(""), before + 2);
}

static void read_exact(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	cr_assert_eq(n, (ssize_t)len, "read: %zd", n);
}

/* A worker killed mid-body leaves the old file and no debris. */
Test(upload, crash_keeps_old_content, .init = setup, .fini = teardown)
{
	int ready[2], hold[2], status;
	int before = count_entries("a");
	char c;
	pid_t pid;

	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(hold, O_CLOEXEC), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct storage_upload up;

		close(ready[0]);
		close(hold[1]);
		if (storage_upload_begin(root_fd, "a/f", 8, 0644, true, &nolim, &up) < 0 ||
		    storage_upload_write(&up, "NEWN", 4) < 0 ||
		    write(ready[1], "r", 1) != 1)
			_exit(1);
		/* Blocks until killed: the parent never writes. */
		(void)!read(hold[0], &c, 1);
		_exit(2);
	}
	close(ready[1]);
	close(hold[0]);
	read_exact(ready[0], &c, 1);
	expect_content("a/f", "abc");
	cr_expect_eq(count_entries("a"), before);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	expect_content("a/f", "abc");
	cr_expect_eq(count_entries("a"), before);
	close(ready[0]);
	close(hold[1]);
}

struct enospc_result {
	int skipped;     /* errno of the step that was not permitted */
	int begin;
	int small;
	int entries;
};

static void enospc_child(const char *mnt, int out_fd)
{
	struct enospc_result res = { 0 };
	struct storage_upload up;
	DIR *d;
	int fd;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") < 0) {
		res.skipped = errno;
		goto out;
	}
	fd = storage_open_root(mnt);
	if (fd < 0) {
		res.skipped = -fd;
		goto out;
	}
	res.begin = storage_upload_begin(fd, "big", 2 << 20, 0644, true, &nolim, &up);
	if (res.begin == 0)
		storage_upload_abort(&up);
	res.small = storage_upload_begin(fd, "small", 4096, 0644, true, &nolim, &up);
	if (res.small == 0)
		storage_upload_abort(&up);
	d = fdopendir(storage_open_dir(fd, ""));
	res.entries = -1;
	if (d) {
		res.entries = 0;
		while (readdir(d))
			res.entries++;
		closedir(d);
	}
	close(fd);
out:
	if (write(out_fd, &res, sizeof(res)) != sizeof(res))
		_exit(1);
	_exit(0);
}

Test(upload, enospc_reported_at_begin, .init = setup, .fini = teardown)
{
	struct enospc_result res;
	char mnt[PATH_MAX];
	int pfd[2], status;
	pid_t pid;

	xpath(mnt, sizeof(mnt), base, "tmpfs");
	cr_assert_eq(mkdir(mnt, 0700), 0);
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		enospc_child(mnt, pfd[1]);
	}
	close(pfd[1]);
	read_exact(pfd[0], &res, sizeof(res));
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (res.skipped)
		cr_skip_test("cannot mount a small tmpfs here: %s",
			     strerror(res.skipped));
	cr_expect_eq(res.begin, -ENOSPC, "got %d", res.begin);
	cr_expect_eq(res.small, 0, "the file system itself works");
	cr_expect_eq(res.entries, 3, "only ., .. and the state directory are left");
}

/* --- the digest cache ----------------------------------------------------- */

static void set_mtime(const char *rel, time_t sec, long nsec)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { sec, nsec } };
	char p[PATH_MAX];

	xpath(p, sizeof(p), share, rel);
	cr_assert_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void set_xattr(const char *rel, const char *name, const char *value)
{
	char p[PATH_MAX];

	xpath(p, sizeof(p), share, rel);
	cr_assert_eq(lsetxattr(p, name, value, strlen(value), 0), 0, "%s",
		     strerror(errno));
}

static void digest_of(const char *rel, enum digest_alg alg,
		      struct digest_value *out)
{
	struct stat st;
	int fd = storage_open_file(root_fd, rel, &st), r;

	cr_assert(fd >= 0, "%s: %d", rel, fd);
	/* As the session does on a writable share. */
	r = storage_digest(fd, &st, alg, out);
	cr_assert(r == 0 || r == 1, "storage_digest: %d", r);
	if (r == 1)
		cr_assert_eq(storage_digest_store(fd, &st, out), 0);
	close(fd);
}

static void expect_digest(const struct digest_value *got, enum digest_alg alg,
			  const char *hex)
{
	struct digest_value want;

	hex_to_digest(alg, hex, &want);
	cr_expect_eq(got->alg, want.alg);
	cr_expect_eq(got->len, want.len);
	cr_expect_eq(memcmp(got->bytes, want.bytes, want.len), 0,
		     "digest differs from %s", hex);
}

#define ZEROS64 \
	"0000000000000000000000000000000000000000000000000000000000000000"

Test(digest, computed_then_stored, .init = setup, .fini = teardown)
{
	struct digest_value d;
	char want[256];

	set_mtime("a/f", 1000000000, 5);
	digest_of("a/f", DIGEST_SHA256, &d);
	expect_digest(&d, DIGEST_SHA256, SHA256_ABC);
	snprintf(want, sizeof(want), "sha256:" SHA256_ABC " 3 1000000000.000000005 %ju",
		 (uintmax_t)stat_share("a/f").st_ino);
	expect_xattr("a/f", "user.tcpfiled.sha256", want);
	cr_expect_eq(stat_share("a/f").st_mtim.tv_sec, 1000000000,
		     "caching leaves mtime alone");
}

Test(digest, cache_used_when_metadata_matches, .init = setup, .fini = teardown)
{
	struct digest_value d;
	char forged[256];
	struct stat st;

	set_mtime("a/f", 1000000000, 5);
	st = stat_share("a/f");
	snprintf(forged, sizeof(forged), "sha256:" ZEROS64 " 3 1000000000.000000005 %ju",
		 (uintmax_t)st.st_ino);
	set_xattr("a/f", "user.tcpfiled.sha256", forged);
	digest_of("a/f", DIGEST_SHA256, &d);
	expect_digest(&d, DIGEST_SHA256, ZEROS64);
}

Test(digest, recomputed_after_mtime_change, .init = setup, .fini = teardown)
{
	struct digest_value d;
	char forged[256], want[256];
	struct stat st;

	set_mtime("a/f", 1000000000, 5);
	st = stat_share("a/f");
	snprintf(forged, sizeof(forged), "sha256:" ZEROS64 " 3 1000000000.000000005 %ju",
		 (uintmax_t)st.st_ino);
	set_xattr("a/f", "user.tcpfiled.sha256", forged);
	set_mtime("a/f", 1000000000, 6);
	digest_of("a/f", DIGEST_SHA256, &d);
	expect_digest(&d, DIGEST_SHA256, SHA256_ABC);
	snprintf(want, sizeof(want), "sha256:" SHA256_ABC " 3 1000000000.000000006 %ju",
		 (uintmax_t)st.st_ino);
	expect_xattr("a/f", "user.tcpfiled.sha256", want);
}

Test(digest, stale_or_garbled_cache_ignored, .init = setup, .fini = teardown)
{
	static const char *const bad[] = {
		"sha256:" ZEROS64 " 4 1000000000.000000005 %ju",   /* size */
		"sha256:" ZEROS64 " 3 1000000000.000000005 1%ju",  /* inode */
		"sha256:" ZEROS64 " 3 1000000000.5 %ju",           /* format */
		"sha256:" ZEROS64 " 3 1000000000.000000005 %ju ",  /* trailer */
		"xxh3-128:" XXH3_EMPTY " 3 1000000000.000000005 %ju", /* alg */
		"sha256:00 3 1000000000.000000005 %ju",            /* digest */
		"%ju",
		"",
	};
	struct digest_value d;
	char forged[256];
	uintmax_t ino;

	set_mtime("a/f", 1000000000, 5);
	ino = (uintmax_t)stat_share("a/f").st_ino;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(forged, sizeof(forged), bad[i], ino);
#pragma GCC diagnostic pop
		if (forged[0])
			set_xattr("a/f", "user.tcpfiled.sha256", forged);
		else
			set_xattr("a/f", "user.tcpfiled.sha256", " ");
		digest_of("a/f", DIGEST_SHA256, &d);
		expect_digest(&d, DIGEST_SHA256, SHA256_ABC);
	}
}

Test(digest, per_algorithm_names, .init = setup, .fini = teardown)
{
	struct digest_value d;
	char want[256];

	put_file(share, "empty", "");
	set_mtime("empty", 1500000000, 0);
	digest_of("empty", DIGEST_XXH3_128, &d);
	expect_digest(&d, DIGEST_XXH3_128, XXH3_EMPTY);
	snprintf(want, sizeof(want), "xxh3-128:" XXH3_EMPTY " 0 1500000000.000000000 %ju",
		 (uintmax_t)stat_share("empty").st_ino);
	expect_xattr("empty", "user.tcpfiled.xxh3-128", want);
	/* Each algorithm has its own entry; a hit for one is no hit for the
	 * other. */
	digest_of("empty", DIGEST_SHA256, &d);
	cr_expect_eq(d.alg, DIGEST_SHA256);
	expect_xattr("empty", "user.tcpfiled.xxh3-128", want);
}

/* --- open, stat, list, delete ---------------------------------------------- */

Test(open, file_fd_is_plain_and_cloexec, .init = setup, .fini = teardown)
{
	struct stat st;
	int fd = storage_open_file(root_fd, "a/f", &st);
	int fl;

	cr_assert(fd >= 0, "%d", fd);
	cr_expect(S_ISREG(st.st_mode));
	cr_expect_eq(st.st_size, 3);
	cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	fl = fcntl(fd, F_GETFL);
	cr_expect_eq(fl & O_ACCMODE, O_RDONLY);
	cr_expect_not(fl & O_NONBLOCK);
	close(fd);
}

Test(open, dir_root_and_subdir, .init = setup, .fini = teardown)
{
	struct stat st;
	int fd = storage_open_dir(root_fd, "");

	cr_assert(fd >= 0, "%d", fd);
	cr_expect_eq(fstat(fd, &st), 0);
	cr_expect_eq(st.st_ino, stat_share("").st_ino);
	cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = storage_open_dir(root_fd, "a");
	cr_assert(fd >= 0, "%d", fd);
	cr_expect_eq(fstat(fd, &st), 0);
	cr_expect_eq(st.st_ino, stat_share("a").st_ino);
	close(fd);
}

Test(stat, root_file_and_final_symlink, .init = setup, .fini = teardown)
{
	struct stat st;

	cr_assert_eq(storage_stat(root_fd, "", &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_ino, stat_share("").st_ino);
	cr_assert_eq(storage_stat(root_fd, "a/f", &st), 0);
	cr_expect(S_ISREG(st.st_mode));
	cr_expect_eq(st.st_size, 3);
	cr_assert_eq(storage_stat(root_fd, "link_etc", &st), 0);
	cr_expect(S_ISLNK(st.st_mode), "a final symlink is reported, not followed");
	cr_assert_eq(storage_stat(root_fd, "link_secret", &st), 0);
	cr_expect(S_ISLNK(st.st_mode));
	cr_expect_eq(storage_stat(root_fd, "nope", &st), -ENOENT);
}

struct collected {
	char names[16][64];
	char types[16];
	uint64_t sizes[16];
	int n;
	int stop_after;
};

/* LIST is unsorted: the tests sort what they collected. */
static void collected_sort(struct collected *c)
{
	for (int i = 1; i < c->n; i++) {
		for (int j = i; j > 0 && strcmp(c->names[j - 1], c->names[j]) > 0; j--) {
			char name[64], type = c->types[j];
			uint64_t size = c->sizes[j];

			memcpy(name, c->names[j], sizeof(name));
			memcpy(c->names[j], c->names[j - 1], sizeof(name));
			memcpy(c->names[j - 1], name, sizeof(name));
			c->types[j] = c->types[j - 1];
			c->types[j - 1] = type;
			c->sizes[j] = c->sizes[j - 1];
			c->sizes[j - 1] = size;
		}
	}
}

static int collect(const struct storage_entry *e, void *arg)
{
	struct collected *c = arg;

	if (c->n >= 16)
		return -E2BIG;
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", e->name);
	c->types[c->n] = e->type;
	c->sizes[c->n] = e->size;
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

Test(list, every_entry_once_and_hides_reserved, .init = setup, .fini = teardown)
{
	static const char *const want[] = {
		".hidden", "C", "Z", "a", "b", "dir", "sym", "\xc3\xa9",
	};
	struct collected c = { .n = 0 };

	put_dir("l");
	put_file(share, "l/b", "bb");
	put_file(share, "l/a", "a");
	put_file(share, "l/C", "ccc");
	put_file(share, "l/\xc3\xa9", "eeee");
	put_file(share, "l/Z", "");
	put_file(share, "l/.hidden", "h");
	put_file(share, "l/.tcpfiled.tmp.0011223344556677", "tmp");
	put_file(share, "l/.tcpfiled.other", "x");
	put_dir("l/dir");
	put_link("a", "l/sym");
	put_file(share, "l/.TCPFILED.other", "x");
	put_file(share, "l/.TcpFiled", "x");
	cr_assert_eq(storage_list(storage_open_dir(root_fd, "l"), collect, &c), 0);
	collected_sort(&c);
	cr_assert_eq(c.n, 8);
	for (int i = 0; i < c.n; i++)
		cr_expect_str_eq(c.names[i], want[i], "entry %d", i);
	cr_expect_str_eq(c.types, "fffffdlf");
	cr_expect_eq(c.sizes[1], 3);
	cr_expect_eq(c.sizes[7], 4);
}

Test(list, root_types, .init = setup, .fini = teardown)
{
	struct collected c = { .n = 0 };

	cr_assert_eq(storage_list(storage_open_dir(root_fd, ""), collect, &c), 0);
	collected_sort(&c);
	cr_assert_eq(c.n, 9);
	cr_expect_str_eq(c.names[0], "a");
	cr_expect_eq(c.types[0], 'd');
	cr_expect_str_eq(c.names[1], "fifo");
	cr_expect_eq(c.types[1], 'o');
	cr_expect_str_eq(c.names[2], "link_dangling");
	cr_expect_eq(c.types[2], 'l');
}

Test(list, callback_stops_the_walk, .init = setup, .fini = teardown)
{
	struct collected c = { .n = 0, .stop_after = 2 };

	cr_expect_eq(storage_list(storage_open_dir(root_fd, ""), collect, &c), 7);
	cr_expect_eq(c.n, 2);
}

Test(list, bad_fds_are_consumed, .init = setup, .fini = teardown)
{
	struct collected c = { .n = 0 };
	struct stat st;
	int fd;

	cr_expect_eq(storage_list(-EBADF, collect, &c), -EBADF);
	fd = storage_open_file(root_fd, "a/f", &st);
	cr_assert(fd >= 0);
	cr_expect_eq(storage_list(fd, collect, &c), -ENOTDIR);
	cr_expect_eq(fcntl(fd, F_GETFD), -1, "the fd was closed");
	cr_expect_eq(c.n, 0);
}

Test(delete, file_and_empty_dir, .init = setup, .fini = teardown)
{
	cr_expect_eq(storage_delete(root_fd, "a/f", true), 0);
	cr_expect_not(exists("a/f"));
	put_dir("empty");
	cr_expect_eq(storage_delete(root_fd, "empty", false), 0);
	cr_expect_not(exists("empty"));
	cr_expect_eq(storage_delete(root_fd, "empty", false), -ENOENT);
}

Test(delete, refuses_non_empty_dir_and_root, .init = setup, .fini = teardown)
{
	struct stat st;

	cr_expect_eq(storage_delete(root_fd, "a", true), -ENOTEMPTY);
	expect_content("a/f", "abc");
	cr_expect_eq(storage_delete(root_fd, "", true), -EPERM);
	cr_expect_eq(stat(share, &st), 0);
	cr_expect_eq(storage_delete(root_fd, "link_in", false), -ELOOP);
	cr_expect(exists("link_in"), "symlinks are never removed");
}

/* --- the state directory and storage_sweep ------------------------------- */

static int replace_af(const char *content)
{
	struct storage_upload up;
	size_t n = strlen(content);
	int r;

	cr_assert_eq(storage_upload_begin(root_fd, "a/f", n, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, content, n), 0);
	r = storage_upload_commit(&up, true, false, NULL, NULL);
	cr_expect_null(up.name, "commit releases the upload");
	return r;
}

Test(state, replace_leaves_no_temporary_name, .init = setup, .fini = teardown)
{
	struct storage_upload up;
	int before = count_entries("");
	struct stat st;

	cr_assert_eq(replace_af("new"), 0);
	expect_content("a/f", "new");
	put_file(share, "top", "old");
	cr_assert_eq(storage_upload_begin(root_fd, "top", 3, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "NEW", 3), 0);
	cr_assert_eq(storage_upload_commit(&up, true, true, NULL, NULL), 0);
	expect_content("top", "NEW");

	cr_expect_eq(count_entries("a"), 2, "a/f and a/deep_up only");
	cr_expect_eq(count_entries(".tcpfiled"), 0);
	cr_expect_eq(count_entries(""), before + 1, "top");
	st = stat_share(".tcpfiled");
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0700);
}

Test(state, every_upload_passes_through_state_dir, .init = setup,
     .fini = teardown)
{
	struct stat st;

	upload_and_check("fresh", 3);
	st = stat_share(".tcpfiled");
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0700);
	cr_expect(state_is_empty());
}

/* inotify shows the name between link and rename: it must be one that
 * storage_sweep(getpid()) would remove. */
Test(state, replace_names_carry_the_pid, .init = setup, .fini = teardown)
{
	char dir[PATH_MAX], want[32], created[NAME_MAX + 1] = "";
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool moved = false;
	ssize_t n;
	int ifd;

	put_state_dir();
	xpath(dir, sizeof(dir), share, ".tcpfiled");
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	cr_assert(ifd >= 0);
	cr_assert(inotify_add_watch(ifd, dir, IN_CREATE | IN_MOVED_FROM) >= 0);
	cr_assert_eq(replace_af("new"), 0);
	n = read(ifd, buf, sizeof(buf));
	cr_assert_gt(n, 0, "no inotify events: %s", strerror(errno));
	for (char *p = buf; p < buf + n;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;

		if (ev->mask & IN_CREATE)
			snprintf(created, sizeof(created), "%s", ev->name);
		if ((ev->mask & IN_MOVED_FROM) && strcmp(ev->name, created) == 0)
			moved = true;
		p += sizeof(*ev) + ev->len;
	}
	close(ifd);
	snprintf(want, sizeof(want), "%d.", (int)getpid());
	cr_expect_eq(strncmp(created, want, strlen(want)), 0, "name %s", created);
	cr_expect_eq(strlen(created), strlen(want) + 16, "name %s", created);
	cr_expect_eq(strspn(created + strlen(want), "0123456789abcdef"), 16,
		     "name %s", created);
	cr_expect(moved, "%s was renamed away", created);
	cr_expect_eq(count_entries(".tcpfiled"), 0);
	expect_content("a/f", "new");
}

/* Begins a replacement of a/f; returns what begin said (aborting). */
static int begin_af(void)
{
	struct storage_upload up;
	int r = storage_upload_begin(root_fd, "a/f", 3, 0644, true, &nolim, &up);

	if (r == 0)
		storage_upload_abort(&up);
	return r;
}

Test(state, planted_symlink_or_file_fails_cleanly, .init = setup,
     .fini = teardown)
{
	char *out_before = snapshot(outside), *out_after;
	char p[PATH_MAX];

	put_link("../outside", ".tcpfiled");
	cr_expect_eq(begin_af(), -ELOOP);
	expect_content("a/f", "abc");
	cr_expect_eq(count_entries("a"), 2, "no temporary name beside a/f");
	out_after = snapshot(outside);
	cr_expect_str_eq(out_after, out_before, "something appeared outside");
	free(out_after);

	xpath(p, sizeof(p), share, ".tcpfiled");
	cr_assert_eq(unlink(p), 0);
	put_file(share, ".tcpfiled", "not a directory");
	cr_expect_eq(begin_af(), -ENOTDIR);
	expect_content("a/f", "abc");
	expect_content(".tcpfiled", "not a directory");
	cr_expect_eq(count_entries("a"), 2);
	free(out_before);
}

struct xdev_result {
	int skipped;     /* errno of the step that was not permitted */
	int commit;
	int mnt_entries;
	int state_entries;
	char content[8];
};

static int xdev_count(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Runs in a child with its own mount namespace: no cr_assert here. */
static void xdev_child(const char *mnt, const char *state, int out_fd)
{
	struct xdev_result res = { 0 };
	struct storage_upload up;
	char f[PATH_MAX];
	int fd;

	if ((size_t)snprintf(f, sizeof(f), "%s/f", mnt) >= sizeof(f)) {
		res.skipped = ENAMETOOLONG;
		goto out;
	}
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") < 0) {
		res.skipped = errno;
		goto out;
	}
	fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "old", 3) != 3 || close(fd) < 0)
		_exit(1);
	/* Opened after the mount, or the root would not see it. */
	fd = storage_open_root(share);
	if (fd < 0)
		_exit(1);
	res.commit = storage_upload_begin(fd, "mnt/f", 3, 0644, true, &nolim, &up);
	if (res.commit == 0 && storage_upload_write(&up, "new", 3) == 0)
		res.commit = storage_upload_commit(&up, true, false, NULL, NULL);
	storage_upload_abort(&up);
	close(fd);
	fd = open(f, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, res.content, sizeof(res.content) - 1) < 0)
		_exit(1);
	close(fd);
	res.mnt_entries = xdev_count(mnt);
	res.state_entries = xdev_count(state);
out:
	if (write(out_fd, &res, sizeof(res)) != sizeof(res))
		_exit(1);
	_exit(0);
}

Test(state, other_file_system_falls_back_beside_target, .init = setup,
     .fini = teardown)
{
	char mnt[PATH_MAX], state[PATH_MAX];
	struct xdev_result res;
	int pfd[2], status;
	pid_t pid;

	put_dir("mnt");
	xpath(mnt, sizeof(mnt), share, "mnt");
	xpath(state, sizeof(state), share, ".tcpfiled");
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		xdev_child(mnt, state, pfd[1]);
	}
	close(pfd[1]);
	read_exact(pfd[0], &res, sizeof(res));
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (res.skipped)
		cr_skip_test("cannot mount a tmpfs here: %s",
			     strerror(res.skipped));
	cr_expect_eq(res.commit, 0, "got %d", res.commit);
	cr_expect_str_eq(res.content, "new");
	cr_expect_eq(res.mnt_entries, 1, "no temporary name beside the target");
	cr_expect(res.state_entries == 0 || res.state_entries == -ENOENT,
		  "state dir holds %d", res.state_entries);
}

static void put_state(const char *name)
{
	char rel[PATH_MAX];

	xpath(rel, sizeof(rel), ".tcpfiled", name);
	put_file(share, rel, "x");
}

static bool state_has(const char *name)
{
	char rel[PATH_MAX];

	xpath(rel, sizeof(rel), ".tcpfiled", name);
	return exists(rel);
}

/* Names storage_sweep must never touch, whatever the pid. */
static const char *const not_ours[] = {
	"111.0123456789ABCDEF", "111.0123456789abcde", "111.0123456789abcdef0",
	"111.0123456789abcdeg", ".111.0123456789abcdef", "x111.0123456789abcdef",
	"111_0123456789abcdef", ".0123456789abcdef", "111.", "111",
	"-1.0123456789abcdef", "keep",
};

Test(sweep, by_pid_then_all, .init = setup, .fini = teardown)
{
	static const char *const mine[] = {
		"111.0123456789abcdef", "111.fedcba9876543210",
	};
	static const char *const others[] = {
		"222.0123456789abcdef", "1111.0123456789abcdef",
		"11.0123456789abcdef",
	};
	char *out_before, *out_after;
	size_t i;

	put_state_dir();
	for (i = 0; i < 2; i++)
		put_state(mine[i]);
	for (i = 0; i < 3; i++)
		put_state(others[i]);
	for (i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++)
		put_state(not_ours[i]);
	put_link("../../outside/secret", ".tcpfiled/111.aaaaaaaaaaaaaaaa");
	put_link("../../outside", ".tcpfiled/222.bbbbbbbbbbbbbbbb");
	put_dir(".tcpfiled/111.cccccccccccccccc");
	put_state("111.cccccccccccccccc/111.dddddddddddddddd");
	out_before = snapshot(outside);

	cr_expect_eq(storage_sweep(root_fd, 111), 2);
	for (i = 0; i < 2; i++)
		cr_expect_not(state_has(mine[i]), "%s", mine[i]);
	for (i = 0; i < 3; i++)
		cr_expect(state_has(others[i]), "%s removed", others[i]);

	cr_expect_eq(storage_sweep(root_fd, 0), 3);
	for (i = 0; i < 3; i++)
		cr_expect_not(state_has(others[i]), "%s", others[i]);
	for (i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++)
		cr_expect(state_has(not_ours[i]), "%s removed", not_ours[i]);
	cr_expect(state_has("111.aaaaaaaaaaaaaaaa"), "symlink removed");
	cr_expect(state_has("222.bbbbbbbbbbbbbbbb"), "symlink removed");
	cr_expect(state_has("111.cccccccccccccccc/111.dddddddddddddddd"),
		  "swept into a subdirectory");
	cr_expect_eq(count_entries(".tcpfiled"),
		     (int)(sizeof(not_ours) / sizeof(not_ours[0])) + 3);
	cr_expect_eq(storage_sweep(root_fd, 0), 0, "nothing left to sweep");
	out_after = snapshot(outside);
	cr_expect_str_eq(out_after, out_before, "outside changed");
	free(out_before);
	free(out_after);
}

Test(sweep, missing_dir_is_fine, .init = setup, .fini = teardown)
{
	cr_expect_eq(storage_sweep(root_fd, 0), 0);
	cr_expect_eq(storage_sweep(root_fd, 4242), 0);
	cr_expect_not(exists(".tcpfiled"), "a sweep creates nothing");
	cr_expect_eq(storage_sweep(root_fd, -1), -EINVAL);
}

Test(sweep, planted_state_symlink_refused, .init = setup, .fini = teardown)
{
	char *out_before;
	char *out_after;

	put_file(outside, "1.0123456789abcdef", "victim");
	out_before = snapshot(outside);
	put_link("../outside", ".tcpfiled");
	cr_expect_eq(storage_sweep(root_fd, 0), -ELOOP);
	cr_expect_eq(storage_sweep(root_fd, 1), -ELOOP);
	out_after = snapshot(outside);
	cr_expect_str_eq(out_after, out_before, "outside changed");
	free(out_before);
	free(out_after);
}

Test(sweep, state_dir_hidden_from_list, .init = setup, .fini = teardown)
{
	struct collected c = { .n = 0 };

	cr_assert_eq(replace_af("new"), 0);
	cr_assert(exists(".tcpfiled"));
	cr_assert_eq(storage_list(storage_open_dir(root_fd, ""), collect, &c), 0);
	cr_expect_eq(c.n, 9, "the same entries as before the replacement");
	for (int i = 0; i < c.n; i++)
		cr_expect_str_neq(c.names[i], ".tcpfiled");
	cr_expect_eq(storage_open_dir(root_fd, ".tcpfiled"), -EINVAL);
}

/* --- protocol 2 storage: limits, contracts, group commit, crashes ---------- */

/* Runs fn in a child with its own mount namespace and a fresh tmpfs
 * (mount options opts) at base/tmpfs; fn fills up to 8 results.  Skips the
 * test where mounting is not permitted.  No cr_assert in fn. */
struct tmpfs_res {
	int skipped;
	long v[8];
};

static struct tmpfs_res run_in_tmpfs(const char *opts,
				     void (*fn)(const char *mnt, long *v))
{
	struct tmpfs_res res = { 0 };
	char mnt[PATH_MAX];
	int pfd[2], status;
	pid_t pid;

	xpath(mnt, sizeof(mnt), base, "tmpfs");
	cr_assert_eq(mkdir(mnt, 0700), 0);
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
			res.skipped = errno;
		else
			fn(mnt, res.v);
		if (write(pfd[1], &res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	read_exact(pfd[0], &res, sizeof(res));
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (res.skipped)
		cr_skip_test("cannot mount a tmpfs here: %s", strerror(res.skipped));
	return res;
}

Test(check_path, reserved_names_ignore_case)
{
	static const char *const bad[] = {
		".TCPFILED", ".Tcpfiled", "a/.tcpFILED", ".TCPFILED.tmp.x",
		"d/.TcpFiled.anything",
	};
	const char *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(storage_check_path(bad[i], strlen(bad[i]), false, &why),
			     -EINVAL, "%s accepted", bad[i]);
		cr_expect_str_eq(why ? why : "", "reserved name in path");
	}
}

/* Opening a device node or FIFO can act on it: GET looks first. */
Test(open, special_files_never_opened, .init = setup, .fini = teardown)
{
	char fifo[PATH_MAX], buf[4096];
	struct stat st;
	ssize_t n;
	int ifd;

	xpath(fifo, sizeof(fifo), share, "fifo");
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	cr_assert(ifd >= 0);
	cr_assert(inotify_add_watch(ifd, fifo, IN_OPEN) >= 0);
	cr_expect_eq(storage_open_file(root_fd, "fifo", &st), -EPERM);
	n = read(ifd, buf, sizeof(buf));
	cr_expect(n < 0 && errno == EAGAIN, "the FIFO was opened");
	close(ifd);
}

Test(delete, special_files_never_removed, .init = setup, .fini = teardown)
{
	char p[PATH_MAX];

	cr_expect_eq(storage_delete(root_fd, "fifo", false), -EPERM);
	cr_expect(exists("fifo"));
	xpath(p, sizeof(p), share, "null");
	if (mknod(p, S_IFCHR | 0600, makedev(1, 3)) == 0) {
		cr_expect_eq(storage_delete(root_fd, "null", false), -EPERM);
		cr_expect(exists("null"));
		cr_expect_eq(storage_open_file(root_fd, "null", &(struct stat){ 0 }), -EPERM);
	}
	cr_expect_eq(storage_delete(root_fd, "a/f", false), 0);
}

/* storage_digest never writes: a read-only share keeps its xattrs and
 * ctime; the session stores only where allowed. */
Test(digest, compute_alone_writes_nothing, .init = setup, .fini = teardown)
{
	struct digest_value d;
	struct stat st, after;
	char p[PATH_MAX], v[256];
	int fd;

	set_mtime("a/f", 1000000000, 5);
	fd = storage_open_file(root_fd, "a/f", &st);
	cr_assert(fd >= 0);
	cr_expect_eq(storage_digest_cached(fd, &st, DIGEST_SHA256, &d), -ENODATA);
	cr_expect_eq(storage_digest(fd, &st, DIGEST_SHA256, &d), 1);
	expect_digest(&d, DIGEST_SHA256, SHA256_ABC);
	xpath(p, sizeof(p), share, "a/f");
	cr_expect_eq(lgetxattr(p, "user.tcpfiled.sha256", v, sizeof(v)), -1);
	cr_assert_eq(fstat(fd, &after), 0);
	cr_expect_eq(after.st_ctim.tv_sec, st.st_ctim.tv_sec);
	cr_expect_eq(after.st_ctim.tv_nsec, st.st_ctim.tv_nsec, "ctime changed");
	cr_expect_eq(storage_digest_store(fd, &st, &d), 0);
	cr_expect_eq(storage_digest_cached(fd, &st, DIGEST_SHA256, &d), 0);
	cr_expect_eq(storage_digest(fd, &st, DIGEST_SHA256, &d), 0, "a cache hit");
	close(fd);
}

Test(upload, read_only_limits_refuse_before_anything, .init = setup,
     .fini = teardown)
{
	struct storage_limits ro = { .read_only = true };
	struct storage_upload up;
	char *before = snapshot(share), *after;

	cr_expect_eq(storage_upload_begin(root_fd, "x/y", 1, 0644, true, &ro, &up), -EROFS);
	after = snapshot(share);
	cr_expect_str_eq(after, before);
	free(before);
	free(after);
}

/* Contract: a refused or aborted upload changes nothing, directories
 * included. */
Test(upload, abort_leaves_no_directory, .init = setup, .fini = teardown)
{
	struct storage_upload up;
	char *before, *after;

	put_state_dir();
	before = snapshot(share);
	cr_assert_eq(storage_upload_begin(root_fd, "n1/n2/n3/f", 3, 0644, true, &nolim,
					  &up), 0);
	cr_expect_not(exists("n1"), "parents are made only at commit");
	cr_assert_eq(storage_upload_write(&up, "abc", 3), 0);
	storage_upload_abort(&up);
	cr_expect_eq(storage_upload_begin(root_fd, "a/n/f", 3, 0644, false, &nolim, &up), 0);
	cr_expect_eq(storage_upload_commit(&up, false, true, NULL, NULL), -EIO);
	after = snapshot(share);
	cr_expect_str_eq(after, before);
	free(before);
	free(after);
}

Test(upload, commit_makes_parents_with_umask, .init = setup, .fini = teardown)
{
	struct storage_limits lim = { .umask = 027 };
	struct storage_upload up;

	umask(077);     /* the share's umask decides, not the process's */
	cr_assert_eq(storage_upload_begin(root_fd, "p1/p2/f", 2, 0666, false, &lim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "hi", 2), 0);
	cr_assert_eq(storage_upload_commit(&up, false, true, NULL, NULL), 0);
	cr_expect_eq(stat_share("p1/p2/f").st_mode & 07777, 0640);
	cr_expect_eq(stat_share("p1").st_mode & 07777, 0750);
	cr_expect_eq(stat_share("p1/p2").st_mode & 07777, 0750);
	cr_assert_eq(storage_upload_begin(root_fd, "a/f", 2, 04777, true, &lim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "hi", 2), 0);
	cr_assert_eq(storage_upload_commit(&up, true, false, NULL, NULL), 0);
	cr_expect_eq(stat_share("a/f").st_mode & 07777, 0750);
	expect_content("p1/p2/f", "hi");
	cr_expect(state_is_empty());
}

/* A failed commit removes the directories it made: here the file system
 * runs out of inodes after the first one. */
static void inode_child(const char *mnt, long *v)
{
	struct storage_upload up;
	char p[PATH_MAX];
	int fd, i;

	fd = storage_open_root(mnt);
	if (fd < 0) {
		v[0] = fd;
		return;
	}
	v[0] = storage_upload_begin(fd, "n1/n2/f", 1, 0644, true, &nolim, &up);
	if (v[0] < 0)
		return;
	if (storage_upload_write(&up, "x", 1) < 0)
		_exit(3);
	/* Fill the inodes, then free one: n1 fits, n2 does not. */
	for (i = 0;; i++) {
		snprintf(p, sizeof(p), "%s/fill%d", mnt, i);
		if (mknod(p, S_IFREG | 0600, 0) < 0)
			break;
	}
	snprintf(p, sizeof(p), "%s/fill%d", mnt, i - 1);
	if (i == 0 || unlink(p) < 0)
		_exit(4);
	v[1] = storage_upload_commit(&up, true, false, NULL, NULL);
	snprintf(p, sizeof(p), "%s/n1", mnt);
	v[2] = access(p, F_OK) == 0;
	close(fd);
}

Test(upload, failed_commit_removes_its_directories, .init = setup,
     .fini = teardown)
{
	struct tmpfs_res res = run_in_tmpfs("size=1m,nr_inodes=64", inode_child);

	cr_assert_eq(res.v[0], 0, "begin: %ld", res.v[0]);
	cr_expect_eq(res.v[1], -ENOSPC, "commit: %ld", res.v[1]);
	cr_expect_eq(res.v[2], 0, "n1 left behind");
}

/* The state directory is checked before use. */
Test(state, wrong_owner_or_mode_refused, .init = setup, .fini = teardown)
{
	struct storage_upload up;
	char p[PATH_MAX];

	put_state_dir();
	xpath(p, sizeof(p), share, ".tcpfiled");
	cr_assert_eq(chmod(p, 0755), 0);
	cr_expect_eq(storage_upload_begin(root_fd, "new", 1, 0644, true, &nolim, &up),
		     -EUCLEAN);
	cr_expect_eq(storage_sweep(root_fd, 0), -EUCLEAN);
	cr_assert_eq(chmod(p, 0700), 0);
	if (geteuid() == 0) {
		cr_assert_eq(chown(p, 65534, 65534), 0);
		cr_expect_eq(storage_upload_begin(root_fd, "new", 1, 0644, true, &nolim,
						  &up), -EUCLEAN);
		cr_assert_eq(chown(p, 0, 0), 0);
	}
	cr_expect_not(exists("new"));
	cr_expect(state_is_empty());
	upload_and_check("new", 5);
}

/* Space: a header that does not fit beside the margin reserves nothing;
 * large sizes are reserved one step at a time, small ones not at all;
 * a stream of unknown size stops at the margin. */
static void space_child(const char *mnt, long *v)
{
	struct storage_limits lim = { .min_free_bytes = 2 << 20 };
	struct storage_upload up, small;
	static char chunk[256 << 10];
	struct statvfs before, after;
	struct stat st;
	int fd = storage_open_root(mnt), r;

	if (fd < 0 || statvfs(mnt, &before) < 0)
		_exit(2);
	v[0] = storage_upload_begin(fd, "big", 7 << 20, 0644, true, &lim, &up);
	if (statvfs(mnt, &after) < 0)
		_exit(2);
	v[1] = (long)before.f_bfree - (long)after.f_bfree;
	v[2] = storage_upload_begin(fd, "mid", 3 << 20, 0644, true, &lim, &up);
	if (v[2] == 0) {
		v[3] = fstat(up.fd, &st) == 0 ? (long)st.st_blocks * 512 : -1;
		storage_upload_abort(&up);
	}
	r = storage_upload_begin(fd, "small", 4096, 0644, true, &lim, &small);
	v[4] = r == 0 && fstat(small.fd, &st) == 0 ? (long)st.st_blocks : -1;
	if (r == 0)
		storage_upload_abort(&small);
	/* 8 MiB file system, 2 MiB margin: a stream stops well before full. */
	v[5] = storage_upload_begin(fd, "stream", STORAGE_SIZE_UNKNOWN, 0644, true,
				    &lim, &up);
	r = 0;
	while (v[5] == 0 && r == 0 && up.written < (16 << 20))
		r = storage_upload_write(&up, chunk, sizeof(chunk));
	v[6] = r;
	if (statvfs(mnt, &after) < 0)
		_exit(2);
	v[7] = (long)(after.f_bavail * after.f_frsize);
	storage_upload_abort(&up);
	close(fd);
}

Test(upload, space_checked_and_reserved_in_steps, .init = setup,
     .fini = teardown)
{
	struct tmpfs_res res = run_in_tmpfs("size=8m", space_child);

	cr_expect_eq(res.v[0], -ENOSPC, "7 MiB + 2 MiB margin on 8 MiB: %ld", res.v[0]);
	cr_expect_eq(res.v[1], 0, "a refused header reserved %ld blocks", res.v[1]);
	cr_expect_eq(res.v[2], 0, "3 MiB fits: %ld", res.v[2]);
	cr_expect_eq(res.v[3], 3 << 20, "reserved %ld bytes", res.v[3]);
	cr_expect_eq(res.v[4], 0, "a small file is not preallocated");
	cr_expect_eq(res.v[5], 0);
	cr_expect_eq(res.v[6], -ENOSPC, "stream: %ld", res.v[6]);
	cr_expect_geq(res.v[7], 1 << 20, "the stream ate the margin: %ld left", res.v[7]);
}

Test(upload, unknown_size_limits, .init = setup, .fini = teardown)
{
	struct storage_limits lim = { .max_file_size = 5 };
	struct storage_upload up;

	cr_expect_eq(storage_upload_begin(root_fd, "u", 6, 0644, true, &lim, &up), -EFBIG);
	cr_assert_eq(storage_upload_begin(root_fd, "u", STORAGE_SIZE_UNKNOWN, 0644, true,
					  &lim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "abc", 3), 0);
	cr_expect_eq(storage_upload_write(&up, "def", 3), -EFBIG);
	cr_assert_eq(storage_upload_write(&up, "de", 2), 0);
	cr_assert_eq(storage_upload_commit(&up, true, false, NULL, NULL), 0);
	expect_content("u", "abcde");
	cr_expect(state_is_empty());
}

/* Durable all the way up: every directory from the target's to the root
 * is fsynced after the name is made, each once per batch. */
static char steps[4096];

static void record_step(const char *step)
{
	size_t len = strlen(steps);

	snprintf(steps + len, sizeof(steps) - len, "%s%s", len ? "," : "", step);
}

Test(upload, durable_syncs_the_chain_to_the_root, .init = setup,
     .fini = teardown)
{
	struct storage_upload up;

	put_dir("a/b");
	steps[0] = '\0';
	storage_fault_hook = record_step;
	cr_assert_eq(storage_upload_begin(root_fd, "a/b/c/d/f", 1, 0644, true, &nolim,
					  &up), 0);
	cr_assert_eq(storage_upload_write(&up, "x", 1), 0);
	cr_assert_eq(storage_upload_commit(&up, true, true, NULL, NULL), 0);
	storage_fault_hook = NULL;
	/* d, c, b, a and the root. */
	cr_expect_str_eq(steps, "data,data-sync,mkdir,mkdir,name,"
			 "dir-sync,dir-sync,dir-sync,dir-sync,dir-sync,synced");
	steps[0] = '\0';
	storage_fault_hook = record_step;
	cr_assert_eq(storage_upload_begin(root_fd, "g", 1, 0644, true, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, "x", 1), 0);
	cr_assert_eq(storage_upload_commit(&up, true, false, NULL, NULL), 0);
	storage_fault_hook = NULL;
	cr_expect_str_eq(steps, "data,name", "no sync without durable");
}

static void batch_put(struct storage_batch *b, const char *rel, const char *content,
		      bool overwrite, int want)
{
	struct storage_upload up;
	size_t n = strlen(content);

	cr_assert_eq(storage_upload_begin(root_fd, rel, n, 0644, overwrite, &nolim, &up), 0);
	cr_assert_eq(storage_upload_write(&up, content, n), 0);
	cr_assert_eq(storage_batch_add(b, &up, overwrite, NULL, NULL), want);
	cr_expect_null(up.name, "the batch took the upload over");
}

Test(batch, group_commit_results_in_order, .init = setup, .fini = teardown)
{
	struct storage_batch b;
	int syncs = 0;

	storage_batch_init(&b);
	batch_put(&b, "g1/x", "one", false, 0);
	batch_put(&b, "a/f", "two", true, 1);
	batch_put(&b, "g1/y", "three", false, 2);
	batch_put(&b, "g1/x", "dup", false, 3);   /* loses to entry 0 */
	cr_expect_not(exists("g1"), "nothing is named before the commit");
	expect_content("a/f", "abc");
	steps[0] = '\0';
	storage_fault_hook = record_step;
	cr_expect_eq(storage_batch_commit(&b, true), -EEXIST);
	storage_fault_hook = NULL;
	cr_assert_eq(storage_batch_count(&b), 4);
	cr_expect_eq(storage_batch_result(&b, 0), 0);
	cr_expect_eq(storage_batch_result(&b, 1), 0);
	cr_expect_eq(storage_batch_result(&b, 2), 0);
	cr_expect_eq(storage_batch_result(&b, 3), -EEXIST);
	cr_expect_eq(storage_batch_result(&b, 4), -EINVAL);
	for (const char *p = steps; (p = strstr(p, "dir-sync")); p++)
		syncs++;
	cr_expect_eq(syncs, 3, "g1, a and the root once each: %s", steps);
	/* ("data" happened in storage_batch_add, before the hook.) */
	cr_expect_eq(strncmp(steps, "data-sync,data-sync,data-sync,data-sync,", 40), 0,
		     "all data synced before any name: %s", steps);
	expect_content("g1/x", "one");
	expect_content("g1/y", "three");
	expect_content("a/f", "two");
	storage_batch_reset(&b);
	cr_expect(state_is_empty());

	/* Full, then dropped unflushed: nothing visible, nothing left. */
	for (int i = 0; i < STORAGE_BATCH_MAX; i++) {
		char rel[32];

		snprintf(rel, sizeof(rel), "h/%d", i);
		batch_put(&b, rel, "z", false, i);
	}
	{
		struct storage_upload up;

		cr_assert_eq(storage_upload_begin(root_fd, "h/x", 1, 0644, false, &nolim,
						  &up), 0);
		cr_assert_eq(storage_upload_write(&up, "z", 1), 0);
		cr_expect_eq(storage_batch_add(&b, &up, false, NULL, NULL), -ENOBUFS);
		cr_expect_null(up.name);
	}
	storage_batch_finish(&b);
	cr_expect_not(exists("h"));
	cr_expect(state_is_empty());
}

/* LIST streams: memory does not grow with the directory. */
#define LIST_BIG 100000

static int count_big(const struct storage_entry *e, void *arg)
{
	uint8_t *seen = arg;
	long i = strtol(e->name + 1, NULL, 10);

	if (e->name[0] != 'f' || i < 0 || i >= LIST_BIG || seen[i])
		return -EINVAL;
	seen[i] = 1;
	return 0;
}

static long maxrss_kib(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static void list_child(const char *mnt, long *v)
{
	static uint8_t seen[LIST_BIG];
	char p[PATH_MAX];
	int fd, i;

	for (i = 0; i < LIST_BIG; i++) {
		snprintf(p, sizeof(p), "%s/f%d", mnt, i);
		if (mknod(p, S_IFREG | 0600, 0) < 0)
			_exit(2);
	}
	fd = storage_open_root(mnt);
	if (fd < 0)
		_exit(2);
	memset(seen, 0, sizeof(seen));
	v[0] = maxrss_kib();
	v[1] = storage_list(storage_open_dir(fd, ""), count_big, seen);
	v[2] = maxrss_kib();
	v[3] = 0;
	for (i = 0; i < LIST_BIG; i++)
		v[3] += seen[i];
	close(fd);
}

Test(list, large_directory_in_bounded_memory, .init = setup, .fini = teardown,
     .timeout = 60)
{
	struct tmpfs_res res = run_in_tmpfs("size=64m,nr_inodes=200000", list_child);

	cr_expect_eq(res.v[1], 0, "list: %ld", res.v[1]);
	cr_expect_eq(res.v[3], LIST_BIG, "each entry once");
	/* Collecting the names would take ~10 MiB here; ASan's allocator
	 * alone may map a few hundred KiB for its first allocations. */
	cr_expect_lt(res.v[2] - res.v[0], 2048, "LIST grew the RSS by %ld KiB",
		     res.v[2] - res.v[0]);
}

/* Crash consistency: a child is killed (_exit) at step k of a commit, for
 * every k, on each commit path: a new name in new directories, a
 * replacement, a group commit.  After each: nothing partial is visible,
 * each name holds its old or its new content whole, and after
 * storage_sweep() no temporary name is left. */
static int crash_at, crash_seen;
/* Non-NULL: the scenario's uploads share it, as a session's do. */
static struct storage_cache *crash_cache;

static void crash_step(const char *step)
{
	(void)step;
	if (++crash_seen == crash_at)
		_exit(42);
}

static void crash_upload(const char *rel, const char *content, bool overwrite,
			 struct storage_batch *b)
{
	struct storage_upload up;
	size_t n = strlen(content);

	if (storage_upload_begin_cached(crash_cache, root_fd, rel, n, 0644, overwrite,
					&nolim, &up) < 0 ||
	    storage_upload_write(&up, content, n) < 0)
		_exit(1);
	if (b ? storage_batch_add(b, &up, overwrite, NULL, NULL) < 0
	      : storage_upload_commit(&up, overwrite, true, NULL, NULL) < 0)
		_exit(1);
}

static void crash_scenario(void)
{
	struct storage_batch b;

	crash_upload("c1/c2/new", "NEWFILE", false, NULL);
	crash_upload("a/f", "REPLACED", true, NULL);
	storage_batch_init(&b);
	crash_upload("c1/g1", "GROUP1", false, &b);
	crash_upload("a/f", "GROUPED", true, &b);
	if (storage_batch_commit(&b, true) < 0)
		_exit(1);
	storage_batch_finish(&b);
}

/* rel holds a (NULL: may be missing), b or c (NULL: not expected). */
static void expect_one_of(const char *rel, const char *a, const char *b,
			  const char *c, int k)
{
	char *got = slurp(rel, NULL);

	if (!got) {
		cr_expect(a == NULL, "k=%d: %s missing", k, rel);
		return;
	}
	cr_expect(strcmp(got, a ? a : "") == 0 || strcmp(got, b) == 0 ||
		  (c && strcmp(got, c) == 0),
		  "k=%d: %s holds \"%s\"", k, rel, got);
	free(got);
}

static void crash_every_step(bool cached)
{
	int k, status;

	for (k = 1; k < 200; k++) {
		pid_t pid = fork();

		cr_assert(pid >= 0);
		if (pid == 0) {
			struct storage_cache cache;

			storage_cache_init(&cache);
			crash_cache = cached ? &cache : NULL;
			crash_at = k;
			storage_fault_hook = crash_step;
			crash_scenario();
			_exit(0);
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status), "k=%d", k);
		cr_assert(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 42,
			  "k=%d: the scenario failed (%d)", k, WEXITSTATUS(status));
		expect_one_of("c1/c2/new", NULL, "NEWFILE", NULL, k);
		expect_one_of("a/f", "abc", "REPLACED", "GROUPED", k);
		expect_one_of("c1/g1", NULL, "GROUP1", NULL, k);
		if (!exists("c1/c2/new"))
			cr_expect_not(exists("c1/g1"), "k=%d: out of order", k);
		cr_expect_geq(storage_sweep(root_fd, pid), 0);
		cr_expect(state_is_empty(), "k=%d: litter in the state directory", k);
		cr_expect_eq(count_entries("a"), 2, "k=%d: litter beside a/f", k);
		if (WEXITSTATUS(status) == 0) {
			expect_content("c1/c2/new", "NEWFILE");
			expect_content("c1/g1", "GROUP1");
			expect_content("a/f", "GROUPED");
			break;
		}
		/* Back to the start for the next k. */
		{
			char p[PATH_MAX];

			xpath(p, sizeof(p), share, "c1");
			nftw(p, remove_one, 16, FTW_DEPTH | FTW_PHYS);
			put_file(share, "a/f", "abc");
		}
	}
	cr_expect_gt(k, 10, "the hook was reached at %d steps only", k);
	cr_expect_lt(k, 200, "the scenario never completed");
}

Test(crash, every_step_of_the_commit_path, .init = setup, .fini = teardown,
     .timeout = 60)
{
	crash_every_step(false);
}

/* The same with the state directory, the target directories and the
 * space reading shared between the uploads. */
Test(crash, every_step_with_the_cache, .init = setup, .fini = teardown,
     .timeout = 60)
{
	crash_every_step(true);
}

/* --- what consecutive uploads share (storage_cache) ---------------------- */

/* One whole upload of content to rel through c. */
static int cached_upload(struct storage_cache *c, int fd, const char *rel,
			 const char *content, const struct storage_limits *lim)
{
	struct storage_upload up;
	size_t len = strlen(content);
	int r;

	r = storage_upload_begin_cached(c, fd, rel, len, 0644, true, lim, &up);
	if (r < 0)
		return r;
	r = storage_upload_write(&up, content, len);
	if (r < 0) {
		storage_upload_abort(&up);
		return r;
	}
	return storage_upload_commit(&up, true, false, NULL, NULL);
}

Test(cache, directory_removed_between_uploads, .init = setup, .fini = teardown)
{
	struct storage_cache c;
	char p[PATH_MAX];

	storage_cache_init(&c);
	put_dir("d");
	cr_assert_eq(cached_upload(&c, root_fd, "d/x", "one", &nolim), 0);
	/* The cache holds d's descriptor; d goes away and comes back empty
	 * before the next upload (as with rm -r and mkdir). */
	xpath(p, sizeof(p), share, "d/x");
	cr_assert_eq(unlink(p), 0);
	xpath(p, sizeof(p), share, "d");
	cr_assert_eq(rmdir(p), 0);
	cr_assert_eq(cached_upload(&c, root_fd, "d/y", "two", &nolim), 0);
	expect_content("d/y", "two");
	cr_expect_eq(count_entries("d"), 1);
	/* And once more through the directory made afresh. */
	cr_assert_eq(cached_upload(&c, root_fd, "d/z", "three", &nolim), 0);
	expect_content("d/z", "three");
	cr_expect(state_is_empty());
	storage_cache_reset(&c);
}

Test(cache, directory_replaced_by_symlink_is_never_followed, .init = setup,
     .fini = teardown)
{
	struct storage_cache c;
	char from[PATH_MAX], to[PATH_MAX];
	int r;

	storage_cache_init(&c);
	put_dir("d");
	cr_assert_eq(cached_upload(&c, root_fd, "d/x", "one", &nolim), 0);
	/* Between two pipelined PUTs the directory is moved away and a link
	 * to the outside takes its name. */
	xpath(from, sizeof(from), share, "d");
	xpath(to, sizeof(to), share, "moved");
	cr_assert_eq(rename(from, to), 0);
	put_link("../outside", "d");
	r = cached_upload(&c, root_fd, "d/y", "two", &nolim);
	/* Either the cached descriptor still names the moved directory (the
	 * file lands there, inside the share), or the cache expired and the
	 * fresh walk refuses the link. */
	if (r == 0)
		expect_content("moved/y", "two");
	else
		cr_expect_eq(r, -ELOOP, "got %d", r);
	xpath(to, sizeof(to), outside, "y");
	cr_expect_eq(access(to, F_OK), -1, "a file was written outside the share");
	cr_expect_eq(count_entries("../outside"), 1);
	/* Once the cache is dropped, the link is refused like any other. */
	storage_cache_reset(&c);
	cr_expect_eq(cached_upload(&c, root_fd, "d/z", "three", &nolim), -ELOOP);
	cr_expect_eq(count_entries("../outside"), 1);
	cr_expect(state_is_empty());
	storage_cache_reset(&c);
}

Test(cache, follows_another_share_root, .init = setup, .fini = teardown)
{
	struct storage_cache c;
	char other[PATH_MAX], p[PATH_MAX];
	struct stat st;
	int other_fd;

	xpath(other, sizeof(other), base, "share2");
	cr_assert_eq(mkdir(other, 0755), 0);
	other_fd = storage_open_root(other);
	cr_assert(other_fd >= 0);
	storage_cache_init(&c);
	cr_assert_eq(cached_upload(&c, root_fd, "x", "in one", &nolim), 0);
	/* Same relative path, another root (a reload, another share): the
	 * state directory and the directory are those of the new root. */
	cr_assert_eq(cached_upload(&c, other_fd, "x", "in two", &nolim), 0);
	expect_content("x", "in one");
	xpath(p, sizeof(p), other, ".tcpfiled");
	cr_expect_eq(lstat(p, &st), 0, "the other root got its own state directory");
	xpath(p, sizeof(p), other, "x");
	{
		char buf[16] = "";
		int fd = open(p, O_RDONLY | O_CLOEXEC);

		cr_assert(fd >= 0);
		cr_expect_eq(read(fd, buf, sizeof(buf) - 1), 6);
		cr_expect_str_eq(buf, "in two");
		close(fd);
	}
	storage_cache_reset(&c);
	close(other_fd);
}

Test(cache, reset_checks_the_state_directory_again, .init = setup,
     .fini = teardown)
{
	struct storage_cache c;
	char p[PATH_MAX];

	storage_cache_init(&c);
	cr_assert_eq(cached_upload(&c, root_fd, "x", "one", &nolim), 0);
	xpath(p, sizeof(p), share, ".tcpfiled");
	cr_assert_eq(chmod(p, 0755), 0);
	storage_cache_reset(&c);
	cr_expect_eq(cached_upload(&c, root_fd, "y", "two", &nolim), -EUCLEAN);
	cr_expect_not(exists("y"));
	cr_assert_eq(chmod(p, 0700), 0);
	storage_cache_reset(&c);
	cr_expect_eq(cached_upload(&c, root_fd, "y", "two", &nolim), 0);
	storage_cache_reset(&c);
}

Test(cache, space_reading_applies_the_margin, .init = setup, .fini = teardown)
{
	const struct storage_limits full = { .umask = 022, .min_free_percent = 100 };
	struct storage_cache c;

	storage_cache_init(&c);
	put_dir("d");
	cr_assert_eq(cached_upload(&c, root_fd, "d/x", "one", &nolim), 0);
	/* The reading is cached; a share whose margin is the whole file
	 * system is still refused with it. */
	cr_expect_eq(cached_upload(&c, root_fd, "d/y", "two", &full), -ENOSPC);
	cr_expect_not(exists("d/y"));
	cr_expect_eq(cached_upload(&c, root_fd, "d/z", "", &full), -ENOSPC);
	cr_expect(state_is_empty());
	storage_cache_reset(&c);
}

/* Uploads in a batch borrow the cached descriptors: dropping the cache
 * before the flush must not pull them away. */
Test(cache, batch_outlives_a_reset, .init = setup, .fini = teardown)
{
	struct storage_cache c;
	struct storage_batch b;
	struct storage_upload up;

	storage_cache_init(&c);
	storage_batch_init(&b);
	put_dir("d");
	for (int i = 0; i < 3; i++) {
		char rel[8];

		snprintf(rel, sizeof(rel), "d/%d", i);
		cr_assert_eq(storage_upload_begin_cached(&c, root_fd, rel, 2, 0644, false,
							 &nolim, &up), 0);
		cr_assert_eq(storage_upload_write(&up, "ok", 2), 0);
		cr_assert_eq(storage_batch_add(&b, &up, false, NULL, NULL), i);
	}
	storage_cache_reset(&c);
	cr_expect_eq(storage_batch_commit(&b, true), 0);
	expect_content("d/0", "ok");
	expect_content("d/1", "ok");
	expect_content("d/2", "ok");
	storage_batch_finish(&b);
	cr_expect(state_is_empty());
}
