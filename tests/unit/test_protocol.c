/* test_protocol: request, status, greeting and error lines, and path percent-encoding. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

/* Contract: proto_parse_request() receives one line WITHOUT its terminator.
 * The line reader strips the LF and a CR before it; a CR or LF that reaches
 * the parser is a control byte and the request is refused (500). */

#define XXH3_ABC   "06b05ab6733a618578af5f94892f3950"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

#define NO_MODE  (-1)
#define NO_MTIME (-1)

struct valid_case {
	const char *line;
	enum proto_verb verb;
	const char *path;
	uint64_t size;
	uint64_t offset;
	enum digest_alg alg;
	int overwrite;
	bool pipelined;
	int mode;               /* NO_MODE when absent */
	int64_t mtime_sec;      /* NO_MTIME when absent */
	uint32_t mtime_nsec;
	bool has_digest;
};

#define XXH DIGEST_XXH3_128
#define SHA DIGEST_SHA256

static const struct valid_case valid_cases[] = {
	/* line                                  verb        path       size offset alg  ow pipe mode    mtime     nsec dig */
	{ "PUT share/a.txt 0",                   PROTO_PUT,  "share/a.txt", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT share/d/f 18446744073709551615",  PROTO_PUT,  "share/d/f", UINT64_MAX, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 007",                         PROTO_PUT,  "s/f", 7, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 5 mode=0644",                 PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, 0644, NO_MTIME, 0, false },
	{ "PUT s/f 5 mode=7777",                 PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, 07777, NO_MTIME, 0, false },
	{ "PUT s/f 5 mode=0",                    PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, 0, NO_MTIME, 0, false },
	{ "PUT s/f 5 mode=00000755",             PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, 0755, NO_MTIME, 0, false },
	{ "PUT s/f 5 mtime=1700000000",          PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, NO_MODE, 1700000000, 0, false },
	{ "PUT s/f 5 mtime=1700000000.123456789", PROTO_PUT, "s/f", 5, 0, XXH, -1, false, NO_MODE, 1700000000, 123456789, false },
	{ "PUT s/f 5 mtime=1.5",                 PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, NO_MODE, 1, 500000000, false },
	{ "PUT s/f 5 mtime=0.000000001",         PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, NO_MODE, 0, 1, false },
	{ "PUT s/f 5 mtime=9223372036854775807", PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, NO_MODE, INT64_MAX, 0, false },
	{ "PUT s/f 5 overwrite=0",               PROTO_PUT,  "s/f", 5, 0, XXH, 0, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 5 overwrite=1",               PROTO_PUT,  "s/f", 5, 0, XXH, 1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 5 pipelined=1",               PROTO_PUT,  "s/f", 5, 0, XXH, -1, true, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 5 pipelined=0",               PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 5 alg=sha256",                PROTO_PUT,  "s/f", 5, 0, SHA, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/f 5 alg=xxh3-128",              PROTO_PUT,  "s/f", 5, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	/* digest= alone sets the algorithm the server computes in. */
	{ "PUT s/f 3 digest=sha256:" SHA256_ABC, PROTO_PUT,  "s/f", 3, 0, SHA, -1, false, NO_MODE, NO_MTIME, 0, true },
	{ "PUT s/f 3 digest=xxh3-128:" XXH3_ABC, PROTO_PUT,  "s/f", 3, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, true },
	{ "PUT s/f 3 alg=sha256 digest=sha256:" SHA256_ABC, PROTO_PUT, "s/f", 3, 0, SHA, -1, false, NO_MODE, NO_MTIME, 0, true },
	{ "PUT s/f 3 digest=XXH3-128:06B05AB6733A618578AF5F94892F3950 alg=xxh3-128",
						 PROTO_PUT,  "s/f", 3, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, true },
	{ "PUT s/f 3 pipelined=1 overwrite=0 mtime=12.34 mode=600 digest=sha256:" SHA256_ABC,
						 PROTO_PUT,  "s/f", 3, 0, SHA, 0, true, 0600, 12, 340000000, true },
	{ "GET s/f",                             PROTO_GET,  "s/f", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/f offset=100",                  PROTO_GET,  "s/f", 0, 100, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/f alg=sha256 offset=18446744073709551615",
						 PROTO_GET,  "s/f", 0, UINT64_MAX, SHA, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "STAT s/f",                            PROTO_STAT, "s/f", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "STAT s/f alg=sha256",                 PROTO_STAT, "s/f", 0, 0, SHA, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "LIST s",                              PROTO_LIST, "s", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "LIST s/sub%20dir",                    PROTO_LIST, "s/sub dir", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "DEL s/f",                             PROTO_DEL,  "s/f", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "QUIT",                                PROTO_QUIT, "", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	/* Decoding, not judging: storage validates components. */
	{ "GET s/caf%C3%A9",                     PROTO_GET,  "s/caf\xc3\xa9", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/100%25",                        PROTO_GET,  "s/100%", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/a%2fb",                         PROTO_GET,  "s/a/b", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/%41",                           PROTO_GET,  "s/A", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/../x",                          PROTO_GET,  "s/../x", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/a%0Ab",                         PROTO_GET,  "s/a\nb", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "GET s/a=b",                           PROTO_GET,  "s/a=b", 0, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
	{ "PUT s/x=1 2",                         PROTO_PUT,  "s/x=1", 2, 0, XXH, -1, false, NO_MODE, NO_MTIME, 0, false },
};

Test(protocol, valid_requests)
{
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
		const struct valid_case *c = &valid_cases[i];
		struct proto_request req;
		const char *why = "unset";
		int r = proto_parse_request(c->line, strlen(c->line), &req, &why);

		cr_assert_eq(r, 0, "\"%s\" refused: %d %s", c->line, r, why ? why : "");
		cr_assert_eq(req.verb, c->verb, "%s: verb", c->line);
		cr_assert_eq(req.path_len, strlen(c->path), "%s: path_len", c->line);
		cr_assert_str_eq(req.path, c->path, "%s: path", c->line);
		cr_assert_eq(req.size, c->size, "%s: size", c->line);
		cr_assert_eq(req.offset, c->offset, "%s: offset", c->line);
		cr_assert_eq(req.alg, c->alg, "%s: alg", c->line);
		cr_assert_eq(req.overwrite, c->overwrite, "%s: overwrite", c->line);
		cr_assert_eq(req.pipelined, c->pipelined, "%s: pipelined", c->line);
		cr_assert_eq(req.has_mode, c->mode != NO_MODE, "%s: has_mode", c->line);
		if (c->mode != NO_MODE)
			cr_assert_eq(req.mode, (uint32_t)c->mode, "%s: mode %o", c->line, req.mode);
		cr_assert_eq(req.has_mtime, c->mtime_sec != NO_MTIME, "%s: has_mtime", c->line);
		if (c->mtime_sec != NO_MTIME) {
			cr_assert_eq(req.mtime_sec, c->mtime_sec, "%s: mtime_sec", c->line);
			cr_assert_eq(req.mtime_nsec, c->mtime_nsec, "%s: mtime_nsec", c->line);
		}
		cr_assert_eq(req.has_digest, c->has_digest, "%s: has_digest", c->line);
		if (c->has_digest)
			cr_assert_eq(req.digest.alg, c->alg, "%s: digest alg", c->line);
	}
}

Test(protocol, digest_option_bytes)
{
	struct proto_request req;
	const char *why;
	const char *line = "PUT s/f 3 digest=xxh3-128:" XXH3_ABC;

	cr_assert_eq(proto_parse_request(line, strlen(line), &req, &why), 0);
	cr_assert_eq(req.digest.len, 16);
	cr_assert_eq(req.digest.bytes[0], 0x06);
	cr_assert_eq(req.digest.bytes[1], 0xb0);
	cr_assert_eq(req.digest.bytes[15], 0x50);
}

Test(protocol, line_is_length_delimited)
{
	/* The parser must not read past len: the rest is the next line. */
	const char *buf = "GET s/f\nDEL s/g";
	struct proto_request req;
	const char *why;

	cr_assert_eq(proto_parse_request(buf, 7, &req, &why), 0);
	cr_assert_eq(req.verb, PROTO_GET);
	cr_assert_str_eq(req.path, "s/f");
}

struct invalid_case {
	const char *line;
	int code;
	const char *why;        /* substring expected in *why, or NULL */
};

static const struct invalid_case invalid_cases[] = {
	{ "",                                   PROTO_ERR_BAD_REQUEST,  "empty" },
	{ "put s/f 1",                          PROTO_ERR_BAD_REQUEST,  "unknown command" },
	{ "Get s/f",                            PROTO_ERR_BAD_REQUEST,  "unknown command" },
	{ "HELO",                               PROTO_ERR_BAD_REQUEST,  "unknown command" },
	{ "GETX s/f",                           PROTO_ERR_BAD_REQUEST,  "unknown command" },
	{ "GET  s/f",                           PROTO_ERR_BAD_REQUEST,  "empty token" },
	{ "GET s/f ",                           PROTO_ERR_BAD_REQUEST,  "empty token" },
	{ " GET s/f",                           PROTO_ERR_BAD_REQUEST,  "empty token" },
	{ "QUIT ",                              PROTO_ERR_BAD_REQUEST,  "empty token" },
	{ " ",                                  PROTO_ERR_BAD_REQUEST,  "empty token" },
	{ "GET s/f\r",                          PROTO_ERR_BAD_REQUEST,  "control" },
	{ "GET s/f\n",                          PROTO_ERR_BAD_REQUEST,  "control" },
	{ "GET\ts/f",                           PROTO_ERR_BAD_REQUEST,  "control" },
	{ "GET s/caf\xc3\xa9",                  PROTO_ERR_BAD_REQUEST,  "non-ASCII" },
	{ "GET s/\x7f",                         PROTO_ERR_BAD_REQUEST,  NULL },
	{ "GET",                                PROTO_ERR_BAD_REQUEST,  "missing path" },
	{ "DEL",                                PROTO_ERR_BAD_REQUEST,  "missing path" },
	{ "PUT s/f",                            PROTO_ERR_BAD_REQUEST,  "missing size" },
	{ "PUT",                                PROTO_ERR_BAD_REQUEST,  "missing path" },
	{ "PUT s/f 1 extra",                    PROTO_ERR_BAD_REQUEST,  "too many" },
	{ "GET s/f s/g",                        PROTO_ERR_BAD_REQUEST,  "too many" },
	{ "LIST s x",                           PROTO_ERR_BAD_REQUEST,  "too many" },
	{ "QUIT now",                           PROTO_ERR_BAD_REQUEST,  "too many" },
	{ "PUT s/f -1",                         PROTO_ERR_BAD_ARGUMENT, "size" },
	{ "PUT s/f +1",                         PROTO_ERR_BAD_ARGUMENT, "size" },
	{ "PUT s/f 18446744073709551616",       PROTO_ERR_BAD_ARGUMENT, "overflow" },
	{ "PUT s/f 99999999999999999999999",    PROTO_ERR_BAD_ARGUMENT, "overflow" },
	{ "PUT s/f 1e3",                        PROTO_ERR_BAD_ARGUMENT, "decimal" },
	{ "PUT s/f 0x10",                       PROTO_ERR_BAD_ARGUMENT, "decimal" },
	{ "PUT s/f size=1",                     PROTO_ERR_BAD_ARGUMENT, "decimal" },
	{ "PUT s/f 1 foo=1",                    PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "PUT s/f 1 =1",                       PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "PUT s/f 1 Mode=0644",                PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "PUT s/f 1 overwrite=2",              PROTO_ERR_BAD_ARGUMENT, "overwrite" },
	{ "PUT s/f 1 overwrite=",               PROTO_ERR_BAD_ARGUMENT, "overwrite" },
	{ "PUT s/f 1 overwrite=yes",            PROTO_ERR_BAD_ARGUMENT, "overwrite" },
	{ "PUT s/f 1 overwrite=0 overwrite=1",  PROTO_ERR_BAD_ARGUMENT, "duplicate" },
	{ "PUT s/f 1 mode=0644 mode=0644",      PROTO_ERR_BAD_ARGUMENT, "duplicate" },
	{ "GET s/f alg=sha256 alg=sha256",      PROTO_ERR_BAD_ARGUMENT, "duplicate" },
	{ "PUT s/f 1 pipelined=yes",            PROTO_ERR_BAD_ARGUMENT, "pipelined" },
	{ "PUT s/f 1 mode=0999",                PROTO_ERR_BAD_ARGUMENT, "mode" },
	{ "PUT s/f 1 mode=10000",               PROTO_ERR_BAD_ARGUMENT, "mode" },
	{ "PUT s/f 1 mode=",                    PROTO_ERR_BAD_ARGUMENT, "mode" },
	{ "PUT s/f 1 mode=-644",                PROTO_ERR_BAD_ARGUMENT, "mode" },
	{ "PUT s/f 1 mode=0o644",               PROTO_ERR_BAD_ARGUMENT, "mode" },
	{ "PUT s/f 1 mtime=1.1234567890",       PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=1.",                 PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=.5",                 PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=1.5x",               PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=1.2.3",              PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=-1",                 PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=",                   PROTO_ERR_BAD_ARGUMENT, "mtime" },
	{ "PUT s/f 1 mtime=9223372036854775808", PROTO_ERR_BAD_ARGUMENT, "range" },
	{ "PUT s/f 1 offset=0",                 PROTO_ERR_BAD_ARGUMENT, "offset= is reserved for resume" },
	{ "PUT s/f 1 alg=md5",                  PROTO_ERR_BAD_ARGUMENT, "alg" },
	{ "PUT s/f 1 alg=",                     PROTO_ERR_BAD_ARGUMENT, "alg" },
	{ "PUT s/f 1 digest=sha256:abc",        PROTO_ERR_BAD_ARGUMENT, "digest" },
	{ "PUT s/f 1 digest=" XXH3_ABC,         PROTO_ERR_BAD_ARGUMENT, "digest" },
	{ "PUT s/f 1 digest=xxh3-128:" XXH3_ABC " alg=sha256", PROTO_ERR_BAD_ARGUMENT, "different" },
	{ "PUT s/f 1 alg=xxh3-128 digest=sha256:" SHA256_ABC,  PROTO_ERR_BAD_ARGUMENT, "different" },
	{ "GET s/%G1",                          PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/%4",                           PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/%",                            PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/%%41",                         PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/a%zz",                         PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/%00",                          PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/a%00b",                        PROTO_ERR_BAD_ARGUMENT, "encoding" },
	{ "GET s/f offset=-1",                  PROTO_ERR_BAD_ARGUMENT, "offset" },
	{ "GET s/f offset=",                    PROTO_ERR_BAD_ARGUMENT, "offset" },
	{ "GET s/f offset=18446744073709551616", PROTO_ERR_BAD_ARGUMENT, "overflow" },
	{ "GET s/f mode=0644",                  PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "GET s/f digest=sha256:" SHA256_ABC,  PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "GET s/f pipelined=1",                PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "STAT s/f offset=1",                  PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "LIST s alg=sha256",                  PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "DEL s/f overwrite=1",                PROTO_ERR_BAD_ARGUMENT, "unknown option" },
	{ "QUIT x=1",                           PROTO_ERR_BAD_ARGUMENT, "unknown option" },
};

Test(protocol, invalid_requests)
{
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		const struct invalid_case *c = &invalid_cases[i];
		struct proto_request req;
		const char *why = NULL;
		int r = proto_parse_request(c->line, strlen(c->line), &req, &why);

		cr_assert_eq(r, c->code, "\"%s\": got %d (%s), want %d", c->line, r,
			     why ? why : "no reason", c->code);
		cr_assert_not_null(why, "\"%s\": no reason given", c->line);
		if (c->why)
			cr_assert_not_null(strstr(why, c->why),
					   "\"%s\": reason \"%s\" lacks \"%s\"",
					   c->line, why, c->why);
	}
}

Test(protocol, embedded_nul_in_line)
{
	static const char line[] = "GET s/a\0b";
	struct proto_request req;
	const char *why;

	cr_assert_eq(proto_parse_request(line, sizeof(line) - 1, &req, &why),
		     PROTO_ERR_BAD_REQUEST);
}

struct body_case {
	const char *line;
	int ret;
	uint64_t size;
};

/* Every line here is one proto_parse_request() refuses. */
static const struct body_case body_cases[] = {
	{ "PUT s/f 5 mode=999 pipelined=1",          1, 5 },
	{ "PUT s/f 5 pipelined=1 mode=999",          1, 5 },
	{ "PUT s/%00 7 pipelined=1",                 1, 7 },
	{ "PUT s/f 0 pipelined=1 foo=bar",           1, 0 },
	{ "PUT s/f 9 pipelined=1 pipelined=1",       1, 9 },
	{ "PUT s/f 9 pipelined=0 pipelined=1",       1, 9 },
	{ "PUT  s/f 3 pipelined=1",                  1, 3 },
	{ " PUT s/f 3 pipelined=1 ",                 1, 3 },
	{ "put s/f 3 pipelined=1",                   1, 3 },
	{ "PUT s/f 18446744073709551615 pipelined=1 offset=1", 1, UINT64_MAX },
	{ "PUT s/f -1 pipelined=1",                  -EPROTO, 0 },
	{ "PUT s/f 18446744073709551616 pipelined=1", -EPROTO, 0 },
	{ "PUT s/f pipelined=1",                     -EPROTO, 0 },
	{ "PUT s/f 5 mode=999",                      0, 0 },
	{ "PUT s/f 5 pipelined=0 mode=999",          0, 0 },
	{ "PUT s/f 5 pipelined=yes",                 0, 0 },
	{ "PUT pipelined=1 5 mode=999",              0, 0 },
	{ "PUT s/f",                                 0, 0 },
	{ "PUT",                                     0, 0 },
	{ "GET s/f pipelined=1",                     0, 0 },
	{ "PUTS s/f 5 pipelined=1",                  0, 0 },
	{ "",                                        0, 0 },
};

Test(protocol, refused_pipelined_body)
{
	for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
		const struct body_case *c = &body_cases[i];
		struct proto_request req;
		const char *why;
		uint64_t size = 12345;

		cr_assert_neq(proto_parse_request(c->line, strlen(c->line), &req, &why), 0,
			      "\"%s\" should be refused", c->line);
		int r = proto_refused_body(c->line, strlen(c->line), &size);
		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->line, r);
		if (r == 1)
			cr_assert_eq(size, c->size, "\"%s\"", c->line);
	}
}

