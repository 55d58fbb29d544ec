/* test_netio: netio, log, notify and listener through socketpairs, pipes and forks. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "listener.h"
#include "netio.h"
#include "notify.h"

#define MIB ((size_t)1024 * 1024)

/* Test data: a byte sequence no code under test produces. */
static unsigned char pattern_byte(size_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u;

	return (unsigned char)((x >> 13) ^ (x >> 24) ^ i);
}

static void pattern_fill(unsigned char *buf, size_t len, size_t offset)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(offset + i);
}

static bool pattern_check(const unsigned char *buf, size_t len, size_t offset)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_byte(offset + i))
			return false;
	return true;
}

static void make_socketpair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
	cr_assert(WIFEXITED(status), "child died: status %#x", status);
	return WEXITSTATUS(status);
}

/* Writes buf with plain write() from a child in uneven small pieces; the
 * child never uses the code under test. */
static pid_t spawn_dribbler(int fd, const unsigned char *buf, size_t len)
{
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		size_t off = 0, step = 1;

		while (off < len) {
			size_t n = step < len - off ? step : len - off;
			ssize_t w = write(fd, buf + off, n);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
			step = step % 97 + 1;
		}
		_exit(0);
	}
	return pid;
}

/* ---- read_full / write_full ---- */

Test(netio, read_full_across_many_short_writes)
{
	size_t len = 256 * 1024;
	unsigned char *src = malloc(len), *dst = malloc(len);
	int sv[2];
	pid_t pid;

	cr_assert(src && dst);
	pattern_fill(src, len, 0);
	make_socketpair(sv);
	pid = spawn_dribbler(sv[1], src, len);
	close(sv[1]);

	cr_assert_eq(read_full(sv[0], dst, len), (ssize_t)len);
	cr_assert(pattern_check(dst, len, 0));
	cr_assert_eq(wait_child(pid), 0);
	close(sv[0]);
	free(src);
	free(dst);
}

Test(netio, read_full_eof_returns_short_count)
{
	unsigned char src[100], dst[200];
	int p[2];

	pattern_fill(src, sizeof(src), 7);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(write(p[1], src, sizeof(src)), (ssize_t)sizeof(src));
	close(p[1]);
	cr_assert_eq(read_full(p[0], dst, sizeof(dst)), 100);
	cr_assert(pattern_check(dst, 100, 7));
	cr_assert_eq(read_full(p[0], dst, sizeof(dst)), 0);
	close(p[0]);
}

/* The writer stays open and the read end does not block: read_full would
 * ask again (-EAGAIN); read_file_full stops at the short read once it has
 * enough, and reads on while it has not. */
Test(netio, read_file_full_stops_at_a_short_read_with_enough)
{
	unsigned char src[100], dst[101];
	int p[2];

	pattern_fill(src, sizeof(src), 9);
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	cr_assert_eq(write(p[1], src, sizeof(src)), (ssize_t)sizeof(src));
	cr_assert_eq(read_file_full(p[0], dst, sizeof(dst), 100), 100);
	cr_assert(pattern_check(dst, 100, 9));
	cr_assert_eq(write(p[1], src, 50), 50);
	cr_assert_eq(read_file_full(p[0], dst, sizeof(dst), 100), -EAGAIN,
		     "50 bytes are not enough: it must read on");
	cr_assert_eq(write(p[1], src, sizeof(src)), (ssize_t)sizeof(src));
	cr_assert_eq(read_full(p[0], dst, sizeof(dst)), -EAGAIN);
	close(p[0]);
	close(p[1]);
}

Test(netio, read_full_receive_timeout_is_eagain)
{
	char c;
	int sv[2];

	make_socketpair(sv);
	cr_assert_eq(socket_set_timeouts(sv[0], 30), 0);
	cr_assert_eq(read_full(sv[0], &c, 1), -EAGAIN);
	/* 0 removes the timeout again. */
	cr_assert_eq(socket_set_timeouts(sv[0], 0), 0);
	struct timeval tv;
	socklen_t len = sizeof(tv);
	cr_assert_eq(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, &len), 0);
	cr_assert_eq(tv.tv_sec, 0);
	cr_assert_eq(tv.tv_usec, 0);
	close(sv[0]);
	close(sv[1]);
}

