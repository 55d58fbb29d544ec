/* test_cli: the tcpfile client's parsers and formatters (no network). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "client.h"
#include "credentials.h"
#include "progress.h"
#include "signin.h"

Test(client, server_parse_forms)
{
	struct client_server s;

	cr_assert_eq(client_server_parse("example.org", &s), 0);
	cr_assert_str_eq(s.host, "example.org");
	cr_assert_str_eq(s.port, "5005");
	cr_assert_eq(client_server_parse("127.0.0.1:7000", &s), 0);
	cr_assert_str_eq(s.host, "127.0.0.1");
	cr_assert_str_eq(s.port, "7000");
	cr_assert_str_eq(s.display, "127.0.0.1:7000");
	cr_assert_eq(client_server_parse("[::1]:6000", &s), 0);
	cr_assert_str_eq(s.host, "::1");
	cr_assert_str_eq(s.port, "6000");
	cr_assert_str_eq(s.display, "[::1]:6000");
	cr_assert_eq(client_server_parse("[fe80::1]", &s), 0);
	cr_assert_str_eq(s.port, "5005");
	cr_assert_eq(client_server_parse("::1", &s), 0);
	cr_assert_str_eq(s.host, "::1");
}

Test(client, server_parse_schemes)
{
	struct client_server s;

	cr_assert_eq(client_server_parse("tcps://files.example", &s), 0);
	cr_assert(s.tls);
	cr_assert(!s.port_given);
	cr_assert_str_eq(s.host, "files.example");
	cr_assert_str_eq(s.port, "5006");
	cr_assert_str_eq(s.display, "files.example:5006");
	cr_assert_eq(client_server_parse("TCPS://[::1]:7006", &s), 0);
	cr_assert(s.tls);
	cr_assert(s.port_given);
	cr_assert_str_eq(s.host, "::1");
	cr_assert_str_eq(s.port, "7006");
	cr_assert_eq(client_server_parse("tcp://127.0.0.1", &s), 0);
	cr_assert(!s.tls);
	cr_assert_str_eq(s.port, "5005");
	cr_assert_eq(client_server_parse("127.0.0.1:5006", &s), 0);
	cr_assert(!s.tls, "a bare HOST:PORT stays plain whatever the port");
	cr_assert(s.port_given);
}

Test(client, server_parse_rejects)
{
	struct client_server s;
	const char *bad[] = { "", ":5005", "h:", "h:0", "h:65536", "h:+1", "h:5x",
			      "[::1", "[::1]x", "[]:5", "[::1]:", "tcps://", "tcp://",
			      "http://h", "tcps://h/", "tcps://h:5/x", "tcps://tcps://h",
			      "h/x" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(client_server_parse(bad[i], &s), -EINVAL, "%s", bad[i]);
}

Test(client, format_request_encodes_path)
{
	char buf[PROTO_MAX_LINE + 1];
	int n = client_format_request(buf, sizeof(buf), "PUT", "files/a b%\x01",
				      "size=3 continue=1");

	cr_assert_eq(n, (int)strlen("PUT files/a%20b%25%01 size=3 continue=1\n"));
	cr_assert_str_eq(buf, "PUT files/a%20b%25%01 size=3 continue=1\n");
	n = client_format_request(buf, sizeof(buf), "STAT", "files", NULL);
	cr_assert_str_eq(buf, "STAT files\n");
	cr_assert_eq(client_format_request(buf, sizeof(buf), "DEL", "", NULL), -EINVAL);
}

Test(client, format_request_limits)
{
	static char path[PROTO_MAX_PATH + 2];
	char buf[PROTO_MAX_LINE + 1];

	memset(path, 'a', PROTO_MAX_PATH + 1);
	cr_assert_eq(client_format_request(buf, sizeof(buf), "GET", path, NULL),
		     -ENAMETOOLONG);
	/* 4000 spaces encode to 12000 bytes: over the line limit. */
	memset(path, ' ', 4000);
	path[4000] = '\0';
	cr_assert_eq(client_format_request(buf, sizeof(buf), "GET", path, NULL),
		     -ENAMETOOLONG);
	/* A small buffer is a limit too. */
	cr_assert_eq(client_format_request(buf, 12, "GET", "files/abcdef", NULL),
		     -ENAMETOOLONG);
}