/* Builds "<prefix><n x unit>" into a malloc'd string. */
static char *repeat_line(const char *prefix, const char *unit, size_t n, const char *suffix)
{
	size_t plen = strlen(prefix), ulen = strlen(unit), slen = strlen(suffix);
	char *s = malloc(plen + n * ulen + slen + 1);
	cr_assert_not_null(s);
	memcpy(s, prefix, plen);
	for (size_t i = 0; i < n; i++)
		memcpy(s + plen + i * ulen, unit, ulen);
	memcpy(s + plen + n * ulen, suffix, slen + 1);
	return s;
}

Test(protocol, path_length_limit)
{
	struct proto_request req;
	const char *why;

	/* "s/" + 4094 bytes = exactly PROTO_MAX_PATH. */
	char *ok = repeat_line("GET s/", "a", PROTO_MAX_PATH - 2, "");
	cr_assert_eq(proto_parse_request(ok, strlen(ok), &req, &why), 0);
	cr_assert_eq(req.path_len, PROTO_MAX_PATH);
	cr_assert_eq(strlen(req.path), PROTO_MAX_PATH);
	free(ok);

	char *over = repeat_line("GET s/", "a", PROTO_MAX_PATH - 1, "");
	cr_assert_eq(proto_parse_request(over, strlen(over), &req, &why),
		     PROTO_ERR_BAD_ARGUMENT);
	cr_assert_str_eq(why, "path too long");
	free(over);

	/* Over-long only once decoded: 2000 escapes + 2097 plain = 4097. */
	char *esc = repeat_line("PUT ", "%41", 2000, "");
	char *esc2 = repeat_line(esc, "b", 2097, " 1");
	cr_assert_lt(strlen(esc2), PROTO_MAX_LINE);
	cr_assert_eq(proto_parse_request(esc2, strlen(esc2), &req, &why),
		     PROTO_ERR_BAD_ARGUMENT);
	cr_assert_str_eq(why, "path too long");
	free(esc);
	free(esc2);
}