Test(netio, socket_set_timeouts_on_a_pipe_fails)
{
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(socket_set_timeouts(p[0], 1000), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
}

Test(netio, write_full_8mib_with_concurrent_reader)
{
	size_t len = 8 * MIB;
	unsigned char *src = malloc(len);
	int sv[2];
	pid_t pid;

	cr_assert(src);
	pattern_fill(src, len, 3);
	make_socketpair(sv);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		/* The reader checks with its own plain read() loop. */
		unsigned char chunk[4096];
		size_t got = 0;

		close(sv[0]);
		for (;;) {
			ssize_t n = read(sv[1], chunk, sizeof(chunk));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				_exit(2);
			if (n == 0)
				break;
			if (got + (size_t)n > len ||
			    !pattern_check(chunk, (size_t)n, 3 + got))
				_exit(3);
			got += (size_t)n;
		}
		_exit(got == len ? 0 : 4);
	}
	close(sv[1]);
	cr_assert_eq(write_full(sv[0], src, len), 0);
	close(sv[0]);
	cr_assert_eq(wait_child(pid), 0);
	free(src);
}

Test(netio, write_full_to_closed_peer_is_epipe_not_sigpipe)
{
	char buf[4096] = { 0 };
	int sv[2];

	cr_assert_neq(signal(SIGPIPE, SIG_DFL), SIG_ERR);
	make_socketpair(sv);
	close(sv[1]);
	cr_assert_eq(write_full(sv[0], buf, sizeof(buf)), -EPIPE);
	/* Still alive: SIGPIPE would have killed us before this line. */
	cr_assert_eq(write_full(sv[0], buf, 1), -EPIPE);
	close(sv[0]);
}

Test(netio, write_full_falls_back_to_write_on_a_pipe)
{
	unsigned char src[1000], dst[1000];
	int p[2];

	pattern_fill(src, sizeof(src), 11);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(write_full(p[1], src, sizeof(src)), 0);
	close(p[1]);
	cr_assert_eq(read(p[0], dst, sizeof(dst)), (ssize_t)sizeof(dst));
	cr_assert(pattern_check(dst, sizeof(dst), 11));
	close(p[0]);
}

Test(netio, write_full_bad_fd)
{
	cr_assert_eq(write_full(-1, "x", 1), -EBADF);
}

Test(netio, pwrite_full_writes_at_offset)
{
	char path[] = "/tmp/test_netio.XXXXXX";
	unsigned char src[5000], dst[5000];
	int fd = mkostemp(path, O_CLOEXEC);

	cr_assert_geq(fd, 0);
	unlink(path);
	pattern_fill(src, sizeof(src), 0);
	cr_assert_eq(pwrite_full(fd, src + 1000, 4000, 1000), 0);
	cr_assert_eq(pwrite_full(fd, src, 1000, 0), 0);
	cr_assert_eq(pread(fd, dst, sizeof(dst), 0), (ssize_t)sizeof(dst));
	cr_assert(pattern_check(dst, sizeof(dst), 0));
	close(fd);
}

/* ---- sendfile_full ---- */

static int make_pattern_file(size_t len)
{
	char path[] = "/tmp/test_netio.XXXXXX";
	unsigned char *buf = malloc(len);
	int fd = mkostemp(path, O_CLOEXEC);

	cr_assert(buf);
	cr_assert_geq(fd, 0);
	unlink(path);
	pattern_fill(buf, len, 0);
	cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	free(buf);
	return fd;
}

Test(netio, sendfile_full_3mib_byte_exact)
{
	size_t len = 3 * MIB, skip = 12345;
	int fd = make_pattern_file(len);
	off_t off = (off_t)skip;
	int sv[2];
	pid_t pid;

	make_socketpair(sv);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		unsigned char chunk[8192];
		size_t got = 0;

		close(sv[0]);
		for (;;) {
			ssize_t n = read(sv[1], chunk, sizeof(chunk));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (!pattern_check(chunk, (size_t)n, skip + got))
				_exit(3);
			got += (size_t)n;
		}
		_exit(got == len - skip ? 0 : 4);
	}
	close(sv[1]);
	cr_assert_eq(sendfile_full(sv[0], fd, &off, len - skip), 0);
	cr_assert_eq(off, (off_t)len);
	close(sv[0]);
	cr_assert_eq(wait_child(pid), 0);
	close(fd);
}

