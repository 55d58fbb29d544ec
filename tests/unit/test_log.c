/* Unit tests for log: escaping of hostile bytes in stderr records, and the rate limiter. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "netio.h"

/* Runs fn in a child whose stderr is a pipe and returns what it wrote. */
static size_t capture_stderr(void (*fn)(void), char *out, size_t cap)
{
	int p[2], status;
	pid_t pid;
	ssize_t n;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		if (dup2(p[1], STDERR_FILENO) < 0)
			_exit(10);
		unsetenv("JOURNAL_STREAM");
		log_init("test");
		fn();
		_exit(0);
	}
	close(p[1]);
	n = read_full(p[0], out, cap - 1);
	cr_assert_geq(n, 0);
	out[n] = '\0';
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return (size_t)n;
}

/* What session.c logs for a refused line, with a line that tries to plant
 * fields, a second record and terminal escapes. */
static void log_hostile(void)
{
	static const char line[] =
		"x client=10.0.0.1 result=ok\nnotice: forged record=1 \x1b[31mred\x7f\xc3\xa9\\";
	struct log_field f[] = {
		{ "CLIENT", "127.0.0.1:40000" },
		{ "SHARE", "a b=c\x1b\n\"q\"\\" },
		{ "PATH", "files/\xff\x01=x" },
		{ "RESULT", "refused" },
	};

	log_event(LOG_NOTICE, 0, NULL, f, 4, "bad request \"%s\"", line);
}

Test(log, hostile_bytes_are_escaped_on_stderr)
{
	char out[4096];

	capture_stderr(log_hostile, out, sizeof(out));
	cr_assert_str_eq(out,
		"notice: bad request \"x client\\x3d10.0.0.1 result\\x3dok\\x0anotice: forged "
		"record\\x3d1 \\x1b[31mred\\x7f\\xc3\\xa9\\x5c\""
		" client=127.0.0.1:40000"
		" share=\"a b\\x3dc\\x1b\\x0a\\\"q\\\"\\\\\""
		" path=files/\\xff\\x01\\x3dx"
		" result=refused\n");
	/* One line, and every '=' joins one of our keys to its value. */
	cr_expect_eq(strchr(out, '\n'), out + strlen(out) - 1);
	size_t equals = 0;
	for (const char *p = out; (p = strchr(p, '=')); p++)
		equals++;
	cr_expect_eq(equals, 4);
}

static void log_odd_keys(void)
{
	struct log_field f[] = { { "A B=\xc3", "v" } };

	log_event(LOG_INFO, 0, NULL, f, 1, "k");
}

Test(log, keys_cannot_break_a_record)
{
	char out[256];

	capture_stderr(log_odd_keys, out, sizeof(out));
	cr_assert_str_eq(out, "info: k a_b__=v\n");
}

/* A message made only of escaped bytes grows fourfold: it is cut whole
 * escapes at a time and still ends in one newline. */
