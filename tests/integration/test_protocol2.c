/* test_protocol2: what protocol 2 adds against the real daemon: the hello
 * gate against cross-protocol requests (raw HTTP and curl), connections
 * closed on a line that is no request, framing errors, bodies abandoned by
 * either side, refusals that change nothing, and a PUT cut at every byte. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
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
/* What a peer gets back before the server hangs up, at most. */
#define REPLY_CAP 65536

static struct daemon d;
static char local[PATH_MAX];

static void setup_local(void)
{
	scratch_create(local, sizeof(local), "itproto2");
}

static void setup(void)
{
	setup_local();
	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
}

static void teardown(void)
{
	test_release_all();
	daemon_stop(&d);
	scratch_remove(local);
}

/* ---- helpers ----------------------------------------------------------- */

static void assert_err(const char *line, int code)
{
	char want[16];

	snprintf(want, sizeof(want), "ERR %d ", code);
	cr_assert(strncmp(line, want, strlen(want)) == 0,
		  "expected %s..., got \"%s\"", want, line);
}

/* Everything the server sends until it closes (EOF or reset) into buf,
 * NUL-terminated; fails the test when it keeps the connection open. */
static size_t read_until_close(int fd, char *buf, size_t cap, const char *label)
{
	int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - harness_now_ms();
		ssize_t n;
		int r;

		cr_assert_gt(left, 0, "%s: the server kept the connection open; got: %.*s",
			     label, (int)len, buf);
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		cr_assert_geq(r, 0, "poll: %s", strerror(errno));
		if (r == 0)
			continue;
		n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			break;
		cr_assert_gt(n, 0, "recv: %s", strerror(errno));
		len += (size_t)n;
		cr_assert_lt(len, cap - 1, "the server sent more than %zu bytes", cap);
	}
	buf[len] = '\0';
	return len;
}

/* Splits what read_until_close got into lines (LF ended; the last one may
 * lack its LF); returns the count, fills lines[] up to max. */
static size_t split_lines(char *buf, char **lines, size_t max)
{
	size_t n = 0;
	char *p = buf;

	while (*p != '\0' && n < max) {
		char *lf = strchr(p, '\n');

		lines[n++] = p;
		if (lf == NULL)
			break;
		*lf = '\0';
		p = lf + 1;
	}
	return n;
}

/* Sends bytes on a fresh connection without a hello of ours; expects the
 * greeting, exactly one ERR <code> line, and the close. */
static void expect_one_err_and_close(const void *bytes, size_t len, int code,
				     const char *label)
{
	char *buf = test_alloc(REPLY_CAP);
	char *lines[8];
	size_t n;
	int fd = daemon_connect(&d);

	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(write_full(fd, bytes, len), 0, "%s: send", label);
	read_until_close(fd, buf, REPLY_CAP, label);
	close(fd);
	n = split_lines(buf, lines, 8);
	cr_assert_geq(n, 2, "%s: wanted a greeting and an ERR, got \"%s\"", label, buf);
	cr_assert(greeting_is_v2(lines[0]), "%s: greeting: %s", label, lines[0]);
	assert_err(lines[1], code);
	cr_assert_eq(n, 2, "%s: more than one answer: \"%s\"", label, lines[2]);
	test_free(buf);
}

/* The victim of every forgery: files/x holds "precious". */
static void plant_victim(void)
{
	char path[PATH_MAX];

	path_join(path, sizeof(path), d.share_dir, "x");
	write_file(path, "precious", 8);
}

/* x intact, no y, no other entry, and no DEL executed.  (A forged PUT
 * must not even be logged: see assert_no_put_logged.) */
static void assert_share_untouched(void)
{
	char path[PATH_MAX];

	path_join(path, sizeof(path), d.share_dir, "x");
	cr_assert(file_is(path, "precious", 8), "files/x was changed or deleted");
	path_join(path, sizeof(path), d.share_dir, "y");
	cr_assert_not(path_exists(path), "files/y was written");
	cr_assert_eq(count_entries(d.share_dir, ""), 1, "something appeared in the share");
	cr_assert_not(daemon_log_contains(&d, "del files/x "), "a DEL was executed");
}

static void assert_no_put_logged(void)
{
	cr_assert_not(daemon_log_contains(&d, "put files/y "), "a PUT was started");
}