Test(netio, sendfile_full_of_a_shrunk_file_is_enodata)
{
	int fd = make_pattern_file(1000);
	off_t off = 0;
	int sv[2];

	make_socketpair(sv);
	cr_assert_eq(sendfile_full(sv[0], fd, &off, 2000), -ENODATA);
	cr_assert_eq(off, 1000);
	close(sv[0]);
	close(sv[1]);
	close(fd);
}

/* ---- fd flags ---- */

Test(netio, fd_flags)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
	cr_assert_eq(fd_set_cloexec(p[0]), 0);
	cr_assert_neq(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
	cr_assert_eq(fd_set_nonblock(p[0], true), 0);
	cr_assert_neq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	cr_assert_eq(fd_set_nonblock(p[0], false), 0);
	cr_assert_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(fd_set_cloexec(p[0]), -EBADF);
	cr_assert_eq(fd_set_nonblock(p[0], true), -EBADF);
}

/* ---- linebuf ---- */

struct lb_fixture {
	int sv[2];
	struct conn conn;
	struct linebuf lb;
};

static void lb_open(struct lb_fixture *f, size_t cap)
{
	make_socketpair(f->sv);
	conn_init_plain(&f->conn, f->sv[0]);
	cr_assert_eq(linebuf_init(&f->lb, &f->conn, cap), 0);
}

static void lb_close(struct lb_fixture *f)
{
	linebuf_finish(&f->lb);
	close(f->sv[0]);
	if (f->sv[1] >= 0)
		close(f->sv[1]);
}

static void lb_send(struct lb_fixture *f, const char *s, size_t n)
{
	cr_assert_eq(write(f->sv[1], s, n), (ssize_t)n);
}

static void lb_eof(struct lb_fixture *f)
{
	close(f->sv[1]);
	f->sv[1] = -1;
}

static void lb_expect_line(struct lb_fixture *f, const char *want)
{
	char *line;
	size_t len;

	cr_assert_eq(linebuf_read_line(&f->lb, &line, &len), 1);
	cr_assert_eq(len, strlen(want));
	cr_assert_str_eq(line, want);
}

Test(linebuf, lines_split_byte_by_byte)
{
	static const char text[] = "PUT files/a 10\r\nGET b\n";
	struct lb_fixture f;
	char *line;
	size_t len;
	int lines = 0;

	lb_open(&f, 64);
	for (size_t i = 0; i < sizeof(text) - 1; i++) {
		lb_send(&f, &text[i], 1);
		cr_assert_eq(linebuf_fill(&f.lb), 1);
		int r = linebuf_take_line(&f.lb, &line, &len);

		if (text[i] != '\n') {
			cr_assert_eq(r, 0, "line complete early at byte %zu", i);
			continue;
		}
		cr_assert_eq(r, 1);
		cr_assert_str_eq(line, lines == 0 ? "PUT files/a 10" : "GET b");
		cr_assert_eq(len, lines == 0 ? 14u : 5u);
		lines++;
	}
	cr_assert_eq(lines, 2);
	cr_assert_eq(linebuf_take_line(&f.lb, &line, &len), 0);
	lb_close(&f);
}

Test(linebuf, several_lines_in_one_segment)
{
	static const char text[] = "a\r\nbb\n\nccc\r\nd\re\n";
	struct lb_fixture f;

	lb_open(&f, 64);
	lb_send(&f, text, sizeof(text) - 1);
	lb_expect_line(&f, "a");
	lb_expect_line(&f, "bb");
	lb_expect_line(&f, "");
	lb_expect_line(&f, "ccc");
	/* Only a CR right before the LF is framing. */
	lb_expect_line(&f, "d\re");
	cr_assert_eq(linebuf_pending(&f.lb), 0);
	lb_close(&f);
}

Test(linebuf, line_of_cap_minus_one_bytes_fits_after_compaction)
{
	enum { CAP = 32 };
	char big[CAP + 1];
	struct lb_fixture f;

	memset(big, 'x', CAP - 1);
	big[CAP - 1] = '\n';
	big[CAP] = '\0';

	lb_open(&f, CAP);
	/* A short line first, so the long one starts mid-buffer and only
	 * fits once the consumed bytes are reclaimed. */
	lb_send(&f, "hello\n", 6);
	lb_send(&f, big, 10);
	lb_expect_line(&f, "hello");
	lb_send(&f, big + 10, CAP - 10);
	big[CAP - 1] = '\0';
	lb_expect_line(&f, big);
	lb_close(&f);
}

