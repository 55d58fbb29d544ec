/* test_robustness: hostile and broken clients, killed workers, refused
 * paths and timeouts against the real daemon; nothing may leak, crash,
 * escape the share or leave a partial file behind. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"
#include "protocol.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define IO_TIMEOUT_MS 30000
#define LINE_MAX_LEN PROTO_MAX_LINE

static struct daemon d;
static char local[PATH_MAX];

/* ---- fixtures ---------------------------------------------------------- */

static void setup_local(void)
{
	scratch_create(local, sizeof(local), "itrobust");
}

static void setup(void)
{
	setup_local();
	start_daemon(&d, NULL);
}

static void teardown(void)
{
	test_release_all();
	daemon_stop(&d);
	scratch_remove(local);
}

/* ---- helpers ----------------------------------------------------------- */

static void put_ok(const char *remote, const void *p, size_t n)
{
	char line[LINE_MAX_LEN];
	int fd = raw_open(&d, NULL, 0);

	raw_put_buf(fd, remote, p, n, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=", 8) == 0, "PUT %s: %s", remote, line);
	close(fd);
}

static int err_code(const char *line)
{
	int code = 0;

	if (strncmp(line, "ERR ", 4) != 0)
		return -1;
	for (const char *s = line + 4; s < line + 7; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		code = code * 10 + (*s - '0');
	}
	return line[7] == ' ' ? code : -1;
}

static void assert_err(const char *line, int code)
{
	cr_assert_eq(err_code(line), code, "expected ERR %d, got \"%s\"", code, line);
}

/* Waits until the peer closes fd (EOF or reset), discarding what arrives. */
static bool wait_closed(int fd, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char junk[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - harness_now_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			return false;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
	}
}

/* Waits until fd has something to read (or is closed). */
static bool wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0;
}

/* GET on a fresh connection; returns the body (test_alloc'ed) and its
 * length, or NULL with the status line in status. */
static unsigned char *get_body(const char *remote, size_t *len,
			       char *status, size_t cap)
{
	struct raw_conn *c = raw_conn_open(&d, IO_TIMEOUT_MS, NULL, 0);
	unsigned char *p = NULL;
	char v[32];
	size_t size = 0;

	raw_conn_cmd(c, status, cap, "GET %s", remote);
	if (strncmp(status, "OK ", 3) == 0) {
		cr_assert(reply_token(status, "size", v, sizeof(v)) &&
			  sscanf(v, "%zu", &size) == 1, "GET answer: %s", status);
		p = raw_conn_body(c, size);
	}
	raw_conn_close(c);
	*len = size;
	return p;
}

static void assert_get_is(const char *remote, const void *p, size_t n)
{
	char status[LINE_MAX_LEN];
	size_t len;
	unsigned char *got = get_body(remote, &len, status, sizeof(status));

	cr_assert_not_null(got, "GET %s: %s", remote, status);
	cr_assert_eq(len, n, "GET %s: size", remote);
	cr_assert(memcmp(got, p, n) == 0, "GET %s: content differs", remote);
	test_free(got);
}

/* The one worker of a workers = 1 daemon. */
static pid_t only_worker(void)
{
	pid_t pids[8];
	size_t n = proc_children(d.pid, pids, 8);

	cr_assert_eq(n, 1u, "expected one worker, found %zu", n);
	return pids[0];
}

static bool worker_idle_cond(void *arg)
{
	return proc_waits_for_connection(*(pid_t *)arg);
}

static void wait_worker_idle(pid_t pid)
{
	cr_assert(wait_until(worker_idle_cond, &pid, HARNESS_TIMEOUT_MS),
		  "worker %d never went back to waiting for a connection", (int)pid);
}

/* True when one line of the daemon's log contains both needles. */
static bool log_line_has(const char *a, const char *b)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(d.log_path, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, a) && strstr(line, b);
	fclose(f);
	return found;
}

struct log_pair {
	const char *a, *b;
};

static bool log_pair_cond(void *arg)
{
	const struct log_pair *lp = arg;

	return log_line_has(lp->a, lp->b);
}

static void wait_log(const char *a, const char *b)
{
	struct log_pair lp = { a, b };

	cr_assert(wait_until(log_pair_cond, &lp, HARNESS_TIMEOUT_MS),
		  "no log line with \"%s\" and \"%s\"", a, b);
}

/* ---- killed workers and broken bodies ----------------------------------- */

