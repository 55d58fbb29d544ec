/* Unit tests for sharecheck: shares opened as workers open them, and moved or deleted roots noticed. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "sharecheck.h"
#include "storage.h"

static char tmpdir[256];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sharecheck.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static int unlock_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	if (type == FTW_D || type == FTW_DNR)
		(void)chmod(path, 0700);
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)remove(path);
	return 0;
}

static void teardown(void)
{
	(void)chmod(tmpdir, 0700);
	(void)nftw(tmpdir, unlock_one, 16, FTW_PHYS);
	(void)nftw(tmpdir, remove_one, 16, FTW_PHYS | FTW_DEPTH);
}

TestSuite(sharecheck, .init = setup, .fini = teardown);

static struct config *load(const char *text)
{
	char err[CONFIG_ERROR_MAX] = "";
	struct config *conf = NULL;

	cr_assert_eq(config_load_string(text, "t.conf", &conf, err, sizeof(err)), 0, "%s", err);
	return conf;
}

Test(sharecheck, usable_shares_pass)
{
	char text[1024], err[CONFIG_ERROR_MAX] = "";
	struct config *conf;

	snprintf(text, sizeof(text), "[a]\npath = %s\n[b]\npath = %s\nread_only = yes\n",
		 tmpdir, tmpdir);
	conf = load(text);
	cr_expect_eq(sharecheck_config(conf, err, sizeof(err)), 0, "%s", err);
	config_free(conf);
}

/* Permission checks need a user that permissions apply to: as root the
 * test drops to nobody in a child. */
static int check_as_nobody(const struct config *conf, char *err, size_t cap)
{
	int p[2], status, r = 0;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char msg[CONFIG_ERROR_MAX] = "";

		close(p[0]);
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(99);
		r = sharecheck_config(conf, msg, sizeof(msg));
		(void)!write(p[1], msg, strlen(msg));
		_exit(r < 0 ? -r : 0);
	}
	close(p[1]);
	ssize_t n = read(p[0], err, cap - 1);
	err[n > 0 ? n : 0] = '\0';
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 99, "cannot drop to nobody");
	return -WEXITSTATUS(status);
}

Test(sharecheck, unlistable_share_fails_with_file_and_line)
{
	char dir[300], text[1024], err[CONFIG_ERROR_MAX], want[700];
	struct config *conf;

	cr_assert_eq(chmod(tmpdir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/locked", tmpdir);
	cr_assert_eq(mkdir(dir, 0), 0);
	snprintf(text, sizeof(text), "[server]\nworkers = 1\n[ok]\npath = %s\nread_only = yes\n"
		 "[locked]\nread_only = yes\npath = %s\n", tmpdir, dir);
	conf = load(text);
	cr_expect_eq(check_as_nobody(conf, err, sizeof(err)), -EACCES);
	snprintf(want, sizeof(want), "t.conf:8: [locked] path: \"%s\": cannot open: "
		 "Permission denied", dir);
	cr_expect_str_eq(err, want);
	config_free(conf);
}

Test(sharecheck, unwritable_share_fails_unless_read_only)
{
	char dir[300], text[1024], err[CONFIG_ERROR_MAX], want[700];
	struct config *conf;

	cr_assert_eq(chmod(tmpdir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/ro", tmpdir);
	cr_assert_eq(mkdir(dir, 0555), 0);
	snprintf(text, sizeof(text), "[ro]\npath = %s\n", dir);
	conf = load(text);
	cr_expect_eq(check_as_nobody(conf, err, sizeof(err)), -EACCES);
	snprintf(want, sizeof(want), "t.conf:2: [ro] path: \"%s\": cannot create files in it "
		 "(make the share read_only = yes, or fix its permissions): Permission denied",
		 dir);
	cr_expect_str_eq(err, want);
	config_free(conf);

	snprintf(text, sizeof(text), "[ro]\npath = %s\nread_only = yes\n", dir);
	conf = load(text);
	cr_expect_eq(check_as_nobody(conf, err, sizeof(err)), 0, "%s", err);
	config_free(conf);
}

Test(sharecheck, moved_and_deleted_roots_are_noticed)
{
	struct share_conf share = { .name = "s" };
	char dir[300], moved[300];
	int fd;

	snprintf(dir, sizeof(dir), "%s/share", tmpdir);
	snprintf(moved, sizeof(moved), "%s/moved", tmpdir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	share.path = dir;
	fd = storage_open_root(dir);
	cr_assert_geq(fd, 0);
	cr_expect(sharecheck_still_valid(&share, fd));
	cr_expect(!sharecheck_still_valid(&share, -1));

	/* Renamed away: the path is gone. */
	cr_assert_eq(rename(dir, moved), 0);
	cr_expect(!sharecheck_still_valid(&share, fd));
	/* Another directory now at the path: not the one we hold. */
	cr_assert_eq(mkdir(dir, 0755), 0);
	cr_expect(!sharecheck_still_valid(&share, fd));
	cr_assert_eq(rmdir(dir), 0);
	/* Back in place: valid again. */
	cr_assert_eq(rename(moved, dir), 0);
	cr_expect(sharecheck_still_valid(&share, fd));
	/* Deleted. */
	cr_assert_eq(rmdir(dir), 0);
	cr_expect(!sharecheck_still_valid(&share, fd));
	close(fd);
}

/* Searchable but not listable (mode 0111): open works, LIST would not. */
Test(sharecheck, unreadable_share_fails)
{
	char dir[300], text[1024], err[CONFIG_ERROR_MAX], want[700];
	struct config *conf;

	cr_assert_eq(chmod(tmpdir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/blind", tmpdir);
	cr_assert_eq(mkdir(dir, 0), 0);
	cr_assert_eq(chmod(dir, 0111), 0);
	snprintf(text, sizeof(text), "[blind]\nread_only = yes\npath = %s\n", dir);
	conf = load(text);
	cr_expect_eq(check_as_nobody(conf, err, sizeof(err)), -EACCES);
	snprintf(want, sizeof(want), "t.conf:3: [blind] path: \"%s\": cannot search and list "
		 "it: Permission denied", dir);
	cr_expect_str_eq(err, want);
	config_free(conf);
}
