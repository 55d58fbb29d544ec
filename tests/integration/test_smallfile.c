/* test_smallfile: many small uploads on one connection: answers held back
 * while the next request is buffered still arrive in order and before the
 * server waits for the client; directories reused between pipelined PUTs
 * are never followed once replaced by a link, and a removed one is made
 * again; a reload between two PUTs moves the next one to the new share. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"
#include "protocol.h"

#define N_FILES 300

static struct daemon d;
static char scratch[PATH_MAX];

static void setup(void)
{
	scratch_create(scratch, sizeof(scratch), "itsmall");
	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
}

static void teardown(void)
{
	test_release_all();
	daemon_stop(&d);
	scratch_remove(scratch);
}

TestSuite(smallfile, .init = setup, .fini = teardown, .timeout = 120);

static void share_path(char *out, size_t cap, const char *rel)
{
	path_join(out, cap, d.share_dir, rel);
}

/* "OK size=<n> digest=<xxh>" for body p[0..n). */
static void expect_ok_for(const char *line, const void *p, size_t n)
{
	char xxh[64], sha[80], want[160];

	digest_buf(p, n, xxh, sha);
	snprintf(want, sizeof(want), "OK size=%zu digest=%s", n, xxh);
	cr_assert_str_eq(line, want);
}

/* Every PUT of a long pipeline sent in one go is answered, in order, with
 * its own digest, and every file holds its bytes. */
static void pipelined_in_order(void)
{
	size_t cap = (size_t)N_FILES * 128 + 64, len = 0;
	char *script = test_alloc(cap);
	char line[HARNESS_LINE_CAP], path[PATH_MAX];
	int fd = raw_open(&d, NULL, 0);

	for (int i = 0; i < N_FILES; i++) {
		char body[32];
		int n = snprintf(body, sizeof(body), "file %d", i);

		len += (size_t)snprintf(script + len, cap - len,
					"PUT files/p/f%d size=%d\nDATA %d\n%sEND\n", i, n, n,
					body);
		cr_assert_lt(len, cap);
	}
	len += (size_t)snprintf(script + len, cap - len, "QUIT\n");
	cr_assert_eq(write_full(fd, script, len), 0);
	for (int i = 0; i < N_FILES; i++) {
		char body[32];
		int n = snprintf(body, sizeof(body), "file %d", i);

		raw_recv(fd, line, sizeof(line));
		expect_ok_for(line, body, (size_t)n);
		snprintf(path, sizeof(path), "p/f%d", i);
		share_path(line, sizeof(line), path);
		cr_assert(file_is(line, body, (size_t)n), "%s", line);
	}
	raw_recv(fd, line, sizeof(line));
	cr_assert_str_eq(line, "OK bye");
	close(fd);
	test_free(script);
}

Test(smallfile, pipelined_answers_arrive_in_order)
{
	pipelined_in_order();
}

/* The next request's line is buffered behind a finished PUT, but its body
 * is not: the client waits for the first answer before it sends the rest.
 * The server must send that answer before it waits for the body. */
/* The same daemon with fsync = no: answers are sent at commit, not after
 * a group commit. */
static void restart_without_fsync(void)
{
	daemon_stop(&d);
	start_daemon(&d, &(struct daemon_opts){ .workers = 1,
						 .server_extra = "fsync = no\n" });
}

static void answer_before_body(void)
{
	static const char first[] = "PUT files/h1 size=3\nDATA 3\none"
				    "END\nPUT files/h2 size=5000\nDATA 5000\n";
	char *big = random_buf(5000);
	char line[HARNESS_LINE_CAP], path[PATH_MAX];
	int fd = raw_open(&d, NULL, 0);

	/* The start of the second body travels with the first request, so
	 * the server takes it from its buffer before it must read again. */
	cr_assert_eq(write_full(fd, first, sizeof(first) - 1), 0);
	cr_assert_eq(write_full(fd, big, 100), 0);
	raw_recv(fd, line, sizeof(line));   /* fails after SO_RCVTIMEO if held */
	expect_ok_for(line, "one", 3);
	cr_assert_eq(write_full(fd, big + 100, 4900), 0);
	cr_assert_eq(write_full(fd, "END\n", 4), 0);
	raw_recv(fd, line, sizeof(line));
	expect_ok_for(line, big, 5000);
	share_path(path, sizeof(path), "h2");
	cr_assert(file_is(path, big, 5000));
	close(fd);
}

Test(smallfile, held_answer_sent_before_waiting_for_a_body)
{
	answer_before_body();
}

Test(smallfile, held_answer_sent_before_waiting_for_a_body_without_fsync)
{
	restart_without_fsync();
	answer_before_body();
}