static bool dead_cond(void *arg)
{
	return !proc_is_alive(*(pid_t *)arg);
}

Test(robust, sigkill_worker_mid_upload, .init = setup_local, .fini = teardown,
     .timeout = 60)
{
	struct daemon_opts opts = { .workers = 1 };
	const size_t n_old = 100 * KIB, n_new = 8 * MIB;
	unsigned char *v1 = random_buf(n_old), *v2 = random_buf(n_new);
	pid_t fresh = 0;
	char line[LINE_MAX_LEN], path[PATH_MAX];
	pid_t worker;
	int fd;

	start_daemon(&d, &opts);
	put_ok("files/victim", v1, n_old);
	worker = only_worker();

	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "PUT files/victim size=%zu continue=1", n_new);
	cr_assert_str_eq(line, "CONTINUE");
	raw_send_data(fd, v2, MIB, 256 * KIB);
	/* The single worker is the one serving us: kill it mid-body. */
	cr_assert_eq(kill(worker, SIGKILL), 0);
	cr_assert(wait_closed(fd, HARNESS_TIMEOUT_MS), "connection not closed");
	close(fd);
	cr_assert(wait_until(dead_cond, &worker, HARNESS_TIMEOUT_MS));

	cr_assert_eq(daemon_wait_workers(&d, 1, &fresh, 1, HARNESS_TIMEOUT_MS), 0,
		     "no replacement worker");
	cr_assert_neq(fresh, worker);
	wait_log("killed by signal 9", "");

	/* The old version is intact and nothing else appeared. */
	path_join(path, sizeof(path), d.share_dir, "victim");
	cr_assert(file_is(path, v1, n_old), "old version damaged");
	cr_assert_eq(count_entries(d.share_dir, ""), 1);
	assert_get_is("files/victim", v1, n_old);
	test_free(v1);
	test_free(v2);
}

Test(robust, client_disconnect_mid_body, .init = setup, .fini = teardown,
     .timeout = 60)
{
	unsigned char *p = random_buf(MIB);
	char line[LINE_MAX_LEN];
	int fd = raw_open(&d, NULL, 0);

	raw_cmd(fd, line, sizeof(line), "PUT files/gone size=%u continue=1", MIB);
	cr_assert_str_eq(line, "CONTINUE");
	/* Gone inside the bytes of a DATA frame. */
	cr_assert_eq(proto_send_line(fd, "DATA %u", MIB), 0);
	cr_assert_eq(write_full(fd, p, 1000), 0);
	close(fd);

	wait_log("files/gone", "aborted");
	cr_assert_eq(count_entries(d.share_dir, ""), 0, "litter after an abort");
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "STAT files/gone");
	assert_err(line, 550);
	close(fd);
	/* The server still serves. */
	put_ok("files/after", p, 10);
	assert_get_is("files/after", p, 10);
	test_free(p);
}

Test(robust, short_body_then_eof, .init = setup, .fini = teardown, .timeout = 60)
{
	unsigned char *p = random_buf(1000);
	char line[LINE_MAX_LEN];
	int fd;

	/* continue=1 form: one byte of the frame missing, then our side of
	 * the stream ends. */
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "PUT files/short size=1000 continue=1");
	cr_assert_str_eq(line, "CONTINUE");
	cr_assert_eq(proto_send_line(fd, "DATA 1000"), 0);
	cr_assert_eq(write_full(fd, p, 999), 0);
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	cr_assert(wait_closed(fd, HARNESS_TIMEOUT_MS), "server kept the connection");
	close(fd);

	/* Pipelined form: header and half a frame. */
	fd = raw_open(&d, NULL, 0);
	cr_assert_eq(proto_send_line(fd, "PUT files/short2 size=1000"), 0);
	cr_assert_eq(proto_send_line(fd, "DATA 1000"), 0);
	cr_assert_eq(write_full(fd, p, 500), 0);
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	cr_assert(wait_closed(fd, HARNESS_TIMEOUT_MS), "server kept the connection");
	close(fd);

	/* Every byte sent, but no END: a body is complete only with it. */
	fd = raw_open(&d, NULL, 0);
	cr_assert_eq(proto_send_line(fd, "PUT files/short3 size=1000"), 0);
	raw_send_data(fd, p, 1000, 0);
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	cr_assert(wait_closed(fd, HARNESS_TIMEOUT_MS), "server kept the connection");
	close(fd);

	wait_log("files/short ", "aborted");
	wait_log("files/short2", "aborted");
	wait_log("files/short3", "aborted");
	cr_assert_eq(count_entries(d.share_dir, ""), 0, "a short file was committed");
	test_free(p);
}