static void log_huge_hostile(void)
{
	char big[3000];

	memset(big, '\x1b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
}

Test(log, escaped_records_are_cut_cleanly)
{
	static const char ellipsis[] = "\xe2\x80\xa6\n";
	char out[8192];
	size_t n = capture_stderr(log_huge_hostile, out, sizeof(out));

	cr_assert_leq(n, 4096u);
	cr_assert_eq(memcmp(out + n - strlen(ellipsis), ellipsis, strlen(ellipsis)), 0);
	cr_assert_eq(strchr(out, '\n'), out + n - 1);
	/* Only whole "\x1b" escapes before the ellipsis. */
	size_t body = n - strlen(ellipsis) - strlen("info: ");
	cr_expect_eq(body % 4, 0, "%zu bytes of escapes", body);
	cr_expect_eq(memchr(out, '\x1b', n), NULL);
}

static void log_ratelimited_connection(void)
{
	struct log_ratelimit rl;
	struct log_field f[] = { { "CLIENT", "192.0.2.1:5" } };

	log_ratelimit_init(&rl, 3, 0, LOG_NOTICE, "refused requests");
	for (int i = 0; i < 10000; i++)
		if (log_ratelimit_allow(&rl, (uint64_t)i, f, 1))
			log_notice("refused %d", i);
	log_ratelimit_flush(&rl, f, 1);
	/* Nothing more to say the second time. */
	log_ratelimit_flush(&rl, f, 1);
}

Test(log, ratelimit_per_connection)
{
	char out[4096];

	capture_stderr(log_ratelimited_connection, out, sizeof(out));
	cr_assert_str_eq(out,
		"notice: refused 0\n"
		"notice: refused 1\n"
		"notice: refused 2\n"
		"notice: 9997 more refused requests suppressed client=192.0.2.1:5\n");
}

static void log_ratelimited_windows(void)
{
	struct log_ratelimit rl;

	log_ratelimit_init(&rl, 2, 1000, LOG_WARNING, "refused connections");
	/* Window 1 (t = 5000..5999): 2 pass, 3 suppressed. */
	for (uint64_t t = 5000; t < 5005; t++)
		if (log_ratelimit_allow(&rl, t, NULL, 0))
			log_notice("w1 %d", (int)(t - 5000));
	/* Window 2 opens: summary first, then this record passes. */
	if (log_ratelimit_allow(&rl, 6000, NULL, 0))
		log_notice("w2 0");
	/* Window 3 after a quiet spell: nothing was suppressed in window 2. */
	if (log_ratelimit_allow(&rl, 9000, NULL, 0))
		log_notice("w3 0");
	log_ratelimit_flush(&rl, NULL, 0);
}

Test(log, ratelimit_windows)
{
	char out[4096];

	capture_stderr(log_ratelimited_windows, out, sizeof(out));
	cr_assert_str_eq(out,
		"notice: w1 0\n"
		"notice: w1 1\n"
		"warning: 3 more refused connections suppressed\n"
		"notice: w2 0\n"
		"notice: w3 0\n");
}

/* ---- stderr records and levels ---- */

static void log_some_records(void)
{
	struct log_field fields[] = {
		{ "PATH", "files/a b" },
		{ "SIZE", "42" },
		{ "NOTE", "say \"hi\"\\" },
		{ "EMPTY", "" },
	};

	log_info("plain %d", 1);
	log_debug("hidden at the default level");
	errno = ENOSPC;
	log_errno(-ENOENT, "open %s", "x");
	if (errno != ENOSPC)
		_exit(20);
	log_event(LOG_NOTICE, 0, LOG_MSGID_TRANSFER, fields, 4, "transfer");
	log_set_level(LOG_WARNING);
	log_info("hidden by the level");
	log_warn("kept");
}

Test(log, stderr_lines)
{
	char out[4096];

	capture_stderr(log_some_records, out, sizeof(out));
	cr_assert_str_eq(out,
			 "info: plain 1\n"
			 "error: open x: No such file or directory\n"
			 "notice: transfer path=\"files/a b\" size=42 "
			 "note=\"say \\\"hi\\\"\\\\\" empty=\"\"\n"
			 "warning: kept\n");
}

static void log_huge_record(void)
{
	char big[10000];

	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	log_info("after");
}

Test(log, long_records_are_cut_into_one_line)
{
	static const char ellipsis[] = "\xe2\x80\xa6\n";
	char out[32768];
	size_t n = capture_stderr(log_huge_record, out, sizeof(out));
	char *nl = strchr(out, '\n');

	cr_assert_not_null(nl);
	cr_assert_leq((size_t)(nl - out) + 1, 4096u);
	cr_assert_eq(strncmp(out, "info: yyyy", 10), 0);
	cr_assert_eq(memcmp(nl + 1 - strlen(ellipsis), ellipsis, strlen(ellipsis)), 0);
	cr_assert_str_eq(nl + 1, "info: after\n");
	cr_assert_eq(n, (size_t)(nl - out) + 1 + strlen("info: after\n"));
}

static void log_with_pid(void)
{
	log_set_ident_pid(true);
	log_warn("w");
}

Test(log, ident_pid_prefix)
{
	char out[256], want[256];

	/* The child's pid is only known inside it: compare the shape. */
	capture_stderr(log_with_pid, out, sizeof(out));
	cr_assert_eq(strncmp(out, "test[", 5), 0, "%s", out);
	snprintf(want, sizeof(want), "]: warning: w\n");
	cr_assert_not_null(strstr(out, want), "%s", out);
}

Test(log, level_names)
{
	cr_assert_eq(log_level_from_name("err"), LOG_ERR);
	cr_assert_eq(log_level_from_name("error"), LOG_ERR);
	cr_assert_eq(log_level_from_name("warning"), LOG_WARNING);
	cr_assert_eq(log_level_from_name("warn"), LOG_WARNING);
	cr_assert_eq(log_level_from_name("notice"), LOG_NOTICE);
	cr_assert_eq(log_level_from_name("info"), LOG_INFO);
	cr_assert_eq(log_level_from_name("debug"), LOG_DEBUG);
	cr_assert_eq(log_level_from_name("verbose"), -1);
	cr_assert_eq(log_level_from_name(""), -1);
	cr_assert_eq(log_level_from_name(NULL), -1);
	cr_assert_str_eq(log_level_name(LOG_ERR), "err");
	cr_assert_str_eq(log_level_name(LOG_WARNING), "warning");
	cr_assert_str_eq(log_level_name(LOG_DEBUG), "debug");
	log_set_level(LOG_DEBUG);
	cr_assert_eq(log_get_level(), LOG_DEBUG);
	log_set_level(LOG_INFO);
	cr_assert_eq(log_get_level(), LOG_INFO);
}