Test(linebuf, full_cap_line_including_lf_is_accepted)
{
	enum { CAP = 16 };
	struct lb_fixture f;
	char *line;
	size_t len;

	lb_open(&f, CAP);
	lb_send(&f, "0123456789abcde\n", CAP);
	cr_assert_eq(linebuf_read_line(&f.lb, &line, &len), 1);
	cr_assert_eq(len, CAP - 1u);
	cr_assert_str_eq(line, "0123456789abcde");
	lb_close(&f);
}

Test(linebuf, cap_bytes_without_lf_is_emsgsize)
{
	enum { CAP = 16 };
	struct lb_fixture f;
	char *line;
	size_t len;

	lb_open(&f, CAP);
	lb_send(&f, "0123456789abcdef\n", CAP + 1);
	cr_assert_eq(linebuf_read_line(&f.lb, &line, &len), -EMSGSIZE);
	cr_assert_eq(linebuf_take_line(&f.lb, &line, &len), -EMSGSIZE);
	lb_close(&f);
}

Test(linebuf, eof_mid_line_is_eproto)
{
	struct lb_fixture f;
	char *line;
	size_t len;

	lb_open(&f, 64);
	lb_send(&f, "ok\npartial", 10);
	lb_eof(&f);
	lb_expect_line(&f, "ok");
	cr_assert_eq(linebuf_read_line(&f.lb, &line, &len), -EPROTO);
	lb_close(&f);
}

Test(linebuf, eof_at_line_start_is_zero)
{
	struct lb_fixture f;
	char *line;
	size_t len;

	lb_open(&f, 64);
	lb_send(&f, "QUIT\n", 5);
	lb_eof(&f);
	lb_expect_line(&f, "QUIT");
	cr_assert_eq(linebuf_read_line(&f.lb, &line, &len), 0);
	lb_close(&f);
}

Test(linebuf, receive_timeout_is_eagain)
{
	struct lb_fixture f;
	char *line;
	size_t len;

	lb_open(&f, 64);
	cr_assert_eq(socket_set_timeouts(f.sv[0], 20), 0);
	cr_assert_eq(linebuf_fill(&f.lb), -EAGAIN);
	cr_assert_eq(linebuf_read_line(&f.lb, &line, &len), -EAGAIN);
	lb_close(&f);
}

Test(linebuf, body_bytes_after_a_line_come_first)
{
	struct lb_fixture f;
	char body[64];

	lb_open(&f, 64);
	lb_send(&f, "PUT f 13\nBODYBYTES", 18);
	lb_expect_line(&f, "PUT f 13");
	cr_assert_eq(linebuf_pending(&f.lb), 9);
	lb_send(&f, "MORE", 4);

	/* A short read takes part of the buffered bytes only. */
	cr_assert_eq(linebuf_read(&f.lb, body, 4), 4);
	cr_assert_eq(memcmp(body, "BODY", 4), 0);
	cr_assert_eq(linebuf_read(&f.lb, body, sizeof(body)), 5);
	cr_assert_eq(memcmp(body, "BYTES", 5), 0);
	cr_assert_eq(linebuf_pending(&f.lb), 0);
	cr_assert_eq(linebuf_read(&f.lb, body, sizeof(body)), 4);
	cr_assert_eq(memcmp(body, "MORE", 4), 0);

	lb_send(&f, "NEXT\n", 5);
	lb_expect_line(&f, "NEXT");
	lb_eof(&f);
	cr_assert_eq(linebuf_read(&f.lb, body, sizeof(body)), 0);
	lb_close(&f);
}

Test(linebuf, body_bytes_between_lines)
{
	struct lb_fixture f;
	char body[8];

	lb_open(&f, 64);
	lb_send(&f, "PUT f 3\nabcSTAT f\n", 18);
	lb_expect_line(&f, "PUT f 3");
	cr_assert_eq(linebuf_read(&f.lb, body, 3), 3);
	cr_assert_eq(memcmp(body, "abc", 3), 0);
	lb_expect_line(&f, "STAT f");
	lb_close(&f);
}