/* ---- malformed requests ------------------------------------------------- */

#define LIT(s) s, sizeof(s) - 1

struct bad_case {
	const char *bytes;
	size_t len;
	int code, alt;     /* the ERR code expected, or alt where the spec allows both */
};

/* Sent after a good hello.  ERR 500 must close the connection; any other
 * code must leave it in step (a refused PUT carries its END along). */
static const struct bad_case corpus[] = {
	{ LIT("garbage\n"), 500, 500 },
	{ LIT("\n"), 500, 500 },
	{ LIT("\r\n"), 500, 500 },
	{ LIT("\x01\x00\xff\xfe\x7f junk\x00\n"), 500, 500 },
	{ LIT("get files/exists\n"), 500, 500 },
	{ LIT("Put files/x size=1\n"), 500, 500 },
	{ LIT("FOO files/exists\n"), 500, 500 },
	{ LIT("HELLO 2 client=again/1\n"), 500, 500 },
	{ LIT("CONTINUE\n"), 500, 500 },
	{ LIT("DATA 3\nabc"), 500, 500 },
	{ LIT("END\n"), 500, 500 },
	{ LIT("ABORT\n"), 500, 500 },
	{ LIT("OK\n"), 500, 500 },
	{ LIT("TCPFILE 2\n"), 500, 500 },
	{ LIT("STAT  files/exists\n"), 500, 501 },
	{ LIT("STAT files/exists \n"), 500, 501 },
	{ LIT(" STAT files/exists\n"), 500, 500 },
	{ LIT("STAT\tfiles/exists\n"), 500, 500 },
	{ LIT("GET\n"), 500, 501 },
	{ LIT("PUT\nEND\n"), 500, 501 },
	{ LIT("QUIT now\n"), 500, 501 },
	{ LIT("NOOP x=1\n"), 500, 501 },
	{ LIT("PUT files/x size=-1\nEND\n"), 501, 501 },
	{ LIT("PUT files/x size=+1\nEND\n"), 501, 501 },
	{ LIT("PUT files/x size=18446744073709551616\nEND\n"), 501, 501 },
	{ LIT("PUT files/x size=99999999999999999999999999\nEND\n"), 501, 501 },
	{ LIT("PUT files/x size=12abc\nEND\n"), 501, 501 },
	{ LIT("PUT files/x size=0x10\nEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 frob=1\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 mode=0644 mode=0600\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 mode=8\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 mode=17777\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 mtime=1.1234567890\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 mtime=-5\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 mtime=1.\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 overwrite=2\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 offset=0\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1 alg=crc32\nDATA 1\nxEND\n"), 501, 501 },
	/* A bad digest= value on END: 501 by the token rule, or a framing
	 * error (500, closes) as the codec reads it; either stores nothing. */
	{ LIT("PUT files/x size=1\nDATA 1\nxEND digest=md5:00\n"), 501, 500 },
	{ LIT("PUT files/x size=1\nDATA 1\nxEND digest=xxh3-128:zz\n"), 501, 500 },
	{ LIT("PUT files/x size=1\nDATA 1\nxEND frob=1\n"), 501, 501 },
	{ LIT("PUT files/x size=2\nDATA 1\nxEND\n"), 501, 501 },
	{ LIT("PUT files/x size=1\nDATA 2\nxyEND\n"), 501, 552 },
	{ LIT("PUT files/dir size=1\nDATA 1\nxEND\n"), 556, 556 },
	{ LIT("GET files/exists offset=x\n"), 501, 501 },
	{ LIT("GET files/exists offset=4\n"), 501, 501 },
	{ LIT("GET files/exists alg=md5\n"), 501, 501 },
	{ LIT("GET files/exists =1\n"), 500, 501 },
	{ LIT("GET files/%G1\n"), 501, 501 },
	{ LIT("GET files/%4\n"), 501, 501 },
	{ LIT("GET files/a%00b\n"), 501, 501 },
	{ LIT("GET files/a%01b\n"), 501, 553 },
	{ LIT("GET files/dir\n"), 556, 556 },
	{ LIT("LIST files/exists\n"), 556, 556 },
	{ LIT("GET files/missing\n"), 550, 550 },
	{ LIT("GET nosuchshare/x\n"), 550, 553 },
};