/* Protocol lines a hostile web page would smuggle in a request body. */
static const char forged_body[] =
	"HELLO 2 client=evil/1\n"
	"DEL files/x\n"
	"PUT files/y size=3\n"
	"DATA 3\n"
	"abcEND\n"
	"PUT files/y 3\n"
	"abc"
	"DEL files/x\n";

static int http_post(char *out, size_t cap)
{
	return snprintf(out, cap,
			"POST / HTTP/1.1\r\n"
			"Host: 127.0.0.1:%u\r\n"
			"User-Agent: Mozilla/5.0\r\n"
			"Content-Type: text/plain\r\n"
			"Content-Length: %zu\r\n"
			"\r\n"
			"%s",
			(unsigned)d.port, sizeof(forged_body) - 1, forged_body);
}

/* ---- cross-protocol forgery -------------------------------------------- */

TestSuite(proto2, .fini = teardown, .timeout = 120);

Test(proto2, http_post_raw_socket_executes_nothing, .init = setup)
{
	char req[2048];
	int n = http_post(req, sizeof(req));

	cr_assert(n > 0 && (size_t)n < sizeof(req));
	plant_victim();
	/* All at once, as a browser's fetch() sends it; and once more with
	 * the headers and the body in separate segments. */
	expect_one_err_and_close(req, (size_t)n, 500, "HTTP POST");
	/* The same lines without their HELLO, as a v1-era script sends them. */
	expect_one_err_and_close(strstr(forged_body, "DEL"),
				 strlen(strstr(forged_body, "DEL")), 500,
				 "protocol lines without a HELLO");
	assert_share_untouched();
	assert_no_put_logged();
}

static const char *find_curl(void)
{
	static const char *const where[] = { "/usr/bin/curl", "/bin/curl",
					     "/usr/local/bin/curl" };

	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (access(where[i], X_OK) == 0)
			return where[i];
	return NULL;
}

Test(proto2, http_post_with_curl_executes_nothing, .init = setup)
{
	const char *curl = find_curl();
	char body[PATH_MAX], url[64], out[8192];
	char *lines[8];
	size_t n;

	if (curl == NULL)
		cr_skip_test("curl is not installed (scripts/dev installs it)");
	plant_victim();
	path_join(body, sizeof(body), local, "body");
	write_file(body, forged_body, sizeof(forged_body) - 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)d.port);
	{
		char data_arg[PATH_MAX + 2];
		const char *argv[] = {
			curl, "-s", "--http0.9", "--max-time", "10",
			"--data-binary", data_arg, url, NULL,
		};

		snprintf(data_arg, sizeof(data_arg), "@%s", body);
		/* Under protocol 1 the DEL got through in most of 40 tries. */
		for (int i = 0; i < 20; i++) {
			int rc = harness_run(argv, out, sizeof(out));

			cr_assert_geq(rc, 0, "running curl: %s", strerror(-rc));
			n = split_lines(out, lines, 8);
			/* --http0.9 shows what the server said: its greeting and
			 * one ERR 500, then the close. */
			cr_assert_eq(n, 2, "try %d: curl got \"%s\"", i, out);
			cr_assert(greeting_is_v2(lines[0]), "greeting: %s", lines[0]);
			assert_err(lines[1], 500);
		}
	}
	assert_share_untouched();
	assert_no_put_logged();
}

Test(proto2, hello_less_sessions_execute_nothing, .init = setup)
{
	static const char *const firsts[] = {
		"DEL files/x\n",
		"PUT files/y size=3\nDATA 3\nabcEND\nDEL files/x\n",
		"PUT files/y 3\nabcDEL files/x\n",
		"GET files/x\nDEL files/x\n",
		"QUIT\n",
		"TCPFILE 2 server=fake/1\nDEL files/x\n",
		"hello 2 client=x/1\nDEL files/x\n",
		"HELLO\nDEL files/x\n",
		"HELLO 2 Client=x/1\nDEL files/x\n",
		"HELLO 2 client=\nDEL files/x\n",
		"\x16\x03\x01\x02\x31\x01\x02\x2d\x03\x03\xfc\n",  /* TLS ClientHello-like, no NUL */
	};

	plant_victim();
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++)
		expect_one_err_and_close(firsts[i], strlen(firsts[i]), 500, firsts[i]);
	assert_share_untouched();
	assert_no_put_logged();
}

