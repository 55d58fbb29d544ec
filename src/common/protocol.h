/* protocol: the tcpfile protocol 2 codec: hello, request, reply and body
 * frame lines parsed from and formatted to bytes.  No I/O here: callers
 * hand in one line (terminator stripped) and get a struct, or the reverse.
 * tcpfile-protocol(7) is the normative grammar. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define PROTO_NAME        "TCPFILE"
#define PROTO_VERSION     2
/* Longest line including its LF. */
#define PROTO_MAX_LINE    8192
/* Longest decoded path (share + "/" + relative path), like PATH_MAX. */
#define PROTO_MAX_PATH    4096
/* Largest DATA frame; frames carry 1..PROTO_MAX_CHUNK bytes. */
#define PROTO_MAX_CHUNK   (16u * 1024 * 1024)
/* A token's NAME: 1..PROTO_MAX_TOKEN_NAME bytes of [a-z0-9-], letter first. */
#define PROTO_MAX_TOKEN_NAME 32
/* Tokens kept from a greeting or hello; further ones are ignored. */
#define PROTO_MAX_CAPS    32
/* Room for a formatted frame header such as "DATA 16777216\n". */
#define PROTO_FRAME_HDR_MAX 32

/* Status codes: 4xx temporary (retry later), 5xx permanent. */
enum proto_code {
	PROTO_ERR_SHUTTING_DOWN = 421,  /* server stopping, busy, cannot serve */
	PROTO_ERR_TIMEOUT       = 426,  /* idle, handshake or body timeout */
	PROTO_ERR_ABORTED       = 450,  /* the client abandoned a body */
	PROTO_ERR_INTERNAL      = 451,  /* local error while processing */
	PROTO_ERR_NO_SPACE      = 452,  /* insufficient storage */
	PROTO_ERR_BAD_REQUEST   = 500,  /* not a request of this protocol: close */
	PROTO_ERR_BAD_ARGUMENT  = 501,  /* bad path, token or number */
	PROTO_ERR_VERSION       = 505,  /* HELLO names a version we do not speak */
	PROTO_ERR_LOGIN_NEEDED  = 530,  /* the share needs a login (auth capability) */
	PROTO_ERR_AUTH_FAILED   = 535,  /* AUTH failed, whatever the reason */
	PROTO_ERR_ENCRYPTION    = 538,  /* AUTH needs TLS or another mechanism */
	PROTO_ERR_NOT_FOUND     = 550,
	PROTO_ERR_TOO_LARGE     = 552,  /* over the share's max_file_size */
	PROTO_ERR_FORBIDDEN     = 553,  /* read-only share, disallowed path */
	PROTO_ERR_EXISTS        = 554,  /* overwrite disabled */
	PROTO_ERR_DIGEST        = 555,  /* body does not match digest= */
	PROTO_ERR_WRONG_TYPE    = 556,  /* directory where a file is needed, etc. */
};

/* Short fixed text for a code ("not found"), "error" if unknown. */
const char *proto_code_text(int code);
bool proto_code_is_temporary(int code);

/* ---- tokens: NAME or NAME=VALUE ---- */

struct proto_token {
	const char *name;       /* points into the parsed line */
	size_t name_len;
	const char *value;      /* NULL for a bare NAME */
	size_t value_len;
};

/* Splits one token (len bytes, no spaces) into name and value and checks
 * the NAME syntax.  Returns 0 or -EINVAL. */
int proto_token_split(const char *tok, size_t len, struct proto_token *out);

/* Splits the next space-separated token off *cursor (within end).  Returns
 * true and sets *tok and *tok_len, false when none is left. */
bool proto_next_token(const char **cursor, const char *end,
		      const char **tok, size_t *tok_len);

/* Finds NAME's value among the space-separated tokens of text (an OK
 * reply's text, an END or ENTRY line's tail): returns true with *value and
 * *len set (value NULL, len 0 for a bare NAME), false when absent.  Tokens
 * that are malformed or unknown are skipped: replies are read leniently. */