/* One case on a fresh connection: the right ERR, then (500) the server
 * hangs up, or (any other code) the stream is still in step. */
static void run_bad_case(const void *bytes, size_t len, int want, int alt,
			 const char *label)
{
	char line[LINE_MAX_LEN];
	int fd = raw_open(&d, NULL, 0);
	int code;

	cr_assert_eq(write_full(fd, bytes, len), 0, "%s: send", label);
	raw_recv(fd, line, sizeof(line));
	code = err_code(line);
	cr_assert(code == want || code == alt, "%s: expected ERR %d (or %d), got \"%s\"",
		  label, want, alt, line);
	if (code == 500) {
		cr_assert(wait_closed(fd, HARNESS_TIMEOUT_MS), "%s: not closed", label);
	} else {
		raw_cmd(fd, line, sizeof(line), "STAT files/exists");
		cr_assert(strncmp(line, "OK type=f size=3 ", 17) == 0, "%s: out of step: %s",
			  label, line);
	}
	close(fd);
}

static void printable(char *out, size_t cap, const char *in, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

Test(robust, malformed_corpus, .init = setup_local, .fini = teardown,
     .timeout = 120)
{
	struct daemon_opts opts = { .workers = 1 };
	char line[LINE_MAX_LEN], label[128], path[PATH_MAX];
	const size_t big = 9000;
	char *longline = test_alloc(big);
	pid_t worker;
	long fds_before;
	int fd;

	start_daemon(&d, &opts);
	put_ok("files/exists", "abc", 3);
	put_ok("files/dir/inner", "x", 1);
	put_ok("files/tmp", "t", 1);
	/* Warm the worker up through every verb before counting its fds. */
	assert_get_is("files/exists", "abc", 3);
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "LIST files");
	cr_assert_str_eq(line, "OK");
	for (int i = 0; i < 3; i++)
		expect_line(fd, "ENTRY ", line, sizeof(line));
	expect_line(fd, "END count=3", line, sizeof(line));
	raw_cmd(fd, line, sizeof(line), "STAT files/dir");
	cr_assert(strncmp(line, "OK type=d ", 10) == 0, "%s", line);
	raw_cmd(fd, line, sizeof(line), "DEL files/tmp");
	cr_assert_str_eq(line, "OK");
	raw_cmd(fd, line, sizeof(line), "NOOP");
	cr_assert_str_eq(line, "OK");
	raw_cmd(fd, line, sizeof(line), "QUIT");
	cr_assert_str_eq(line, "OK bye");
	close(fd);

	worker = only_worker();
	wait_worker_idle(worker);
	fds_before = proc_count_fds(worker);

	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		printable(label, sizeof(label), corpus[i].bytes, corpus[i].len);
		run_bad_case(corpus[i].bytes, corpus[i].len, corpus[i].code,
			     corpus[i].alt, label);
	}

	/* Exactly PROTO_MAX_LINE bytes with the LF is still a line (not a
	 * request: 500) ... */
	memset(longline, 'X', big);
	longline[PROTO_MAX_LINE - 1] = '\n';
	run_bad_case(longline, PROTO_MAX_LINE, 500, 500, "8192-byte line");
	/* ... one more is not. */
	memset(longline, 'X', big);
	longline[PROTO_MAX_LINE] = '\n';
	run_bad_case(longline, PROTO_MAX_LINE + 1, 500, 500, "8193-byte line");
	memset(longline, 'Y', big);
	memcpy(longline, "GET files/", 10);
	longline[big - 1] = '\n';
	run_bad_case(longline, big, 500, 500, "9000-byte GET");
	/* A path longer than PROTO_MAX_PATH inside a legal line. */
	memset(longline, 'a', big);
	memcpy(longline, "STAT files/", 11);
	longline[6000] = '\n';
	run_bad_case(longline, 6001, 501, 553, "6000-byte path");
	/* A component longer than NAME_MAX. */
	memset(longline, 'b', big);
	memcpy(longline, "STAT files/", 11);
	longline[11 + 300] = '\n';
	run_bad_case(longline, 11 + 301, 501, 553, "300-byte component");

	/* A truncated body, then the client goes away. */
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "PUT files/trunc size=100 continue=1");
	cr_assert_str_eq(line, "CONTINUE");
	cr_assert_eq(write_full(fd, "DATA 100\n0123456789", 19), 0);
	close(fd);
	wait_log("files/trunc", "aborted");
	path_join(path, sizeof(path), d.share_dir, "trunc");
	cr_assert(!path_exists(path), "truncated upload committed");

	/* Same worker, same descriptors, still serving; none of the refused
	 * PUTs left anything. */
	wait_worker_idle(worker);
	cr_assert_eq(only_worker(), worker, "the worker was replaced");
	cr_assert_eq(proc_count_fds(worker), fds_before, "descriptor leak");
	assert_get_is("files/exists", "abc", 3);
	cr_assert_eq(count_entries(d.share_dir, ""), 3);  /* exists, dir, dir/inner */
	test_free(longline);
}