Test(client, parse_put_reply)
{
	struct digest_value d;
	uint64_t size;

	cr_assert_eq(client_parse_put_reply(
			     "size=6 digest=xxh3-128:6bba86c7e069f56d5a10b435f1c8e49c", &size, &d), 0);
	cr_assert_eq(size, 6);
	cr_assert_eq(d.alg, DIGEST_XXH3_128);
	cr_assert_eq(d.bytes[0], 0x6b);
	cr_assert_eq(d.bytes[15], 0x9c);
	/* Any order, unknown tokens (bare or with a value) ignored. */
	cr_assert_eq(client_parse_put_reply(
			     "zzz digest=xxh3-128:6BBA86C7E069F56D5A10B435F1C8E49C frob=a=b size=7 q",
			     &size, &d), 0);
	cr_assert_eq(size, 7);
	cr_assert_eq(d.bytes[1], 0xba);
	cr_assert_eq(client_parse_put_reply("size=6", &size, &d), -EPROTO);
	cr_assert_eq(client_parse_put_reply(
			     "digest=xxh3-128:6bba86c7e069f56d5a10b435f1c8e49c", &size, &d), -EPROTO);
	cr_assert_eq(client_parse_put_reply("size=6 digest=md5:00", &size, &d), -EPROTO);
	cr_assert_eq(client_parse_put_reply(
			     "size=x digest=xxh3-128:6bba86c7e069f56d5a10b435f1c8e49c", &size, &d), -EPROTO);
	cr_assert_eq(client_parse_put_reply(
			     "size digest=xxh3-128:6bba86c7e069f56d5a10b435f1c8e49c", &size, &d), -EPROTO);
	/* The old positional form is no longer understood. */
	cr_assert_eq(client_parse_put_reply(
			     "6 xxh3-128:6bba86c7e069f56d5a10b435f1c8e49c", &size, &d), -EPROTO);
}

Test(client, parse_get_reply)
{
	struct client_get_reply r;

	cr_assert_eq(client_parse_get_reply("size=1048576 mtime=1795270782.5 mode=0640", &r), 0);
	cr_assert_eq(r.size, 1048576);
	cr_assert_eq(r.mtime_sec, 1795270782);
	cr_assert_eq(r.mtime_nsec, 500000000);
	cr_assert_eq(r.mode, 0640);
	cr_assert_eq(client_parse_get_reply(
			     "etag=xyz mode=7777 new-cap mtime=0 size=0 frob=1", &r), 0);
	cr_assert_eq(r.mode, 07777);
	cr_assert_eq(r.mtime_sec, 0);
	cr_assert_eq(r.mtime_nsec, 0);
	cr_assert_eq(client_parse_get_reply("size=1 mtime=0", &r), -EPROTO);
	cr_assert_eq(client_parse_get_reply("mtime=0 mode=0644", &r), -EPROTO);
	cr_assert_eq(client_parse_get_reply("size=1 mtime=0 mode=0648", &r), -EPROTO);
	cr_assert_eq(client_parse_get_reply("size=1 mtime=-1 mode=0644", &r), -EPROTO);
	cr_assert_eq(client_parse_get_reply("size=-1 mtime=0 mode=0644", &r), -EPROTO);
}

Test(client, parse_hello_reply)
{
	cr_assert_eq(client_parse_hello_reply("version=2"), 0);
	cr_assert_eq(client_parse_hello_reply("zzz-cap frob=1 version=2 auth=X"), 0);
	cr_assert_eq(client_parse_hello_reply(""), -EPROTO);
	cr_assert_eq(client_parse_hello_reply("version=1"), -EPROTO);
	cr_assert_eq(client_parse_hello_reply("version=3"), -EPROTO);
	cr_assert_eq(client_parse_hello_reply("version"), -EPROTO);
}