Test(proto2, hello_with_unknown_version_is_refused, .init = setup)
{
	static const char *const hellos[] = {
		"HELLO 3 client=future/9\nDEL files/x\n",
		"HELLO 1\nDEL files/x\n",
		"HELLO 20 client=x/1\nDEL files/x\n",
	};

	plant_victim();
	for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++)
		expect_one_err_and_close(hellos[i], strlen(hellos[i]), 505, hellos[i]);
	assert_share_untouched();
}

/* Unknown capabilities in the hello are ignored, never echoed; the client
 * may pipeline its requests behind the hello without waiting. */
Test(proto2, hello_ignores_unknown_capabilities_and_pipelines, .init = setup)
{
	static const char script[] =
		"HELLO 2 client=itest/1 frobnicate=7 zzz compress=rot13\n"
		"PUT files/p1 size=2\nDATA 2\np1END\n"
		"PUT files/p2 size=0\nEND\n"
		"NOOP\n"
		"STAT files/p1\n"
		"QUIT\n";
	char *buf = test_alloc(REPLY_CAP);
	char *lines[16];
	size_t n;
	int fd = daemon_connect(&d);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write_full(fd, script, sizeof(script) - 1), 0);
	read_until_close(fd, buf, REPLY_CAP, "pipelined hello");
	close(fd);
	n = split_lines(buf, lines, 16);
	cr_assert_eq(n, 7, "answers: \"%s\"", buf);
	cr_assert(greeting_is_v2(lines[0]), "%s", lines[0]);
	cr_assert(strncmp(lines[1], "OK ", 3) == 0 && strstr(lines[1], "version=2"),
		  "hello answer: %s", lines[1]);
	cr_assert_null(strstr(lines[1], "frobnicate"), "unknown capability echoed: %s",
		       lines[1]);
	cr_assert_null(strstr(lines[1], "compress"), "unoffered capability enabled: %s",
		       lines[1]);
	cr_assert(strncmp(lines[2], "OK size=2 ", 10) == 0, "%s", lines[2]);
	cr_assert(strncmp(lines[3], "OK size=0 ", 10) == 0, "%s", lines[3]);
	cr_assert_str_eq(lines[4], "OK");
	cr_assert(strncmp(lines[5], "OK type=f size=2 ", 17) == 0, "%s", lines[5]);
	cr_assert_str_eq(lines[6], "OK bye");
	test_free(buf);
}

Test(proto2, handshake_timeout, .init = setup_local)
{
	char *buf;
	char *lines[4];
	int64_t t0, elapsed;
	size_t n;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1,
						.server_extra = "handshake_timeout = 1s\n" });
	buf = test_alloc(REPLY_CAP);
	fd = daemon_connect(&d);
	cr_assert_geq(fd, 0);
	/* A byte gets us past TCP_DEFER_ACCEPT; the hello never completes. */
	t0 = harness_now_ms();
	cr_assert_eq(write_full(fd, "HEL", 3), 0);
	read_until_close(fd, buf, REPLY_CAP, "handshake timeout");
	elapsed = harness_now_ms() - t0;
	close(fd);
	n = split_lines(buf, lines, 4);
	cr_assert_eq(n, 2, "answers: \"%s\"", buf);
	cr_assert(greeting_is_v2(lines[0]), "%s", lines[0]);
	assert_err(lines[1], 426);
	cr_assert_geq(elapsed, 800, "timed out after %lld ms", (long long)elapsed);
	cr_assert_lt(elapsed, 5000, "timed out after %lld ms", (long long)elapsed);
	test_free(buf);
}

/* ---- after the hello: lines that are no request close ------------------- */

/* HARNESS_HELLO, then bytes: exactly the greeting, the hello's OK, the
 * answers listed in want (prefixes), then the close. */
