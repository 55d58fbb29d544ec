/* Unit tests for users (the users file) and passwd (editing it). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "passwd.h"
#include "users.h"

extern char **environ;

/* RFC 7677's user: "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 rounds. */
#define RFC_REST ":SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_LINE "user" RFC_REST

static char tmpdir[64];
static char path[128];
static char errbuf[USERS_ERROR_MAX];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/tcpfiled-test-users-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	errbuf[0] = '\0';
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(users, .init = setup, .fini = teardown);

static void write_file(const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static char *read_file(void)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* users_load_string must refuse text, and say why at line. */
static void expect_bad(const char *text, const char *why)
{
	struct users *u = NULL;

	cr_expect_eq(users_load_string(text, "users", &u, errbuf, sizeof(errbuf)), -EINVAL,
		     "accepted: %s", text);
	cr_expect_null(u);
	cr_expect_not_null(strstr(errbuf, why), "for %s: got \"%s\", want \"%s\"",
			   text, errbuf, why);
}

Test(users, loads_entries_comments_and_blank_lines)
{
	struct users *u = NULL;
	const struct user *e;

	write_file("# users of tcpfiled\n\n" RFC_LINE "\n   \n  # indented comment\n"
		   "alice@example.org:SCRAM-SHA-256$160000:AAAAAAAAAAAAAAAAAAAAAA==$"
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\r\n", 0600);
	cr_assert_eq(users_load(path, &u, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_eq(u->n, 2);
	e = users_find(u, "user");
	cr_assert_not_null(e);
	cr_expect_eq(e->iterations, 4096);
	cr_expect_str_eq(e->salt, "W22ZaJ0SNY7soEsUEjb6gQ==");
	cr_expect_str_eq(e->stored_key, "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
	cr_expect_str_eq(e->server_key, "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
	cr_expect_eq(e->line, 3);
	e = users_find(u, "alice@example.org");
	cr_assert_not_null(e);
	cr_expect_eq(e->iterations, 160000);
	cr_expect_eq(e->line, 6);
	cr_expect_null(users_find(u, "User"));
	cr_expect_null(users_find(u, "use"));
	cr_expect_null(users_find(NULL, "user"));
	users_free(u);
	users_free(NULL);
}

Test(users, empty_file_has_no_users)
{
	struct users *u = NULL;

	write_file("", 0640);
	cr_assert_eq(users_load(path, &u, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_expect_eq(u->n, 0);
	cr_expect_eq(u->common_iterations, 0);
	cr_expect_null(users_find(u, "user"));
	users_free(u);
}

Test(users, common_iterations_is_the_most_frequent)
{
	static const char keys[] = "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
				   ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n";
	struct users *u = NULL;
	char *text = NULL;

	cr_assert_neq(asprintf(&text,
			       "a:SCRAM-SHA-256$5000:W22ZaJ0SNY7soEsUEjb6gQ==%s"
			       "b:SCRAM-SHA-256$7000:W22ZaJ0SNY7soEsUEjb6gQ==%s"
			       "c:SCRAM-SHA-256$7000:W22ZaJ0SNY7soEsUEjb6gQ==%s",
			       keys, keys, keys), -1);
	cr_assert_eq(users_load_string(text, "users", &u, errbuf, sizeof(errbuf)), 0, "%s",
		     errbuf);
	cr_expect_eq(u->common_iterations, 7000);
	users_free(u);
	free(text);
}

Test(users, refuses_malformed_lines_with_file_and_line)
{
	expect_bad("# ok\n" RFC_LINE "\n" RFC_LINE "\n", "users:3: user: duplicate user (first at line 2)");
	expect_bad("user\n", "users:1: expected NAME:SCRAM-SHA-256$");
	expect_bad(":SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$x:y\n", "users:1: invalid user name");
	expect_bad("-bob" RFC_REST, "invalid user name");
	expect_bad("bo b" RFC_REST, "invalid user name");
	expect_bad("bob:SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b\n", "unknown scheme");
	expect_bad("bob:SCRAM-SHA-256$4095:W22ZaJ0SNY7soEsUEjb6gQ==$"
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n", "iteration count");
	expect_bad("bob:SCRAM-SHA-256$40x6:W22ZaJ0SNY7soEsUEjb6gQ==$a:b\n", "iteration count");
	expect_bad("bob:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==\n", "missing '$'");
	expect_bad("bob:SCRAM-SHA-256$4096:not base64!$"
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n", "bad salt");
	expect_bad("bob:SCRAM-SHA-256$4096:QUJD$"   /* 3 bytes of salt */
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n", "bad salt");
	expect_bad("bob:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=\n", "missing ':' between");
	expect_bad("bob:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbs=:"
		   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n", "bad StoredKey or ServerKey");
	expect_bad("bob:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
		   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:x\n", "bad StoredKey or ServerKey");
}

Test(users, name_charset)
{
	cr_expect(users_name_valid("a", 1));
	cr_expect(users_name_valid("Bob.Smith_2-x@example.org", 25));
	cr_expect(users_name_valid("_svc", 4));
	cr_expect_not(users_name_valid("", 0));
	cr_expect_not(users_name_valid(".hidden", 7));
	cr_expect_not(users_name_valid("-opt", 4));
	cr_expect_not(users_name_valid("a,b", 3));
	cr_expect_not(users_name_valid("a=b", 3));
	cr_expect_not(users_name_valid("a:b", 3));
	cr_expect_not(users_name_valid("\xc3\xa9t\xc3\xa9", 6));
	cr_expect(users_name_valid("0123456789012345678901234567890123456789012345678901234567890123", 64));
	cr_expect_not(users_name_valid("01234567890123456789012345678901234567890123456789012345678901234", 65));
}

Test(users, refuses_loose_modes_and_non_files)
{
	static const mode_t bad[] = { 0644, 0604, 0602, 0660, 0620, 0601 };
	struct users *u = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(RFC_LINE "\n", bad[i]);
		cr_expect_eq(users_load(path, &u, errbuf, sizeof(errbuf)), -EPERM,
			     "mode %04o accepted", (unsigned)bad[i]);
		cr_expect_not_null(strstr(errbuf, "lets others read or write it"), "%s", errbuf);
	}
	write_file(RFC_LINE "\n", 0640);
	cr_expect_eq(users_load(path, &u, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	users_free(u);
	write_file(RFC_LINE "\n", 0400);
	cr_expect_eq(users_load(path, &u, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	users_free(u);

	cr_expect_eq(users_load(tmpdir, &u, errbuf, sizeof(errbuf)), -EPERM);
	cr_expect_not_null(strstr(errbuf, "not a regular file"), "%s", errbuf);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_expect_eq(users_load(path, &u, errbuf, sizeof(errbuf)), -EPERM);
	cr_assert_eq(unlink(path), 0);
	cr_expect_eq(users_load(path, &u, errbuf, sizeof(errbuf)), -ENOENT);
	cr_expect_not_null(strstr(errbuf, path), "%s", errbuf);
}

Test(users, malformed_file_names_its_line)
{
	struct users *u = NULL;

	write_file("# header\n" RFC_LINE "\nbroken line\n", 0600);
	cr_expect_eq(users_load(path, &u, errbuf, sizeof(errbuf)), -EINVAL);
	cr_expect_null(u);
	cr_expect_not_null(strstr(errbuf, ":3: expected NAME:"), "%s", errbuf);
}

Test(users, format_line_round_trips)
{
	struct users *u = NULL;
	char line[USERS_LINE_MAX + 2];

	cr_assert_eq(users_load_string(RFC_LINE "\n", "users", &u, errbuf, sizeof(errbuf)), 0);
	cr_assert_eq(users_format_line(&u->v[0], line, sizeof(line)), 0);
	cr_expect_str_eq(line, RFC_LINE "\n");
	cr_expect_eq(users_format_line(&u->v[0], line, 20), -ENOSPC);
	users_free(u);
}

Test(passwd, make_user_gives_fresh_salts)
{
	struct user a, b;

	cr_assert_eq(passwd_make_user("bob", "secret", USERS_ITER_MIN, &a), 0);
	cr_assert_eq(passwd_make_user("bob", "secret", USERS_ITER_MIN, &b), 0);
	cr_expect_str_neq(a.salt, b.salt);
	cr_expect_str_neq(a.stored_key, b.stored_key);
	cr_expect_eq(a.iterations, USERS_ITER_MIN);
	cr_expect_eq(strlen(a.salt), 24);       /* 16 bytes */
	cr_expect_eq(passwd_make_user("bo b", "secret", USERS_ITER_MIN, &a), -EINVAL);
	cr_expect_eq(passwd_make_user("bob", "", USERS_ITER_MIN, &a), -EINVAL);
	cr_expect_eq(passwd_make_user("bob", "secret", USERS_ITER_MIN - 1, &a), -EINVAL);
}

TestSuite(passwd, .init = setup, .fini = teardown);

Test(passwd, update_creates_replaces_and_keeps_the_rest)
{
	struct users *u = NULL;
	struct user a, b;
	struct stat st;
	char line[USERS_LINE_MAX + 2];
	char *text;

	cr_assert_eq(passwd_make_user("alice", "one", USERS_ITER_MIN, &a), 0);
	cr_assert_eq(passwd_update_file(path, &a, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(users_format_line(&a, line, sizeof(line)), 0);
	cr_expect_str_eq(read_file(), line);

	write_file("# keep me\n" RFC_LINE "\n\n", 0640);
	cr_assert_eq(passwd_update_file(path, &a, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_eq(passwd_make_user("user", "two", USERS_ITER_MIN, &b), 0);
	cr_assert_eq(passwd_update_file(path, &b, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	text = read_file();
	cr_expect(strncmp(text, "# keep me\nuser:", 15) == 0, "%s", text);
	cr_expect_null(strstr(text, RFC_LINE), "old entry kept:\n%s", text);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0640, "mode not kept: %04o", st.st_mode & 07777);
	cr_assert_eq(users_load(path, &u, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_expect_eq(u->n, 2);
	cr_expect_str_eq(users_find(u, "user")->stored_key, b.stored_key);
	cr_expect_str_eq(users_find(u, "alice")->stored_key, a.stored_key);
	cr_expect_eq(users_find(u, "user")->line, 2);
	users_free(u);
}

Test(passwd, update_refuses_what_the_daemon_would)
{
	struct user a;

	cr_assert_eq(passwd_make_user("alice", "one", USERS_ITER_MIN, &a), 0);
	write_file(RFC_LINE "\n", 0644);
	cr_expect_eq(passwd_update_file(path, &a, errbuf, sizeof(errbuf)), -EPERM);
	write_file("garbage\n", 0600);
	cr_expect_eq(passwd_update_file(path, &a, errbuf, sizeof(errbuf)), -EINVAL);
	cr_expect_not_null(strstr(errbuf, ":1:"), "%s", errbuf);
	cr_expect_str_eq(read_file(), "garbage\n");
}

/* Runs `tcpfiled passwd ARGS` with stdin from a pipe fed with input. */
static int run_passwd(const char *input, char *const args[])
{
	const char *bin = getenv("TCPFILED_BIN");
	posix_spawn_file_actions_t fa;
	int p[2], status;
	pid_t pid;

	cr_assert_not_null(bin, "TCPFILED_BIN not set");
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
	cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, p[0], 0), 0);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, args, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	cr_assert_eq(write(p[1], input, strlen(input)), (ssize_t)strlen(input));
	close(p[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

Test(passwd, command_reads_stdin_and_writes_the_file)
{
	char *ok[] = { "tcpfiled", "passwd", "-f", path, "-i", "4096", "carol", NULL };
	char *bad_name[] = { "tcpfiled", "passwd", "-f", path, "no way", NULL };
	char *no_conf[] = { "tcpfiled", "passwd", "-c", "/nonexistent/tcpfiled.conf", "carol", NULL };
	struct users *u = NULL;

	cr_expect_eq(run_passwd("hunter2\n", ok), 0);
	cr_assert_eq(users_load(path, &u, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_not_null(users_find(u, "carol"));
	cr_expect_eq(users_find(u, "carol")->iterations, 4096);
	users_free(u);
	cr_expect_eq(run_passwd("\n", ok), 65);         /* EX_DATAERR: empty */
	cr_expect_eq(run_passwd("", ok), 65);
	cr_expect_eq(run_passwd("x\n", bad_name), 64);  /* EX_USAGE */
	cr_expect_eq(run_passwd("x\n", no_conf), 78);   /* EX_CONFIG */
}