Test(client, normalize_and_basename)
{
	char a[] = "//files/dir//", b[] = "///", c[] = "files";

	cr_assert_str_eq(client_remote_normalize(a), "files/dir");
	cr_assert_null(client_remote_normalize(b));
	cr_assert_str_eq(client_remote_normalize(c), "files");
	cr_assert_str_eq(client_basename("files/dir/a.txt"), "a.txt");
	cr_assert_str_eq(client_basename("a.txt"), "a.txt");
}

Test(client, escape_and_what)
{
	char buf[64];

	cr_assert_str_eq(client_escape(buf, sizeof(buf), "a\x01\x1b[b\x7f", 6),
			 "a\\x01\\x1b[b\\x7f");
	cr_assert_str_eq(client_escape(buf, 5, "abcdef", 6), "abcd");
	/* An escape that does not fit whole is left out. */
	cr_assert_str_eq(client_escape(buf, 6, "abc\x01", 4), "abc");
	cr_assert_str_eq(client_what(buf, sizeof(buf), "put", "n\n", "files/x"),
			 "put n\\x0a → files/x");
	cr_assert_str_eq(client_what(buf, sizeof(buf), "rm", "files/x", NULL), "rm files/x");
}

Test(client, exit_status_precedence)
{
	struct client_server s;
	struct client c;

	cr_assert_eq(client_server_parse("localhost", &s), 0);
	client_init(&c, &s, DIGEST_XXH3_128, false);
	cr_assert_eq(client_exit_status(&c), 0);
	c.failures[CLIENT_FAIL_TEMPORARY]++;
	cr_assert_eq(client_exit_status(&c), 75);
	c.failures[CLIENT_FAIL_PERMANENT]++;
	cr_assert_eq(client_exit_status(&c), 1);
	c.failures[CLIENT_FAIL_LOGIN]++;
	cr_assert_eq(client_exit_status(&c), 77);
	c.failures[CLIENT_FAIL_PROTOCOL]++;
	cr_assert_eq(client_exit_status(&c), 76);
	c.failures[CLIENT_FAIL_UNAVAILABLE]++;
	cr_assert_eq(client_exit_status(&c), 69);
	client_finish(&c);
}

Test(progress, format_fits_width)
{
	char buf[256];
	size_t n;

	/* 1 MiB of 2 MiB in 1 s: 50%, 1.0 MiB/s, 1 s left. */
	n = progress_format(buf, sizeof(buf), "file.bin", 1048576, 2097152,
			    1000000000ULL, 80);
	cr_assert_str_eq(buf, "file.bin   50%  1.0 MiB  1.0 MiB/s  ETA 0:01");
	cr_assert_eq(n, strlen(buf));
	/* A long name is cut so the line stays within width - 1. */
	n = progress_format(buf, sizeof(buf),
			    "a-very-long-name-that-does-not-fit-the-terminal-at-all.iso",
			    0, 100, 0, 40);
	cr_assert_leq(n, 39);
	cr_assert(strstr(buf, "0%  0 B  0 B/s  ETA --:--") != NULL, "%s", buf);
	/* Control bytes never reach the terminal. */
	progress_format(buf, sizeof(buf), "x\x1b[2J", 1, 1, 1000000000ULL, 80);
	cr_assert_eq(strchr(buf, '\x1b'), NULL);
	/* An hour and more. */
	progress_format(buf, sizeof(buf), "f", 1024, 1024 + 1024 * 3661,
			1000000000ULL, 80);
	cr_assert(strstr(buf, "ETA 1:01:01") != NULL, "%s", buf);
}

Test(progress, format_unknown_total)
{
	char buf[256];

	/* A stream: bytes and rate, no percentage, no ETA. */
	progress_format(buf, sizeof(buf), "-", 2097152, PROGRESS_TOTAL_UNKNOWN,
			1000000000ULL, 80);
	cr_assert_str_eq(buf, "-  2.0 MiB  2.0 MiB/s");
}