Test(linebuf, discard_large_count)
{
	size_t len = 5 * MIB + 17;
	unsigned char *src = malloc(len + 5);
	struct lb_fixture f;
	pid_t pid;

	cr_assert(src);
	pattern_fill(src, len, 0);
	memcpy(src + len, "next\n", 5);
	lb_open(&f, 64);
	/* Some body bytes are already buffered behind the line. */
	lb_send(&f, "PUT x\n", 6);
	pid = spawn_dribbler(f.sv[1], src, len + 5);
	lb_expect_line(&f, "PUT x");
	cr_assert_eq(linebuf_discard(&f.lb, len), 0);
	lb_expect_line(&f, "next");
	cr_assert_eq(wait_child(pid), 0);
	lb_close(&f);
	free(src);
}

Test(linebuf, discard_past_eof_is_epipe)
{
	struct lb_fixture f;

	lb_open(&f, 64);
	lb_send(&f, "L\n0123456789", 12);
	lb_eof(&f);
	lb_expect_line(&f, "L");
	cr_assert_eq(linebuf_discard(&f.lb, 11), -EPIPE);
	lb_close(&f);
}

Test(linebuf, init_rejects_zero_cap)
{
	struct linebuf lb;
	struct conn conn;

	conn_init_plain(&conn, 0);
	cr_assert_eq(linebuf_init(&lb, &conn, 0), -EINVAL);
	linebuf_finish(&lb);
}

/* ---- listener ---- */

struct split_case {
	const char *addr;
	int ret;
	const char *host;       /* or, on failure, the reason given */
	const char *port;
};

Test(listener, split_address)
{
	static const struct split_case cases[] = {
		{ "127.0.0.1:5005", 0, "127.0.0.1", "5005" },
		{ "[::1]:5005", 0, "::1", "5005" },
		{ "[::]:5005", 0, "::", "5005" },
		{ "*:5005", 0, "", "5005" },
		{ "localhost:5005", 0, "localhost", "5005" },
		{ "[fe80::1%eth0]:1", 0, "fe80::1%eth0", "1" },
		{ "0.0.0.0:0", 0, "0.0.0.0", "0" },
		{ "h:65535", 0, "h", "65535" },
		{ "h:0000000000000000000080", 0, "h", "80" },
		{ "[*]:1", 0, "*", "1" },
		{ "h:65536", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "5005", -EINVAL, "expected HOST:PORT", NULL },
		{ ":5005", -EINVAL, "missing host (use * for every address)", NULL },
		{ "::1:5005", -EINVAL, "an IPv6 address needs brackets, as in [::1]:5005", NULL },
		{ "a:b:5005", -EINVAL, "an IPv6 address needs brackets, as in [::1]:5005", NULL },
		{ "[::1]5005", -EINVAL, "expected [IPV6]:PORT", NULL },
		{ "[::1]", -EINVAL, "expected [IPV6]:PORT", NULL },
		{ "[::1:5005", -EINVAL, "missing ']' after the IPv6 address", NULL },
		{ "[]:5005", -EINVAL, "not an IPv6 address", NULL },
		{ "host:", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "host:-1", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "host:+1", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "host:50x", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "host: 50", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "[::1]:5005]", -EINVAL, "port must be a number between 0 and 65535", NULL },
		{ "", -EINVAL, "expected HOST:PORT", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct split_case *c = &cases[i];
		char host[64] = "unset", port[16] = "unset";
		const char *why = NULL;
		int r = listener_split_address(c->addr, host, sizeof(host), port,
					       sizeof(port), &why);

		cr_assert_eq(r, c->ret, "%s: got %d", c->addr, r);
		if (r < 0) {
			cr_assert_str_eq(why, c->host, "%s", c->addr);
			/* A malformed address writes nothing. */
			cr_assert_str_eq(host, "unset", "%s", c->addr);
			cr_assert_str_eq(port, "unset", "%s", c->addr);
			continue;
		}
		cr_assert_null(why, "%s", c->addr);
		cr_assert_str_eq(host, c->host, "%s", c->addr);
		cr_assert_str_eq(port, c->port, "%s", c->addr);
	}
}

Test(listener, split_address_small_buffers)
{
	char host[4], port[3];
	const char *why = NULL;

	cr_assert_eq(listener_split_address("abc:80", host, sizeof(host), port,
					    sizeof(port), NULL), 0);
	cr_assert_eq(listener_split_address("abcd:80", host, sizeof(host), port,
					    sizeof(port), &why), -EINVAL);
	cr_assert_str_eq(why, "host name too long");
	cr_assert_eq(listener_split_address("[::12]:80", host, sizeof(host), port,
					    sizeof(port), &why), -EINVAL);
	cr_assert_str_eq(why, "IPv6 address too long");
	cr_assert_eq(listener_split_address("abc:800", host, sizeof(host), port,
					    sizeof(port), &why), -EINVAL);
	cr_assert_str_eq(why, "no room for the port");
	cr_assert_eq(listener_split_address(NULL, host, sizeof(host), port,
					    sizeof(port), &why), -EINVAL);
}

/* The longest host name and port the config accepts fit the advertised
 * buffer sizes. */
Test(listener, split_address_caps)
{
	char addr[300], host[LISTENER_HOST_CAP], port[LISTENER_PORT_CAP];
	char label[64];

	memset(label, 'a', 63);
	label[63] = '\0';
	/* 4 labels of 63 and 3 dots: 255, more than a DNS name may have. */
	snprintf(addr, sizeof(addr), "%s.%s.%s.%s:65535", label, label, label, label);
	cr_assert_eq(listener_split_address(addr, host, sizeof(host), port,
					    sizeof(port), NULL), 0);
	cr_assert_eq(strlen(host), 255);
	cr_assert_str_eq(port, "65535");
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	cr_assert_eq(ss.ss_family, AF_INET6);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Connects to host:port of the given family, exchanges a byte through the
 * accepted socket and checks the peer's formatted address. */
static void connect_and_check(int lfd, int family, const char *ip,
			      const char *want_peer_ip)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	uint16_t port = local_port(lfd);
	char text[128], want[128], c = 'z';
	int cfd, afd;

	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
		len = sizeof(*in6);
	}
	cfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(cfd, 0);
	cr_assert_eq(connect(cfd, (struct sockaddr *)&ss, len), 0,
		     "connect: %s", strerror(errno));
	afd = accept4(lfd, (struct sockaddr *)&ss, &(socklen_t){ sizeof(ss) },
		      SOCK_CLOEXEC);
	cr_assert_geq(afd, 0);
	cr_assert_eq(write(cfd, &c, 1), 1);
	c = 0;
	cr_assert_eq(read(afd, &c, 1), 1);
	cr_assert_eq(c, 'z');

	listener_format_sockaddr((struct sockaddr *)&ss, text, sizeof(text));
	if (strchr(want_peer_ip, ':'))
		snprintf(want, sizeof(want), "[%s]:%u", want_peer_ip,
			 (unsigned)local_port(cfd));
	else
		snprintf(want, sizeof(want), "%s:%u", want_peer_ip,
			 (unsigned)local_port(cfd));
	cr_assert_str_eq(text, want);
	close(afd);
	close(cfd);
}

