/* test_protocol: the protocol 2 codec: tokens, hello and greeting, requests, frames, replies, entries, paths. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

/* Contract: parsers receive one line WITHOUT its terminator (the line
 * reader strips the LF and a CR before it); a CR or LF that reaches a
 * parser is a control byte.  Expected values below are written by hand;
 * the digests are those xxh128sum(1) and sha256sum(1) print for "abc". */

#define XXH3_ABC   "06b05ab6733a618578af5f94892f3950"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Builds "<prefix><n x unit><suffix>" into a malloc'd string. */
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

static bool span_is(const char *p, size_t len, const char *want)
{
	if (!want)
		return p == NULL;
	return p && len == strlen(want) && memcmp(p, want, len) == 0;
}

/* ---- tokens ---- */

struct token_case {
	const char *tok;
	int ret;
	const char *name;
	const char *value;      /* NULL: bare */
};

static const struct token_case token_cases[] = {
	{ "size=5",               0, "size", "5" },
	{ "continue",             0, "continue", NULL },
	{ "a",                    0, "a", NULL },
	{ "x-1=a=b",              0, "x-1", "a=b" },
	{ "auth=SCRAM-SHA-256,PLAIN", 0, "auth", "SCRAM-SHA-256,PLAIN" },
	{ "server=tcpfiled/0.2.0", 0, "server", "tcpfiled/0.2.0" },
	{ "abcdefghijklmnopqrstuvwxyz012345=1", 0, "abcdefghijklmnopqrstuvwxyz012345", "1" },
	{ "abcdefghijklmnopqrstuvwxyz0123456=1", -EINVAL, NULL, NULL },  /* 33 */
	{ "size=",                -EINVAL, NULL, NULL },
	{ "=5",                   -EINVAL, NULL, NULL },
	{ "Size=5",               -EINVAL, NULL, NULL },
	{ "1size=5",              -EINVAL, NULL, NULL },
	{ "-size=5",              -EINVAL, NULL, NULL },
	{ "si_ze=5",              -EINVAL, NULL, NULL },
	{ "si.ze",                -EINVAL, NULL, NULL },
	{ "size=a\x7f",           -EINVAL, NULL, NULL },
	{ "size=\xc3\xa9",        -EINVAL, NULL, NULL },
	{ "5",                    -EINVAL, NULL, NULL },
};

Test(protocol, token_split)
{
	for (size_t i = 0; i < N_ELEM(token_cases); i++) {
		const struct token_case *c = &token_cases[i];
		struct proto_token t;
		int r = proto_token_split(c->tok, strlen(c->tok), &t);

		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->tok, r);
		if (r)
			continue;
		cr_assert(span_is(t.name, t.name_len, c->name), "\"%s\": name", c->tok);
		cr_assert(span_is(t.value, t.value_len, c->value), "\"%s\": value", c->tok);
	}
}

Test(protocol, token_split_is_length_delimited)
{
	struct proto_token t;

	/* Only the first 6 bytes are the token. */
	cr_assert_eq(proto_token_split("size=5 mode=1", 6, &t), 0);
	cr_assert(span_is(t.value, t.value_len, "5"));
	cr_assert_eq(proto_token_split("size", 0, &t), -EINVAL);
}

Test(protocol, next_token)
{
	const char *line = "OK 12  f x";
	const char *cur = line, *end = line + strlen(line);
	const char *tok;
	size_t len;
	const char *want[] = { "OK", "12", "f", "x" };

	for (size_t i = 0; i < N_ELEM(want); i++) {
		cr_assert(proto_next_token(&cur, end, &tok, &len));
		cr_assert(span_is(tok, len, want[i]));
	}
	cr_assert_not(proto_next_token(&cur, end, &tok, &len));
	cr_assert_not(proto_next_token(&cur, end, &tok, &len));

	/* Stops at end even when the buffer goes on. */
	cur = line;
	cr_assert(proto_next_token(&cur, line + 1, &tok, &len));
	cr_assert_eq(len, 1);
	cr_assert_not(proto_next_token(&cur, line + 1, &tok, &len));
}

struct reply_get_case {
	const char *text;
	const char *name;
	bool found;
	const char *value;
};

static const struct reply_get_case reply_get_cases[] = {
	{ "size=3 digest=xxh3-128:" XXH3_ABC, "size",   true,  "3" },
	{ "size=3 digest=xxh3-128:" XXH3_ABC, "digest", true,  "xxh3-128:" XXH3_ABC },
	{ "size=3",                           "siz",    false, NULL },
	{ "size=3",                           "size=3", false, NULL },
	{ "bye",                              "bye",    true,  NULL },
	{ "",                                 "size",   false, NULL },
	/* Unknown and malformed tokens are skipped, never fatal. */
	{ "new-thing=1 X=2 =3 size=9",        "size",   true,  "9" },
	{ "size=1 size=2",                    "size",   true,  "1" },
	{ "Size=1",                           "size",   false, NULL },
	{ "a=b=c",                            "a",      true,  "b=c" },
	{ "version=2  future",                "future", true,  NULL },
};

Test(protocol, reply_get)
{
	for (size_t i = 0; i < N_ELEM(reply_get_cases); i++) {
		const struct reply_get_case *c = &reply_get_cases[i];
		const char *v = "unset";
		size_t len = 99;
		bool found = proto_reply_get(c->text, c->name, &v, &len);

		cr_assert_eq(found, c->found, "\"%s\" / %s", c->text, c->name);
		if (found)
			cr_assert(span_is(v, len, c->value), "\"%s\" / %s", c->text, c->name);
	}
	cr_assert(proto_reply_get("size=3", "size", NULL, NULL));
}

/* ---- connection start ---- */

struct hello_case {
	const char *line;
	int ret;
	unsigned version;
	const char *agent;
	size_t n_caps;
	const char *why;        /* substring of *why on error */
};

static const struct hello_case hello_cases[] = {
	{ "HELLO 2",                                 0, 2, NULL, 0, NULL },
	{ "HELLO 2 client=tcpfile/0.2.0",            0, 2, "tcpfile/0.2.0", 0, NULL },
	{ "HELLO 002 client=x",                      0, 2, "x", 0, NULL },
	{ "HELLO 2 resume compress=zstd,lz4 client=c/1", 0, 2, "c/1", 2, NULL },
	/* Unknown capabilities are kept, never refused; a second client= is
	 * ignored. */
	{ "HELLO 2 client=a client=b x-future=1",    0, 2, "a", 1, NULL },
	{ "HELLO 3",                                 PROTO_ERR_VERSION, 3, NULL, 0, "speaks 2" },
	{ "HELLO 1 client=tcpfile/0.1.0",            PROTO_ERR_VERSION, 1, NULL, 0, "speaks 2" },
	{ "HELLO 0",                                 PROTO_ERR_VERSION, 0, NULL, 0, "speaks 2" },
	{ "HELLO",                                   PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "missing version" },
	{ "HELLO two",                               PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "malformed HELLO" },
	{ "HELLO 2,3",                               PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "malformed HELLO" },
	{ "HELLO -2",                                PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "malformed HELLO" },
	{ "HELLO 99999999999999999999",              PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "malformed HELLO" },
	{ "HELLO 2 Client=x",                        PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "bad token" },
	{ "HELLO 2 client",                          PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "bad token" },
	{ "HELLO 2 client=",                         PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "bad token" },
	{ "HELLO 2 =x",                              PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "bad token" },
	{ "HELLO  2",                                PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "empty token" },
	{ "HELLO 2 ",                                PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "empty token" },
	{ "HELLO 2\tclient=x",                       PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "control" },
	{ "HELLO 2 client=caf\xc3\xa9",              PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "non-ASCII" },
	{ "HELLO 2 client=a\r",                      PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "control" },
	/* Not a hello at all: the cross-protocol cases. */
	{ "",                                        PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "hello 2",                                 PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "HELLO2",                                  PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "HELO example.org",                        PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "POST / HTTP/1.1",                         PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "this is a tcpfile protocol 2 server" },
	{ "GET / HTTP/1.1",                          PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "DEL files/x",                             PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "PUT files/y 3 pipelined=1",               PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "TCPFILE 2 server=x",                      PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ "\x16\x03\x01\x02",                        PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
	{ " HELLO 2",                                PROTO_ERR_BAD_REQUEST, 0, NULL, 0, "expected HELLO" },
};

Test(protocol, hello_parse)
{
	for (size_t i = 0; i < N_ELEM(hello_cases); i++) {
		const struct hello_case *c = &hello_cases[i];
		struct proto_hello h;
		const char *why = "unset";
		int r = proto_parse_hello(c->line, strlen(c->line), &h, &why);

		cr_assert_eq(r, c->ret, "\"%s\": got %d (%s)", c->line, r, why ? why : "-");
		if (r == PROTO_ERR_BAD_REQUEST || r == PROTO_ERR_VERSION) {
			cr_assert_not_null(why, "\"%s\": no reason", c->line);
			cr_assert_not_null(strstr(why, c->why), "\"%s\": reason \"%s\" lacks \"%s\"",
					   c->line, why, c->why);
		}
		if (r == PROTO_ERR_BAD_REQUEST)
			continue;
		cr_assert_eq(h.version, c->version, "\"%s\": version %u", c->line, h.version);
		if (r)
			continue;
		cr_assert(span_is(h.agent, h.agent_len, c->agent), "\"%s\": agent", c->line);
		cr_assert_eq(h.n_caps, c->n_caps, "\"%s\": %zu caps", c->line, h.n_caps);
	}
}

Test(protocol, hello_caps)
{
	const char *line = "HELLO 2 resume client=tcpfile/9 compress=zstd,lz4 auth=PLAIN";
	struct proto_hello h;
	const char *why, *v = "unset";
	size_t vlen = 99;

	cr_assert_eq(proto_parse_hello(line, strlen(line), &h, &why), 0);
	cr_assert_eq(h.n_caps, 3);
	cr_assert(span_is(h.caps[0].name, h.caps[0].name_len, "resume"));
	cr_assert_null(h.caps[0].value);
	cr_assert(span_is(h.caps[1].name, h.caps[1].name_len, "compress"));
	cr_assert(span_is(h.caps[1].value, h.caps[1].value_len, "zstd,lz4"));

	cr_assert(proto_hello_has_cap(&h, "resume", &v, &vlen));
	cr_assert_null(v);
	cr_assert_eq(vlen, 0);
	cr_assert(proto_hello_has_cap(&h, "compress", &v, &vlen));
	cr_assert(span_is(v, vlen, "zstd,lz4"));
	cr_assert(proto_hello_has_cap(&h, "auth", NULL, NULL));
	/* client= is the agent, not a capability. */
	cr_assert_not(proto_hello_has_cap(&h, "client", NULL, NULL));
	cr_assert_not(proto_hello_has_cap(&h, "resum", NULL, NULL));
	cr_assert_not(proto_hello_has_cap(&h, "resumes", NULL, NULL));
}

Test(protocol, hello_keeps_at_most_max_caps)
{
	char *line = repeat_line("HELLO 2", " c", PROTO_MAX_CAPS + 5, " client=x");
	struct proto_hello h;
	const char *why;

	cr_assert_eq(proto_parse_hello(line, strlen(line), &h, &why), 0);
	cr_assert_eq(h.n_caps, PROTO_MAX_CAPS);
	cr_assert(span_is(h.agent, h.agent_len, "x"));
	free(line);
}

Test(protocol, hello_format_round_trip)
{
	char buf[128];
	struct proto_hello h;
	const char *why;

	int n = proto_format_hello(buf, sizeof(buf), "tcpfile/0.2.0", NULL);
	cr_assert_str_eq(buf, "HELLO 2 client=tcpfile/0.2.0\n");
	cr_assert_eq(n, 29);
	cr_assert_eq(proto_parse_hello(buf, (size_t)n - 1, &h, &why), 0);
	cr_assert_eq(h.version, 2);
	cr_assert(span_is(h.agent, h.agent_len, "tcpfile/0.2.0"));

	n = proto_format_hello(buf, sizeof(buf), "c/1", "resume compress=zstd");
	cr_assert_str_eq(buf, "HELLO 2 client=c/1 resume compress=zstd\n");
	cr_assert_eq(proto_parse_hello(buf, (size_t)n - 1, &h, &why), 0);
	cr_assert_eq(h.n_caps, 2);
	cr_assert(proto_hello_has_cap(&h, "resume", NULL, NULL));

	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "c/1", ""), 19);
	cr_assert_str_eq(buf, "HELLO 2 client=c/1\n");
	/* Fits exactly with its NUL; one byte less does not. */
	cr_assert_eq(proto_format_hello(buf, 20, "c/1", NULL), 19);
	cr_assert_eq(proto_format_hello(buf, 19, "c/1", NULL), -ENOSPC);
	cr_assert_eq(proto_format_hello(buf, 0, "c/1", NULL), -ENOSPC);
	/* Nothing that would make a line the parser refuses. */
	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "a b", NULL), -EINVAL);
	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "", NULL), -EINVAL);
	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "a\n", NULL), -EINVAL);
	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "c/1", "Resume"), -EINVAL);
	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "c/1", "a  b"), -EINVAL);
	cr_assert_eq(proto_format_hello(buf, sizeof(buf), "c/1", " a"), -EINVAL);
}