bool proto_reply_get(const char *text, const char *name, const char **value,
		     size_t *len);

/* ---- connection start ---- */

/* A greeting ("TCPFILE <versions> <token>...") or a hello ("HELLO
 * <version> <token>...") as parsed: pointers into the line. */
struct proto_hello {
	unsigned version;            /* hello: the one picked; greeting: the
					highest version listed that we speak,
					0 if none */
	const char *agent;           /* server= / client= value, NULL if absent */
	size_t agent_len;
	struct proto_token caps[PROTO_MAX_CAPS];   /* the other tokens */
	size_t n_caps;
};

/* "TCPFILE 2 server=<agent>[ <caps>]\n"; caps is a space-separated token
 * list or NULL (agent NULL: no server= token).  Returns the length, -ENOSPC,
 * or -EINVAL when agent or a cap is not a valid token (value). */
int proto_format_greeting(char *buf, size_t cap, const char *agent, const char *caps);
/* Returns 0, -EPROTO (not a tcpfile server, or a malformed greeting) or
 * -EPROTONOSUPPORT (a tcpfile server with no version we speak; h->version
 * is then 0 and the caller may show the line). */
int proto_parse_greeting(const char *line, size_t len, struct proto_hello *h);

/* "HELLO 2 client=<agent>[ <caps>]\n".  Returns the length, -ENOSPC or
 * -EINVAL, as proto_format_greeting(). */
int proto_format_hello(char *buf, size_t cap, const char *agent, const char *caps);
/* Parses the client's first line.  Returns 0, PROTO_ERR_BAD_REQUEST (not a
 * HELLO, or malformed) or PROTO_ERR_VERSION, with *why set to a static
 * explanation.  Unknown tokens are kept in caps, not refused. */
int proto_parse_hello(const char *line, size_t len, struct proto_hello *h,
		      const char **why);

/* True when h lists capability name (bare or with a value); *value may be
 * NULL. */
bool proto_hello_has_cap(const struct proto_hello *h, const char *name,
			 const char **value, size_t *value_len);

/* ---- requests ---- */

enum proto_verb {
	PROTO_PUT,
	PROTO_GET,
	PROTO_STAT,
	PROTO_LIST,
	PROTO_DEL,
	PROTO_NOOP,
	PROTO_QUIT,
};

struct proto_request {
	enum proto_verb verb;
	/* Decoded path, NUL-terminated; never contains NUL.  Empty for NOOP
	 * and QUIT. */
	char path[PROTO_MAX_PATH + 1];
	size_t path_len;
	/* PUT */
	bool has_size;
	uint64_t size;                  /* size=N */
	bool has_mode;
	uint32_t mode;                  /* mode=0644 (octal, permission bits only) */
	bool has_mtime;
	int64_t mtime_sec;              /* mtime=SEC[.NSEC] */
	uint32_t mtime_nsec;
	int overwrite;                  /* overwrite=0|1; -1 when absent */
	bool want_continue;             /* continue=1 */
	/* PUT, GET: alg=xxh3-128|sha256 (default xxh3-128) */
	enum digest_alg alg;
	bool has_alg;
};

/* Parses one request line.  Returns 0; PROTO_ERR_BAD_REQUEST when the line
 * is no request of this protocol (unknown verb, lower case, a frame line,
 * bad syntax: the caller closes the connection); or PROTO_ERR_BAD_ARGUMENT
 * for a known verb with a bad path, token or value -- then req->verb is set
 * (a refused PUT's body still follows and must be skipped).  *why is set to
 * a static explanation on error. */
int proto_parse_request(const char *line, size_t len,
			struct proto_request *req, const char **why);

/* ---- body frames ---- */