Test(protocol, line_length_limit)
{
	struct proto_request req;
	const char *why;

	/* 4 + 3 * 2729 = 8191 bytes: the longest line (8192 with its LF). */
	char *longest = repeat_line("GET ", "%41", 2729, "");
	cr_assert_eq(strlen(longest), PROTO_MAX_LINE - 1);
	cr_assert_eq(proto_parse_request(longest, strlen(longest), &req, &why), 0);
	cr_assert_eq(req.path_len, 2729);
	free(longest);

	char *too_long = repeat_line("GET ", "%41", 2729, "a");
	cr_assert_eq(strlen(too_long), PROTO_MAX_LINE);
	cr_assert_eq(proto_parse_request(too_long, strlen(too_long), &req, &why),
		     PROTO_ERR_BAD_REQUEST);
	cr_assert_str_eq(why, "line too long");
	free(too_long);
}

Test(protocol, percent_round_trip_every_byte)
{
	char enc[16], dec[16];

	for (int b = 1; b < 256; b++) {
		char in = (char)b;
		int n = proto_encode_path(&in, 1, enc, sizeof(enc));
		bool plain = b >= 0x21 && b <= 0x7e && b != '%';

		cr_assert_eq(n, plain ? 1 : 3, "byte 0x%02x", b);
		cr_assert_eq(enc[n], '\0');
		for (int i = 0; i < n; i++)
			cr_assert(enc[i] >= 0x21 && enc[i] <= 0x7e, "byte 0x%02x", b);
		if (!plain) {
			char want[4];
			snprintf(want, sizeof(want), "%%%02X", b);
			cr_assert_str_eq(enc, want, "byte 0x%02x", b);
		}
		int d = proto_decode_path(enc, (size_t)n, dec, sizeof(dec));
		cr_assert_eq(d, 1, "byte 0x%02x", b);
		cr_assert_eq((unsigned char)dec[0], b, "byte 0x%02x", b);
	}
}