Test(listener, bind_ipv4_loopback_and_connect)
{
	char err[256] = "", text[64], want[64];
	int fd = listener_bind("127.0.0.1:0", 8, err, sizeof(err));

	cr_assert_geq(fd, 0, "%s", err);
	cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	snprintf(want, sizeof(want), "127.0.0.1:%u", (unsigned)local_port(fd));
	cr_assert_str_eq(listener_format_local(fd, text, sizeof(text)), want);
	connect_and_check(fd, AF_INET, "127.0.0.1", "127.0.0.1");
	close(fd);
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = bind(fd, (struct sockaddr *)&in6, sizeof(in6)) == 0;
	close(fd);
	return ok;
}

Test(listener, bind_ipv6_loopback_and_connect)
{
	char err[256] = "", text[64], want[64];
	int fd;

	if (!have_ipv6_loopback())
		cr_skip_test("no IPv6 loopback");
	fd = listener_bind("[::1]:0", 8, err, sizeof(err));
	cr_assert_geq(fd, 0, "%s", err);
	snprintf(want, sizeof(want), "[::1]:%u", (unsigned)local_port(fd));
	cr_assert_str_eq(listener_format_local(fd, text, sizeof(text)), want);
	connect_and_check(fd, AF_INET6, "::1", "::1");
	close(fd);
}

Test(listener, wildcard_is_dual_stack)
{
	char err[256] = "";
	int fd = listener_bind("*:0", 8, err, sizeof(err));

	cr_assert_geq(fd, 0, "%s", err);
	/* An IPv4 client must get in whichever family the socket has, and
	 * a v4-mapped peer is shown as plain IPv4. */
	connect_and_check(fd, AF_INET, "127.0.0.1", "127.0.0.1");
	if (have_ipv6_loopback())
		connect_and_check(fd, AF_INET6, "::1", "::1");
	close(fd);
}