/* ---- share policies ----------------------------------------------------- */

/* A PUT refused at its header, continue=1 form: the final ERR comes
 * instead of CONTINUE; the client ABORTs the body it never sent and the
 * connection goes on. */
static void put_refused_at_header(int fd, const char *remote, size_t n,
				  const char *opts, int code)
{
	char line[LINE_MAX_LEN];

	raw_cmd(fd, line, sizeof(line), "PUT %s size=%zu continue=1%s%s", remote, n,
		opts ? " " : "", opts ? opts : "");
	assert_err(line, code);
	cr_assert_eq(proto_send_line(fd, "ABORT"), 0);
}

Test(robust, read_only_share, .init = setup, .fini = teardown, .timeout = 60)
{
	char line[LINE_MAX_LEN], path[PATH_MAX];
	int fd;

	path_join(path, sizeof(path), d.ro_dir, "keep");
	write_file(path, "keep me", 7);
	assert_get_is("ro/keep", "keep me", 7);

	fd = raw_open(&d, NULL, 0);
	put_refused_at_header(fd, "ro/new", 5, NULL, 553);
	put_refused_at_header(fd, "ro/keep", 5, NULL, 553);
	raw_cmd(fd, line, sizeof(line), "DEL ro/keep");
	assert_err(line, 553);
	/* Pipelined: the frames are skipped and the stream stays in step. */
	raw_put_buf(fd, "ro/new2", "hello", 5, NULL, line, sizeof(line));
	assert_err(line, 553);
	raw_cmd(fd, line, sizeof(line), "STAT ro/keep");
	cr_assert(strncmp(line, "OK type=f size=7 ", 17) == 0, "STAT: %s", line);
	close(fd);

	cr_assert(file_is(path, "keep me", 7));
	cr_assert_eq(count_entries(d.ro_dir, ""), 1);
}

Test(robust, overwrite_disabled, .init = setup_local, .fini = teardown,
     .timeout = 60)
{
	char dir[PATH_MAX], extra[PATH_MAX + 64], line[LINE_MAX_LEN], path[PATH_MAX];
	struct daemon_opts opts = { 0 };
	int fd;

	path_join(dir, sizeof(dir), local, "noover");
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(extra, sizeof(extra), "[noover]\npath = %s\noverwrite = no\nanonymous = write\n", dir);
	opts.shares_extra = extra;
	start_daemon(&d, &opts);

	put_ok("noover/a", "first", 5);
	fd = raw_open(&d, NULL, 0);
	put_refused_at_header(fd, "noover/a", 6, NULL, 554);
	/* overwrite=1 cannot override the share. */
	put_refused_at_header(fd, "noover/a", 6, "overwrite=1", 554);
	raw_put_buf(fd, "noover/a", "second", 6, NULL, line, sizeof(line));
	assert_err(line, 554);
	raw_cmd(fd, line, sizeof(line), "STAT noover/a");
	cr_assert(strncmp(line, "OK type=f size=5 ", 17) == 0, "STAT: %s", line);
	close(fd);
	path_join(path, sizeof(path), dir, "a");
	cr_assert(file_is(path, "first", 5), "refused PUT changed the file");

	/* A new name is fine; overwrite=0 also works on a share that allows it. */
	put_ok("noover/b", "bee", 3);
	put_ok("files/o", "one", 3);
	fd = raw_open(&d, NULL, 0);
	put_refused_at_header(fd, "files/o", 3, "overwrite=0", 554);
	raw_put_buf(fd, "files/o", "two", 3, "overwrite=0", line, sizeof(line));
	assert_err(line, 554);
	close(fd);
	assert_get_is("files/o", "one", 3);
	cr_assert_eq(count_entries(dir, ""), 2);
}

