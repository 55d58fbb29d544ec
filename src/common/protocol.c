/* protocol: parses and formats tcpfile protocol 2 lines (hello, requests, frames, replies); no I/O. */
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Longest line without its LF. */
#define PROTO_MAX_TEXT (PROTO_MAX_LINE - 1)

static const struct {
	int code;
	const char *text;
} proto_codes[] = {
	{ PROTO_ERR_SHUTTING_DOWN, "unavailable" },
	{ PROTO_ERR_TIMEOUT,       "timeout" },
	{ PROTO_ERR_ABORTED,       "aborted" },
	{ PROTO_ERR_INTERNAL,      "internal error" },
	{ PROTO_ERR_NO_SPACE,      "insufficient storage" },
	{ PROTO_ERR_BAD_REQUEST,   "bad request" },
	{ PROTO_ERR_BAD_ARGUMENT,  "bad argument" },
	{ PROTO_ERR_VERSION,       "version not supported" },
	{ PROTO_ERR_LOGIN_NEEDED,  "login required" },
	{ PROTO_ERR_AUTH_FAILED,   "authentication failed" },
	{ PROTO_ERR_ENCRYPTION,    "encryption required" },
	{ PROTO_ERR_NOT_FOUND,     "not found" },
	{ PROTO_ERR_TOO_LARGE,     "too large" },
	{ PROTO_ERR_FORBIDDEN,     "forbidden" },
	{ PROTO_ERR_EXISTS,        "already exists" },
	{ PROTO_ERR_DIGEST,        "digest mismatch" },
	{ PROTO_ERR_WRONG_TYPE,    "wrong type" },
};

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

/* ---- small helpers ---- */

static bool proto_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool proto_token_is(const char *tok, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(tok, word, len) == 0;
}

/* Does line (len bytes) begin with the word, followed by a space or its end? */
static bool proto_starts_with_word(const char *line, size_t len, const char *word)
{
	size_t wlen = strlen(word);

	return len >= wlen && memcmp(line, word, wlen) == 0 &&
	       (len == wlen || line[wlen] == ' ');
}

/* A 3-digit 4xx/5xx code, the only kind a status or ABORT may carry. */
static int proto_parse_code(const char *s, size_t len)
{
	if (len != 3 || (s[0] != '4' && s[0] != '5') ||
	    !proto_is_digit(s[1]) || !proto_is_digit(s[2]))
		return -EINVAL;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* Appends formatted text at *o; fails with -ENOSPC rather than truncate.
 * The limit is the smaller of the buffer and one protocol line (LF
 * included, the NUL excluded). */
__attribute__((format(printf, 4, 5)))
static int proto_append(char *buf, size_t cap, size_t *o, const char *fmt, ...)
{
	size_t max = cap == 0 ? 0 : (cap - 1 < PROTO_MAX_LINE ? cap - 1 : PROTO_MAX_LINE);
	va_list ap;

	if (*o >= max)
		return -ENOSPC;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *o, cap - *o, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > max - *o)
		return -ENOSPC;
	*o += (size_t)n;
	return 0;
}

/* ---- lines ---- */

/* Lines are printable ASCII with single spaces between non-empty tokens;
 * anything else cannot have come from a conforming peer.  Returns 0 or
 * -EINVAL with *why set. */