Test(listener, bind_in_use_reports_address)
{
	char err[256] = "", addr[64], want[128];
	int fd = listener_bind("127.0.0.1:0", 8, err, sizeof(err)), fd2;

	cr_assert_geq(fd, 0, "%s", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)local_port(fd));
	fd2 = listener_bind(addr, 8, err, sizeof(err));
	cr_assert_eq(fd2, -EADDRINUSE);
	snprintf(want, sizeof(want), "%s: bind: %s", addr, strerror(EADDRINUSE));
	cr_assert_str_eq(err, want);
	close(fd);
}

Test(listener, bind_rejects_bad_addresses)
{
	char err[256] = "";

	cr_assert_eq(listener_bind("nonsense", 8, err, sizeof(err)), -EINVAL);
	cr_assert_neq(strstr(err, "nonsense"), NULL, "%s", err);
	/* TEST-NET-1 is never local: bind fails without any DNS lookup. */
	cr_assert_eq(listener_bind("192.0.2.1:0", 8, err, sizeof(err)),
		     -EADDRNOTAVAIL);
	cr_assert_str_eq(err, "192.0.2.1:0: bind: Cannot assign requested address");
	/* A NULL error buffer is allowed. */
	cr_assert_eq(listener_bind("x", 8, NULL, 0), -EINVAL);
}

Test(listener, format_sockaddr)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(443) };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(80) };
	char buf[64];

	cr_assert_eq(inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr), 1);
	cr_assert_str_eq(listener_format_sockaddr((struct sockaddr *)&in6, buf,
						  sizeof(buf)), "10.1.2.3:443");
	cr_assert_eq(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr), 1);
	cr_assert_str_eq(listener_format_sockaddr((struct sockaddr *)&in6, buf,
						  sizeof(buf)), "[2001:db8::1]:443");
	cr_assert_eq(inet_pton(AF_INET, "192.0.2.7", &in.sin_addr), 1);
	cr_assert_str_eq(listener_format_sockaddr((struct sockaddr *)&in, buf,
						  sizeof(buf)), "192.0.2.7:80");
	cr_assert_str_eq(listener_format_sockaddr(NULL, buf, sizeof(buf)), "?");
	cr_assert_str_eq(listener_format_local(-1, buf, sizeof(buf)), "?");
}