/* Only the next request's line is buffered, not even its DATA line. */
static void answer_before_frame(void)
{
	static const char first[] = "PUT files/g1 size=3\nDATA 3\noneEND\n"
				    "PUT files/g2 size=3\n";
	char line[HARNESS_LINE_CAP];
	int fd = raw_open(&d, NULL, 0);

	cr_assert_eq(write_full(fd, first, sizeof(first) - 1), 0);
	raw_recv(fd, line, sizeof(line));
	expect_ok_for(line, "one", 3);
	cr_assert_eq(write_full(fd, "DATA 3\ntwoEND\n", 14), 0);
	raw_recv(fd, line, sizeof(line));
	expect_ok_for(line, "two", 3);
	close(fd);
}

Test(smallfile, held_answer_sent_before_waiting_for_a_frame)
{
	answer_before_frame();
}

Test(smallfile, held_answer_sent_before_waiting_for_a_frame_without_fsync)
{
	restart_without_fsync();
	answer_before_frame();
}

Test(smallfile, pipelined_answers_arrive_in_order_without_fsync)
{
	restart_without_fsync();
	pipelined_in_order();
}

/* Between two PUTs into the same directory on one connection, the
 * directory is moved away and a link to the outside takes its name: the
 * second file lands inside the share (in the moved directory, which the
 * server still held) or is refused, never outside. */
Test(smallfile, directory_replaced_by_a_link_between_puts)
{
	char line[HARNESS_LINE_CAP], from[PATH_MAX], to[PATH_MAX], out[PATH_MAX];
	int fd = raw_open(&d, NULL, 0);

	path_join(out, sizeof(out), scratch, "outside");
	cr_assert_eq(mkdir(out, 0755), 0);
	raw_put_buf(fd, "files/d/x", "one", 3, NULL, line, sizeof(line));
	expect_ok_for(line, "one", 3);
	share_path(from, sizeof(from), "d");
	share_path(to, sizeof(to), "moved");
	cr_assert_eq(rename(from, to), 0);
	cr_assert_eq(symlink(out, from), 0);
	raw_put_buf(fd, "files/d/y", "two", 3, NULL, line, sizeof(line));
	if (strncmp(line, "OK ", 3) == 0) {
		share_path(to, sizeof(to), "moved/y");
		cr_assert(file_is(to, "two", 3));
	} else {
		cr_assert(strncmp(line, "ERR ", 4) == 0, "%s", line);
	}
	cr_assert_eq(count_entries(out, ""), 0, "a file was written outside the share");
	close(fd);
}

/* The directory is removed between two PUTs into it: the second makes it
 * again, as it would on a fresh connection. */
Test(smallfile, directory_removed_between_puts)
{
	char line[HARNESS_LINE_CAP], path[PATH_MAX];
	int fd = raw_open(&d, NULL, 0);

	raw_put_buf(fd, "files/e/x", "one", 3, NULL, line, sizeof(line));
	expect_ok_for(line, "one", 3);
	share_path(path, sizeof(path), "e");
	harness_rm_rf(path);
	cr_assert_not(path_exists(path));
	raw_put_buf(fd, "files/e/y", "two", 3, NULL, line, sizeof(line));
	expect_ok_for(line, "two", 3);
	share_path(path, sizeof(path), "e/y");
	cr_assert(file_is(path, "two", 3));
	close(fd);
}

/* A reload moves share "extra" to another directory between two PUTs of
 * one connection: the second lands in the new directory. */
Test(smallfile, reload_between_puts_follows_the_new_share)
{
	char a[PATH_MAX], b[PATH_MAX], extra[PATH_MAX * 2], msg[1024];
	char line[HARNESS_LINE_CAP], path[PATH_MAX];
	int fd;

	path_join(a, sizeof(a), scratch, "a");
	path_join(b, sizeof(b), scratch, "b");
	cr_assert_eq(mkdir(a, 0755), 0);
	cr_assert_eq(mkdir(b, 0755), 0);
	daemon_stop(&d);
	snprintf(extra, sizeof(extra),
		 "\n[extra]\npath = %s\nread_only = no\noverwrite = yes\nanonymous = write\n", a);
	start_daemon(&d, &(struct daemon_opts){ .workers = 1, .shares_extra = extra });
	fd = raw_open(&d, NULL, 0);
	raw_put_buf(fd, "extra/x", "one", 3, NULL, line, sizeof(line));
	expect_ok_for(line, "one", 3);
	snprintf(extra, sizeof(extra),
		 "\n[extra]\npath = %s\nread_only = no\noverwrite = yes\nanonymous = write\n", b);
	cr_assert_eq(daemon_write_config(&d, &(struct daemon_opts){ .workers = 1,
								  .shares_extra = extra }), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg,
					sizeof(msg)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg,
					sizeof(msg)), 0);
	raw_put_buf(fd, "extra/y", "two", 3, NULL, line, sizeof(line));
	expect_ok_for(line, "two", 3);
	path_join(path, sizeof(path), b, "y");
	cr_assert(file_is(path, "two", 3), "the PUT after the reload went elsewhere");
	path_join(path, sizeof(path), a, "y");
	cr_assert_not(path_exists(path));
	path_join(path, sizeof(path), a, "x");
	cr_assert(file_is(path, "one", 3));
	close(fd);
}