Test(protocol, percent_round_trip_all_bytes_in_one_string)
{
	char in[255], enc[3 * 255 + 1], dec[256];

	for (int i = 0; i < 255; i++)
		in[i] = (char)(255 - i);        /* 0xff .. 0x01 */
	int n = proto_encode_path(in, sizeof(in), enc, sizeof(enc));
	cr_assert_gt(n, 0);
	cr_assert_eq(strlen(enc), (size_t)n);
	for (int i = 0; i < n; i++)
		cr_assert(enc[i] >= 0x21 && enc[i] <= 0x7e);
	cr_assert_eq(proto_decode_path(enc, (size_t)n, dec, sizeof(dec)), 255);
	cr_assert_eq(memcmp(dec, in, sizeof(in)), 0);
	cr_assert_eq(dec[255], '\0');
}

Test(protocol, percent_encode_examples_and_limits)
{
	char out[32];

	cr_assert_eq(proto_encode_path("s/a b%c", 7, out, sizeof(out)), 11);
	cr_assert_str_eq(out, "s/a%20b%25c");
	cr_assert_eq(proto_encode_path("", 0, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(proto_encode_path("\xff", 1, out, sizeof(out)), 3);
	cr_assert_str_eq(out, "%FF");
	/* Fits exactly with its NUL; one byte less does not. */
	cr_assert_eq(proto_encode_path("a b", 3, out, 6), 5);
	cr_assert_eq(proto_encode_path("a b", 3, out, 5), -ENAMETOOLONG);
	cr_assert_eq(proto_encode_path("a", 1, out, 0), -ENAMETOOLONG);
	/* %00 would not decode, so a NUL is refused. */
	cr_assert_eq(proto_encode_path("a\0b", 3, out, sizeof(out)), -EINVAL);
}

Test(protocol, percent_decode_rejects)
{
	static const char *bad[] = {
		"%", "%4", "%G1", "%1G", "a%", "%00", "x%00y", "% 1",
		"a b", "a\tb", "caf\xc3\xa9", "\x7f",
	};
	char out[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(proto_decode_path(bad[i], strlen(bad[i]), out, sizeof(out)),
			     -EINVAL, "accepted \"%s\"", bad[i]);

	cr_assert_eq(proto_decode_path("%2f%2F", 6, out, sizeof(out)), 2);
	cr_assert_str_eq(out, "//");
	cr_assert_eq(proto_decode_path("abc", 3, out, 4), 3);
	cr_assert_eq(proto_decode_path("abc", 3, out, 3), -ENAMETOOLONG);
	cr_assert_eq(proto_decode_path("%41%42", 6, out, 3), 2);
	cr_assert_str_eq(out, "AB");
	cr_assert_eq(proto_decode_path("", 0, out, 0), -ENAMETOOLONG);
}

struct status_case {
	const char *line;
	int ret;
	bool ok;
	int code;
	const char *text;
};

static const struct status_case status_cases[] = {
	{ "OK",                          0, true,  0,   "" },
	{ "OK bye",                      0, true,  0,   "bye" },
	{ "OK 3 xxh3-128:" XXH3_ABC,     0, true,  0,   "3 xxh3-128:" XXH3_ABC },
	{ "OK 2",                        0, true,  0,   "2" },
	{ "ERR 550 not found",           0, false, 550, "not found" },
	{ "ERR 550 not found: s/x y",    0, false, 550, "not found: s/x y" },
	{ "ERR 421 shutting down",       0, false, 421, "shutting down" },
	{ "ERR 426 idle timeout",        0, false, 426, "idle timeout" },
	{ "ERR 599",                     0, false, 599, "" },
	{ "ERR 5 x",                     -EPROTO, false, 0, NULL },
	{ "ERR 55 x",                    -EPROTO, false, 0, NULL },
	{ "ERR 5500 x",                  -EPROTO, false, 0, NULL },
	{ "ERR 550x",                    -EPROTO, false, 0, NULL },
	{ "ERR abc",                     -EPROTO, false, 0, NULL },
	{ "ERR 250 fine",                -EPROTO, false, 0, NULL },
	{ "ERR  550 x",                  -EPROTO, false, 0, NULL },
	{ "ERR",                         -EPROTO, false, 0, NULL },
	{ "ERR ",                        -EPROTO, false, 0, NULL },
	{ "OKAY",                        -EPROTO, false, 0, NULL },
	{ "ok",                          -EPROTO, false, 0, NULL },
	{ "",                            -EPROTO, false, 0, NULL },
	{ "TCPFILE 1 " XXH3_ABC,         -EPROTO, false, 0, NULL },
	{ " OK",                         -EPROTO, false, 0, NULL },
};

Test(protocol, status_lines)
{
	for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
		const struct status_case *c = &status_cases[i];
		struct proto_status st;
		int r = proto_parse_status(c->line, &st);

		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->line, r);
		if (r < 0)
			continue;
		cr_assert_eq(st.ok, c->ok, "\"%s\"", c->line);
		cr_assert_eq(st.code, c->code, "\"%s\"", c->line);
		cr_assert_str_eq(st.text, c->text, "\"%s\"", c->line);
	}
}

#define NONCE "0123456789abcdef0123456789abcdef"

Test(protocol, greeting_round_trip)
{
	char buf[128];
	int version = -1;
	const char *nonce = NULL;

	int n = proto_format_greeting(buf, sizeof(buf), NONCE);
	cr_assert_eq(n, (int)strlen("TCPFILE 1 " NONCE "\n"));
	cr_assert_str_eq(buf, "TCPFILE 1 " NONCE "\n");

	buf[n - 1] = '\0';      /* the line reader strips the LF */
	cr_assert_eq(proto_parse_greeting(buf, &version, &nonce), 0);
	cr_assert_eq(version, 1);
	cr_assert_str_eq(nonce, NONCE);
}

Test(protocol, greeting_format_limits)
{
	char buf[128];

	/* "TCPFILE 1 " + 32 + LF = 43, plus NUL. */
	cr_assert_eq(proto_format_greeting(buf, 44, NONCE), 43);
	cr_assert_eq(proto_format_greeting(buf, 43, NONCE), -ENOSPC);
	cr_assert_eq(proto_format_greeting(buf, sizeof(buf), ""), -EINVAL);
	cr_assert_eq(proto_format_greeting(buf, sizeof(buf), "a b"), -EINVAL);
	cr_assert_eq(proto_format_greeting(buf, sizeof(buf), "a\n"), -EINVAL);
}

struct greeting_case {
	const char *line;
	int ret;
	int version;    /* checked when ret is 0 or -EPROTONOSUPPORT */
};

static const struct greeting_case greeting_cases[] = {
	{ "TCPFILE 1 " NONCE,                 0,                1 },
	{ "TCPFILE 2 " NONCE,                 -EPROTONOSUPPORT, 2 },
	{ "TCPFILE 2",                        -EPROTONOSUPPORT, 2 },
	{ "TCPFILE 0 x",                      -EPROTONOSUPPORT, 0 },
	{ "TCPFILE 17 something else",        -EPROTONOSUPPORT, 17 },
	{ "TCPFILE 1",                        -EPROTO, 0 },
	{ "TCPFILE 1 ",                       -EPROTO, 0 },
	{ "TCPFILE 1 0123456789abcdef",       -EPROTO, 0 },
	{ "TCPFILE 1 " NONCE "0",             -EPROTO, 0 },
	{ "TCPFILE 1 0123456789ABCDEF0123456789ABCDEF", -EPROTO, 0 },
	{ "TCPFILE 1 " NONCE " extra",        -EPROTO, 0 },
	{ "TCPFILE x " NONCE,                 -EPROTO, 0 },
	{ "TCPFILE -1 " NONCE,                -EPROTO, 0 },
	{ "TCPFILE  1 " NONCE,                -EPROTO, 0 },
	{ "TCPFILE 99999999999999999999 x",   -EPROTO, 0 },
	{ "TCPFILE1 " NONCE,                  -EPROTO, 0 },
	{ "TCPFILE",                          -EPROTO, 0 },
	{ "tcpfile 1 " NONCE,                 -EPROTO, 0 },
	{ "ERR 421 shutting down",            -EPROTO, 0 },
	{ "SSH-2.0-OpenSSH_9.2",              -EPROTO, 0 },
	{ "HTTP/1.1 400 Bad Request",         -EPROTO, 0 },
	{ "",                                 -EPROTO, 0 },
};

Test(protocol, greeting_parse)
{
	for (size_t i = 0; i < sizeof(greeting_cases) / sizeof(greeting_cases[0]); i++) {
		const struct greeting_case *c = &greeting_cases[i];
		int version = -1;
		const char *nonce = NULL;
		int r = proto_parse_greeting(c->line, &version, &nonce);

		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->line, r);
		if (r == 0 || r == -EPROTONOSUPPORT)
			cr_assert_eq(version, c->version, "\"%s\"", c->line);
		if (r == 0)
			cr_assert_str_eq(nonce, NONCE);
	}
}