Test(listener, set_open_binds_every_address)
{
	char *addrs[] = { "127.0.0.1:0", "127.0.0.1:0" };
	struct listener_set set;
	char err[256] = "";

	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	cr_assert_eq(listener_set_open(&set, addrs, 2, 8, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(set.n, 2);
	cr_assert_not(set.activated);
	cr_assert_neq(local_port(set.fds[0]), local_port(set.fds[1]));
	int fd0 = set.fds[0];
	listener_set_close(&set);
	cr_assert_eq(set.n, 0);
	cr_assert_eq(fcntl(fd0, F_GETFD), -1);
}

Test(listener, set_open_failure_closes_what_it_bound)
{
	char *addrs[] = { "127.0.0.1:0", "bad" };
	struct listener_set set;
	char err[256] = "";
	int probe;

	/* The next free fd number is where the first socket would land. */
	probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(probe, 0);
	close(probe);
	cr_assert_eq(listener_set_open(&set, addrs, 2, 8, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(set.n, 0);
	cr_assert_eq(fcntl(probe, F_GETFD), -1, "fd %d leaked", probe);
	cr_assert_eq(listener_set_open(&set, addrs, 0, 8, err, sizeof(err)),
		     -EINVAL);
}

/* Socket activation needs the sockets at fd 3 onwards; do it in a child
 * so Criterion's own descriptors stay untouched.  Returns the child's exit
 * code: 0 when the expectation held. */
static int activation_child(bool listening, int want_ret)
{
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct sockaddr_in in = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct listener_set set;
		char err[256] = "", pidstr[32];
		char *addrs[] = { "bad address that must not be used" };
		int fd = socket(AF_INET, SOCK_STREAM, 0), r;

		if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0)
			_exit(10);
		if (listening && listen(fd, 4) < 0)
			_exit(11);
		if (fd != SD_LISTEN_FDS_START &&
		    (dup2(fd, SD_LISTEN_FDS_START) < 0 || close(fd) < 0))
			_exit(12);
		snprintf(pidstr, sizeof(pidstr), "%ld", (long)getpid());
		setenv("LISTEN_PID", pidstr, 1);
		setenv("LISTEN_FDS", "1", 1);
		r = listener_set_open(&set, addrs, 1, 8, err, sizeof(err));
		if (r != want_ret)
			_exit(13);
		if (getenv("LISTEN_FDS") || getenv("LISTEN_PID"))
			_exit(14);
		if (r < 0)
			_exit(err[0] ? 0 : 15);
		if (!set.activated || set.n != 1 || set.fds[0] != SD_LISTEN_FDS_START)
			_exit(16);
		if (!(fcntl(set.fds[0], F_GETFD) & FD_CLOEXEC))
			_exit(17);
		listener_set_close(&set);
		_exit(fcntl(SD_LISTEN_FDS_START, F_GETFD) == -1 ? 0 : 18);
	}
	return wait_child(pid);
}

Test(listener, set_open_adopts_activated_socket)
{
	cr_assert_eq(activation_child(true, 0), 0);
}

Test(listener, set_open_rejects_non_listening_activated_socket)
{
	cr_assert_eq(activation_child(false, -ENOTSOCK), 0);
}

/* ---- notify ---- */

struct notify_fixture {
	char dir[64];
	char path[96];
	int fd;
};

static void notify_open(struct notify_fixture *f)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_netio.XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/notify", f->dir);
	f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(f->fd, 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", f->path);
	cr_assert_eq(bind(f->fd, (struct sockaddr *)&un, sizeof(un)), 0);
	cr_assert_eq(socket_set_timeouts(f->fd, 5000), 0);
	setenv("NOTIFY_SOCKET", f->path, 1);
}

static void notify_close(struct notify_fixture *f)
{
	unsetenv("NOTIFY_SOCKET");
	close(f->fd);
	unlink(f->path);
	rmdir(f->dir);
}

static void notify_recv(struct notify_fixture *f, char *buf, size_t cap)
{
	ssize_t n = recv(f->fd, buf, cap - 1, 0);

	cr_assert_gt(n, 0, "recv: %s", strerror(errno));
	buf[n] = '\0';
}

static uint64_t monotonic_usec(void)
{
	struct timespec ts;

	cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

Test(notify, messages_reach_the_socket)
{
	struct notify_fixture f;
	char buf[1024];
	unsigned long long usec;
	uint64_t before, after;

	notify_open(&f);
	cr_assert_eq(notify_ready(), 0);
	notify_recv(&f, buf, sizeof(buf));
	cr_assert_str_eq(buf, "READY=1");

	cr_assert_eq(notify_status("%u workers, %s", 4u, "idle"), 0);
	notify_recv(&f, buf, sizeof(buf));
	cr_assert_str_eq(buf, "STATUS=4 workers, idle");

	before = monotonic_usec();
	cr_assert_eq(notify_reloading(), 0);
	after = monotonic_usec();
	notify_recv(&f, buf, sizeof(buf));
	cr_assert_eq(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1,
		     "%s", buf);
	cr_assert(usec >= before && usec <= after);

	cr_assert_eq(notify_extend_timeout(90000000), 0);
	notify_recv(&f, buf, sizeof(buf));
	cr_assert_str_eq(buf, "EXTEND_TIMEOUT_USEC=90000000");

	cr_assert_eq(notify_watchdog(), 0);
	notify_recv(&f, buf, sizeof(buf));
	cr_assert_str_eq(buf, "WATCHDOG=1");

	cr_assert_eq(notify_stopping(), 0);
	notify_recv(&f, buf, sizeof(buf));
	cr_assert_str_eq(buf, "STOPPING=1");
	notify_close(&f);
}

Test(notify, without_socket_is_a_no_op_and_errors_surface)
{
	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(notify_ready(), 0);
	cr_assert_eq(notify_status("x"), 0);
	setenv("NOTIFY_SOCKET", "/nonexistent/dir/notify", 1);
	cr_assert_lt(notify_ready(), 0);
	unsetenv("NOTIFY_SOCKET");
}

Test(notify, watchdog_usec)
{
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	cr_assert_eq(notify_watchdog_usec(), 0);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_USEC", "2500000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	cr_assert_eq(notify_watchdog_usec(), 2500000);
	/* Meant for another process: not ours to honour. */
	setenv("WATCHDOG_PID", "1", 1);
	cr_assert_eq(notify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}
