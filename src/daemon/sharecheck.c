/* sharecheck: opens each share as the workers will, and tells whether an open root still is the share. */
#define _GNU_SOURCE
#include "sharecheck.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "storage.h"

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

/* faccessat2(2) on the open root itself, with the effective ids the
 * workers run with; kernels before 5.8 lack it, and then the path is
 * checked instead. */
static int sharecheck_access(int fd, const char *path, int mode)
{
	long r;

#ifdef SYS_faccessat2
	r = syscall(SYS_faccessat2, fd, "", mode, AT_EACCESS | AT_EMPTY_PATH);
	if (r == 0)
		return 0;
	if (errno != ENOSYS && errno != EPERM)
		return -errno;
#endif
	r = faccessat(AT_FDCWD, path, mode, AT_EACCESS);
	return r == 0 ? 0 : -errno;
}

static int sharecheck_fail(char *why, size_t cap, int r, const char *what)
{
	if (why && cap)
		snprintf(why, cap, "%s: %s", what, strerror(-r));
	return r;
}

int sharecheck_share(const struct share_conf *share, char *why, size_t cap)
{
	int fd, probe, r;

	fd = storage_open_root(share->path);
	if (fd == -ENOSYS) {
		if (why && cap)
			snprintf(why, cap, "openat2(2) is not available (a kernel older "
				 "than 5.6, or a seccomp filter): shares cannot be "
				 "confined safely");
		return fd;
	}
	if (fd < 0)
		return sharecheck_fail(why, cap, fd, "cannot open");
	/* O_PATH needs no permission on the directory itself; requests need
	 * to search it, and LIST to read it. */
	r = sharecheck_access(fd, share->path, R_OK | X_OK);
	if (r < 0) {
		sharecheck_fail(why, cap, r, "cannot search and list it");
		goto err_close_fd;
	}
	probe = storage_openat2(fd, ".", O_RDONLY | O_DIRECTORY);
	if (probe < 0) {
		r = sharecheck_fail(why, cap, probe, "cannot list it");
		goto err_close_fd;
	}
	close(probe);
	if (!share->read_only) {
		/* Uploads are O_TMPFILEs linked in when complete: try one. */
		probe = storage_openat2(fd, ".", O_TMPFILE | O_WRONLY);
		if (probe < 0 && probe != -ENOSPC && probe != -EDQUOT) {
			r = sharecheck_fail(why, cap, probe,
					    "cannot create files in it (make the share "
					    "read_only = yes, or fix its permissions)");
			goto err_close_fd;
		}
		if (probe >= 0)
			close(probe);
	}
	close(fd);
	return 0;

err_close_fd:
	close(fd);
	return r;
}

int sharecheck_config(const struct config *conf, char *err, size_t errlen)
{
	char why[CONFIG_ERROR_MAX];

	for (size_t i = 0; i < conf->n_shares; i++) {
		const struct share_conf *sh = &conf->shares[i];
		int r = sharecheck_share(sh, why, sizeof(why));

		if (r < 0) {
			if (err && errlen)
				snprintf(err, errlen, "%s:%u: [%s] path: \"%s\": %s",
					 conf->file, sh->path_line ? sh->path_line : sh->line,
					 sh->name, sh->path, why);
			return r;
		}
	}
	return 0;
}

bool sharecheck_still_valid(const struct share_conf *share, int root_fd)
{
	struct stat open_st, path_st;

	if (root_fd < 0 || fstat(root_fd, &open_st) < 0)
		return false;
	if (open_st.st_nlink == 0)
		return false;
	if (stat(share->path, &path_st) < 0)
		return false;
	return open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino;
}