static int proto_check_line(const char *line, size_t len, const char **why)
{
	if (len == 0) {
		*why = "empty line";
		return -EINVAL;
	}
	if (len > PROTO_MAX_TEXT) {
		*why = "line too long";
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c > 0x7e) {
			*why = "control or non-ASCII byte in line (percent-encode paths)";
			return -EINVAL;
		}
		if (c == ' ' && (i == 0 || i == len - 1 || line[i + 1] == ' ')) {
			*why = "empty token (separate tokens by exactly one space)";
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- tokens ---- */

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

int proto_token_split(const char *tok, size_t len, struct proto_token *out)
{
	const char *eq = memchr(tok, '=', len);
	size_t name_len = eq ? (size_t)(eq - tok) : len;

	if (name_len == 0 || name_len > PROTO_MAX_TOKEN_NAME)
		return -EINVAL;
	if (tok[0] < 'a' || tok[0] > 'z')
		return -EINVAL;
	for (size_t i = 1; i < name_len; i++) {
		char c = tok[i];
		if (!(c >= 'a' && c <= 'z') && !proto_is_digit(c) && c != '-')
			return -EINVAL;
	}
	out->name = tok;
	out->name_len = name_len;
	out->value = NULL;
	out->value_len = 0;
	if (!eq)
		return 0;

	size_t vlen = len - name_len - 1;
	if (vlen == 0)
		return -EINVAL;
	for (size_t i = 0; i < vlen; i++)
		if ((unsigned char)eq[1 + i] < 0x21 || (unsigned char)eq[1 + i] > 0x7e)
			return -EINVAL;
	out->value = eq + 1;
	out->value_len = vlen;
	return 0;
}

/* The first well-formed token NAME in [cursor, end); malformed ones are
 * skipped, as everywhere replies are read. */
static bool proto_find_token(const char *cursor, const char *end, const char *name,
			     struct proto_token *found)
{
	const char *tok;
	size_t tok_len;

	while (proto_next_token(&cursor, end, &tok, &tok_len)) {
		struct proto_token t;
		if (proto_token_split(tok, tok_len, &t) < 0)
			continue;
		if (proto_token_is(t.name, t.name_len, name)) {
			*found = t;
			return true;
		}
	}
	return false;
}

bool proto_reply_get(const char *text, const char *name, const char **value,
		     size_t *len)
{
	struct proto_token t;

	if (!proto_find_token(text, text + strlen(text), name, &t))
		return false;
	if (value)
		*value = t.value;
	if (len)
		*len = t.value_len;
	return true;
}

/* Checks a space-separated token list that we are about to send. */
static int proto_check_token_list(const char *list)
{
	const char *cursor = list, *end = list + strlen(list);
	const char *tok;
	size_t tok_len;
	struct proto_token t;
	const char *why;

	if (proto_check_line(list, strlen(list), &why) < 0)
		return -EINVAL;
	while (proto_next_token(&cursor, end, &tok, &tok_len))
		if (proto_token_split(tok, tok_len, &t) < 0)
			return -EINVAL;
	return 0;
}

/* A VALUE: 1 or more printable non-space bytes. */
static bool proto_is_value(const char *s)
{
	if (!s[0])
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* ---- connection start ---- */

/* "<word> <version>[ <agent_key>=<agent>][ <caps>]\n" */
static int proto_format_intro(char *buf, size_t cap, const char *word,
			      const char *agent_key, const char *agent, const char *caps)
{
	size_t o = 0;

	if (agent && !proto_is_value(agent))
		return -EINVAL;
	if (caps && caps[0] && proto_check_token_list(caps) < 0)
		return -EINVAL;
	if (proto_append(buf, cap, &o, "%s %d", word, PROTO_VERSION) < 0)
		return -ENOSPC;
	if (agent && proto_append(buf, cap, &o, " %s=%s", agent_key, agent) < 0)
		return -ENOSPC;
	if (caps && caps[0] && proto_append(buf, cap, &o, " %s", caps) < 0)
		return -ENOSPC;
	if (proto_append(buf, cap, &o, "\n") < 0)
		return -ENOSPC;
	return (int)o;
}

int proto_format_greeting(char *buf, size_t cap, const char *agent, const char *caps)
{
	return proto_format_intro(buf, cap, PROTO_NAME, "server", agent, caps);
}

int proto_format_hello(char *buf, size_t cap, const char *agent, const char *caps)
{
	return proto_format_intro(buf, cap, "HELLO", "client", agent, caps);
}

/* Sorts the tokens after the version into agent and caps.  A malformed
 * token is skipped when lenient (the greeting), refused otherwise. */
static int proto_hello_tokens(const char *cursor, const char *end, const char *agent_key,
			      bool lenient, struct proto_hello *h)
{
	const char *tok;
	size_t tok_len;

	while (proto_next_token(&cursor, end, &tok, &tok_len)) {
		struct proto_token t;
		if (proto_token_split(tok, tok_len, &t) < 0) {
			if (lenient)
				continue;
			return -EINVAL;
		}
		if (proto_token_is(t.name, t.name_len, agent_key)) {
			if (!t.value) {
				if (lenient)
					continue;
				return -EINVAL;
			}
			if (!h->agent) {
				h->agent = t.value;
				h->agent_len = t.value_len;
			}
			continue;
		}
		if (h->n_caps < PROTO_MAX_CAPS)
			h->caps[h->n_caps++] = t;
	}
	return 0;
}

int proto_parse_greeting(const char *line, size_t len, struct proto_hello *h)
{
	const char *cursor, *end = line + len;
	const char *tok;
	size_t tok_len;

	memset(h, 0, sizeof(*h));
	if (len > PROTO_MAX_TEXT || !proto_starts_with_word(line, len, PROTO_NAME) ||
	    len == strlen(PROTO_NAME))
		return -EPROTO;
	cursor = line + strlen(PROTO_NAME) + 1;
	/* Exactly one space before the versions: the fixed part is strict. */
	if (cursor >= end || *cursor == ' ' ||
	    !proto_next_token(&cursor, end, &tok, &tok_len))
		return -EPROTO;

	/* "2" or "2,3": every element a decimal number. */
	bool speaks = false;
	for (size_t i = 0; i < tok_len;) {
		const char *comma = memchr(tok + i, ',', tok_len - i);
		size_t n = comma ? (size_t)(comma - (tok + i)) : tok_len - i;
		uint64_t v;
		if (parse_u64_n(tok + i, n, &v) < 0)
			return -EPROTO;
		if (v == PROTO_VERSION)
			speaks = true;
		i += n;
		if (comma) {
			i++;
			if (i == tok_len)
				return -EPROTO;
		}
	}
	if (!speaks)
		return -EPROTONOSUPPORT;
	h->version = PROTO_VERSION;
	/* Unknown and malformed tokens are ignored: a newer server may offer
	 * what we cannot read. */
	(void)proto_hello_tokens(cursor, end, "server", true, h);
	return 0;
}

int proto_parse_hello(const char *line, size_t len, struct proto_hello *h,
		      const char **why)
{
	const char *cursor = line, *end = line + len;
	const char *tok;
	size_t tok_len;
	uint64_t v;

	memset(h, 0, sizeof(*h));
	*why = NULL;
	if (!proto_starts_with_word(line, len, "HELLO")) {
		*why = "expected HELLO; this is a tcpfile protocol 2 server";
		return PROTO_ERR_BAD_REQUEST;
	}
	if (proto_check_line(line, len, why) < 0)
		return PROTO_ERR_BAD_REQUEST;
	(void)proto_next_token(&cursor, end, &tok, &tok_len);
	if (!proto_next_token(&cursor, end, &tok, &tok_len)) {
		*why = "malformed HELLO: missing version";
		return PROTO_ERR_BAD_REQUEST;
	}
	if (parse_u64_n(tok, tok_len, &v) < 0) {
		*why = "malformed HELLO: the version is not a decimal number";
		return PROTO_ERR_BAD_REQUEST;
	}
	if (v != PROTO_VERSION) {
		h->version = v > UINT_MAX ? UINT_MAX : (unsigned)v;
		*why = "this server speaks 2";
		return PROTO_ERR_VERSION;
	}
	h->version = (unsigned)v;
	if (proto_hello_tokens(cursor, end, "client", false, h) < 0) {
		memset(h, 0, sizeof(*h));
		*why = "malformed HELLO: bad token (want name or name=value, client= with a value)";
		return PROTO_ERR_BAD_REQUEST;
	}
	return 0;
}

bool proto_hello_has_cap(const struct proto_hello *h, const char *name,
			 const char **value, size_t *value_len)
{
	for (size_t i = 0; i < h->n_caps; i++) {
		if (!proto_token_is(h->caps[i].name, h->caps[i].name_len, name))
			continue;
		if (value)
			*value = h->caps[i].value;
		if (value_len)
			*value_len = h->caps[i].value_len;
		return true;
	}
	return false;
}

/* ---- values ---- */

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

/* NSEC is a decimal fraction of 1-9 digits, so ".5" is half a second, as a
 * human reading the line would expect. */
int proto_parse_mtime(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
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
				if (!proto_is_digit(c))
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

/* ---- requests ---- */

enum proto_tok {
	PROTO_TOK_SIZE      = 1u << 0,
	PROTO_TOK_MODE      = 1u << 1,
	PROTO_TOK_MTIME     = 1u << 2,
	PROTO_TOK_OVERWRITE = 1u << 3,
	PROTO_TOK_ALG       = 1u << 4,
	PROTO_TOK_CONTINUE  = 1u << 5,
};

static const struct {
	const char *name;
	enum proto_tok tok;
} proto_toks[] = {
	{ "size",      PROTO_TOK_SIZE },
	{ "mode",      PROTO_TOK_MODE },
	{ "mtime",     PROTO_TOK_MTIME },
	{ "overwrite", PROTO_TOK_OVERWRITE },
	{ "alg",       PROTO_TOK_ALG },
	{ "continue",  PROTO_TOK_CONTINUE },
};

static const struct {
	const char *name;
	enum proto_verb verb;
	bool has_path;
	unsigned toks;  /* proto_tok bits the verb accepts */
} proto_verbs[] = {
	{ "PUT",  PROTO_PUT,  true,
	  PROTO_TOK_SIZE | PROTO_TOK_MODE | PROTO_TOK_MTIME | PROTO_TOK_OVERWRITE |
	  PROTO_TOK_ALG | PROTO_TOK_CONTINUE },
	{ "GET",  PROTO_GET,  true,  PROTO_TOK_ALG },
	{ "STAT", PROTO_STAT, true,  0 },
	{ "LIST", PROTO_LIST, true,  0 },
	{ "DEL",  PROTO_DEL,  true,  0 },
	{ "NOOP", PROTO_NOOP, false, 0 },
	{ "QUIT", PROTO_QUIT, false, 0 },
};

/* Returns 0, or PROTO_ERR_BAD_ARGUMENT with *why set. */
static int proto_apply_token(struct proto_request *req, enum proto_tok tok,
			     const char *val, size_t vlen, const char **why)
{
	bool flag;
	int r;

	switch (tok) {
	case PROTO_TOK_SIZE:
		r = parse_u64_n(val, vlen, &req->size);
		if (r < 0) {
			*why = r == -ERANGE ? "size= overflows 64 bits"
					    : "bad size= (want a decimal number)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_size = true;
		return 0;
	case PROTO_TOK_MODE:
		if (proto_parse_mode(val, vlen, &req->mode) < 0) {
			*why = "bad mode= (want octal permission bits, at most 7777)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_mode = true;
		return 0;
	case PROTO_TOK_MTIME:
		r = proto_parse_mtime(val, vlen, &req->mtime_sec, &req->mtime_nsec);
		if (r < 0) {
			*why = r == -ERANGE ? "mtime= seconds out of range"
					    : "bad mtime= (want SECONDS[.NSEC], NSEC 1-9 digits)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_mtime = true;
		return 0;
	case PROTO_TOK_OVERWRITE:
		if (proto_parse_flag(val, vlen, &flag) < 0) {
			*why = "bad overwrite= (want 0 or 1)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->overwrite = flag ? 1 : 0;
		return 0;
	case PROTO_TOK_ALG:
		if (digest_alg_from_name(val, vlen, &req->alg) < 0) {
			*why = "bad alg= (want xxh3-128 or sha256)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->has_alg = true;
		return 0;
	case PROTO_TOK_CONTINUE:
		if (proto_parse_flag(val, vlen, &req->want_continue) < 0) {
			*why = "bad continue= (want 0 or 1)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		return 0;
	}
	*why = "unknown token";
	return PROTO_ERR_BAD_ARGUMENT;
}

/* Strict: a client must never silently lose a token to a server that does
 * not know it, so unknown, repeated and malformed tokens are all refused. */
static int proto_parse_request_tokens(struct proto_request *req, unsigned allowed,
				      const char *cursor, const char *end,
				      const char **why)
{
	const char *tok;
	size_t tok_len;
	unsigned seen = 0;

	while (proto_next_token(&cursor, end, &tok, &tok_len)) {
		struct proto_token t;
		if (proto_token_split(tok, tok_len, &t) < 0) {
			*why = "malformed token (want name=value, name of a-z 0-9 -)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		unsigned bit = 0;
		for (size_t i = 0; i < ARRAY_LEN(proto_toks); i++)
			if (proto_token_is(t.name, t.name_len, proto_toks[i].name))
				bit = proto_toks[i].tok;
		if (!(bit & allowed)) {
			*why = req->verb == PROTO_PUT && proto_token_is(t.name, t.name_len, "digest")
				? "unknown token: digest= goes in the END frame"
				: "unknown token";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		if (seen & bit) {
			*why = "duplicate token";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		seen |= bit;
		if (!t.value) {
			*why = "token without a value (want name=value)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		int r = proto_apply_token(req, (enum proto_tok)bit, t.value, t.value_len, why);
		if (r)
			return r;
	}
	return 0;
}

/* Why a line that is no request is refused, for the few that a confused
 * peer plausibly sends. */
static const char *proto_not_a_request(const char *tok, size_t len)
{
	static const char *const frames[] = { "DATA", "END", "ABORT" };

	for (size_t i = 0; i < ARRAY_LEN(frames); i++)
		if (proto_token_is(tok, len, frames[i]))
			return "a body frame where a request was expected";
	if (proto_token_is(tok, len, "HELLO"))
		return "HELLO after the connection start";
	for (size_t i = 0; i < ARRAY_LEN(proto_verbs); i++)
		if (strlen(proto_verbs[i].name) == len &&
		    strncasecmp(tok, proto_verbs[i].name, len) == 0)
			return "unknown command (verbs are upper case)";
	return "unknown command";
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

	if (proto_check_line(line, len, why) < 0)
		return PROTO_ERR_BAD_REQUEST;

	/* proto_check_line() guarantees a first, non-empty token. */
	(void)proto_next_token(&cursor, end, &tok, &tok_len);
	for (v = 0; v < ARRAY_LEN(proto_verbs); v++)
		if (proto_token_is(tok, tok_len, proto_verbs[v].name))
			break;
	if (v == ARRAY_LEN(proto_verbs)) {
		*why = proto_not_a_request(tok, tok_len);
		return PROTO_ERR_BAD_REQUEST;
	}
	req->verb = proto_verbs[v].verb;

	if (proto_verbs[v].has_path) {
		if (!proto_next_token(&cursor, end, &tok, &tok_len)) {
			*why = "missing path";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		r = proto_decode_path(tok, tok_len, req->path, sizeof(req->path));
		if (r < 0) {
			*why = r == -ENAMETOOLONG ? "path too long"
				: "bad path encoding (malformed %XX escape or %00)";
			return PROTO_ERR_BAD_ARGUMENT;
		}
		req->path_len = (size_t)r;
	}

	return proto_parse_request_tokens(req, proto_verbs[v].toks, cursor, end, why);
}

/* ---- body frames ---- */

/* END's tokens.  A token we do not know, or one given twice, is flagged
 * for the caller (a server refuses it, a client ignores it); a malformed
 * one, or a bad digest=/count=, breaks the frame. */
static int proto_parse_end_tokens(const char *cursor, const char *end, struct proto_frame *f)
{
	const char *tok;
	size_t tok_len;

	while (proto_next_token(&cursor, end, &tok, &tok_len)) {
		struct proto_token t;
		if (proto_token_split(tok, tok_len, &t) < 0)
			return -EPROTO;
		if (proto_token_is(t.name, t.name_len, "digest")) {
			struct digest_value d;
			if (!t.value || digest_parse(t.value, t.value_len, &d) < 0)
				return -EPROTO;
			if (f->has_digest)
				f->unknown_token = true;
			else
				f->digest = d;
			f->has_digest = true;
		} else if (proto_token_is(t.name, t.name_len, "count")) {
			uint64_t n;
			if (!t.value || parse_u64_n(t.value, t.value_len, &n) < 0)
				return -EPROTO;
			if (f->has_count)
				f->unknown_token = true;
			else
				f->count = n;
			f->has_count = true;
		} else {
			f->unknown_token = true;
		}
	}
	return 0;
}

int proto_parse_frame(const char *line, size_t len, struct proto_frame *f)
{
	const char *why;

	memset(f, 0, sizeof(*f));
	f->text = "";
	if (proto_check_line(line, len, &why) < 0) {
		/* ABORT's free text may hold any printable bytes and spaces. */
		if (!proto_starts_with_word(line, len, "ABORT") || len > PROTO_MAX_TEXT)
			return -EPROTO;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
				return -EPROTO;
	}

	if (proto_starts_with_word(line, len, "DATA")) {
		uint64_t n;
		if (len < 6 || parse_u64_n(line + 5, len - 5, &n) < 0 ||
		    n == 0 || n > PROTO_MAX_CHUNK)
			return -EPROTO;
		f->type = PROTO_FRAME_DATA;
		f->len = n;
		return 0;
	}
	if (proto_starts_with_word(line, len, "END")) {
		f->type = PROTO_FRAME_END;
		return proto_parse_end_tokens(line + 3, line + len, f);
	}
	if (proto_starts_with_word(line, len, "ABORT")) {
		f->type = PROTO_FRAME_ABORT;
		if (len == 5)
			return 0;
		const char *code = line + 6;
		size_t rest = len - 6;
		size_t clen = rest < 3 ? rest : 3;
		int c = proto_parse_code(code, clen);
		if (c < 0 || (rest > 3 && code[3] != ' ') || rest == 4)
			return -EPROTO;
		f->code = c;
		/* Points into the line, which need not be NUL-terminated
		 * here: the text runs to line + len. */
		f->text = rest > 3 ? code + 4 : "";
		return 0;
	}
	return -EPROTO;
}

int proto_format_data(char *buf, size_t cap, uint64_t n)
{
	size_t o = 0;

	if (n == 0 || n > PROTO_MAX_CHUNK)
		return -EINVAL;
	if (proto_append(buf, cap, &o, "DATA %" PRIu64 "\n", n) < 0)
		return -ENOSPC;
	return (int)o;
}

int proto_format_end(char *buf, size_t cap, const struct digest_value *digest,
		     bool has_count, uint64_t count)
{
	char text[DIGEST_TEXT_MAX];
	size_t o = 0;

	if (proto_append(buf, cap, &o, "END") < 0)
		return -ENOSPC;
	if (digest) {
		if (digest_format(digest, text, sizeof(text)) < 0)
			return -EINVAL;
		if (proto_append(buf, cap, &o, " digest=%s", text) < 0)
			return -ENOSPC;
	}
	if (has_count && proto_append(buf, cap, &o, " count=%" PRIu64, count) < 0)
		return -ENOSPC;
	if (proto_append(buf, cap, &o, "\n") < 0)
		return -ENOSPC;
	return (int)o;
}

/* "<word> <code> <code text>[: detail]\n", the detail sanitised and cut to
 * fit one line and the buffer. */
static int proto_format_coded(char *buf, size_t cap, const char *word, int code,
			      const char *detail)
{
	/* What the parsers accept: a 4xx or 5xx code. */
	if (code < 400 || code > 599)
		code = PROTO_ERR_INTERNAL;
	if (cap == 0)
		return -ENOSPC;

	/* Longest line we may produce, LF included, NUL excluded. */
	size_t max = cap - 1 < PROTO_MAX_LINE ? cap - 1 : PROTO_MAX_LINE;
	const char *text = proto_code_text(code);
	int n = snprintf(buf, cap, "%s %d %s", word, code, text);
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

int proto_format_abort(char *buf, size_t cap, int code, const char *detail)
{
	if (code != 0)
		return proto_format_coded(buf, cap, "ABORT", code, detail);
	if (cap < sizeof("ABORT\n"))
		return -ENOSPC;
	memcpy(buf, "ABORT\n", sizeof("ABORT\n"));
	return (int)strlen(buf);
}

int proto_format_error(char *buf, size_t cap, int code, const char *detail)
{
	return proto_format_coded(buf, cap, "ERR", code, detail);
}

/* ---- replies ---- */

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
		size_t clen = strnlen(c, 3);
		int code = proto_parse_code(c, clen);
		if (code > 0 && (c[3] == '\0' || c[3] == ' ')) {
			st->ok = false;
			st->code = code;
			st->text = c[3] ? c + 4 : c + 3;
			return 0;
		}
	}
	st->ok = false;
	st->code = 0;
	st->text = "";
	return -EPROTO;
}

bool proto_is_continue(const char *line, size_t len)
{
	/* Tokens after it are a newer server's; ignore them. */
	return proto_starts_with_word(line, len, "CONTINUE");
}

/* ---- entries and attributes ---- */

static bool proto_type_is_valid(char t)
{
	return t == 'f' || t == 'd' || t == 'l' || t == 'o';
}

int proto_format_attrs(char *buf, size_t cap, const struct proto_entry *e)
{
	size_t o = 0;
	/* The wire has no sign: a time before the epoch is sent as 0. */
	int64_t sec = e->mtime_sec < 0 ? 0 : e->mtime_sec;
	uint32_t nsec = e->mtime_sec < 0 || e->mtime_nsec > 999999999 ? 0 : e->mtime_nsec;

	if (!proto_type_is_valid(e->type))
		return -EINVAL;
	if (proto_append(buf, cap, &o, "type=%c size=%" PRIu64 " mtime=%" PRId64 ".%09" PRIu32
			 " mode=%04" PRIo32, e->type, e->size, sec, nsec,
			 e->mode & 07777) < 0)
		return -ENOSPC;
	return (int)o;
}

/* Finds the required token name in [cursor, end) and hands its value to
 * the caller; -EPROTO when absent or bare. */
static int proto_attr(const char *cursor, const char *end, const char *name,
		      const char **value, size_t *len)
{
	struct proto_token t;

	if (!proto_find_token(cursor, end, name, &t) || !t.value)
		return -EPROTO;
	*value = t.value;
	*len = t.value_len;
	return 0;
}

static int proto_parse_attrs_n(const char *text, const char *end, struct proto_entry *e)
{
	const char *v;
	size_t n;

	if (proto_attr(text, end, "type", &v, &n) < 0 || n != 1 || !proto_type_is_valid(v[0]))
		return -EPROTO;
	e->type = v[0];
	if (proto_attr(text, end, "size", &v, &n) < 0 || parse_u64_n(v, n, &e->size) < 0)
		return -EPROTO;
	if (proto_attr(text, end, "mtime", &v, &n) < 0 ||
	    proto_parse_mtime(v, n, &e->mtime_sec, &e->mtime_nsec) < 0)
		return -EPROTO;
	if (proto_attr(text, end, "mode", &v, &n) < 0 || proto_parse_mode(v, n, &e->mode) < 0)
		return -EPROTO;
	return 0;
}

int proto_parse_attrs(const char *text, struct proto_entry *e)
{
	return proto_parse_attrs_n(text, text + strlen(text), e);
}

/* A directory entry's name is one component: never empty, ".", ".." or
 * holding a "/", whatever a peer sends. */
static bool proto_name_is_component(const char *name, size_t len)
{
	return len > 0 && !memchr(name, '/', len) && !proto_token_is(name, len, ".") &&
	       !proto_token_is(name, len, "..");
}

int proto_format_entry(char *buf, size_t cap, const struct proto_entry *e)
{
	char attrs[128], name[PROTO_MAX_LINE];
	size_t o = 0;

	if (!proto_name_is_component(e->name, e->name_len))
		return -EINVAL;
	int r = proto_format_attrs(attrs, sizeof(attrs), e);
	if (r < 0)
		return r;
	r = proto_encode_path(e->name, e->name_len, name, sizeof(name));
	if (r < 0)
		return r;
	/* "ENTRY " + name + " " + attrs + LF must be one line. */
	if (6 + (size_t)r + 1 + strlen(attrs) + 1 > PROTO_MAX_LINE)
		return -ENAMETOOLONG;
	if (proto_append(buf, cap, &o, "ENTRY %s %s\n", name, attrs) < 0)
		return -ENOSPC;
	return (int)o;
}

int proto_parse_entry(const char *line, size_t len, struct proto_entry *e)
{
	const char *cursor, *end = line + len;
	const char *tok;
	size_t tok_len;

	memset(e, 0, sizeof(*e));
	if (len > PROTO_MAX_TEXT || !proto_starts_with_word(line, len, "ENTRY"))
		return -EPROTO;
	cursor = line + strlen("ENTRY");
	if (!proto_next_token(&cursor, end, &tok, &tok_len))
		return -EPROTO;
	int n = proto_decode_path(tok, tok_len, e->name, sizeof(e->name));
	if (n < 0 || !proto_name_is_component(e->name, (size_t)n))
		return -EPROTO;
	e->name_len = (size_t)n;
	if (proto_parse_attrs_n(cursor, end, e) < 0) {
		memset(e, 0, sizeof(*e));
		return -EPROTO;
	}
	return 0;
}

/* ---- logins ---- */

static const char proto_b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of a base64 character, -1 for any other byte. */
static int proto_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes (or, with out NULL, only checks) canonical padded base64. */
static int proto_b64_run(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t o = 0;

	if (len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		size_t pads = 0;
		int v[4];

		for (size_t j = 0; j < 4; j++) {
			char c = in[i + j];

			if (c == '=' && last && j >= 2) {
				v[j] = 0;
				pads++;
				continue;
			}
			/* A pad is only ever followed by another pad. */
			if (pads)
				return -EINVAL;
			v[j] = proto_b64_value(c);
			if (v[j] < 0)
				return -EINVAL;
		}
		/* Canonical: the bits the pads leave over are zero. */
		if ((pads == 1 && (v[2] & 0x3)) || (pads == 2 && (v[1] & 0xf)))
			return -EINVAL;
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		unsigned char bytes[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8),
					   (unsigned char)w };
		size_t n = 3 - pads;

		if (out) {
			if (cap - o < n)
				return -ENOSPC;
			memcpy(out + o, bytes, n);
		}
		o += n;
	}
	return o > INT32_MAX ? -EINVAL : (int)o;
}

bool proto_base64_valid(const char *s, size_t len)
{
	return proto_b64_run(s, len, NULL, 0) >= 0;
}

int proto_base64_decode(const char *in, size_t len, void *out, size_t cap)
{
	return proto_b64_run(in, len, out, cap);
}

int proto_base64_encode(const void *in, size_t len, char *out, size_t cap)
{
	const unsigned char *p = in;
	size_t o = 0;

	if (len > (size_t)INT32_MAX / 4 * 3 || cap <= PROTO_BASE64_LEN(len))
		return -ENOSPC;
	for (size_t i = 0; i < len; i += 3) {
		size_t n = len - i < 3 ? len - i : 3;
		uint32_t w = (uint32_t)p[i] << 16 | (n > 1 ? (uint32_t)p[i + 1] << 8 : 0) |
			     (n > 2 ? p[i + 2] : 0);

		out[o++] = proto_b64_alphabet[w >> 18 & 63];
		out[o++] = proto_b64_alphabet[w >> 12 & 63];
		out[o++] = n > 1 ? proto_b64_alphabet[w >> 6 & 63] : '=';
		out[o++] = n > 2 ? proto_b64_alphabet[w & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

/* RFC 4422's mechanism names: upper-case letters, digits, '-' and '_'. */
static bool proto_mech_valid(const char *s, size_t len)
{
	if (len == 0 || len > PROTO_MAX_MECH)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(s[i] >= 'A' && s[i] <= 'Z') && !proto_is_digit(s[i]) &&
		    s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

bool proto_is_auth(const char *line, size_t len)
{
	return proto_starts_with_word(line, len, "AUTH");
}

int proto_parse_auth(const char *line, size_t len, struct proto_auth *a,
		     const char **why)
{
	const char *cursor = line, *end = line + len, *tok;
	size_t tok_len;

	memset(a, 0, sizeof(*a));
	*why = NULL;
	if (proto_check_line(line, len, why) < 0)
		return PROTO_ERR_BAD_REQUEST;
	if (!proto_is_auth(line, len)) {
		*why = "not an AUTH line";
		return PROTO_ERR_BAD_REQUEST;
	}
	(void)proto_next_token(&cursor, end, &tok, &tok_len);
	if (!proto_next_token(&cursor, end, &tok, &tok_len)) {
		*why = "missing mechanism";
		return PROTO_ERR_BAD_ARGUMENT;
	}
	if (!proto_mech_valid(tok, tok_len)) {
		*why = "bad mechanism name";
		return PROTO_ERR_BAD_ARGUMENT;
	}
	memcpy(a->mech, tok, tok_len);
	a->mech[tok_len] = '\0';
	if (!proto_next_token(&cursor, end, &tok, &tok_len)) {
		*why = "missing initial response";
		return PROTO_ERR_BAD_ARGUMENT;
	}
	if (!proto_base64_valid(tok, tok_len)) {
		*why = "initial response is not base64";
		return PROTO_ERR_BAD_ARGUMENT;
	}
	a->data = tok;
	a->data_len = tok_len;
	if (proto_next_token(&cursor, end, &tok, &tok_len)) {
		*why = "unexpected token after the initial response";
		return PROTO_ERR_BAD_ARGUMENT;
	}
	return 0;
}

int proto_format_auth(char *buf, size_t cap, const char *mech, const char *b64)
{
	size_t o = 0;

	if (!mech || !b64 || !proto_mech_valid(mech, strlen(mech)) || !b64[0] ||
	    !proto_base64_valid(b64, strlen(b64)))
		return -EINVAL;
	if (proto_append(buf, cap, &o, "AUTH %s %s\n", mech, b64) < 0)
		return -ENOSPC;
	return (int)o;
}

int proto_format_sasl(char *buf, size_t cap, const char *b64)
{
	size_t o = 0;

	if (!b64 || !proto_base64_valid(b64, strlen(b64)))
		return -EINVAL;
	if (proto_append(buf, cap, &o, b64[0] ? "+ %s\n" : "+%s\n", b64) < 0)
		return -ENOSPC;
	return (int)o;
}

int proto_parse_sasl(const char *line, size_t len, const char **b64, size_t *b64_len)
{
	*b64 = NULL;
	*b64_len = 0;
	if (len == 1 && line[0] == '*')
		return -ECANCELED;
	if (len == 1 && line[0] == '+') {
		*b64 = line + 1;
		return 0;
	}
	if (len < 3 || line[0] != '+' || line[1] != ' ' || len > PROTO_MAX_TEXT ||
	    !proto_base64_valid(line + 2, len - 2))
		return -EPROTO;
	*b64 = line + 2;
	*b64_len = len - 2;
	return 0;
}