Test(protocol, error_format_basic)
{
	char buf[PROTO_MAX_LINE + 16];
	struct proto_status st;

	cr_assert_eq(proto_format_error(buf, sizeof(buf), PROTO_ERR_NOT_FOUND, NULL), 18);
	cr_assert_str_eq(buf, "ERR 550 not found\n");
	cr_assert_eq(proto_format_error(buf, sizeof(buf), PROTO_ERR_NOT_FOUND, ""), 18);
	cr_assert_str_eq(buf, "ERR 550 not found\n");

	int n = proto_format_error(buf, sizeof(buf), PROTO_ERR_FORBIDDEN, "share is read-only");
	cr_assert_str_eq(buf, "ERR 553 forbidden: share is read-only\n");
	cr_assert_eq(n, (int)strlen(buf));

	/* What the server formats, the client parses. */
	buf[n - 1] = '\0';
	cr_assert_eq(proto_parse_status(buf, &st), 0);
	cr_assert_eq(st.code, 553);
	cr_assert_str_eq(st.text, "forbidden: share is read-only");

	/* A detail that repeats the code's text is not repeated. */
	proto_format_error(buf, sizeof(buf), PROTO_ERR_SHUTTING_DOWN, "shutting down");
	cr_assert_str_eq(buf, "ERR 421 shutting down\n");
	proto_format_error(buf, sizeof(buf), PROTO_ERR_TIMEOUT, "idle timeout");
	cr_assert_str_eq(buf, "ERR 426 timeout: idle timeout\n");

	proto_format_error(buf, sizeof(buf), 999, NULL);
	cr_assert_str_eq(buf, "ERR 999 error\n");
	/* A code that is not three digits becomes an internal error. */
	proto_format_error(buf, sizeof(buf), 42, "x");
	cr_assert_str_eq(buf, "ERR 451 internal error: x\n");
	proto_format_error(buf, sizeof(buf), -ENOENT, NULL);
	cr_assert_str_eq(buf, "ERR 451 internal error\n");
}