Test(robust, max_file_size, .init = setup_local, .fini = teardown, .timeout = 60)
{
	char dir[PATH_MAX], extra[PATH_MAX + 64], line[LINE_MAX_LEN];
	struct daemon_opts opts = { 0 };
	unsigned char *p = random_buf(2 * KIB);
	int fd;

	path_join(dir, sizeof(dir), local, "small");
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(extra, sizeof(extra), "[small]\npath = %s\nmax_file_size = 1K\nanonymous = write\n", dir);
	opts.shares_extra = extra;
	start_daemon(&d, &opts);

	/* Refused at the header: the answer arrives without any body byte. */
	fd = raw_open(&d, NULL, 0);
	put_refused_at_header(fd, "small/big", 1025, NULL, 552);
	raw_put_buf(fd, "small/fits", p, KIB, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=1024 ", 13) == 0, "PUT at the limit: %s", line);
	/* Pipelined: the oversized body is skipped, the stream stays in step. */
	raw_put_buf(fd, "small/big2", p, 1025, NULL, line, sizeof(line));
	assert_err(line, 552);
	/* Without size=, the limit is checked as the bytes arrive. */
	cr_assert_eq(proto_send_line(fd, "PUT small/stream"), 0);
	raw_send_body(fd, p, 2 * KIB, 512, NULL);
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 552);
	raw_cmd(fd, line, sizeof(line), "STAT small/fits");
	cr_assert(strncmp(line, "OK type=f size=1024 ", 20) == 0, "STAT: %s", line);
	close(fd);
	cr_assert_eq(count_entries(dir, ""), 1);

	/* The default share has no limit. */
	put_ok("files/big", p, 2 * KIB);
	test_free(p);
}

/* ---- path traversal ------------------------------------------------------ */

static const char *const escapes[] = {
	"../x",
	"../files/x",
	"files/../x",
	"files/../../x",
	"files/../../etc/x",
	"files/a/../../x",
	"files/../../../../../../../../etc/passwd",
	"/etc/passwd",
	"files/%2e%2e/x",
	"files/%2E%2E/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
	"files/%2F..%2F..%2Fetc%2Fpasswd",
	"files//x",
	"files/./x",
	"files/x/",
	"files/.",
	"files/..",
	"files/sub/up/x",
};

/* Paths through symlinks the test planted inside the share. */
static const char *const via_links[] = {
	"files/dlink/secret",
	"files/dlink/new",
	"files/flink",
	"files/sub/up/secret",
};

static bool is_refusal(const char *line)
{
	int code = err_code(line);

	return code == 501 || code == 550 || code == 553;
}

