/* fuzz_protocol: libFuzzer target for the protocol 2 parsers; the first input byte picks the parser. */
#include <errno.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the codec promises; a violation is a crash libFuzzer keeps. */
#define FUZZ_CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static bool fuzz_span_in(const char *p, size_t len, const char *line, size_t line_len)
{
	return p >= line && p + len <= line + line_len;
}

static void fuzz_hello(const char *line, size_t len)
{
	struct proto_hello h;
	const char *why = NULL;
	char buf[PROTO_MAX_LINE + 1];

	int r = proto_parse_hello(line, len, &h, &why);
	FUZZ_CHECK(r == 0 || r == PROTO_ERR_BAD_REQUEST || r == PROTO_ERR_VERSION);
	if (r) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(h.version == PROTO_VERSION && h.n_caps <= PROTO_MAX_CAPS);
	if (h.agent)
		FUZZ_CHECK(fuzz_span_in(h.agent, h.agent_len, line, len));
	for (size_t i = 0; i < h.n_caps; i++) {
		char name[PROTO_MAX_TOKEN_NAME + 1];
		FUZZ_CHECK(fuzz_span_in(h.caps[i].name, h.caps[i].name_len, line, len));
		FUZZ_CHECK(h.caps[i].name_len <= PROTO_MAX_TOKEN_NAME);
		memcpy(name, h.caps[i].name, h.caps[i].name_len);
		name[h.caps[i].name_len] = '\0';
		FUZZ_CHECK(proto_hello_has_cap(&h, name, NULL, NULL));
	}
	/* The server echoes the agent into logs and a greeting could carry
	 * it: it must format back into a valid line. */
	if (h.agent && h.agent_len < 256) {
		char agent[256];
		memcpy(agent, h.agent, h.agent_len);
		agent[h.agent_len] = '\0';
		int n = proto_format_hello(buf, sizeof(buf), agent, NULL);
		FUZZ_CHECK(n > 0);
		struct proto_hello again;
		FUZZ_CHECK(proto_parse_hello(buf, (size_t)n - 1, &again, &why) == 0);
		FUZZ_CHECK(again.agent_len == h.agent_len &&
			   memcmp(again.agent, h.agent, h.agent_len) == 0);
	}
}

static void fuzz_greeting(const char *line, size_t len)
{
	struct proto_hello h;

	int r = proto_parse_greeting(line, len, &h);
	FUZZ_CHECK(r == 0 || r == -EPROTO || r == -EPROTONOSUPPORT);
	if (r)
		return;
	FUZZ_CHECK(h.version == PROTO_VERSION && h.n_caps <= PROTO_MAX_CAPS);
	if (h.agent)
		FUZZ_CHECK(fuzz_span_in(h.agent, h.agent_len, line, len));
	for (size_t i = 0; i < h.n_caps; i++) {
		struct proto_token t;
		FUZZ_CHECK(proto_token_split(h.caps[i].name, h.caps[i].name_len, &t) == 0);
	}
}

static void fuzz_request(const char *line, size_t len)
{
	static struct proto_request req;
	const char *why = NULL;
	char enc[3 * PROTO_MAX_PATH + 1];

	int r = proto_parse_request(line, len, &req, &why);
	FUZZ_CHECK(r == 0 || r == PROTO_ERR_BAD_REQUEST || r == PROTO_ERR_BAD_ARGUMENT);
	FUZZ_CHECK((r == 0) == (why == NULL));
	if (r == PROTO_ERR_BAD_REQUEST)
		return;
	FUZZ_CHECK(req.verb <= PROTO_QUIT);
	if (r)
		return;
	FUZZ_CHECK(req.path_len <= PROTO_MAX_PATH && req.path[req.path_len] == '\0');
	FUZZ_CHECK(strlen(req.path) == req.path_len);
	FUZZ_CHECK(!req.has_mode || req.mode <= 07777);
	FUZZ_CHECK(!req.has_mtime || (req.mtime_sec >= 0 && req.mtime_nsec <= 999999999));
	FUZZ_CHECK(req.overwrite >= -1 && req.overwrite <= 1);
	/* Whatever path was decoded encodes back and decodes to itself. */
	int n = proto_encode_path(req.path, req.path_len, enc, sizeof(enc));
	FUZZ_CHECK(n >= 0);
	char dec[PROTO_MAX_PATH + 1];
	FUZZ_CHECK(proto_decode_path(enc, (size_t)n, dec, sizeof(dec)) == (int)req.path_len);
	FUZZ_CHECK(memcmp(dec, req.path, req.path_len) == 0);
}

