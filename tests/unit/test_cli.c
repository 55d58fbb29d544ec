/* test_cli: the tcpfile client's parsers and formatters (no network). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "client.h"
#include "progress.h"

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

Test(client, server_parse_rejects)
{
	struct client_server s;
	const char *bad[] = { "", ":5005", "h:", "h:0", "h:65536", "h:+1", "h:5x",
			      "[::1", "[::1]x", "[]:5", "[::1]:" };

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