struct greeting_case {
	const char *line;
	int ret;
	const char *agent;
	size_t n_caps;
};

static const struct greeting_case greeting_cases[] = {
	{ "TCPFILE 2 server=tcpfiled/0.2.0",               0, "tcpfiled/0.2.0", 0 },
	{ "TCPFILE 2",                                     0, NULL, 0 },
	{ "TCPFILE 2,3 server=s/3",                        0, "s/3", 0 },
	{ "TCPFILE 3,2 server=s/3",                        0, "s/3", 0 },
	{ "TCPFILE 1,2,7 server=s",                        0, "s", 0 },
	{ "TCPFILE 02 server=s",                           0, "s", 0 },
	/* Unknown capabilities and even malformed tokens are ignored. */
	{ "TCPFILE 2 server=s auth=SCRAM-SHA-256-PLUS resume x-new=a=b", 0, "s", 3 },
	{ "TCPFILE 2 Weird=1 server=s =x  future",         0, "s", 1 },
	{ "TCPFILE 2 server server=s",                     0, "s", 0 },
	{ "TCPFILE 1 0123456789abcdef0123456789abcdef",    -EPROTONOSUPPORT, NULL, 0 },
	{ "TCPFILE 1",                                     -EPROTONOSUPPORT, NULL, 0 },
	{ "TCPFILE 3 server=s",                            -EPROTONOSUPPORT, NULL, 0 },
	{ "TCPFILE 3,4",                                   -EPROTONOSUPPORT, NULL, 0 },
	{ "TCPFILE 0",                                     -EPROTONOSUPPORT, NULL, 0 },
	{ "TCPFILE 2,",                                    -EPROTO, NULL, 0 },
	{ "TCPFILE ,2",                                    -EPROTO, NULL, 0 },
	{ "TCPFILE 2,,3",                                  -EPROTO, NULL, 0 },
	{ "TCPFILE x",                                     -EPROTO, NULL, 0 },
	{ "TCPFILE -2",                                    -EPROTO, NULL, 0 },
	{ "TCPFILE 99999999999999999999",                  -EPROTO, NULL, 0 },
	{ "TCPFILE  2",                                    -EPROTO, NULL, 0 },
	{ "TCPFILE ",                                      -EPROTO, NULL, 0 },
	{ "TCPFILE",                                       -EPROTO, NULL, 0 },
	{ "TCPFILE2",                                      -EPROTO, NULL, 0 },
	{ "tcpfile 2",                                     -EPROTO, NULL, 0 },
	{ "ERR 421 shutting down",                         -EPROTO, NULL, 0 },
	{ "SSH-2.0-OpenSSH_9.2",                           -EPROTO, NULL, 0 },
	{ "HTTP/1.1 400 Bad Request",                      -EPROTO, NULL, 0 },
	{ "",                                              -EPROTO, NULL, 0 },
};

Test(protocol, greeting_parse)
{
	for (size_t i = 0; i < N_ELEM(greeting_cases); i++) {
		const struct greeting_case *c = &greeting_cases[i];
		struct proto_hello h;
		int r = proto_parse_greeting(c->line, strlen(c->line), &h);

		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->line, r);
		if (r == -EPROTONOSUPPORT)
			cr_assert_eq(h.version, 0, "\"%s\"", c->line);
		if (r)
			continue;
		cr_assert_eq(h.version, 2, "\"%s\"", c->line);
		cr_assert(span_is(h.agent, h.agent_len, c->agent), "\"%s\": agent", c->line);
		cr_assert_eq(h.n_caps, c->n_caps, "\"%s\": %zu caps", c->line, h.n_caps);
	}
}

Test(protocol, greeting_unknown_caps_are_visible_but_harmless)
{
	const char *line = "TCPFILE 2,3 server=tcpfiled/9.0 auth=SCRAM-SHA-256-PLUS,PLAIN resume";
	struct proto_hello h;
	const char *v;
	size_t vlen;

	cr_assert_eq(proto_parse_greeting(line, strlen(line), &h), 0);
	cr_assert(proto_hello_has_cap(&h, "auth", &v, &vlen));
	cr_assert(span_is(v, vlen, "SCRAM-SHA-256-PLUS,PLAIN"));
	cr_assert(proto_hello_has_cap(&h, "resume", NULL, NULL));
	cr_assert_not(proto_hello_has_cap(&h, "server", NULL, NULL));
}

Test(protocol, greeting_format_round_trip)
{
	char buf[128];
	struct proto_hello h;

	int n = proto_format_greeting(buf, sizeof(buf), "tcpfiled/0.2.0", NULL);
	cr_assert_str_eq(buf, "TCPFILE 2 server=tcpfiled/0.2.0\n");
	cr_assert_eq(n, 32);
	cr_assert_eq(proto_parse_greeting(buf, (size_t)n - 1, &h), 0);
	cr_assert(span_is(h.agent, h.agent_len, "tcpfiled/0.2.0"));
	cr_assert_eq(h.n_caps, 0);

	n = proto_format_greeting(buf, sizeof(buf), "s/1", "auth=PLAIN resume");
	cr_assert_str_eq(buf, "TCPFILE 2 server=s/1 auth=PLAIN resume\n");
	cr_assert_eq(proto_parse_greeting(buf, (size_t)n - 1, &h), 0);
	cr_assert_eq(h.n_caps, 2);

	cr_assert_eq(proto_format_greeting(buf, sizeof(buf), NULL, NULL), 10);
	cr_assert_str_eq(buf, "TCPFILE 2\n");
	cr_assert_eq(proto_format_greeting(buf, 11, NULL, NULL), 10);
	cr_assert_eq(proto_format_greeting(buf, 10, NULL, NULL), -ENOSPC);
	cr_assert_eq(proto_format_greeting(buf, sizeof(buf), "a b", NULL), -EINVAL);
	cr_assert_eq(proto_format_greeting(buf, sizeof(buf), "s", "x=\x01"), -EINVAL);
}

Test(protocol, greeting_is_length_delimited)
{
	/* "TCPFILE 2" and then bytes that are not part of the line. */
	const char *buf = "TCPFILE 2 server=s\nHELLO";
	struct proto_hello h;

	cr_assert_eq(proto_parse_greeting(buf, 18, &h), 0);
	cr_assert(span_is(h.agent, h.agent_len, "s"));
	cr_assert_eq(proto_parse_greeting(buf, 9, &h), 0);
	cr_assert_null(h.agent);
	cr_assert_eq(proto_parse_greeting(buf, 8, &h), -EPROTO);
}