Test(robust, traversal_refused, .init = setup, .fini = teardown, .timeout = 60)
{
	char outside[PATH_MAX], secret[PATH_MAX], path[PATH_MAX];
	char line[LINE_MAX_LEN], parent_x[PATH_MAX], parent_etc[PATH_MAX], tmp[PATH_MAX];
	bool had_parent_x, had_parent_etc;
	long before;
	int fd;

	/* Victims beside the share, in its parent (the harness's dir). */
	path_join(outside, sizeof(outside), d.dir, "outside");
	cr_assert_eq(mkdir(outside, 0755), 0);
	path_join(secret, sizeof(secret), outside, "secret");
	write_file(secret, "s3cret", 6);
	path_join(path, sizeof(path), d.share_dir, "dlink");
	cr_assert_eq(symlink(outside, path), 0);
	path_join(path, sizeof(path), d.share_dir, "flink");
	cr_assert_eq(symlink(secret, path), 0);
	path_join(path, sizeof(path), d.share_dir, "sub");
	cr_assert_eq(mkdir(path, 0755), 0);
	/* A relative link climbing out: files/sub/up -> ../../outside. */
	path_join(path, sizeof(path), d.share_dir, "sub/up");
	cr_assert_eq(symlink("../../outside", path), 0);

	snprintf(tmp, sizeof(tmp), "%s", d.dir);
	path_join(parent_x, sizeof(parent_x), dirname(tmp), "x");
	snprintf(tmp, sizeof(tmp), "%s", d.dir);
	path_join(parent_etc, sizeof(parent_etc), dirname(tmp), "etc");
	had_parent_x = path_exists(parent_x);
	had_parent_etc = path_exists(parent_etc);
	before = count_entries(d.dir, "");
	cr_assert_gt(before, 0);

	fd = raw_open(&d, NULL, 0);
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		const char *p = escapes[i];

		raw_cmd(fd, line, sizeof(line), "GET %s", p);
		cr_assert(is_refusal(line), "GET %s: %s", p, line);
		raw_put_buf(fd, p, "evil", 4, NULL, line, sizeof(line));
		cr_assert(is_refusal(line), "PUT %s: %s", p, line);
		raw_cmd(fd, line, sizeof(line), "DEL %s", p);
		cr_assert(is_refusal(line), "DEL %s: %s", p, line);
		raw_cmd(fd, line, sizeof(line), "STAT %s", p);
		cr_assert(is_refusal(line), "STAT %s: %s", p, line);
	}
	for (size_t i = 0; i < sizeof(via_links) / sizeof(via_links[0]); i++) {
		const char *p = via_links[i];

		raw_cmd(fd, line, sizeof(line), "GET %s", p);
		assert_err(line, 553);
		if (strcmp(p, "files/flink") == 0)
			continue;  /* replacing or removing the link itself is no escape */
		raw_put_buf(fd, p, "evil", 4, NULL, line, sizeof(line));
		assert_err(line, 553);
		raw_cmd(fd, line, sizeof(line), "DEL %s", p);
		assert_err(line, 553);
	}
	raw_cmd(fd, line, sizeof(line), "LIST files/dlink");
	assert_err(line, 553);
	/* Pipelined escape: refused, body skipped, still in step. */
	snprintf(line, sizeof(line),
		 "PUT files/dlink/pipe size=4\nDATA 4\nevilEND\nSTAT files/sub\n");
	cr_assert_eq(write_full(fd, line, strlen(line)), 0);
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 553);
	raw_recv(fd, line, sizeof(line));
	cr_assert(strncmp(line, "OK type=d ", 10) == 0, "STAT: %s", line);
	close(fd);

	cr_assert(file_is(secret, "s3cret", 6), "the outside file changed");
	cr_assert_eq(count_entries(outside, ""), 1, "something appeared outside");
	cr_assert_eq(count_entries(d.dir, ""), before, "something appeared in the parent");
	cr_assert_eq(path_exists(parent_x), had_parent_x);
	cr_assert_eq(path_exists(parent_etc), had_parent_etc);
	cr_assert(access("/etc/x", F_OK) != 0, "/etc/x created");
}

/* ---- timeouts ------------------------------------------------------------ */

Test(robust, idle_timeout, .init = setup_local, .fini = teardown, .timeout = 60)
{
	struct daemon_opts opts = { .server_extra = "idle_timeout = 1s\n" };
	char line[LINE_MAX_LEN];
	int64_t t0;
	int fd, busy;

	start_daemon(&d, &opts);
	fd = raw_open(&d, NULL, 0);
	t0 = harness_now_ms();
	cr_assert(wait_readable(fd, 5000), "no idle timeout within 5 s");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 426);
	cr_assert_geq(harness_now_ms() - t0, 800, "timed out too early");
	cr_assert(wait_closed(fd, 5000), "not closed after ERR 426");
	close(fd);

	/* A connection that keeps talking is not cut. */
	busy = raw_open(&d, NULL, 0);
	t0 = harness_now_ms();
	while (harness_now_ms() - t0 < 1500) {
		raw_cmd(busy, line, sizeof(line), "STAT files");
		cr_assert(strncmp(line, "OK type=d ", 10) == 0, "%s", line);
		cr_assert(!wait_readable(busy, 200), "unexpected data or close");
	}
	close(busy);
}

Test(robust, trickled_line_times_out, .init = setup_local, .fini = teardown,
     .timeout = 60)
{
	struct daemon_opts opts = { .server_extra = "idle_timeout = 1s\n" };
	static const char slow[] = "STAT files/a-name-sent-one-byte-at-a-time";
	char line[LINE_MAX_LEN];
	bool answered = false;
	int64_t t0;
	int fd;

	start_daemon(&d, &opts);
	fd = raw_open(&d, NULL, 0);
	t0 = harness_now_ms();
	/* One byte every 250 ms: each read is recent, but the line as a whole
	 * takes 10 s, far beyond idle_timeout. */
	for (size_t i = 0; i < sizeof(slow) - 1 && !answered; i++) {
		cr_assert_eq(write_full(fd, &slow[i], 1), 0);
		answered = wait_readable(fd, 250);
	}
	cr_assert(answered, "a trickled line was never cut off");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 426);
	cr_assert_lt(harness_now_ms() - t0, 3000, "the deadline restarted with each byte");
	cr_assert(wait_closed(fd, 5000), "not closed after ERR 426");
	close(fd);
}