static void fuzz_frame(const char *line, size_t len)
{
	struct proto_frame f;
	char buf[PROTO_MAX_LINE + 1];

	int r = proto_parse_frame(line, len, &f);
	FUZZ_CHECK(r == 0 || r == -EPROTO);
	if (r)
		return;
	switch (f.type) {
	case PROTO_FRAME_DATA: {
		FUZZ_CHECK(f.len >= 1 && f.len <= PROTO_MAX_CHUNK);
		int n = proto_format_data(buf, PROTO_FRAME_HDR_MAX, f.len);
		FUZZ_CHECK(n > 0);
		struct proto_frame again;
		FUZZ_CHECK(proto_parse_frame(buf, (size_t)n - 1, &again) == 0 && again.len == f.len);
		break;
	}
	case PROTO_FRAME_END: {
		int n = proto_format_end(buf, sizeof(buf), f.has_digest ? &f.digest : NULL,
					 f.has_count, f.count);
		FUZZ_CHECK(n > 0);
		struct proto_frame again;
		FUZZ_CHECK(proto_parse_frame(buf, (size_t)n - 1, &again) == 0);
		FUZZ_CHECK(again.type == PROTO_FRAME_END && !again.unknown_token);
		FUZZ_CHECK(again.has_digest == f.has_digest && again.has_count == f.has_count);
		FUZZ_CHECK(!f.has_digest || digest_equal(&again.digest, &f.digest));
		FUZZ_CHECK(!f.has_count || again.count == f.count);
		break;
	}
	case PROTO_FRAME_ABORT:
		FUZZ_CHECK(f.code == 0 || (f.code >= 400 && f.code <= 599));
		FUZZ_CHECK(proto_format_abort(buf, sizeof(buf), f.code, f.text) > 0);
		break;
	default:
		FUZZ_CHECK(0);
	}
}

static void fuzz_entry(const char *line, size_t len)
{
	static struct proto_entry e, again;
	char buf[PROTO_MAX_LINE + 1];

	int r = proto_parse_entry(line, len, &e);
	FUZZ_CHECK(r == 0 || r == -EPROTO);
	if (r)
		return;
	FUZZ_CHECK(e.mode <= 07777 && e.mtime_nsec <= 999999999 && e.name_len > 0);
	FUZZ_CHECK(!memchr(e.name, '/', e.name_len));
	int n = proto_format_entry(buf, sizeof(buf), &e);
	/* A long name that came in percent-encoded more sparingly may not
	 * fit again; anything else must round-trip exactly. */
	FUZZ_CHECK(n > 0 || n == -ENAMETOOLONG);
	if (n < 0)
		return;
	FUZZ_CHECK(proto_parse_entry(buf, (size_t)n - 1, &again) == 0);
	FUZZ_CHECK(again.name_len == e.name_len && memcmp(again.name, e.name, e.name_len) == 0);
	FUZZ_CHECK(again.type == e.type && again.size == e.size && again.mode == e.mode &&
		   again.mtime_sec == e.mtime_sec && again.mtime_nsec == e.mtime_nsec);
}

/* Replies: status lines, CONTINUE, reply tokens and STAT attributes. */
static void fuzz_status(const char *line, size_t len)
{
	static struct proto_entry e;
	struct proto_status st;
	const char *v;
	size_t vlen;
	char buf[PROTO_MAX_LINE + 1];

	(void)proto_is_continue(line, len);
	if (memchr(line, '\0', len))
		return;        /* these parsers take NUL-terminated text */
	int r = proto_parse_status(line, &st);
	FUZZ_CHECK(r == 0 || r == -EPROTO);
	if (r)
		return;
	FUZZ_CHECK(st.ok ? st.code == 0 : (st.code >= 400 && st.code <= 599));
	if (proto_reply_get(st.text, "size", &v, &vlen))
		FUZZ_CHECK(v == NULL || fuzz_span_in(v, vlen, line, len));
	if (proto_parse_attrs(st.text, &e) == 0) {
		FUZZ_CHECK(e.mode <= 07777 && e.mtime_nsec <= 999999999);
		FUZZ_CHECK(proto_format_attrs(buf, sizeof(buf), &e) > 0);
	}
	if (!st.ok) {
		int n = proto_format_error(buf, sizeof(buf), st.code, st.text);
		FUZZ_CHECK(n > 0 && n <= PROTO_MAX_LINE && buf[n - 1] == '\n');
		FUZZ_CHECK(memchr(buf, '\n', (size_t)n) == buf + n - 1);
	}
}