/* ---- requests ---- */

#define NO_MODE  (-1)
#define NO_MTIME (-1)
#define NO_SIZE  (-1)

struct valid_case {
	const char *line;
	enum proto_verb verb;
	const char *path;
	int64_t size;           /* NO_SIZE when absent; UINT64_MAX via -2 */
	enum digest_alg alg;
	bool has_alg;
	int overwrite;
	bool cont;
	int mode;               /* NO_MODE when absent */
	int64_t mtime_sec;      /* NO_MTIME when absent */
	uint32_t mtime_nsec;
};

#define XXH DIGEST_XXH3_128
#define SHA DIGEST_SHA256
#define SIZE_MAX_U64 (-2)

static const struct valid_case valid_cases[] = {
	/* line                                  verb        path       size alg has_alg ow cont mode mtime nsec */
	{ "PUT s/a.txt",                         PROTO_PUT,  "s/a.txt", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f size=0",                      PROTO_PUT,  "s/f", 0, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f size=007",                    PROTO_PUT,  "s/f", 7, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f size=18446744073709551615",   PROTO_PUT,  "s/f", SIZE_MAX_U64, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f mode=0644",                   PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, 0644, NO_MTIME, 0 },
	{ "PUT s/f mode=7777",                   PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, 07777, NO_MTIME, 0 },
	{ "PUT s/f mode=0",                      PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, 0, NO_MTIME, 0 },
	{ "PUT s/f mode=00000755",               PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, 0755, NO_MTIME, 0 },
	{ "PUT s/f mtime=1700000000",            PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, 1700000000, 0 },
	{ "PUT s/f mtime=1700000000.123456789",  PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, 1700000000, 123456789 },
	{ "PUT s/f mtime=1.5",                   PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, 1, 500000000 },
	{ "PUT s/f mtime=0.000000001",           PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, 0, 1 },
	{ "PUT s/f mtime=9223372036854775807",   PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, INT64_MAX, 0 },
	{ "PUT s/f overwrite=0",                 PROTO_PUT,  "s/f", NO_SIZE, XXH, false, 0, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f overwrite=1",                 PROTO_PUT,  "s/f", NO_SIZE, XXH, false, 1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f continue=1",                  PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, true, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f continue=0",                  PROTO_PUT,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f alg=sha256",                  PROTO_PUT,  "s/f", NO_SIZE, SHA, true, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f alg=xxh3-128",                PROTO_PUT,  "s/f", NO_SIZE, XXH, true, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f alg=SHA256",                  PROTO_PUT,  "s/f", NO_SIZE, SHA, true, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/f continue=1 alg=sha256 overwrite=0 mtime=12.34 mode=600 size=3",
						 PROTO_PUT,  "s/f", 3, SHA, true, 0, true, 0600, 12, 340000000 },
	{ "GET s/f",                             PROTO_GET,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "GET s/f alg=sha256",                  PROTO_GET,  "s/f", NO_SIZE, SHA, true, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "STAT s/f",                            PROTO_STAT, "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "STAT s",                              PROTO_STAT, "s", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "LIST s",                              PROTO_LIST, "s", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "LIST s/sub%20dir",                    PROTO_LIST, "s/sub dir", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "DEL s/f",                             PROTO_DEL,  "s/f", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "NOOP",                                PROTO_NOOP, "", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "QUIT",                                PROTO_QUIT, "", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	/* Decoding, not judging: storage validates components. */
	{ "GET s/caf%C3%A9",                     PROTO_GET,  "s/caf\xc3\xa9", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "GET s/100%25",                        PROTO_GET,  "s/100%", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "GET s/a%2fb",                         PROTO_GET,  "s/a/b", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "GET s/%41",                           PROTO_GET,  "s/A", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "GET s/../x",                          PROTO_GET,  "s/../x", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "GET s/a%0Ab",                         PROTO_GET,  "s/a\nb", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	/* The path is positional: it may look like a token. */
	{ "GET size=5",                          PROTO_GET,  "size=5", NO_SIZE, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
	{ "PUT s/x=1 size=2",                    PROTO_PUT,  "s/x=1", 2, XXH, false, -1, false, NO_MODE, NO_MTIME, 0 },
};

Test(protocol, valid_requests)
{
	for (size_t i = 0; i < N_ELEM(valid_cases); i++) {
		const struct valid_case *c = &valid_cases[i];
		struct proto_request req;
		const char *why = "unset";
		int r = proto_parse_request(c->line, strlen(c->line), &req, &why);

		cr_assert_eq(r, 0, "\"%s\" refused: %d %s", c->line, r, why ? why : "");
		cr_assert_null(why, "%s: why set on success", c->line);
		cr_assert_eq(req.verb, c->verb, "%s: verb", c->line);
		cr_assert_eq(req.path_len, strlen(c->path), "%s: path_len", c->line);
		cr_assert_str_eq(req.path, c->path, "%s: path", c->line);
		cr_assert_eq(req.has_size, c->size != NO_SIZE, "%s: has_size", c->line);
		if (c->size == SIZE_MAX_U64)
			cr_assert_eq(req.size, UINT64_MAX, "%s: size", c->line);
		else if (c->size != NO_SIZE)
			cr_assert_eq(req.size, (uint64_t)c->size, "%s: size", c->line);
		cr_assert_eq(req.alg, c->alg, "%s: alg", c->line);
		cr_assert_eq(req.has_alg, c->has_alg, "%s: has_alg", c->line);
		cr_assert_eq(req.overwrite, c->overwrite, "%s: overwrite", c->line);
		cr_assert_eq(req.want_continue, c->cont, "%s: continue", c->line);
		cr_assert_eq(req.has_mode, c->mode != NO_MODE, "%s: has_mode", c->line);
		if (c->mode != NO_MODE)
			cr_assert_eq(req.mode, (uint32_t)c->mode, "%s: mode %o", c->line, req.mode);
		cr_assert_eq(req.has_mtime, c->mtime_sec != NO_MTIME, "%s: has_mtime", c->line);
		if (c->mtime_sec != NO_MTIME) {
			cr_assert_eq(req.mtime_sec, c->mtime_sec, "%s: mtime_sec", c->line);
			cr_assert_eq(req.mtime_nsec, c->mtime_nsec, "%s: mtime_nsec", c->line);
		}
	}
}

Test(protocol, request_is_length_delimited)
{
	/* The parser must not read past len: the rest is the next line. */
	const char *buf = "GET s/f\nDEL s/g";
	struct proto_request req;
	const char *why;

	cr_assert_eq(proto_parse_request(buf, 7, &req, &why), 0);
	cr_assert_eq(req.verb, PROTO_GET);
	cr_assert_str_eq(req.path, "s/f");
	cr_assert_eq(proto_parse_request("QUIT now", 4, &req, &why), 0);
	cr_assert_eq(req.verb, PROTO_QUIT);
}

struct invalid_case {
	const char *line;
	int code;
	enum proto_verb verb;   /* checked for 501 */
	const char *why;        /* substring expected in *why */
};

static const struct invalid_case invalid_cases[] = {
	/* Not a request of this protocol: 500, the connection closes. */
	{ "",                                   PROTO_ERR_BAD_REQUEST, 0, "empty" },
	{ "put s/f",                            PROTO_ERR_BAD_REQUEST, 0, "upper case" },
	{ "Get s/f",                            PROTO_ERR_BAD_REQUEST, 0, "upper case" },
	{ "quit",                               PROTO_ERR_BAD_REQUEST, 0, "upper case" },
	{ "HELO",                               PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "GETX s/f",                           PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "CANCEL",                             PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "AUTH PLAIN",                         PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "POST / HTTP/1.1",                    PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "Host: 127.0.0.1:5005",               PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "HELLO 2 client=x",                   PROTO_ERR_BAD_REQUEST, 0, "HELLO after" },
	{ "DATA 5",                             PROTO_ERR_BAD_REQUEST, 0, "body frame" },
	{ "END",                                PROTO_ERR_BAD_REQUEST, 0, "body frame" },
	{ "END digest=xxh3-128:" XXH3_ABC,      PROTO_ERR_BAD_REQUEST, 0, "body frame" },
	{ "ABORT",                              PROTO_ERR_BAD_REQUEST, 0, "body frame" },
	{ "OK",                                 PROTO_ERR_BAD_REQUEST, 0, "unknown command" },
	{ "GET  s/f",                           PROTO_ERR_BAD_REQUEST, 0, "empty token" },
	{ "GET s/f ",                           PROTO_ERR_BAD_REQUEST, 0, "empty token" },
	{ " GET s/f",                           PROTO_ERR_BAD_REQUEST, 0, "empty token" },
	{ "QUIT ",                              PROTO_ERR_BAD_REQUEST, 0, "empty token" },
	{ " ",                                  PROTO_ERR_BAD_REQUEST, 0, "empty token" },
	{ "GET s/f\r",                          PROTO_ERR_BAD_REQUEST, 0, "control" },
	{ "GET s/f\n",                          PROTO_ERR_BAD_REQUEST, 0, "control" },
	{ "GET\ts/f",                           PROTO_ERR_BAD_REQUEST, 0, "control" },
	{ "GET s/caf\xc3\xa9",                  PROTO_ERR_BAD_REQUEST, 0, "non-ASCII" },
	{ "GET s/\x7f",                         PROTO_ERR_BAD_REQUEST, 0, "non-ASCII" },
	/* A known verb with a bad path, token or value: 501, verb set. */
	{ "GET",                                PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "missing path" },
	{ "DEL",                                PROTO_ERR_BAD_ARGUMENT, PROTO_DEL,  "missing path" },
	{ "STAT",                               PROTO_ERR_BAD_ARGUMENT, PROTO_STAT, "missing path" },
	{ "LIST",                               PROTO_ERR_BAD_ARGUMENT, PROTO_LIST, "missing path" },
	{ "PUT",                                PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "missing path" },
	{ "PUT s/f 5",                          PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "malformed token" },
	{ "PUT s/f size=-1",                    PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "size=" },
	{ "PUT s/f size=+1",                    PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "size=" },
	{ "PUT s/f size=1e3",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "size=" },
	{ "PUT s/f size=0x10",                  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "size=" },
	{ "PUT s/f size=18446744073709551616",  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "overflows" },
	{ "PUT s/f size=99999999999999999999999", PROTO_ERR_BAD_ARGUMENT, PROTO_PUT, "overflows" },
	{ "PUT s/f size",                       PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "without a value" },
	{ "PUT s/f size=",                      PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "malformed token" },
	{ "PUT s/f foo=1",                      PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "unknown token" },
	{ "PUT s/f foo",                        PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "unknown token" },
	{ "PUT s/f x-future-thing=1",           PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "unknown token" },
	{ "PUT s/f offset=0",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "unknown token" },
	{ "PUT s/f pipelined=1",                PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "unknown token" },
	{ "PUT s/f digest=xxh3-128:" XXH3_ABC,  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "END frame" },
	{ "PUT s/f =1",                         PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "malformed token" },
	{ "PUT s/f Mode=0644",                  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "malformed token" },
	{ "PUT s/f overwrite=2",                PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "overwrite" },
	{ "PUT s/f overwrite=yes",              PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "overwrite" },
	{ "PUT s/f overwrite",                  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "without a value" },
	{ "PUT s/f overwrite=0 overwrite=1",    PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f overwrite=0 overwrite=0",    PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f size=1 size=1",              PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f mode=0644 mode=0644",        PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f mtime=1 mtime=1",            PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f continue=1 continue=1",      PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f alg=sha256 alg=sha256",      PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "duplicate" },
	{ "PUT s/f continue=yes",               PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "continue" },
	{ "PUT s/f continue=2",                 PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "continue" },
	{ "PUT s/f continue",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "without a value" },
	{ "PUT s/f mode=0999",                  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mode" },
	{ "PUT s/f mode=10000",                 PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mode" },
	{ "PUT s/f mode=-644",                  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mode" },
	{ "PUT s/f mode=0o644",                 PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mode" },
	{ "PUT s/f mtime=1.1234567890",         PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mtime" },
	{ "PUT s/f mtime=1.",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mtime" },
	{ "PUT s/f mtime=.5",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mtime" },
	{ "PUT s/f mtime=1.5x",                 PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mtime" },
	{ "PUT s/f mtime=1.2.3",                PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mtime" },
	{ "PUT s/f mtime=-1",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "mtime" },
	{ "PUT s/f mtime=9223372036854775808",  PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "range" },
	{ "PUT s/f alg=md5",                    PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "alg" },
	{ "PUT s/f alg=xxh3-128:" XXH3_ABC,     PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "alg" },
	{ "PUT s/%00 size=1",                   PROTO_ERR_BAD_ARGUMENT, PROTO_PUT,  "encoding" },
	{ "GET s/%G1",                          PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/%4",                           PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/%",                            PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/%%41",                         PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/a%zz",                         PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/%00",                          PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/a%00b",                        PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "encoding" },
	{ "GET s/f s/g",                        PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "malformed token" },
	{ "GET s/f offset=100",                 PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "unknown token" },
	{ "GET s/f size=1",                     PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "unknown token" },
	{ "GET s/f continue=1",                 PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "unknown token" },
	{ "GET s/f digest=sha256:" SHA256_ABC,  PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "unknown token" },
	{ "GET s/f alg=sha1",                   PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "alg" },
	{ "GET s/f alg=sha256 alg=xxh3-128",    PROTO_ERR_BAD_ARGUMENT, PROTO_GET,  "duplicate" },
	{ "STAT s/f alg=sha256",                PROTO_ERR_BAD_ARGUMENT, PROTO_STAT, "unknown token" },
	{ "LIST s alg=sha256",                  PROTO_ERR_BAD_ARGUMENT, PROTO_LIST, "unknown token" },
	{ "LIST s x",                           PROTO_ERR_BAD_ARGUMENT, PROTO_LIST, "unknown token" },
	{ "DEL s/f overwrite=1",                PROTO_ERR_BAD_ARGUMENT, PROTO_DEL,  "unknown token" },
	{ "NOOP x=1",                           PROTO_ERR_BAD_ARGUMENT, PROTO_NOOP, "unknown token" },
	{ "QUIT now",                           PROTO_ERR_BAD_ARGUMENT, PROTO_QUIT, "unknown token" },
	{ "QUIT s/f",                           PROTO_ERR_BAD_ARGUMENT, PROTO_QUIT, "malformed token" },
};

Test(protocol, invalid_requests)
{
	for (size_t i = 0; i < N_ELEM(invalid_cases); i++) {
		const struct invalid_case *c = &invalid_cases[i];
		struct proto_request req;
		const char *why = NULL;
		int r = proto_parse_request(c->line, strlen(c->line), &req, &why);

		cr_assert_eq(r, c->code, "\"%s\": got %d (%s), want %d", c->line, r,
			     why ? why : "no reason", c->code);
		cr_assert_not_null(why, "\"%s\": no reason given", c->line);
		cr_assert_not_null(strstr(why, c->why), "\"%s\": reason \"%s\" lacks \"%s\"",
				   c->line, why, c->why);
		if (r == PROTO_ERR_BAD_ARGUMENT)
			cr_assert_eq(req.verb, c->verb, "\"%s\": verb %d", c->line, req.verb);
	}
}

Test(protocol, embedded_nul_in_request)
{
	static const char line[] = "GET s/a\0b";
	struct proto_request req;
	const char *why;

	cr_assert_eq(proto_parse_request(line, sizeof(line) - 1, &req, &why),
		     PROTO_ERR_BAD_REQUEST);
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
	cr_assert_eq(req.verb, PROTO_GET);
	free(over);

	/* Over-long only once decoded: 2000 escapes + 2097 plain = 4097. */
	char *esc = repeat_line("PUT ", "%41", 2000, "");
	char *esc2 = repeat_line(esc, "b", 2097, " size=1");
	cr_assert_lt(strlen(esc2), PROTO_MAX_LINE);
	cr_assert_eq(proto_parse_request(esc2, strlen(esc2), &req, &why),
		     PROTO_ERR_BAD_ARGUMENT);
	cr_assert_str_eq(why, "path too long");
	cr_assert_eq(req.verb, PROTO_PUT);
	free(esc);
	free(esc2);
}

Test(protocol, line_length_limit)
{
	struct proto_request req;
	struct proto_frame f;
	struct proto_hello h;
	struct proto_entry e;
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

	/* Every parser refuses a line over the limit. */
	char *hello = repeat_line("HELLO 2", " c", 4096, "");
	cr_assert_eq(proto_parse_hello(hello, strlen(hello), &h, &why), PROTO_ERR_BAD_REQUEST);
	cr_assert_str_eq(why, "line too long");
	free(hello);
	char *greeting = repeat_line("TCPFILE 2", " c", 4096, "");
	cr_assert_eq(proto_parse_greeting(greeting, strlen(greeting), &h), -EPROTO);
	free(greeting);
	char *end = repeat_line("END", " x", 4096, "");
	cr_assert_eq(proto_parse_frame(end, strlen(end), &f), -EPROTO);
	free(end);
	char *abort_line = repeat_line("ABORT 451 ", "x", PROTO_MAX_LINE, "");
	cr_assert_eq(proto_parse_frame(abort_line, strlen(abort_line), &f), -EPROTO);
	free(abort_line);
	char *entry = repeat_line("ENTRY a type=f size=1 mtime=1 mode=0644", " c", 4096, "");
	cr_assert_eq(proto_parse_entry(entry, strlen(entry), &e), -EPROTO);
	free(entry);
}

/* ---- body frames ---- */

enum { NO_DIGEST = 0, D_XXH = 1, D_SHA = 2 };

struct frame_case {
	const char *line;
	int ret;
	enum proto_frame_type type;
	uint64_t len;
	int digest;             /* NO_DIGEST, D_XXH ("abc"), D_SHA ("abc") */
	bool has_count;
	uint64_t count;
	bool unknown;
	int code;
	const char *text;
};

static const struct frame_case frame_cases[] = {
	{ "DATA 1",                  0, PROTO_FRAME_DATA, 1, 0, false, 0, false, 0, "" },
	{ "DATA 262144",             0, PROTO_FRAME_DATA, 262144, 0, false, 0, false, 0, "" },
	{ "DATA 16777216",           0, PROTO_FRAME_DATA, 16777216, 0, false, 0, false, 0, "" },
	{ "DATA 016777216",          0, PROTO_FRAME_DATA, 16777216, 0, false, 0, false, 0, "" },
	{ "DATA 0000000000000000000000000001", 0, PROTO_FRAME_DATA, 1, 0, false, 0, false, 0, "" },
	{ "DATA 0",                  -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 000",                -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 16777217",           -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 18446744073709551615", -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 18446744073709551616", -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 99999999999999999999999999", -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA -1",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA +1",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 0x10",               -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 1 2",                -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 1 last=1",           -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA  1",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA 1 ",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA ",                   -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA",                    -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA\t1",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "DATA1",                   -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "data 1",                  -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END",                     0, PROTO_FRAME_END, 0, NO_DIGEST, false, 0, false, 0, "" },
	{ "END digest=xxh3-128:" XXH3_ABC, 0, PROTO_FRAME_END, 0, D_XXH, false, 0, false, 0, "" },
	{ "END digest=XXH3-128:06B05AB6733A618578AF5F94892F3950", 0, PROTO_FRAME_END, 0, D_XXH, false, 0, false, 0, "" },
	{ "END digest=sha256:" SHA256_ABC, 0, PROTO_FRAME_END, 0, D_SHA, false, 0, false, 0, "" },
	{ "END count=0",             0, PROTO_FRAME_END, 0, NO_DIGEST, true, 0, false, 0, "" },
	{ "END count=0042",          0, PROTO_FRAME_END, 0, NO_DIGEST, true, 42, false, 0, "" },
	{ "END count=18446744073709551615", 0, PROTO_FRAME_END, 0, NO_DIGEST, true, UINT64_MAX, false, 0, "" },
	{ "END count=3 digest=xxh3-128:" XXH3_ABC, 0, PROTO_FRAME_END, 0, D_XXH, true, 3, false, 0, "" },
	/* Unknown tokens are reported, not refused: the caller decides. */
	{ "END x-new=1",             0, PROTO_FRAME_END, 0, NO_DIGEST, false, 0, true, 0, "" },
	{ "END last",                0, PROTO_FRAME_END, 0, NO_DIGEST, false, 0, true, 0, "" },
	{ "END digest=xxh3-128:" XXH3_ABC " trailer=a=b", 0, PROTO_FRAME_END, 0, D_XXH, false, 0, true, 0, "" },
	/* So are repeated ones; the first value counts. */
	{ "END count=1 count=2",     0, PROTO_FRAME_END, 0, NO_DIGEST, true, 1, true, 0, "" },
	{ "END digest=xxh3-128:" XXH3_ABC " digest=sha256:" SHA256_ABC,
				     0, PROTO_FRAME_END, 0, D_XXH, false, 0, true, 0, "" },
	{ "END digest=xxh3-128:abc", -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END digest=md5:" XXH3_ABC, -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END digest=" XXH3_ABC,    -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END digest",              -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END digest=",             -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END count=-1",            -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END count=x",             -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END count=18446744073709551616", -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END count",               -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END Count=1",             -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END =1",                  -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END ",                    -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "END  count=1",            -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ENDS",                    -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "end",                     -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT",                   0, PROTO_FRAME_ABORT, 0, 0, false, 0, false, 0, "" },
	{ "ABORT 451",               0, PROTO_FRAME_ABORT, 0, 0, false, 0, false, 451, "" },
	{ "ABORT 451 internal error: file shrank", 0, PROTO_FRAME_ABORT, 0, 0, false, 0, false, 451, "internal error: file shrank" },
	{ "ABORT 599 x",             0, PROTO_FRAME_ABORT, 0, 0, false, 0, false, 599, "x" },
	/* The text is free: double spaces and "=" are fine. */
	{ "ABORT 450 a  b=c ",       0, PROTO_FRAME_ABORT, 0, 0, false, 0, false, 450, "a  b=c " },
	{ "ABORT 451 ",              -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT ",                  -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT  451",              -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 45",                -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 4511",              -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 4511 x",            -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 200 fine",          -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 600",               -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT abc",               -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 451 a\tb",          -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORT 451 caf\xc3\xa9",   -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "ABORTED",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "",                        -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "PUT s/f",                 -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "OK",                      -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
	{ "hello world",             -EPROTO, 0, 0, 0, false, 0, false, 0, NULL },
};

static const uint8_t xxh3_abc[16] = {
	0x06, 0xb0, 0x5a, 0xb6, 0x73, 0x3a, 0x61, 0x85,
	0x78, 0xaf, 0x5f, 0x94, 0x89, 0x2f, 0x39, 0x50,
};
static const uint8_t sha256_abc[32] = {
	0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde,
	0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
	0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
};

static void assert_digest_abc(const struct digest_value *d, int which, const char *line)
{
	if (which == D_XXH) {
		cr_assert_eq(d->alg, DIGEST_XXH3_128, "%s", line);
		cr_assert_eq(d->len, 16, "%s", line);
		cr_assert_eq(memcmp(d->bytes, xxh3_abc, 16), 0, "%s", line);
	} else {
		cr_assert_eq(d->alg, DIGEST_SHA256, "%s", line);
		cr_assert_eq(d->len, 32, "%s", line);
		cr_assert_eq(memcmp(d->bytes, sha256_abc, 32), 0, "%s", line);
	}
}

Test(protocol, frames)
{
	for (size_t i = 0; i < N_ELEM(frame_cases); i++) {
		const struct frame_case *c = &frame_cases[i];
		struct proto_frame f;
		int r = proto_parse_frame(c->line, strlen(c->line), &f);

		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->line, r);
		if (r)
			continue;
		cr_assert_eq(f.type, c->type, "\"%s\": type", c->line);
		if (f.type == PROTO_FRAME_DATA)
			cr_assert_eq(f.len, c->len, "\"%s\": len", c->line);
		cr_assert_eq(f.has_digest, c->digest != NO_DIGEST, "\"%s\": has_digest", c->line);
		if (c->digest != NO_DIGEST)
			assert_digest_abc(&f.digest, c->digest, c->line);
		cr_assert_eq(f.has_count, c->has_count, "\"%s\": has_count", c->line);
		if (c->has_count)
			cr_assert_eq(f.count, c->count, "\"%s\": count", c->line);
		cr_assert_eq(f.unknown_token, c->unknown, "\"%s\": unknown", c->line);
		cr_assert_eq(f.code, c->code, "\"%s\": code", c->line);
		cr_assert_str_eq(f.text, c->text, "\"%s\": text", c->line);
	}
}

Test(protocol, frame_is_length_delimited)
{
	/* A DATA header followed by its body bytes in the same buffer. */
	const char *buf = "DATA 3\n123";
	struct proto_frame f;

	cr_assert_eq(proto_parse_frame(buf, 6, &f), 0);
	cr_assert_eq(f.len, 3);
	cr_assert_eq(proto_parse_frame("DATA 16777216", 12, &f), 0);
	cr_assert_eq(f.len, 1677721);
	cr_assert_eq(proto_parse_frame("END count=1", 3, &f), 0);
	cr_assert_not(f.has_count);
}

Test(protocol, format_data)
{
	char buf[PROTO_FRAME_HDR_MAX];
	struct proto_frame f;

	cr_assert_eq(proto_format_data(buf, sizeof(buf), 1), 7);
	cr_assert_str_eq(buf, "DATA 1\n");
	cr_assert_eq(proto_format_data(buf, sizeof(buf), 16777216), 14);
	cr_assert_str_eq(buf, "DATA 16777216\n");
	cr_assert_eq(proto_parse_frame(buf, 13, &f), 0);
	cr_assert_eq(f.len, 16777216);
	cr_assert_eq(proto_format_data(buf, sizeof(buf), 0), -EINVAL);
	cr_assert_eq(proto_format_data(buf, sizeof(buf), 16777217), -EINVAL);
	cr_assert_eq(proto_format_data(buf, sizeof(buf), UINT64_MAX), -EINVAL);
	cr_assert_eq(proto_format_data(buf, 8, 1), 7);
	cr_assert_eq(proto_format_data(buf, 7, 1), -ENOSPC);
	cr_assert_eq(proto_format_data(buf, 0, 1), -ENOSPC);
}

Test(protocol, format_end)
{
	char buf[256];
	struct proto_frame f;
	struct digest_value d = { .alg = DIGEST_XXH3_128, .len = 16 };

	memcpy(d.bytes, xxh3_abc, 16);
	cr_assert_eq(proto_format_end(buf, sizeof(buf), NULL, false, 0), 4);
	cr_assert_str_eq(buf, "END\n");
	cr_assert_eq(proto_format_end(buf, sizeof(buf), NULL, true, 7), 12);
	cr_assert_str_eq(buf, "END count=7\n");

	int n = proto_format_end(buf, sizeof(buf), &d, false, 0);
	cr_assert_str_eq(buf, "END digest=xxh3-128:" XXH3_ABC "\n");
	cr_assert_eq(proto_parse_frame(buf, (size_t)n - 1, &f), 0);
	cr_assert(f.has_digest);
	assert_digest_abc(&f.digest, D_XXH, buf);

	d.alg = DIGEST_SHA256;
	d.len = 32;
	memcpy(d.bytes, sha256_abc, 32);
	n = proto_format_end(buf, sizeof(buf), &d, true, 0);
	cr_assert_str_eq(buf, "END digest=sha256:" SHA256_ABC " count=0\n");
	cr_assert_eq(proto_parse_frame(buf, (size_t)n - 1, &f), 0);
	assert_digest_abc(&f.digest, D_SHA, buf);
	cr_assert(f.has_count);
	cr_assert_eq(f.count, 0);
	cr_assert_not(f.unknown_token);

	cr_assert_eq(proto_format_end(buf, 5, NULL, false, 0), 4);
	cr_assert_eq(proto_format_end(buf, 4, NULL, false, 0), -ENOSPC);
	cr_assert_eq(proto_format_end(buf, 20, &d, false, 0), -ENOSPC);
}

Test(protocol, format_abort)
{
	char buf[64];
	struct proto_frame f;

	cr_assert_eq(proto_format_abort(buf, sizeof(buf), 0, NULL), 6);
	cr_assert_str_eq(buf, "ABORT\n");
	cr_assert_eq(proto_format_abort(buf, 7, 0, "ignored"), 6);
	cr_assert_eq(proto_format_abort(buf, 6, 0, NULL), -ENOSPC);

	int n = proto_format_abort(buf, sizeof(buf), PROTO_ERR_INTERNAL, "file shrank");
	cr_assert_str_eq(buf, "ABORT 451 internal error: file shrank\n");
	cr_assert_eq(n, 38);
	cr_assert_eq(proto_parse_frame(buf, (size_t)n - 1, &f), 0);
	cr_assert_eq(f.type, PROTO_FRAME_ABORT);
	cr_assert_eq(f.code, 451);
	buf[n - 1] = '\0';
	cr_assert_str_eq(f.text, "internal error: file shrank");

	proto_format_abort(buf, sizeof(buf), PROTO_ERR_ABORTED, NULL);
	cr_assert_str_eq(buf, "ABORT 450 aborted\n");
	proto_format_abort(buf, sizeof(buf), PROTO_ERR_NOT_FOUND, "a\nb");
	cr_assert_str_eq(buf, "ABORT 550 not found: a?b\n");
	/* Every code it writes is one the parser takes. */
	proto_format_abort(buf, sizeof(buf), 200, NULL);
	cr_assert_str_eq(buf, "ABORT 451 internal error\n");
}

/* ---- replies ---- */

struct status_case {
	const char *line;
	int ret;
	bool ok;
	int code;
	const char *text;
};

static const struct status_case status_cases[] = {
	{ "OK",                              0, true,  0,   "" },
	{ "OK bye",                          0, true,  0,   "bye" },
	{ "OK version=2",                    0, true,  0,   "version=2" },
	{ "OK size=3 digest=xxh3-128:" XXH3_ABC, 0, true, 0, "size=3 digest=xxh3-128:" XXH3_ABC },
	{ "ERR 550 not found",               0, false, 550, "not found" },
	{ "ERR 550 not found: s/x y",        0, false, 550, "not found: s/x y" },
	{ "ERR 421 shutting down",           0, false, 421, "shutting down" },
	{ "ERR 450 aborted: the client abandoned the body", 0, false, 450, "aborted: the client abandoned the body" },
	{ "ERR 505 version not supported: this server speaks 2", 0, false, 505, "version not supported: this server speaks 2" },
	{ "ERR 530 login required",          0, false, 530, "login required" },
	{ "ERR 599",                         0, false, 599, "" },
	{ "ERR 400 x",                       0, false, 400, "x" },
	{ "ERR 5 x",                         -EPROTO, false, 0, NULL },
	{ "ERR 55 x",                        -EPROTO, false, 0, NULL },
	{ "ERR 5500 x",                      -EPROTO, false, 0, NULL },
	{ "ERR 550x",                        -EPROTO, false, 0, NULL },
	{ "ERR abc",                         -EPROTO, false, 0, NULL },
	{ "ERR 250 fine",                    -EPROTO, false, 0, NULL },
	{ "ERR 650 x",                       -EPROTO, false, 0, NULL },
	{ "ERR  550 x",                      -EPROTO, false, 0, NULL },
	{ "ERR",                             -EPROTO, false, 0, NULL },
	{ "ERR ",                            -EPROTO, false, 0, NULL },
	{ "ERR 5",                           -EPROTO, false, 0, NULL },
	{ "OKAY",                            -EPROTO, false, 0, NULL },
	{ "ok",                              -EPROTO, false, 0, NULL },
	{ "",                                -EPROTO, false, 0, NULL },
	{ "CONTINUE",                        -EPROTO, false, 0, NULL },
	{ "TCPFILE 2 server=s",              -EPROTO, false, 0, NULL },
	{ " OK",                             -EPROTO, false, 0, NULL },
};

Test(protocol, status_lines)
{
	for (size_t i = 0; i < N_ELEM(status_cases); i++) {
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

Test(protocol, continue_line)
{
	static const struct {
		const char *line;
		bool is;
	} cases[] = {
		{ "CONTINUE", true },
		{ "CONTINUE window=8", true },      /* a newer server's token */
		{ "CONTINUED", false },
		{ "continue", false },
		{ "OK", false },
		{ " CONTINUE", false },
		{ "", false },
	};

	for (size_t i = 0; i < N_ELEM(cases); i++)
		cr_assert_eq(proto_is_continue(cases[i].line, strlen(cases[i].line)),
			     cases[i].is, "\"%s\"", cases[i].line);
	cr_assert_not(proto_is_continue("CONTINUE", 7));
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
	cr_assert_eq(n, 38);

	/* What the server formats, the client parses. */
	buf[n - 1] = '\0';
	cr_assert_eq(proto_parse_status(buf, &st), 0);
	cr_assert_eq(st.code, 553);
	cr_assert_str_eq(st.text, "forbidden: share is read-only");

	proto_format_error(buf, sizeof(buf), PROTO_ERR_BAD_REQUEST,
			   "expected HELLO; this is a tcpfile protocol 2 server");
	cr_assert_str_eq(buf, "ERR 500 bad request: expected HELLO; this is a tcpfile protocol 2 server\n");
	proto_format_error(buf, sizeof(buf), PROTO_ERR_VERSION, "this server speaks 2");
	cr_assert_str_eq(buf, "ERR 505 version not supported: this server speaks 2\n");

	proto_format_error(buf, sizeof(buf), PROTO_ERR_SHUTTING_DOWN, "shutting down");
	cr_assert_str_eq(buf, "ERR 421 unavailable: shutting down\n");
	/* A detail that repeats the code's text is not repeated. */
	proto_format_error(buf, sizeof(buf), PROTO_ERR_NOT_FOUND, "not found");
	cr_assert_str_eq(buf, "ERR 550 not found\n");
	proto_format_error(buf, sizeof(buf), PROTO_ERR_TIMEOUT, "idle timeout");
	cr_assert_str_eq(buf, "ERR 426 timeout: idle timeout\n");

	proto_format_error(buf, sizeof(buf), 599, NULL);
	cr_assert_str_eq(buf, "ERR 599 error\n");
	/* A code the parser would refuse becomes an internal error. */
	proto_format_error(buf, sizeof(buf), 999, NULL);
	cr_assert_str_eq(buf, "ERR 451 internal error\n");
	proto_format_error(buf, sizeof(buf), 250, NULL);
	cr_assert_str_eq(buf, "ERR 451 internal error\n");
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

	/* ABORT lines are cut the same way. */
	n = proto_format_abort(buf, 4 * PROTO_MAX_LINE, PROTO_ERR_INTERNAL, detail);
	cr_assert_eq(n, PROTO_MAX_LINE);
	struct proto_frame f;
	buf[n - 1] = '\0';
	cr_assert_eq(proto_parse_frame(buf, (size_t)n - 1, &f), 0);
	cr_assert_eq(f.code, 451);
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
		{ 421, "unavailable", true },
		{ 426, "timeout", true },
		{ 450, "aborted", true },
		{ 451, "internal error", true },
		{ 452, "insufficient storage", true },
		{ 500, "bad request", false },
		{ 501, "bad argument", false },
		{ 505, "version not supported", false },
		{ 530, "login required", false },
		{ 535, "authentication failed", false },
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

	for (size_t i = 0; i < N_ELEM(codes); i++) {
		cr_assert_str_eq(proto_code_text(codes[i].code), codes[i].text);
		cr_assert_eq(proto_code_is_temporary(codes[i].code), codes[i].temporary,
			     "code %d", codes[i].code);
	}
}

/* ---- entries and attributes ---- */

struct entry_case {
	const char *line;
	int ret;
	const char *name;
	char type;
	uint64_t size;
	int64_t sec;
	uint32_t nsec;
	uint32_t mode;
};

static const struct entry_case entry_cases[] = {
	{ "ENTRY a.txt type=f size=6 mtime=1700000000.000000000 mode=0644",
	  0, "a.txt", 'f', 6, 1700000000, 0, 0644 },
	{ "ENTRY old%20reports type=d size=4096 mtime=1699990000.5 mode=0755",
	  0, "old reports", 'd', 4096, 1699990000, 500000000, 0755 },
	{ "ENTRY caf%C3%A9 type=l size=3 mtime=1 mode=777",
	  0, "caf\xc3\xa9", 'l', 3, 1, 0, 0777 },
	{ "ENTRY x mode=0600 mtime=2.000000002 size=18446744073709551615 type=o",
	  0, "x", 'o', UINT64_MAX, 2, 2, 0600 },
	/* Unknown tokens (and malformed ones) are ignored. */
	{ "ENTRY a type=f size=1 mtime=1 mode=0644 digest=xxh3-128:" XXH3_ABC " x-new Y=2",
	  0, "a", 'f', 1, 1, 0, 0644 },
	{ "ENTRY a x-first=1 type=f size=1 mtime=1 mode=0644",
	  0, "a", 'f', 1, 1, 0, 0644 },
	/* The name is positional even if it looks like a token. */
	{ "ENTRY type=d type=f size=1 mtime=1 mode=0644",
	  0, "type=d", 'f', 1, 1, 0, 0644 },
	{ "ENTRY a type=f size=1 mtime=1",                  -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=1 mode=0644",                -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f mtime=1 mode=0644",               -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a size=1 mtime=1 mode=0644",               -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY type=f size=1 mtime=1 mode=0644",          -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=x size=1 mtime=1 mode=0644",        -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=ff size=1 mtime=1 mode=0644",       -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type type=f size=1 mtime=1 mode=0644",   -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=-1 mtime=1 mode=0644",       -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=18446744073709551616 mtime=1 mode=0644", -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=1 mtime=-1 mode=0644",       -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=1 mtime=1.0000000001 mode=0644", -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=1 mtime=1 mode=0648",        -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a type=f size=1 mtime=1 mode=17777",       -EPROTO, NULL, 0, 0, 0, 0, 0 },
	/* A name is one component, whatever the peer sends. */
	{ "ENTRY a%2Fb type=f size=1 mtime=1 mode=0644",    -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a/b type=f size=1 mtime=1 mode=0644",      -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY .. type=d size=1 mtime=1 mode=0755",       -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY %2E%2E type=d size=1 mtime=1 mode=0755",   -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY . type=d size=1 mtime=1 mode=0755",        -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a%00 type=f size=1 mtime=1 mode=0644",     -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY a%G0 type=f size=1 mtime=1 mode=0644",     -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY",                                          -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRY ",                                         -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "ENTRYa type=f size=1 mtime=1 mode=0644",         -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "entry a type=f size=1 mtime=1 mode=0644",        -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "END count=1",                                    -EPROTO, NULL, 0, 0, 0, 0, 0 },
	{ "",                                               -EPROTO, NULL, 0, 0, 0, 0, 0 },
};

Test(protocol, entries)
{
	for (size_t i = 0; i < N_ELEM(entry_cases); i++) {
		const struct entry_case *c = &entry_cases[i];
		struct proto_entry e;
		int r = proto_parse_entry(c->line, strlen(c->line), &e);

		cr_assert_eq(r, c->ret, "\"%s\": got %d", c->line, r);
		if (r)
			continue;
		cr_assert_str_eq(e.name, c->name, "\"%s\"", c->line);
		cr_assert_eq(e.name_len, strlen(c->name), "\"%s\"", c->line);
		cr_assert_eq(e.type, c->type, "\"%s\"", c->line);
		cr_assert_eq(e.size, c->size, "\"%s\"", c->line);
		cr_assert_eq(e.mtime_sec, c->sec, "\"%s\"", c->line);
		cr_assert_eq(e.mtime_nsec, c->nsec, "\"%s\"", c->line);
		cr_assert_eq(e.mode, c->mode, "\"%s\"", c->line);
	}
}

static struct proto_entry make_entry(const char *name, char type, uint64_t size,
				     int64_t sec, uint32_t nsec, uint32_t mode)
{
	struct proto_entry e = { .type = type, .size = size, .mtime_sec = sec,
				 .mtime_nsec = nsec, .mode = mode };
	e.name_len = strlen(name);
	memcpy(e.name, name, e.name_len + 1);
	return e;
}

Test(protocol, entry_format_round_trip)
{
	char buf[256];
	struct proto_entry back;
	struct proto_entry e = make_entry("report 2024.pdf", 'f', 6, 1700000000, 5, 0644);

	int n = proto_format_entry(buf, sizeof(buf), &e);
	cr_assert_str_eq(buf, "ENTRY report%202024.pdf type=f size=6 mtime=1700000000.000000005 mode=0644\n");
	cr_assert_eq(n, 75);
	cr_assert_eq(proto_parse_entry(buf, (size_t)n - 1, &back), 0);
	cr_assert_str_eq(back.name, "report 2024.pdf");
	cr_assert_eq(back.type, 'f');
	cr_assert_eq(back.size, 6);
	cr_assert_eq(back.mtime_sec, 1700000000);
	cr_assert_eq(back.mtime_nsec, 5);
	cr_assert_eq(back.mode, 0644);

	e = make_entry("d", 'd', 4096, 0, 0, 040755);
	proto_format_entry(buf, sizeof(buf), &e);
	/* Only permission bits travel. */
	cr_assert_str_eq(buf, "ENTRY d type=d size=4096 mtime=0.000000000 mode=0755\n");
	/* No sign on the wire: before the epoch is 0. */
	e = make_entry("old", 'f', 1, -5, 7, 0600);
	proto_format_entry(buf, sizeof(buf), &e);
	cr_assert_str_eq(buf, "ENTRY old type=f size=1 mtime=0.000000000 mode=0600\n");

	e = make_entry("a/b", 'f', 1, 1, 0, 0600);
	cr_assert_eq(proto_format_entry(buf, sizeof(buf), &e), -EINVAL);
	e = make_entry("..", 'd', 1, 1, 0, 0600);
	cr_assert_eq(proto_format_entry(buf, sizeof(buf), &e), -EINVAL);
	e = make_entry("", 'f', 1, 1, 0, 0600);
	cr_assert_eq(proto_format_entry(buf, sizeof(buf), &e), -EINVAL);
	e = make_entry("a", 'x', 1, 1, 0, 0600);
	cr_assert_eq(proto_format_entry(buf, sizeof(buf), &e), -EINVAL);
	e = make_entry("a", 'f', 1, 1, 0, 0600);
	/* "ENTRY a type=f size=1 mtime=1.000000000 mode=0600\n" is 50 bytes. */
	cr_assert_eq(proto_format_entry(buf, 51, &e), 50);
	cr_assert_eq(proto_format_entry(buf, 50, &e), -ENOSPC);
}

Test(protocol, entry_name_limits)
{
	struct proto_entry e = make_entry("", 'f', 1, 1, 0, 0644);
	char *buf = malloc(4 * PROTO_MAX_LINE);
	struct proto_entry back;

	cr_assert_not_null(buf);
	/* 255 bytes that all need escaping: 765 encoded bytes, one line. */
	memset(e.name, '\xff', 255);
	e.name[255] = '\0';
	e.name_len = 255;
	int n = proto_format_entry(buf, 4 * PROTO_MAX_LINE, &e);
	cr_assert_gt(n, 765);
	cr_assert_eq(proto_parse_entry(buf, (size_t)n - 1, &back), 0);
	cr_assert_eq(back.name_len, 255);
	cr_assert_eq(memcmp(back.name, e.name, 255), 0);

	/* 4000 escaped bytes cannot fit in one line. */
	memset(e.name, ' ', 4000);
	e.name[4000] = '\0';
	e.name_len = 4000;
	cr_assert_eq(proto_format_entry(buf, 4 * PROTO_MAX_LINE, &e), -ENAMETOOLONG);
	free(buf);
}

Test(protocol, attrs)
{
	char buf[128];
	struct proto_entry e = make_entry("", 'f', 6, 1700000000, 123456789, 0644);
	struct proto_entry back;

	int n = proto_format_attrs(buf, sizeof(buf), &e);
	cr_assert_str_eq(buf, "type=f size=6 mtime=1700000000.123456789 mode=0644");
	cr_assert_eq(n, 50);
	cr_assert_eq(proto_parse_attrs(buf, &back), 0);
	cr_assert_eq(back.type, 'f');
	cr_assert_eq(back.size, 6);
	cr_assert_eq(back.mtime_sec, 1700000000);
	cr_assert_eq(back.mtime_nsec, 123456789);
	cr_assert_eq(back.mode, 0644);
	cr_assert_eq(proto_format_attrs(buf, 51, &e), 50);
	cr_assert_eq(proto_format_attrs(buf, 50, &e), -ENOSPC);

	/* An OK text with a newer server's tokens around the four. */
	cr_assert_eq(proto_parse_attrs("x-new=1 type=d size=0 nlink=3 mtime=5 mode=1777 Z", &back), 0);
	cr_assert_eq(back.type, 'd');
	cr_assert_eq(back.mode, 01777);
	cr_assert_eq(back.mtime_sec, 5);
	cr_assert_eq(back.mtime_nsec, 0);
	cr_assert_eq(proto_parse_attrs("type=d size=0 mtime=5", &back), -EPROTO);
	cr_assert_eq(proto_parse_attrs("", &back), -EPROTO);
	cr_assert_eq(proto_parse_attrs("type=f size=x mtime=5 mode=0644", &back), -EPROTO);
}

/* ---- values ---- */

Test(protocol, parse_mode)
{
	uint32_t m = 12345;

	cr_assert_eq(proto_parse_mode("0644", 4, &m), 0);
	cr_assert_eq(m, 0644);
	cr_assert_eq(proto_parse_mode("7777", 4, &m), 0);
	cr_assert_eq(m, 07777);
	cr_assert_eq(proto_parse_mode("000000000007", 12, &m), 0);
	cr_assert_eq(m, 7);
	cr_assert_eq(proto_parse_mode("10000", 5, &m), -ERANGE);
	cr_assert_eq(proto_parse_mode("77777777777777777777777", 23, &m), -ERANGE);
	cr_assert_eq(proto_parse_mode("8", 1, &m), -EINVAL);
	cr_assert_eq(proto_parse_mode("", 0, &m), -EINVAL);
	cr_assert_eq(proto_parse_mode("64 ", 3, &m), -EINVAL);
	/* Length-delimited: "6449" read as 3 bytes. */
	cr_assert_eq(proto_parse_mode("6449", 3, &m), 0);
	cr_assert_eq(m, 0644);
}

Test(protocol, parse_mtime)
{
	int64_t sec = -7;
	uint32_t nsec = 7;

	cr_assert_eq(proto_parse_mtime("0", 1, &sec, &nsec), 0);
	cr_assert_eq(sec, 0);
	cr_assert_eq(nsec, 0);
	cr_assert_eq(proto_parse_mtime("12.000000100", 12, &sec, &nsec), 0);
	cr_assert_eq(sec, 12);
	cr_assert_eq(nsec, 100);
	cr_assert_eq(proto_parse_mtime("9223372036854775807.999999999", 29, &sec, &nsec), 0);
	cr_assert_eq(sec, INT64_MAX);
	cr_assert_eq(nsec, 999999999);
	cr_assert_eq(proto_parse_mtime("9223372036854775808", 19, &sec, &nsec), -ERANGE);
	cr_assert_eq(proto_parse_mtime("18446744073709551616", 20, &sec, &nsec), -ERANGE);
	cr_assert_eq(proto_parse_mtime("", 0, &sec, &nsec), -EINVAL);
	cr_assert_eq(proto_parse_mtime(".1", 2, &sec, &nsec), -EINVAL);
	cr_assert_eq(proto_parse_mtime("1.", 2, &sec, &nsec), -EINVAL);
	cr_assert_eq(proto_parse_mtime("1.a", 3, &sec, &nsec), -EINVAL);
	cr_assert_eq(proto_parse_mtime("1e9", 3, &sec, &nsec), -EINVAL);
	/* Length-delimited: "5.25 rest" read as 4 bytes. */
	cr_assert_eq(proto_parse_mtime("5.25 rest", 4, &sec, &nsec), 0);
	cr_assert_eq(sec, 5);
	cr_assert_eq(nsec, 250000000);
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
		if (!plain) {
			static const char hex[] = "0123456789ABCDEF";
			char want[4] = { '%', hex[b >> 4], hex[b & 15], '\0' };
			cr_assert_str_eq(enc, want, "byte 0x%02x", b);
		}
		int d = proto_decode_path(enc, (size_t)n, dec, sizeof(dec));
		cr_assert_eq(d, 1, "byte 0x%02x", b);
		cr_assert_eq((unsigned char)dec[0], b, "byte 0x%02x", b);
	}
}

Test(protocol, percent_encode_examples_and_limits)
{
	char out[32];

	cr_assert_eq(proto_encode_path("s/a b%c", 7, out, sizeof(out)), 11);
	cr_assert_str_eq(out, "s/a%20b%25c");
	cr_assert_eq(proto_encode_path("photos/caf\xc3\xa9.jpg", 16, out, sizeof(out)), 20);
	cr_assert_str_eq(out, "photos/caf%C3%A9.jpg");
	cr_assert_eq(proto_encode_path("docs/a=b+c", 10, out, sizeof(out)), 10);
	cr_assert_str_eq(out, "docs/a=b+c");
	cr_assert_eq(proto_encode_path("", 0, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
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

	for (size_t i = 0; i < N_ELEM(bad); i++)
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

/* ---- forward compatibility, end to end through the codec ---- */

Test(protocol, forward_compatibility)
{
	struct proto_hello h;
	struct proto_status st;
	struct proto_request req;
	struct proto_frame f;
	const char *v, *why;
	size_t vlen;

	/* A newer server: more versions, capabilities we never heard of,
	 * and extra tokens in every reply.  The client reads what it knows. */
	const char *greeting = "TCPFILE 2,3 server=tcpfiled/3.0 auth=SCRAM-SHA-256-PLUS compress=zstd x-y";
	cr_assert_eq(proto_parse_greeting(greeting, strlen(greeting), &h), 0);
	cr_assert_eq(h.version, 2);

	cr_assert_eq(proto_parse_status("OK version=2 x-window=8 resume", &st), 0);
	cr_assert(proto_reply_get(st.text, "version", &v, &vlen));
	cr_assert(span_is(v, vlen, "2"));

	cr_assert_eq(proto_parse_status("OK size=3 x-cache=hit digest=xxh3-128:" XXH3_ABC
					" mtime=1.5 mode=0644 type=f", &st), 0);
	cr_assert(proto_reply_get(st.text, "digest", &v, &vlen));
	cr_assert(span_is(v, vlen, "xxh3-128:" XXH3_ABC));

	const char *end = "END digest=xxh3-128:" XXH3_ABC " x-elapsed=5";
	cr_assert_eq(proto_parse_frame(end, strlen(end), &f), 0);
	cr_assert(f.has_digest);
	cr_assert(f.unknown_token);     /* the client ignores it; a server refuses */

	/* A client never gets a request token silently dropped. */
	cr_assert_eq(proto_parse_request("PUT s/f size=1 offset=5", 23, &req, &why),
		     PROTO_ERR_BAD_ARGUMENT);
	cr_assert_eq(req.verb, PROTO_PUT);
	/* And a new verb is not a request of this protocol. */
	cr_assert_eq(proto_parse_request("CANCEL", 6, &req, &why), PROTO_ERR_BAD_REQUEST);
}

/* ---- logins ---- */

Test(protocol, base64_rfc4648_vectors)
{
	static const struct { const char *raw, *b64; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	char enc[32];
	unsigned char dec[32];

	for (size_t i = 0; i < N_ELEM(v); i++) {
		size_t rl = strlen(v[i].raw), bl = strlen(v[i].b64);

		cr_expect_eq(proto_base64_encode(v[i].raw, rl, enc, sizeof(enc)), (int)bl);
		cr_expect_str_eq(enc, v[i].b64);
		cr_expect_eq(proto_base64_decode(v[i].b64, bl, dec, sizeof(dec)), (int)rl);
		cr_expect(memcmp(dec, v[i].raw, rl) == 0);
		cr_expect(proto_base64_valid(v[i].b64, bl));
	}
	/* Every byte value survives the round trip. */
	unsigned char all[256];
	char big[PROTO_BASE64_LEN(256) + 1];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	cr_assert_eq(proto_base64_encode(all, 256, big, sizeof(big)), PROTO_BASE64_LEN(256));
	cr_expect_eq(proto_base64_decode(big, strlen(big), dec, sizeof(dec)), -ENOSPC);
	unsigned char back[256];
	cr_expect_eq(proto_base64_decode(big, strlen(big), back, sizeof(back)), 256);
	cr_expect(memcmp(back, all, 256) == 0);
	/* No room for the NUL. */
	cr_expect_eq(proto_base64_encode("foo", 3, enc, 4), -ENOSPC);
}

Test(protocol, base64_rejects_non_canonical)
{
	static const char *const bad[] = {
		"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm=v", "=Zm9", "Zm 9", "Zm9v\n",
		"Zm9-", "Zm9_", "Zg==Zg==", "\x80\x80\x80\x80",
	};
	unsigned char dec[16];

	for (size_t i = 0; i < N_ELEM(bad); i++) {
		cr_expect(!proto_base64_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
		cr_expect_eq(proto_base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)),
			     -EINVAL, "%s", bad[i]);
	}
}

Test(protocol, parse_auth)
{
	const char *line = "AUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49dXNlcg==";
	struct proto_auth a;
	const char *why;

	cr_assert(proto_is_auth(line, strlen(line)));
	cr_assert_eq(proto_parse_auth(line, strlen(line), &a, &why), 0);
	cr_expect_str_eq(a.mech, "SCRAM-SHA-256-PLUS");
	cr_expect(span_is(a.data, a.data_len, "cD10bHMtZXhwb3J0ZXIsLG49dXNlcg=="));

	static const struct { const char *line; int code; } bad[] = {
		{ "AUTH", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH SCRAM-SHA-256", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH scram-sha-256 Zm9v", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH SCRAM-SHA-256-PLUS-TOO-LONG-NAME Zm9v", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH SCRAM-SHA-256 Zm9", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH SCRAM-SHA-256 Zm9v extra", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH SCRAM-SHA-256 Zm9v=", PROTO_ERR_BAD_ARGUMENT },
		{ "AUTH  SCRAM-SHA-256 Zm9v", PROTO_ERR_BAD_REQUEST },
		{ "AUTH SCRAM-SHA-256 Zm9v\r", PROTO_ERR_BAD_REQUEST },
		{ "AUTHX SCRAM Zm9v", PROTO_ERR_BAD_REQUEST },
		{ "auth SCRAM Zm9v", PROTO_ERR_BAD_REQUEST },
	};
	for (size_t i = 0; i < N_ELEM(bad); i++) {
		why = NULL;
		cr_expect_eq(proto_parse_auth(bad[i].line, strlen(bad[i].line), &a, &why),
			     bad[i].code, "%s", bad[i].line);
		cr_expect_not_null(why);
	}
	cr_expect(!proto_is_auth("AUTHX", 5));
	cr_expect(!proto_is_auth("PUT files/a", 11));
	/* AUTH is no request of proto_parse_request: it never reaches it. */
	struct proto_request req;
	cr_expect_eq(proto_parse_request(line, strlen(line), &req, &why), PROTO_ERR_BAD_REQUEST);
}

Test(protocol, format_auth_and_sasl)
{
	char buf[128];

	cr_expect_eq(proto_format_auth(buf, sizeof(buf), "SCRAM-SHA-256", "Zm9v"), 24);
	cr_expect_str_eq(buf, "AUTH SCRAM-SHA-256 Zm9v\n");
	cr_expect_eq(proto_format_auth(buf, sizeof(buf), "scram", "Zm9v"), -EINVAL);
	cr_expect_eq(proto_format_auth(buf, sizeof(buf), "SCRAM-SHA-256", ""), -EINVAL);
	cr_expect_eq(proto_format_auth(buf, sizeof(buf), "SCRAM-SHA-256", "Zm9"), -EINVAL);
	cr_expect_eq(proto_format_auth(buf, 10, "SCRAM-SHA-256", "Zm9v"), -ENOSPC);

	cr_expect_eq(proto_format_sasl(buf, sizeof(buf), "Zm9vYg=="), 11);
	cr_expect_str_eq(buf, "+ Zm9vYg==\n");
	cr_expect_eq(proto_format_sasl(buf, sizeof(buf), ""), 2);
	cr_expect_str_eq(buf, "+\n");
	cr_expect_eq(proto_format_sasl(buf, sizeof(buf), "Zm9vYg="), -EINVAL);
	cr_expect_eq(proto_format_sasl(buf, 5, "Zm9vYg=="), -ENOSPC);
}

Test(protocol, parse_sasl)
{
	const char *b64;
	size_t n;

	cr_expect_eq(proto_parse_sasl("+ Zm9vYg==", 10, &b64, &n), 0);
	cr_expect(span_is(b64, n, "Zm9vYg=="));
	cr_expect_eq(proto_parse_sasl("+", 1, &b64, &n), 0);
	cr_expect_eq(n, 0);
	cr_expect_eq(proto_parse_sasl("*", 1, &b64, &n), -ECANCELED);

	static const char *const bad[] = {
		"", "+ ", "+Zm9v", "+  Zm9v", "+ Zm9", "* ", "**", "- Zm9v", "+ Zm9v ",
		"OK", "AUTH SCRAM-SHA-256 Zm9v", "+ Zm9v Zm9v",
	};
	for (size_t i = 0; i < N_ELEM(bad); i++)
		cr_expect_eq(proto_parse_sasl(bad[i], strlen(bad[i]), &b64, &n), -EPROTO,
			     "%s", bad[i]);
}

Test(protocol, login_codes)
{
	cr_expect_str_eq(proto_code_text(PROTO_ERR_LOGIN_NEEDED), "login required");
	cr_expect_str_eq(proto_code_text(PROTO_ERR_AUTH_FAILED), "authentication failed");
	cr_expect_str_eq(proto_code_text(PROTO_ERR_ENCRYPTION), "encryption required");
	char buf[128];
	cr_expect_gt(proto_format_error(buf, sizeof(buf), PROTO_ERR_ENCRYPTION, "use TLS"), 0);
	cr_expect_str_eq(buf, "ERR 538 encryption required: use TLS\n");
}