Test(robust, directory_paths_with_slashes, .init = setup, .fini = teardown)
{
	char line[LINE_MAX_LEN];
	int fd;

	put_ok("files/dir/x", "x", 1);
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "STAT files/dir/");
	cr_assert(strncmp(line, "OK type=d ", 10) == 0, "STAT files/dir/: %s", line);
	raw_cmd(fd, line, sizeof(line), "LIST files/");
	cr_assert_str_eq(line, "OK");
	expect_line(fd, "ENTRY dir ", line, sizeof(line));
	expect_line(fd, "END count=1", line, sizeof(line));
	raw_cmd(fd, line, sizeof(line), "LIST files//");
	assert_err(line, 553);
	raw_cmd(fd, line, sizeof(line), "STAT files/dir//");
	assert_err(line, 553);
	close(fd);
	wait_log("stat files/dir ", "ok");
}

Test(robust, stalled_body_timeout, .init = setup_local, .fini = teardown,
     .timeout = 60)
{
	/* A body is bounded by min_rate over min_rate_window (a stall: one
	 * window), not by idle_timeout. */
	struct daemon_opts opts = {
		.server_extra = "idle_timeout = 1s\nmin_rate_window = 1s\n",
	};
	char line[LINE_MAX_LEN];
	int fd;

	start_daemon(&d, &opts);
	put_ok("files/stall", "old", 3);

	/* A stalled body is bounded by the idle timeout; nothing committed:
	 * stalled inside the bytes of a frame, and inside a frame header. */
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "PUT files/stall size=100 continue=1");
	cr_assert_str_eq(line, "CONTINUE");
	cr_assert_eq(write_full(fd, "DATA 100\n0123456789", 19), 0);
	cr_assert(wait_readable(fd, 5000), "no timeout for a stalled body");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 426);
	cr_assert(wait_closed(fd, 5000), "not closed after a stalled body");
	close(fd);
	wait_log("files/stall", "aborted");

	fd = raw_open(&d, NULL, 0);
	cr_assert_eq(proto_send_line(fd, "PUT files/stall2 size=100"), 0);
	cr_assert_eq(write_full(fd, "DATA 10\n0123456789DA", 20), 0);
	cr_assert(wait_readable(fd, 5000), "no timeout inside a frame header");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 426);
	cr_assert(wait_closed(fd, 5000), "not closed after a stalled frame header");
	close(fd);
	wait_log("files/stall2", "aborted");
	assert_get_is("files/stall", "old", 3);
	cr_assert_eq(count_entries(d.share_dir, ""), 1);
}

/* ---- connection churn ------------------------------------------------------ */

Test(robust, connection_churn, .init = setup, .fini = teardown, .timeout = 60)
{
	static const char *const partial[] = {
		"", "HEL", "HELLO 2 client=churn/1\nSTAT files",
		"HELLO 2\nGET files/x\r",
	};
	pid_t before[2], after[2];
	long fds[2];

	cr_assert_eq(daemon_wait_workers(&d, 2, before, 2, HARNESS_TIMEOUT_MS), 0);
	fds[0] = proc_count_fds(before[0]);
	fds[1] = proc_count_fds(before[1]);
	cr_assert(fds[0] > 0 && fds[1] > 0);

	/* Connect and hang up at once, inside the hello, or mid-line after
	 * it, 200 times. */
	for (int i = 0; i < 200; i++) {
		const char *junk = partial[i % 4];
		int fd = daemon_connect(&d);

		cr_assert_geq(fd, 0, "connect %d: %s", i, strerror(-fd));
		if (*junk)
			cr_assert_eq(write_full(fd, junk, strlen(junk)), 0);
		close(fd);
	}
	put_ok("files/churn", "still here", 10);
	assert_get_is("files/churn", "still here", 10);

	cr_assert_eq(daemon_wait_workers(&d, 2, after, 2, HARNESS_TIMEOUT_MS), 0);
	cr_assert((after[0] == before[0] && after[1] == before[1]) ||
		  (after[0] == before[1] && after[1] == before[0]), "a worker was replaced");
	cr_assert_eq(proc_count_fds(before[0]), fds[0], "descriptor leak in %d", (int)before[0]);
	cr_assert_eq(proc_count_fds(before[1]), fds[1], "descriptor leak in %d", (int)before[1]);
}