static void fuzz_path(const char *line, size_t len)
{
	static char dec[PROTO_MAX_LINE + 1], enc[3 * PROTO_MAX_LINE + 1];

	/* Paths come from lines: longer input is no path a peer can send. */
	if (len >= sizeof(dec))
		return;
	int n = proto_decode_path(line, len, dec, sizeof(dec));
	FUZZ_CHECK(n >= 0 || n == -EINVAL || n == -ENAMETOOLONG);
	int e = proto_encode_path(line, len, enc, sizeof(enc));
	FUZZ_CHECK(e >= 0 || e == -EINVAL);
	if (e >= 0) {
		FUZZ_CHECK(proto_decode_path(enc, (size_t)e, dec, sizeof(dec)) == (int)len);
		FUZZ_CHECK(memcmp(dec, line, len) == 0);
	}
}

/* AUTH lines and the exchange's "+"/"*" lines: what parses formats back
 * into the same line, and every base64 that validates decodes and
 * re-encodes to itself. */
static void fuzz_auth(const char *line, size_t len)
{
	static char buf[PROTO_MAX_LINE + 1], b64[PROTO_MAX_LINE + 1];
	static unsigned char bin[PROTO_MAX_LINE];
	struct proto_auth a;
	const char *why = NULL, *data;
	size_t data_len;

	int r = proto_parse_auth(line, len, &a, &why);
	FUZZ_CHECK(r == 0 || r == PROTO_ERR_BAD_REQUEST || r == PROTO_ERR_BAD_ARGUMENT);
	FUZZ_CHECK(r == 0 || why != NULL);
	if (r == 0) {
		FUZZ_CHECK(proto_is_auth(line, len));
		FUZZ_CHECK(fuzz_span_in(a.data, a.data_len, line, len) && a.data_len >= 4);
		memcpy(b64, a.data, a.data_len);
		b64[a.data_len] = '\0';
		int n = proto_format_auth(buf, sizeof(buf), a.mech, b64);
		FUZZ_CHECK(n == (int)len + 1 && memcmp(buf, line, len) == 0);
	}
	r = proto_parse_sasl(line, len, &data, &data_len);
	FUZZ_CHECK(r == 0 || r == -ECANCELED || r == -EPROTO);
	if (r == 0) {
		FUZZ_CHECK(data_len == 0 || fuzz_span_in(data, data_len, line, len));
		memcpy(b64, data, data_len);
		b64[data_len] = '\0';
		int n = proto_format_sasl(buf, sizeof(buf), b64);
		FUZZ_CHECK(n == (int)len + 1 && memcmp(buf, line, len) == 0);
	}
	int d = proto_base64_decode(line, len, bin, sizeof(bin));
	FUZZ_CHECK(d >= 0 || d == -EINVAL);
	FUZZ_CHECK((d >= 0) == proto_base64_valid(line, len));
	if (d >= 0) {
		int e = proto_base64_encode(bin, (size_t)d, b64, sizeof(b64));
		FUZZ_CHECK(e == (int)len && memcmp(b64, line, len) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void (*const parsers[])(const char *, size_t) = {
		fuzz_hello, fuzz_greeting, fuzz_request, fuzz_frame,
		fuzz_entry, fuzz_status, fuzz_path, fuzz_auth,
	};

	if (size == 0 || size - 1 > PROTO_MAX_LINE * 2)
		return 0;
	/* A NUL-terminated copy of exactly the line, so that ASan sees any
	 * read past its end. */
	char *line = malloc(size);
	if (!line)
		return 0;
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	parsers[data[0] % (sizeof(parsers) / sizeof(parsers[0]))](line, size - 1);
	free(line);
	return 0;
}