static void expect_answers_then_close(const char *bytes, size_t len,
				      const char *const *want, size_t n_want,
				      const char *label)
{
	char *buf = test_alloc(REPLY_CAP);
	char *lines[16];
	size_t n;
	int fd = daemon_connect(&d);

	cr_assert_geq(fd, 0);
	cr_assert_eq(proto_send_line(fd, HARNESS_HELLO), 0);
	cr_assert_eq(write_full(fd, bytes, len), 0, "%s: send", label);
	read_until_close(fd, buf, REPLY_CAP, label);
	close(fd);
	n = split_lines(buf, lines, 16);
	cr_assert_eq(n, 2 + n_want, "%s: answers: \"%s\"", label, buf);
	cr_assert(greeting_is_v2(lines[0]), "%s: %s", label, lines[0]);
	cr_assert(strncmp(lines[1], "OK ", 3) == 0, "%s: %s", label, lines[1]);
	for (size_t i = 0; i < n_want; i++)
		cr_assert(strncmp(lines[2 + i], want[i], strlen(want[i])) == 0,
			  "%s: answer %zu is \"%s\", wanted \"%s...\"", label, i,
			  lines[2 + i], want[i]);
	test_free(buf);
}

Test(proto2, unknown_verb_after_hello_closes, .init = setup)
{
	static const char *const cases[] = {
		"FROB files/x\nDEL files/x\n",
		"del files/x\nDEL files/x\n",
		"Del files/x\nDEL files/x\n",
		"POST / HTTP/1.1\r\nDEL files/x\n",
		"DATA 3\nabcDEL files/x\n",
		"END\nDEL files/x\n",
		"ABORT\nDEL files/x\n",
		"HELLO 2 client=again/1\nDEL files/x\n",
	};
	static const char *const err500[] = { "ERR 500 " };
	static const char *const ok_then_500[] = { "OK type=f size=8 ", "ERR 500 " };

	plant_victim();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_answers_then_close(cases[i], strlen(cases[i]), err500, 1, cases[i]);
	/* A good request first is answered; the bad line after it closes. */
	static const char good_then_bad[] = "STAT files/x\nFROB\nDEL files/x\n";

	expect_answers_then_close(good_then_bad, sizeof(good_then_bad) - 1, ok_then_500,
				  2, "STAT, FROB, DEL");
	assert_share_untouched();
}

Test(proto2, framing_errors_close_and_store_nothing, .init = setup)
{
	static const char *const frames[] = {
		"DATA 0\n",
		"DATA 16777217\n",
		"DATA 99999999999999999999999\n",
		"DATA x\n",
		"DATA -1\n",
		"DATA 3 x\nabc",
		"DATA  3\nabc",
		"DATA\n",
		"data 3\nabc",
		"STAT files/x\n",
		"DEL files/x\n",
		"QUIT\n",
	};
	static const char *const err500[] = { "ERR 500 " };
	static const char *const skip553[] = { "ERR 553 ", "ERR 500 " };
	char req[256];
	int n;

	plant_victim();
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		/* Inside an accepted body (after one good frame) ... */
		n = snprintf(req, sizeof(req), "PUT files/y size=6\nDATA 3\nabc%sDEL files/x\n",
			     frames[i]);
		expect_answers_then_close(req, (size_t)n, err500, 1, frames[i]);
		/* ... and inside a refused one the server is skipping. */
		n = snprintf(req, sizeof(req), "PUT ro/y size=6\nDATA 3\nabc%sDEL files/x\n",
			     frames[i]);
		expect_answers_then_close(req, (size_t)n, skip553, 2, frames[i]);
	}
	assert_share_untouched();
	cr_assert_eq(count_entries(d.ro_dir, ""), 0);
}

Test(proto2, missing_bytes_then_eof_store_nothing, .init = setup)
{
	static const char *const cuts[] = {
		"PUT files/y size=6\nDATA 6\nabc",
		"PUT files/y size=6\nDATA 6\n",
		"PUT files/y size=6\nDATA 6",
		"PUT files/y size=6\nDATA 3\nabc",
		"PUT files/y size=3\nDATA 3\nabc",
		"PUT files/y size=3\nDATA 3\nabcEND",
		"PUT files/y\nDATA 3\nabcEN",
	};
	char *buf = test_alloc(REPLY_CAP);
	char line[LINE_MAX_LEN];
	int fd;

	plant_victim();
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		fd = raw_open(&d, NULL, 0);

		cr_assert_eq(write_full(fd, cuts[i], strlen(cuts[i])), 0);
		cr_assert_eq(shutdown(fd, SHUT_WR), 0);
		read_until_close(fd, buf, REPLY_CAP, cuts[i]);
		/* Nothing may claim success for a body that never ended. */
		cr_assert_null(strstr(buf, "OK size="), "%s: %s", cuts[i], buf);
		close(fd);
	}
	/* One worker serves the connections in turn: once this one is
	 * answered, the cut ones are over. */
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "STAT files/y");
	assert_err(line, 550);
	close(fd);
	assert_share_untouched();
	test_free(buf);
}

