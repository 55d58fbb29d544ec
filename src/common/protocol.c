/* protocol: parses and formats tcpfile v1 request, status and greeting lines; no I/O. */
#include "protocol.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

static const struct {
	int code;
	const char *text;
} proto_codes[] = {
	{ PROTO_ERR_SHUTTING_DOWN, "shutting down" },
	{ PROTO_ERR_TIMEOUT,       "timeout" },
	{ PROTO_ERR_INTERNAL,      "internal error" },
	{ PROTO_ERR_NO_SPACE,      "insufficient storage" },
	{ PROTO_ERR_BAD_REQUEST,   "bad request" },
	{ PROTO_ERR_BAD_ARGUMENT,  "bad argument" },
	{ PROTO_ERR_NOT_FOUND,     "not found" },
	{ PROTO_ERR_TOO_LARGE,     "too large" },
	{ PROTO_ERR_FORBIDDEN,     "forbidden" },
	{ PROTO_ERR_EXISTS,        "already exists" },
	{ PROTO_ERR_DIGEST,        "digest mismatch" },
	{ PROTO_ERR_WRONG_TYPE,    "wrong type" },
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

const char *proto_code_text(int code)
{
	for (size_t i = 0; i < ARRAY_LEN(proto_codes); i++)
		if (proto_codes[i].code == code)
			return proto_codes[i].text;
	return "error";
}

bool proto_code_is_temporary(int code)
{
	return code >= 400 && code <= 499;
}

bool proto_next_token(const char **cursor, const char *end,
		      const char **tok, size_t *tok_len)
{
	const char *p = *cursor;

	while (p < end && *p == ' ')
		p++;
	if (p >= end) {
		*cursor = end;
		return false;
	}
	*tok = p;
	while (p < end && *p != ' ')
		p++;
	*tok_len = (size_t)(p - *tok);
	*cursor = p;
	return true;
}

/* ---- percent-encoding ---- */

static bool proto_byte_is_plain(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '%';
}

int proto_encode_path(const char *in, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (cap == 0)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		/* %00 would not decode; no path can hold a NUL anyway. */
		if (c == 0)
			return -EINVAL;
		size_t need = proto_byte_is_plain(c) ? 1 : 3;
		if (o + need >= cap || o + need > INT_MAX)
			return -ENAMETOOLONG;
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return (int)o;
}

int proto_decode_path(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	if (cap == 0)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)in[i];
		if (c == '%') {
			if (len - i < 3)
				return -EINVAL;
			int hi = parse_hex_digit(in[i + 1]);
			int lo = parse_hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			/* A NUL would silently truncate the path for every
			 * C API downstream. */
			if (c == 0)
				return -EINVAL;
			i += 3;
		} else if (c < 0x21 || c > 0x7e) {
			return -EINVAL;
		} else {
			i++;
		}
		if (o + 1 >= cap || o + 1 > INT_MAX)
			return -ENAMETOOLONG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

/* ---- requests ---- */

enum proto_opt {
	PROTO_OPT_DIGEST    = 1u << 0,
	PROTO_OPT_MODE      = 1u << 1,
	PROTO_OPT_MTIME     = 1u << 2,
	PROTO_OPT_OVERWRITE = 1u << 3,
	PROTO_OPT_ALG       = 1u << 4,
	PROTO_OPT_PIPELINED = 1u << 5,
	PROTO_OPT_OFFSET    = 1u << 6,
};

static const struct {
	const char *key;
	enum proto_opt opt;
} proto_opts[] = {
	{ "digest",    PROTO_OPT_DIGEST },
	{ "mode",      PROTO_OPT_MODE },
	{ "mtime",     PROTO_OPT_MTIME },
	{ "overwrite", PROTO_OPT_OVERWRITE },
	{ "alg",       PROTO_OPT_ALG },
	{ "pipelined", PROTO_OPT_PIPELINED },
	{ "offset",    PROTO_OPT_OFFSET },
};

static const struct {
	const char *name;
	enum proto_verb verb;
	bool has_path;
	bool has_size;
	unsigned opts;  /* proto_opt bits the verb accepts */
} proto_verbs[] = {
	/* PUT accepts offset= only to refuse it with a reason. */
	{ "PUT",  PROTO_PUT,  true,  true,
	  PROTO_OPT_DIGEST | PROTO_OPT_MODE | PROTO_OPT_MTIME | PROTO_OPT_OVERWRITE |
	  PROTO_OPT_ALG | PROTO_OPT_PIPELINED | PROTO_OPT_OFFSET },
	{ "GET",  PROTO_GET,  true,  false, PROTO_OPT_OFFSET | PROTO_OPT_ALG },
	{ "STAT", PROTO_STAT, true,  false, PROTO_OPT_ALG },
	{ "LIST", PROTO_LIST, true,  false, 0 },
	{ "DEL",  PROTO_DEL,  true,  false, 0 },
	{ "QUIT", PROTO_QUIT, false, false, 0 },
};

static bool proto_token_is(const char *tok, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(tok, word, len) == 0;
}

int proto_parse_mode(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -EINVAL;
		v = v * 8 + (uint32_t)(s[i] - '0');
		if (v > 07777)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

/* SEC[.NSEC]: NSEC is a decimal fraction of 1-9 digits, so ".5" is half a
 * second, as a human reading the line would expect. */
static int proto_parse_mtime(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
{
	const char *dot = memchr(s, '.', len);
	size_t sec_len = dot ? (size_t)(dot - s) : len;
	uint64_t v;
	uint32_t frac = 0;

	int r = parse_u64_n(s, sec_len, &v);
	if (r < 0)
		return r;
	if (v > INT64_MAX)
		return -ERANGE;
	if (dot) {
		size_t nlen = len - sec_len - 1;
		if (nlen < 1 || nlen > 9)
			return -EINVAL;
		for (size_t i = 0; i < 9; i++) {
			uint32_t digit = 0;
			if (i < nlen) {
				char c = dot[1 + i];
				if (c < '0' || c > '9')
					return -EINVAL;
				digit = (uint32_t)(c - '0');
			}
			frac = frac * 10 + digit;
		}
	}
	*sec = (int64_t)v;
	*nsec = frac;
	return 0;
}

static int proto_parse_flag(const char *s, size_t len, bool *out)
{
	if (proto_token_is(s, len, "0"))
		*out = false;
	else if (proto_token_is(s, len, "1"))
		*out = true;
	else
		return -EINVAL;
	return 0;
}

static int proto_parse_size(const char *s, size_t len, uint64_t *out,
			    const char *what_nan, const char *what_range,
			    const char **why)
{
	int r = parse_u64_n(s, len, out);
	if (r == -ERANGE) {
		*why = what_range;
		return PROTO_ERR_BAD_ARGUMENT;
	}
	if (r < 0) {
		*why = what_nan;
		return PROTO_ERR_BAD_ARGUMENT;
	}
	return 0;
}

static int proto_apply_option(struct proto_request *req, enum proto_opt opt,
			      const char *val, size_t vlen, bool *alg_given,
			      const char **why)
{
	bool flag;
	int r;

	switch (opt) {
	case PROTO_OPT_DIGEST:
		if (digest_parse(val, vlen, &req->digest) < 0) {
			*why = "bad digest= (want xxh3-128:<32 hex> or sha256:<64 hex>)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_digest = true;
		return 0;
	case PROTO_OPT_MODE:
		if (proto_parse_mode(val, vlen, &req->mode) < 0) {
			*why = "bad mode= (want octal permission bits, at most 7777)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_mode = true;
		return 0;
	case PROTO_OPT_MTIME:
		r = proto_parse_mtime(val, vlen, &req->mtime_sec, &req->mtime_nsec);
		if (r == -ERANGE) {
			*why = "mtime= seconds out of range";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		if (r < 0) {
			*why = "bad mtime= (want SECONDS[.NSEC], NSEC 1-9 digits)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_mtime = true;
		return 0;
	case PROTO_OPT_OVERWRITE:
		if (proto_parse_flag(val, vlen, &flag) < 0) {
			*why = "bad overwrite= (want 0 or 1)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->overwrite = flag ? 1 : 0;
		return 0;
	case PROTO_OPT_ALG:
		if (digest_alg_from_name(val, vlen, &req->alg) < 0) {
			*why = "bad alg= (want xxh3-128 or sha256)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		*alg_given = true;
		return 0;
	case PROTO_OPT_PIPELINED:
		if (proto_parse_flag(val, vlen, &req->pipelined) < 0) {
			*why = "bad pipelined= (want 0 or 1)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		return 0;
	case PROTO_OPT_OFFSET:
		if (req->verb == PROTO_PUT) {
			*why = "offset= is reserved for resume";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		return proto_parse_size(val, vlen, &req->offset,
					"offset= is not a decimal number",
					"offset= overflows 64 bits", why);
	}
	*why = "unknown option";
	return PROTO_ERR_BAD_ARGUMENT;
}

static int proto_parse_options(struct proto_request *req, unsigned allowed,
			       const char *cursor, const char *end,
			       const char **why)
{
	const char *tok;
	size_t tok_len;
	unsigned seen = 0;
	bool alg_given = false;

	while (proto_next_token(&cursor, end, &tok, &tok_len)) {
		const char *eq = memchr(tok, '=', tok_len);
		if (!eq) {
			*why = "too many arguments";
			return PROTO_ERR_BAD_REQUEST;
		}
		size_t key_len = (size_t)(eq - tok);
		unsigned opt = 0;
		for (size_t i = 0; i < ARRAY_LEN(proto_opts); i++)
			if (proto_token_is(tok, key_len, proto_opts[i].key))
				opt = proto_opts[i].opt;
		if (!(opt & allowed)) {
			*why = "unknown option";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		if (seen & opt) {
			*why = "duplicate option";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		seen |= opt;
		int r = proto_apply_option(req, (enum proto_opt)opt, eq + 1,
					   tok_len - key_len - 1, &alg_given, why);
		if (r)
			return r;
	}

	/* The digest names the algorithm the server must compute in. */
	if (req->has_digest) {
		if (alg_given && req->alg != req->digest.alg) {
			*why = "alg= and digest= name different algorithms";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->alg = req->digest.alg;
	}
	return 0;
}

/* Lines are printable ASCII with single spaces between non-empty tokens;
 * anything else cannot have come from a conforming client. */
static int proto_check_line(const char *line, size_t len, const char **why)
{
	if (len == 0) {
		*why = "empty line";
		return PROTO_ERR_BAD_REQUEST;
	}
	if (len > PROTO_MAX_LINE - 1) {
		*why = "line too long";
		return PROTO_ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c > 0x7e) {
			*why = "control or non-ASCII byte in line (percent-encode paths)";
			return PROTO_ERR_BAD_REQUEST;
		}
		if (c == ' ' && (i == 0 || i == len - 1 || line[i + 1] == ' ')) {
			*why = "empty token (separate tokens by exactly one space)";
			return PROTO_ERR_BAD_REQUEST;
		}
	}
	return 0;
}

int proto_parse_request(const char *line, size_t len,
			struct proto_request *req, const char **why)
{
	const char *cursor = line, *end = line + len;
	const char *tok;
	size_t tok_len;
	size_t v;
	int r;

	memset(req, 0, sizeof(*req));
	req->overwrite = -1;
	req->alg = DIGEST_XXH3_128;
	*why = NULL;

	r = proto_check_line(line, len, why);
	if (r)
		return r;

	/* proto_check_line() guarantees a first, non-empty token. */
	(void)proto_next_token(&cursor, end, &tok, &tok_len);
	for (v = 0; v < ARRAY_LEN(proto_verbs); v++)
		if (proto_token_is(tok, tok_len, proto_verbs[v].name))
			break;
	if (v == ARRAY_LEN(proto_verbs)) {
		*why = "unknown command";
		return PROTO_ERR_BAD_REQUEST;
	}
	req->verb = proto_verbs[v].verb;

	if (proto_verbs[v].has_path) {
		if (!proto_next_token(&cursor, end, &tok, &tok_len)) {
			*why = "missing path";
			return PROTO_ERR_BAD_REQUEST;
		}
		r = proto_decode_path(tok, tok_len, req->path, sizeof(req->path));
		if (r == -ENAMETOOLONG) {
			*why = "path too long";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		if (r < 0) {
			*why = "bad path encoding (malformed %XX escape or %00)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->path_len = (size_t)r;
	}

	if (proto_verbs[v].has_size) {
		if (!proto_next_token(&cursor, end, &tok, &tok_len)) {
			*why = "missing size";
			return PROTO_ERR_BAD_REQUEST;
		}
		r = proto_parse_size(tok, tok_len, &req->size,
				     "size is not a decimal number",
				     "size overflows 64 bits", why);
		if (r)
			return r;
	}

	return proto_parse_options(req, proto_verbs[v].opts, cursor, end, why);
}

/* Deliberately lenient (runs of spaces, any case of "PUT"): a refused line
 * is not trusted, and guessing "a body follows" wrongly only costs the
 * connection, while missing one would run body bytes as requests. */
int proto_refused_body(const char *line, size_t len, uint64_t *size)
{
	const char *cursor = line, *end = line + len;
	const char *tok, *size_tok = NULL;
	size_t tok_len, size_len = 0;
	bool pipelined = false;

	if (!proto_next_token(&cursor, end, &tok, &tok_len) ||
	    tok_len != 3 || strncasecmp(tok, "PUT", 3) != 0)
		return 0;
	/* The path may itself be spelled "pipelined=1"; skip it. */
	if (!proto_next_token(&cursor, end, &tok, &tok_len))
		return 0;
	if (proto_next_token(&cursor, end, &size_tok, &size_len))
		pipelined = proto_token_is(size_tok, size_len, "pipelined=1");
	while (proto_next_token(&cursor, end, &tok, &tok_len))
		if (proto_token_is(tok, tok_len, "pipelined=1"))
			pipelined = true;

	if (!pipelined)
		return 0;
	if (!size_tok || parse_u64_n(size_tok, size_len, size) < 0)
		return -EPROTO;
	return 1;
}

/* ---- status and greeting lines ---- */

static bool proto_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int proto_parse_status(const char *line, struct proto_status *st)
{
	if (strncmp(line, "OK", 2) == 0 && (line[2] == '\0' || line[2] == ' ')) {
		st->ok = true;
		st->code = 0;
		st->text = line[2] ? line + 3 : line + 2;
		return 0;
	}
	if (strncmp(line, "ERR ", 4) == 0) {
		const char *c = line + 4;
		if ((c[0] == '4' || c[0] == '5') && proto_is_digit(c[1]) &&
		    proto_is_digit(c[2]) && (c[3] == '\0' || c[3] == ' ')) {
			st->ok = false;
			st->code = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
			st->text = c[3] ? c + 4 : c + 3;
			return 0;
		}
	}
	st->ok = false;
	st->code = 0;
	st->text = "";
	return -EPROTO;
}

#define PROTO_NONCE_LEN 32

int proto_format_greeting(char *buf, size_t cap, const char *nonce)
{
	if (nonce[0] == '\0')
		return -EINVAL;
	for (const char *p = nonce; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return -EINVAL;

	int n = snprintf(buf, cap, "%s %d %s\n", PROTO_NAME, PROTO_VERSION, nonce);
	if (n < 0 || (size_t)n >= cap || n > PROTO_MAX_LINE)
		return -ENOSPC;
	return n;
}

int proto_parse_greeting(const char *line, int *version, const char **nonce)
{
	size_t name_len = strlen(PROTO_NAME);
	uint64_t ver;

	if (strncmp(line, PROTO_NAME, name_len) != 0 || line[name_len] != ' ')
		return -EPROTO;

	const char *vtok = line + name_len + 1;
	const char *sp = strchr(vtok, ' ');
	size_t vlen = sp ? (size_t)(sp - vtok) : strlen(vtok);
	if (parse_u64_n(vtok, vlen, &ver) < 0 || ver > INT_MAX)
		return -EPROTO;
	*version = (int)ver;
	/* Checked before the nonce: a later version may greet differently. */
	if (ver != PROTO_VERSION)
		return -EPROTONOSUPPORT;

	if (!sp)
		return -EPROTO;
	const char *n = sp + 1;
	size_t i;
	for (i = 0; n[i]; i++)
		if (!proto_is_digit(n[i]) && !(n[i] >= 'a' && n[i] <= 'f'))
			return -EPROTO;
	if (i != PROTO_NONCE_LEN)
		return -EPROTO;
	*nonce = n;
	return 0;
}

int proto_format_error(char *buf, size_t cap, int code, const char *detail)
{
	/* A code that is not three digits would be an unparsable line. */
	if (code < 100 || code > 999)
		code = PROTO_ERR_INTERNAL;
	if (cap == 0)
		return -ENOSPC;

	/* Longest line we may produce, LF included, NUL excluded. */
	size_t max = cap - 1 < PROTO_MAX_LINE ? cap - 1 : PROTO_MAX_LINE;
	const char *text = proto_code_text(code);
	int n = snprintf(buf, cap, "ERR %d %s", code, text);
	if (n < 0 || (size_t)n + 1 > max)
		return -ENOSPC;
	size_t o = (size_t)n;

	/* "ERR 421 shutting down: shutting down" would only stutter. */
	if (detail && strcmp(detail, text) == 0)
		detail = NULL;
	/* Room for ": ", one byte of detail and the LF. */
	if (detail && detail[0] && o + 4 <= max) {
		buf[o++] = ':';
		buf[o++] = ' ';
		for (const char *p = detail; *p && o + 1 < max; p++) {
			unsigned char c = (unsigned char)*p;
			buf[o++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
		}
	}
	buf[o++] = '\n';
	buf[o] = '\0';
	return (int)o;
}