Test(progress, utf8_not_split)
{
	char buf[256];

	/* "é" is 2 bytes; a cut inside it drops the whole character. */
	progress_format(buf, sizeof(buf), "\xc3\xa9\xc3\xa9\xc3\xa9", 0, 1, 0,
			strlen("    0%  0 B  0 B/s  ETA --:--") + 1 + 3);
	cr_assert_str_eq(buf, "\xc3\xa9    0%  0 B  0 B/s  ETA --:--");
}

/* ---- logins: the mechanism, the credentials file, the prompt ---- */

Test(signin, pick_refuses_downgrade)
{
	const char *m = NULL;

	cr_assert_eq(signin_pick("SCRAM-SHA-256-PLUS", true, &m), 0);
	cr_assert_str_eq(m, "SCRAM-SHA-256-PLUS");
	cr_assert_eq(signin_pick("SCRAM-SHA-256,SCRAM-SHA-256-PLUS", true, &m), 0);
	cr_assert_str_eq(m, "SCRAM-SHA-256-PLUS");
	/* TLS without -PLUS: a relay may have stripped it. */
	cr_assert_eq(signin_pick("SCRAM-SHA-256", true, &m), -EPROTO);
	cr_assert_eq(signin_pick("SCRAM-SHA-256-PLUSX", true, &m), -ENOTSUP);
	cr_assert_eq(signin_pick("", true, &m), -ENOENT);
	cr_assert_eq(signin_pick(NULL, false, &m), -ENOENT);
	cr_assert_eq(signin_pick("SCRAM-SHA-256", false, &m), 0);
	cr_assert_str_eq(m, "SCRAM-SHA-256");
	cr_assert_eq(signin_pick("PLAIN,SCRAM-SHA-256", false, &m), 0);
	/* No channel binding to give on plain TCP. */
	cr_assert_eq(signin_pick("SCRAM-SHA-256-PLUS", false, &m), -ENOTSUP);
	cr_assert_eq(signin_pick("SCRAM-SHA-1", false, &m), -ENOTSUP);
}

static const char cred_text[] =
	"# tcpfile credentials\n"
	"\n"
	"   # indented comment\n"
	"files.example:5006 alice  pass with  spaces \n"
	"FILES.example bob\tbob-pw\r\n"
	"[::1]:7006 carol carol:pw#not-a-comment\n"
	"files.example alice any-port-pw\n";

static int cred_find(const char *spec, const char *user, char **pw, unsigned *bad)
{
	struct client_server s;

	cr_assert_eq(client_server_parse(spec, &s), 0);
	*pw = NULL;
	return credentials_lookup(cred_text, strlen(cred_text), &s, user, pw, bad);
}

Test(credentials, lookup_matches_host_port_user)
{
	unsigned bad = 0;
	char *pw;

	cr_assert_eq(cred_find("tcps://files.example", "alice", &pw, &bad), 1);
	cr_assert_str_eq(pw, "pass with  spaces ");
	credentials_free(pw);
	/* The port-less line further down matches any port; the first with a
	 * port does not match 5005. */
	cr_assert_eq(cred_find("files.example", "alice", &pw, &bad), 1);
	cr_assert_str_eq(pw, "any-port-pw");
	credentials_free(pw);
	cr_assert_eq(cred_find("tcps://files.EXAMPLE:9", "bob", &pw, &bad), 1);
	cr_assert_str_eq(pw, "bob-pw", "the CR of a CRLF line is no part of it");
	credentials_free(pw);
	cr_assert_eq(cred_find("tcps://[::1]:7006", "carol", &pw, &bad), 1);
	cr_assert_str_eq(pw, "carol:pw#not-a-comment");
	credentials_free(pw);
	cr_assert_eq(cred_find("tcps://[::1]", "carol", &pw, &bad), 0);
	cr_assert_eq(cred_find("tcps://files.example", "Alice", &pw, &bad), 0);
	cr_assert_eq(cred_find("other.example", "alice", &pw, &bad), 0);
	cr_assert_null(pw);
}