enum proto_frame_type {
	PROTO_FRAME_DATA,    /* "DATA <n>" + n raw bytes */
	PROTO_FRAME_END,     /* "END[ token...]" */
	PROTO_FRAME_ABORT,   /* "ABORT[ <code>[ <text>]]" */
};

struct proto_frame {
	enum proto_frame_type type;
	uint64_t len;                   /* DATA: 1..PROTO_MAX_CHUNK */
	/* END */
	bool has_digest;
	struct digest_value digest;     /* digest=ALG:HEX */
	bool has_count;
	uint64_t count;                 /* count=N (LIST) */
	bool unknown_token;             /* END carried a token other than these,
					   or one of them twice (the first counts) */
	/* ABORT */
	int code;                       /* 0 when absent */
	const char *text;               /* "" when absent; points into the line and
					   runs to its NUL (linebuf's lines have one) */
};

/* Parses a frame line.  Returns 0, or -EPROTO (a framing error: not a
 * frame, DATA of 0 or more than PROTO_MAX_CHUNK bytes, bad digest=/count=
 * syntax, an END token that is malformed). */
int proto_parse_frame(const char *line, size_t len, struct proto_frame *f);

/* "DATA <n>\n" (n 1..PROTO_MAX_CHUNK).  Returns the length or -EINVAL /
 * -ENOSPC. */
int proto_format_data(char *buf, size_t cap, uint64_t n);
/* "END[ digest=ALG:HEX][ count=N]\n" (digest may be NULL; count written
 * when has_count).  Returns the length or -ENOSPC. */
int proto_format_end(char *buf, size_t cap, const struct digest_value *digest,
		     bool has_count, uint64_t count);
/* "ABORT <code> <code text>[: detail]\n" (code 0: just "ABORT\n"), detail
 * sanitised like proto_format_error().  Returns the length or -ENOSPC. */
int proto_format_abort(char *buf, size_t cap, int code, const char *detail);

/* ---- replies ---- */

/* A status line as the client sees it. */
struct proto_status {
	bool ok;
	int code;           /* 0 for OK */
	const char *text;   /* rest of the line after "OK " or "ERR NNN " ("" if none) */
};

/* Parses "OK[ rest]" or "ERR NNN text".  Returns 0 or -EPROTO.  (The
 * interim "CONTINUE" is no status: see proto_is_continue().) */
int proto_parse_status(const char *line, struct proto_status *st);
bool proto_is_continue(const char *line, size_t len);

/* "ERR <code> <text>[: detail]\n", detail sanitised to printable ASCII and
 * truncated so the line fits PROTO_MAX_LINE.  Returns the length. */
int proto_format_error(char *buf, size_t cap, int code, const char *detail);

/* One LIST entry / STAT answer's attributes. */
struct proto_entry {
	char type;              /* f d l o */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;          /* permission bits, <= 07777 */
	/* ENTRY only: the decoded name, NUL-terminated */
	char name[PROTO_MAX_PATH + 1];
	size_t name_len;
};

/* "ENTRY <encoded name> type=T size=N mtime=S.NNNNNNNNN mode=OOOO\n".
 * Returns the length, or -ENAMETOOLONG (the line would exceed
 * PROTO_MAX_LINE) / -ENOSPC (cap) / -EINVAL (the name is not one path
 * component, or type is not f d l o).  A negative mtime is sent as 0. */
int proto_format_entry(char *buf, size_t cap, const struct proto_entry *e);
/* Parses an ENTRY line; unknown tokens are ignored, type= size= mtime=
 * mode= are required.  Returns 0 or -EPROTO. */
int proto_parse_entry(const char *line, size_t len, struct proto_entry *e);
/* "type=T size=N mtime=S.NNNNNNNNN mode=OOOO" (no LF): STAT's OK text.
 * Returns the length or -ENOSPC. */
int proto_format_attrs(char *buf, size_t cap, const struct proto_entry *e);
/* Parses those tokens out of a reply text (unknown ones ignored).
 * Returns 0 or -EPROTO. */