Test(protocol, error_format_sanitises)
{
	char buf[256];

	proto_format_error(buf, sizeof(buf), PROTO_ERR_BAD_ARGUMENT,
			   "a\nb\rc\x01" "d\x7f" "e\xff" "f\tg ~");
	cr_assert_str_eq(buf, "ERR 501 bad argument: a?b?c?d?e?f?g ~\n");
	cr_assert_eq(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

Test(protocol, error_format_truncates_to_line_limit)
{
	size_t dlen = 3 * PROTO_MAX_LINE;
	char *detail = malloc(dlen + 1);
	char *buf = malloc(4 * PROTO_MAX_LINE);

	cr_assert_not_null(detail);
	cr_assert_not_null(buf);
	memset(detail, 'x', dlen);
	detail[dlen] = '\0';

	int n = proto_format_error(buf, 4 * PROTO_MAX_LINE, PROTO_ERR_INTERNAL, detail);
	cr_assert_eq(n, PROTO_MAX_LINE);
	cr_assert_eq(strlen(buf), (size_t)n);
	cr_assert_eq(buf[n - 1], '\n');
	cr_assert_eq(strchr(buf, '\n'), buf + n - 1);
	cr_assert_eq(strncmp(buf, "ERR 451 internal error: xxx", 27), 0);

	/* A small buffer truncates too, leaving room for LF and NUL. */
	char small[32];
	n = proto_format_error(small, sizeof(small), PROTO_ERR_INTERNAL, detail);
	cr_assert_eq(n, 31);
	cr_assert_str_eq(small, "ERR 451 internal error: xxxxxx\n");

	/* Too small for even ": x": the detail is dropped, not the LF. */
	char tiny[25];
	n = proto_format_error(tiny, sizeof(tiny), PROTO_ERR_INTERNAL, detail);
	cr_assert_str_eq(tiny, "ERR 451 internal error\n");
	cr_assert_eq(n, 23);

	/* Too small for the fixed part. */
	cr_assert_eq(proto_format_error(tiny, 10, PROTO_ERR_INTERNAL, NULL), -ENOSPC);
	cr_assert_eq(proto_format_error(tiny, 0, PROTO_ERR_INTERNAL, NULL), -ENOSPC);
	free(detail);
	free(buf);
}

Test(protocol, code_texts)
{
	static const struct {
		int code;
		const char *text;
		bool temporary;
	} codes[] = {
		{ 421, "shutting down", true },
		{ 426, "timeout", true },
		{ 451, "internal error", true },
		{ 452, "insufficient storage", true },
		{ 500, "bad request", false },
		{ 501, "bad argument", false },
		{ 550, "not found", false },
		{ 552, "too large", false },
		{ 553, "forbidden", false },
		{ 554, "already exists", false },
		{ 555, "digest mismatch", false },
		{ 556, "wrong type", false },
		{ 0, "error", false },
		{ 499, "error", true },
		{ 600, "error", false },
	};

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		cr_assert_str_eq(proto_code_text(codes[i].code), codes[i].text);
		cr_assert_eq(proto_code_is_temporary(codes[i].code), codes[i].temporary,
			     "code %d", codes[i].code);
	}
}

Test(protocol, next_token)
{
	const char *line = "OK 12  f x";
	const char *cur = line, *end = line + strlen(line);
	const char *tok;
	size_t len;
	const char *want[] = { "OK", "12", "f", "x" };

	for (size_t i = 0; i < 4; i++) {
		cr_assert(proto_next_token(&cur, end, &tok, &len));
		cr_assert_eq(len, strlen(want[i]));
		cr_assert_eq(memcmp(tok, want[i], len), 0);
	}
	cr_assert_not(proto_next_token(&cur, end, &tok, &len));
	cr_assert_not(proto_next_token(&cur, end, &tok, &len));

	/* Stops at end even when the buffer goes on. */
	cur = line;
	cr_assert(proto_next_token(&cur, line + 1, &tok, &len));
	cr_assert_eq(len, 1);
	cr_assert_not(proto_next_token(&cur, line + 1, &tok, &len));

	const char *spaces = "   ";
	cur = spaces;
	cr_assert_not(proto_next_token(&cur, spaces + 3, &tok, &len));
}