/* ---- bodies abandoned by either side ----------------------------------- */

Test(proto2, client_abort_mid_body_leaves_nothing, .init = setup)
{
	unsigned char *p = random_buf(100 * KIB);
	/* Over an existing file, a new name, and a new directory. */
	static const char *const targets[] = { "files/x", "files/ab", "files/newdir/sub/ab" };
	char line[LINE_MAX_LEN], path[PATH_MAX];
	int fd;

	plant_victim();
	fd = raw_open(&d, NULL, 0);

	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		raw_cmd(fd, line, sizeof(line), "PUT %s size=%u continue=1", targets[i],
			100 * KIB);
		cr_assert_str_eq(line, "CONTINUE", "%s: %s", targets[i], line);
		raw_send_data(fd, p, 50 * KIB, 16 * KIB);
		cr_assert_eq(proto_send_line(fd, i == 1 ? "ABORT 451 local read error"
							: "ABORT"), 0);
		raw_recv(fd, line, sizeof(line));
		assert_err(line, 450);
	}
	/* The connection goes on. */
	raw_put_buf(fd, "files/after", p, 1000, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=1000 ", 13) == 0, "%s", line);
	raw_cmd(fd, line, sizeof(line), "NOOP");
	cr_assert_str_eq(line, "OK");
	close(fd);

	path_join(path, sizeof(path), d.share_dir, "x");
	cr_assert(file_is(path, "precious", 8), "an aborted PUT replaced files/x");
	path_join(path, sizeof(path), d.share_dir, "ab");
	cr_assert_not(path_exists(path));
	path_join(path, sizeof(path), d.share_dir, "newdir");
	cr_assert_not(path_exists(path), "an aborted PUT left its directories");
	path_join(path, sizeof(path), d.share_dir, "after");
	cr_assert(file_is(path, p, 1000));
	/* x, after, and at most the (empty) .tcpfiled area replacing
	 * commits use (count_entries: -ENOENT when it does not exist). */
	path_join(path, sizeof(path), d.share_dir, ".tcpfiled");
	cr_assert_leq(count_entries(path, ""), 0, "litter in .tcpfiled");
	cr_assert_leq(count_entries(d.share_dir, ""), 3);
	test_free(p);
}

/* Sends 256 KiB frames of an unsized PUT until the server's answer is
 * readable; returns the bytes sent by then. */
static size_t send_until_answer(int fd, const unsigned char *chunk, size_t chunk_len,
				size_t limit)
{
	size_t sent = 0;

	while (sent < limit) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 0) > 0)
			break;
		raw_send_data(fd, chunk, chunk_len, 0);
		sent += chunk_len;
	}
	return sent;
}

Test(proto2, server_refusal_mid_body_keeps_connection, .init = setup_local)
{
	char dir[PATH_MAX], extra[PATH_MAX + 64], line[LINE_MAX_LEN], path[PATH_MAX];
	char rec[LINE_MAX_LEN];
	const size_t chunk = 256 * KIB;
	unsigned char *p = random_buf(chunk);
	uint64_t server_bytes = 0;
	size_t sent;
	int fd;

	path_join(dir, sizeof(dir), local, "small");
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(extra, sizeof(extra), "[small]\npath = %s\nmax_file_size = 1M\nanonymous = write\n", dir);
	start_daemon(&d, &(struct daemon_opts){ .workers = 1, .shares_extra = extra });

	fd = raw_open(&d, NULL, 0);
	/* A stream of unknown size: the limit is found mid-body, and the ERR
	 * comes at once, not after END. */
	raw_cmd(fd, line, sizeof(line), "PUT small/new/dir/s continue=1");
	cr_assert_str_eq(line, "CONTINUE");
	sent = send_until_answer(fd, p, chunk, 64 * MIB);
	cr_assert_lt(sent, 64 * MIB, "no answer while 64 MiB went up");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 552);
	cr_assert_eq(proto_send_line(fd, "ABORT"), 0);
	/* The next request on the same connection works. */
	raw_cmd(fd, line, sizeof(line), "NOOP");
	cr_assert_str_eq(line, "OK");
	raw_put_buf(fd, "small/fits", p, KIB, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=1024 ", 13) == 0, "%s", line);
	close(fd);

	path_join(path, sizeof(path), dir, "new");
	cr_assert_not(path_exists(path), "a refused PUT left its directories");
	cr_assert_eq(count_entries(dir, ""), 1);
	cr_assert_eq(daemon_log_op_bytes(&d, "put", "small/new/dir/s", &server_bytes,
					 rec, sizeof(rec)), 0, "no log record");
	cr_log_info("mid-body refusal: %zu bytes sent, server read %llu: %s", sent,
		    (unsigned long long)server_bytes, rec);
	cr_assert_leq(server_bytes, sent);
	test_free(p);
}