int proto_parse_attrs(const char *text, struct proto_entry *e);

/* ---- values ---- */

/* Percent-encoding of path tokens: every byte outside 0x21..0x7E and '%'
 * becomes %XX (upper-case hex).  Returns the encoded length (excluding the
 * NUL written) or -ENAMETOOLONG if it does not fit in cap. */
int proto_encode_path(const char *in, size_t len, char *out, size_t cap);
/* Decodes; rejects malformed escapes and %00.  Returns the decoded length
 * or -EINVAL / -ENAMETOOLONG. */
int proto_decode_path(const char *in, size_t len, char *out, size_t cap);

/* Octal permission bits (PUT's mode=, replies' mode=) from len bytes that
 * need not be NUL-terminated.  Returns 0 and sets *out; -EINVAL if len is
 * 0 or a byte is no octal digit; -ERANGE above 07777. */
int proto_parse_mode(const char *s, size_t len, uint32_t *out);
/* SEC[.NSEC] (1-9 fraction digits, SEC <= INT64_MAX).  Returns 0 or
 * -EINVAL / -ERANGE. */
int proto_parse_mtime(const char *s, size_t len, int64_t *sec, uint32_t *nsec);

/* ---- logins: the AUTH verb and its continuation lines (auth capability) ---- */

/* SASL mechanism names (RFC 4422): 1..20 of [A-Z0-9-_]. */
#define PROTO_MAX_MECH    20

struct proto_auth {
	char mech[PROTO_MAX_MECH + 1];
	const char *data;       /* base64 initial response, points into the line */
	size_t data_len;        /* >= 4 */
};

/* True when the line's first word is AUTH (its syntax is not checked):
 * such a line goes to proto_parse_auth, not proto_parse_request. */
bool proto_is_auth(const char *line, size_t len);
/* Parses "AUTH <MECH> <base64>".  Returns 0; PROTO_ERR_BAD_REQUEST when the
 * line is no AUTH line or breaks the line rules; PROTO_ERR_BAD_ARGUMENT for
 * a bad or missing mechanism or response, or an extra token.  *why is set
 * to a static explanation on error. */
int proto_parse_auth(const char *line, size_t len, struct proto_auth *a,
		     const char **why);
/* "AUTH <mech> <b64>\n" (b64: NUL-terminated base64 of the initial
 * response, non-empty).  Returns the length, -EINVAL (bad mechanism name
 * or base64) or -ENOSPC. */
int proto_format_auth(char *buf, size_t cap, const char *mech, const char *b64);

/* A line of the exchange after AUTH, either way: "+ <base64>" (one SASL
 * message; "+" alone for an empty one), or, from the client only, "*"
 * (cancel). */
/* "+ <b64>\n", or "+\n" when b64 is empty.  Returns the length, -EINVAL
 * (not base64) or -ENOSPC. */
int proto_format_sasl(char *buf, size_t cap, const char *b64);
/* Returns 0 with *b64 / *b64_len set (length 0 for "+"), -ECANCELED for
 * "*", or -EPROTO for any other line (or bad base64). */
int proto_parse_sasl(const char *line, size_t len, const char **b64, size_t *b64_len);

/* ---- base64 (RFC 4648, standard alphabet, with padding) ---- */

/* Characters that encoding n bytes takes, without a NUL. */
#define PROTO_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/* True when s[0..len) is canonical padded base64 (a multiple of 4 long,
 * '=' only as 1 or 2 final pads, unused pad bits zero). */
bool proto_base64_valid(const char *s, size_t len);
/* Encodes len bytes into out (NUL-terminated).  Returns the length or
 * -ENOSPC. */
int proto_base64_encode(const void *in, size_t len, char *out, size_t cap);
/* Decodes canonical base64 into out.  Returns the byte count, -EINVAL or
 * -ENOSPC. */
int proto_base64_decode(const char *in, size_t len, void *out, size_t cap);