Test(credentials, lookup_malformed_lines)
{
	struct client_server s;
	const char *bad_texts[] = {
		"h alice\n", "h\n", "h alice   \n", "tcps://h alice pw\n", "h:0 alice pw\n",
		"[::1 alice pw\n",
	};
	unsigned bad = 0;
	char *pw = NULL;

	cr_assert_eq(client_server_parse("h", &s), 0);
	for (size_t i = 0; i < sizeof(bad_texts) / sizeof(bad_texts[0]); i++) {
		bad = 0;
		cr_expect_eq(credentials_lookup(bad_texts[i], strlen(bad_texts[i]), &s, "alice",
						&pw, &bad), -EINVAL, "%s", bad_texts[i]);
		cr_expect_eq(bad, 1);
	}
	const char *third = "# c\nh bob pw\nnope\nh alice pw\n";
	cr_assert_eq(credentials_lookup(third, strlen(third), &s, "alice", &pw, &bad), -EINVAL);
	cr_assert_eq(bad, 3);
	/* A last line without LF still counts. */
	const char *nolf = "h alice pw";
	cr_assert_eq(credentials_lookup(nolf, strlen(nolf), &s, "alice", &pw, &bad), 1);
	cr_assert_str_eq(pw, "pw");
	credentials_free(pw);
	credentials_free(NULL);
}

Test(credentials, path_follows_xdg)
{
	char path[512];

	cr_assert_eq(setenv("XDG_CONFIG_HOME", "/x/conf", 1), 0);
	cr_assert_eq(credentials_path(path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/x/conf/tcpfile/credentials");
	/* Relative: ignored, as the XDG base directory spec says. */
	cr_assert_eq(setenv("XDG_CONFIG_HOME", "rel", 1), 0);
	cr_assert_eq(setenv("HOME", "/home/u", 1), 0);
	cr_assert_eq(credentials_path(path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/home/u/.config/tcpfile/credentials");
	cr_assert_eq(unsetenv("XDG_CONFIG_HOME"), 0);
	cr_assert_eq(unsetenv("HOME"), 0);
	cr_assert_eq(credentials_path(path, sizeof(path)), -ENOENT);
	cr_assert_eq(setenv("HOME", "/home/u", 1), 0);
	cr_assert_eq(credentials_path(path, 10), -ENAMETOOLONG);
}

static void cred_write(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

Test(credentials, read_refuses_unsafe_modes)
{
	char dir[] = "/tmp/test_cli.XXXXXX", path[64], err[CREDENTIALS_ERROR_MAX];
	struct client_server s;
	char *pw = NULL;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/credentials", dir);
	cr_assert_eq(client_server_parse("tcps://h", &s), 0);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), -ENOENT);

	cred_write(path, "h alice s3cret\n", 0600);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(pw, "s3cret");
	credentials_free(pw);
	pw = NULL;
	cr_assert_eq(credentials_read(path, &s, "bob", &pw, err, sizeof(err)), 0);

	cred_write(path, "h alice s3cret\n", 0644);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), -EPERM);
	cr_assert_not_null(strstr(err, "mode 0644"), "%s", err);
	cr_assert_not_null(strstr(err, "chmod 600"), "%s", err);
	cr_assert_null(pw);
	cred_write(path, "h alice s3cret\n", 0620);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), -EPERM);
	cred_write(path, "h alice s3cret\n", 0400);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), 1);
	credentials_free(pw);

	cred_write(path, "h alice\n", 0600);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "credentials:1: malformed"), "%s", err);

	unlink(path);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(credentials_read(path, &s, "alice", &pw, err, sizeof(err)), -EPERM);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
	rmdir(path);
	rmdir(dir);
}