Test(proto2, refused_put_changes_nothing_directories_included, .init = setup_local)
{
	char dir[PATH_MAX], extra[PATH_MAX + 64], line[LINE_MAX_LEN], path[PATH_MAX];
	char xxh[DIGEST_TEXT_LEN], end[128];
	unsigned char *p = random_buf(2 * MIB);
	int fd;

	path_join(dir, sizeof(dir), local, "small");
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(extra, sizeof(extra), "[small]\npath = %s\nmax_file_size = 1M\nanonymous = write\n", dir);
	start_daemon(&d, &(struct daemon_opts){ .workers = 1, .shares_extra = extra });

	fd = raw_open(&d, NULL, 0);
	/* Digest mismatch at END. */
	digest_buf(p + 1, 1000, xxh, NULL);
	snprintf(end, sizeof(end), "digest=%s", xxh);
	raw_put_end(fd, "files/new/dir/x", p, 1000, NULL, end, line, sizeof(line));
	assert_err(line, 555);
	/* size= mismatch at END. */
	cr_assert_eq(proto_send_line(fd, "PUT files/new2/dir/x size=1001"), 0);
	raw_send_body(fd, p, 1000, 0, NULL);
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 501);
	/* Too large, at the header and mid-body. */
	raw_put_buf(fd, "small/new/dir/x", p, 2 * MIB, NULL, line, sizeof(line));
	assert_err(line, 552);
	cr_assert_eq(proto_send_line(fd, "PUT small/new3/dir/x"), 0);
	raw_send_body(fd, p, 2 * MIB, 64 * KIB, NULL);
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 552);
	/* Read-only share. */
	raw_put_buf(fd, "ro/new/dir/x", p, 10, NULL, line, sizeof(line));
	assert_err(line, 553);
	raw_cmd(fd, line, sizeof(line), "STAT files/new");
	assert_err(line, 550);
	close(fd);

	cr_assert_eq(count_entries(d.share_dir, ""), 0, "a refused PUT left something");
	cr_assert_eq(count_entries(d.ro_dir, ""), 0);
	cr_assert_eq(count_entries(dir, ""), 0);
	path_join(path, sizeof(path), d.share_dir, "new");
	cr_assert_not(path_exists(path));
	test_free(p);
}

/* The server can refuse a shrunk file cleanly only between frames (inside
 * one, it must cut the connection).  So the file is cut at a frame
 * boundary the server cannot have reached yet: a multiple of the first
 * frame's length (frames are taken to be of equal length but the last)
 * beyond what our and its socket buffers can hold. */