Test(credentials, env_password_is_taken_and_wiped)
{
	char err[CREDENTIALS_ERROR_MAX], *pw = NULL;
	struct client_server s;

	cr_assert_eq(client_server_parse("h", &s), 0);
	cr_assert_eq(setenv("TCPFILE_PASSWORD", "env-secret", 1), 0);
	char *value = getenv("TCPFILE_PASSWORD");
	cr_assert_eq(credentials_get(&s, "alice", &pw, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(pw, "env-secret");
	cr_assert_null(getenv("TCPFILE_PASSWORD"));
	/* The bytes where the environment held it are gone too. */
	cr_assert_eq(value[0], '\0');
	credentials_free(pw);
}

/* A pseudo-terminal pair: the prompt reads the slave, the test types
 * into the master. */
static void pty_open(int *master, int *slave)
{
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(*master, 0, "posix_openpt: %s", strerror(errno));
	cr_assert_eq(grantpt(*master), 0);
	cr_assert_eq(unlockpt(*master), 0);
	*slave = open(ptsname(*master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(*slave, 0, "%s: %s", ptsname(*master), strerror(errno));
}

/* Everything the master can read right now. */
static size_t pty_drain(int master, char *buf, size_t cap)
{
	size_t n = 0;
	struct pollfd p = { .fd = master, .events = POLLIN };

	while (n + 1 < cap && poll(&p, 1, 200) == 1) {
		ssize_t k = read(master, buf + n, cap - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	return n;
}

Test(credentials, prompt_reads_without_echo)
{
	struct termios t;
	char out[512] = "";
	int m, sl;

	pty_open(&m, &sl);
	cr_assert_eq(tcgetattr(sl, &t), 0);
	cr_assert(t.c_lflag & ECHO);
	/* Typed ahead: TCSAFLUSH would drop it, so type after the prompt
	 * is out, from the master, once echo is off. */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *p = NULL;
		int r = credentials_prompt(sl, "Password: ", &p);
		_exit(r == 0 && strcmp(p, "typed secret") == 0 ? 0 : 1);
	}
	/* Wait until the prompt is shown and echo is off. */
	size_t n = 0;
	for (int i = 0; i < 100; i++) {
		n += pty_drain(m, out + n, sizeof(out) - n);
		if (strstr(out, "Password: ") && tcgetattr(sl, &t) == 0 && !(t.c_lflag & ECHO))
			break;
	}
	cr_assert_not_null(strstr(out, "Password: "), "%s", out);
	cr_assert(!(t.c_lflag & ECHO));
	cr_assert_eq(write(m, "typed secret\n", 13), 13);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	pty_drain(m, out, sizeof(out));
	cr_assert_null(strstr(out, "typed secret"), "echoed: %s", out);
	cr_assert_eq(tcgetattr(sl, &t), 0);
	cr_assert(t.c_lflag & ECHO, "echo restored");
	close(sl);
	close(m);
}

Test(credentials, prompt_restores_echo_when_killed)
{
	struct termios t;
	char out[512] = "";
	int m, sl, st;

	pty_open(&m, &sl);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *p = NULL;
		(void)credentials_prompt(sl, "Password: ", &p);
		_exit(3);
	}
	for (int i = 0; i < 100; i++) {
		pty_drain(m, out, sizeof(out));
		if (tcgetattr(sl, &t) == 0 && !(t.c_lflag & ECHO))
			break;
	}
	cr_assert(!(t.c_lflag & ECHO));
	cr_assert_eq(kill(pid, SIGTERM), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %d", st);
	cr_assert_eq(tcgetattr(sl, &t), 0);
	cr_assert(t.c_lflag & ECHO, "echo restored by the signal handler");
	close(sl);
	close(m);
}

Test(credentials, prompt_end_of_file_and_no_tty)
{
	char *pw = NULL;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	cr_assert_eq(credentials_prompt(fd, "Password: ", &pw), -ENOTTY);
	close(fd);
	int m, sl;
	pty_open(&m, &sl);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *p = NULL;
		_exit(credentials_prompt(sl, "P: ", &p) == -ENODATA ? 0 : 1);
	}
	char out[64] = "";
	struct termios t;
	for (int i = 0; i < 100; i++) {
		pty_drain(m, out, sizeof(out));
		if (tcgetattr(sl, &t) == 0 && !(t.c_lflag & ECHO))
			break;
	}
	/* An empty line is no password. */
	cr_assert_eq(write(m, "\n", 1), 1);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(sl);
	close(m);
}