Test(proto2, get_of_shrinking_file_aborts_and_connection_goes_on, .init = setup)
{
	const uint64_t n = 256ull * MIB, ahead = 48ull * MIB;
	char path[PATH_MAX], status[LINE_MAX_LEN], line[LINE_MAX_LEN];
	struct body_info *bi = test_alloc(sizeof(*bi));
	unsigned char *frame;
	uint64_t flen, cut;
	struct raw_conn *c;
	int fd;

	path_join(path, sizeof(path), d.share_dir, "shrinks");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)n), 0);
	c = raw_conn_open(&d, IO_TIMEOUT_MS, NULL, 0);
	raw_conn_cmd(c, status, sizeof(status), "GET files/shrinks");
	cr_assert(strncmp(status, "OK size=268435456 ", 18) == 0, "GET: %s", status);
	raw_conn_line(c, line, sizeof(line));
	cr_assert(strncmp(line, "DATA ", 5) == 0, "first frame: %s", line);
	flen = strtoull(line + 5, NULL, 10);
	cr_assert(flen >= 1 && flen <= PROTO_MAX_CHUNK, "%s", line);
	cut = (ahead + flen - 1) / flen * flen;
	cr_assert_lt(cut + flen, n, "frames of %" PRIu64 " bytes are too large for this test",
		     flen);
	cr_assert_eq(ftruncate(fd, (off_t)cut), 0);
	close(fd);

	frame = test_alloc((size_t)flen);
	raw_conn_read(c, frame, (size_t)flen);
	raw_conn_read_body(c, -1, NULL, 0, bi);
	cr_assert(bi->aborted, "a shrunk file was sent to its END: %s", bi->last);
	cr_assert(strncmp(bi->last, "ABORT 451", 9) == 0, "%s", bi->last);
	cr_assert_eq(flen + bi->len, cut, "ABORT after %" PRIu64 " bytes, the file has %" PRIu64,
		     flen + bi->len, cut);
	raw_conn_cmd(c, line, sizeof(line), "NOOP");
	cr_assert_str_eq(line, "OK");
	raw_conn_close(c);
	test_free(frame);
	test_free(bi);
}

/* ---- a PUT cut at every byte ------------------------------------------- */

struct fd_watch {
	pid_t pid;
	long want;
	long got;
};

static bool fd_count_cond(void *arg)
{
	struct fd_watch *w = arg;

	w->got = proc_count_fds(w->pid);
	return w->got == w->want;
}

/* pid's descriptor count once it is back to want (or the last count seen
 * at the deadline): the worker closes a connection just after answering. */
static long only_worker_fds(pid_t pid, long want)
{
	struct fd_watch w = { .pid = pid, .want = want };

	(void)wait_until(fd_count_cond, &w, HARNESS_TIMEOUT_MS);
	return w.got;
}

Test(proto2, put_cut_at_every_byte_commits_nothing, .timeout = 300, .init = setup)
{
	char stream[512], xxh[DIGEST_TEXT_LEN], path[PATH_MAX], line[LINE_MAX_LEN];
	static const char body[] = "abcdefghij";
	pid_t worker, again;
	long fds;
	int len, fd;

	digest_buf(body, 10, xxh, NULL);
	/* Two frames and a digest trailer: cuts land inside the request line,
	 * each frame header, each frame's bytes and the END line. */
	len = snprintf(stream, sizeof(stream),
		       "PUT files/cut size=10 mode=0600\nDATA 4\nabcdDATA 6\nefghij"
		       "END digest=%s\n", xxh);
	cr_assert(len > 0 && (size_t)len < sizeof(stream));
	cr_assert_eq(daemon_wait_workers(&d, 1, &worker, 1, HARNESS_TIMEOUT_MS), 0);
	fds = proc_count_fds(worker);

	for (int cut = 0; cut < len; cut++) {
		fd = raw_open(&d, NULL, 0);

		cr_assert_eq(write_full(fd, stream, (size_t)cut), 0);
		close(fd);
	}
	/* The one worker serves the connections in turn: once this one is
	 * answered, every cut one is over. */
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "STAT files/cut");
	assert_err(line, 550);
	close(fd);
	path_join(path, sizeof(path), d.share_dir, "cut");
	cr_assert_not(path_exists(path), "a cut PUT was committed");
	cr_assert_eq(count_entries(d.share_dir, ""), 0, "litter after cut uploads");
	cr_assert_eq(daemon_wait_workers(&d, 1, &again, 1, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(again, worker, "the worker was replaced");
	cr_assert_eq(only_worker_fds(worker, fds), fds, "descriptor leak");

	/* The whole stream: committed. */
	fd = raw_open(&d, NULL, 0);
	cr_assert_eq(write_full(fd, stream, (size_t)len), 0);
	raw_recv(fd, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=10 ", 11) == 0, "%s", line);
	close(fd);
	cr_assert(file_is(path, body, 10));
}
