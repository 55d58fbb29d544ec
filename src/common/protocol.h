/* protocol: tcpfile protocol v1 lines, parsed from and formatted to bytes.
 * No I/O here: callers hand in one line and get a struct, or the reverse. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define PROTO_NAME        "TCPFILE"
#define PROTO_VERSION     1
/* Longest line including its LF. */
#define PROTO_MAX_LINE    8192
/* Longest decoded path (share + "/" + relative path), like PATH_MAX. */
#define PROTO_MAX_PATH    4096

/* Status codes: 4xx temporary (retry later), 5xx permanent. */
enum proto_code {
	PROTO_ERR_SHUTTING_DOWN = 421,  /* server stopping or cannot serve */
	PROTO_ERR_TIMEOUT       = 426,  /* idle or body timeout */
	PROTO_ERR_INTERNAL      = 451,  /* local error while processing */
	PROTO_ERR_NO_SPACE      = 452,  /* insufficient storage */
	PROTO_ERR_BAD_REQUEST   = 500,  /* unknown verb, bad syntax, line too long */
	PROTO_ERR_BAD_ARGUMENT  = 501,  /* bad path, option or number */
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

enum proto_verb {
	PROTO_PUT,
	PROTO_GET,
	PROTO_STAT,
	PROTO_LIST,
	PROTO_DEL,
	PROTO_QUIT,
};

struct proto_request {
	enum proto_verb verb;
	/* Decoded path, NUL-terminated; never contains NUL.  Empty for QUIT. */
	char path[PROTO_MAX_PATH + 1];
	size_t path_len;
	/* PUT */
	uint64_t size;
	bool has_digest;
	struct digest_value digest;     /* digest=ALG:HEX: verify before commit */
	bool has_mode;
	uint32_t mode;                  /* mode=0644 (octal, permission bits only) */
	bool has_mtime;
	int64_t mtime_sec;              /* mtime=SEC[.NSEC] */
	uint32_t mtime_nsec;
	int overwrite;                  /* overwrite=0|1; -1 when absent */
	bool pipelined;                 /* pipelined=1: no go-ahead answer */
	/* GET, STAT, PUT: alg=xxh3-128|sha256 */
	enum digest_alg alg;
	/* GET offset=N (PUT offset= is reserved for resume and refused) */
	uint64_t offset;
};

/* Parses one request line (terminator already stripped).  Returns 0, or a
 * proto_code (PROTO_ERR_BAD_REQUEST / PROTO_ERR_BAD_ARGUMENT) with *why set
 * to a static explanation. */
int proto_parse_request(const char *line, size_t len,
			struct proto_request *req, const char **why);

/* For a line proto_parse_request() refused: does a body follow it?  A
 * pipelined PUT sends its body without waiting, so the caller must skip it
 * to find the next request.  Returns 1 with *size set (a PUT with a
 * "pipelined=1" token and a readable size), 0 (no body follows), or -EPROTO
 * (a pipelined PUT whose size cannot be read: framing is lost, close). */
int proto_refused_body(const char *line, size_t len, uint64_t *size);

/* Percent-encoding of path tokens: every byte outside 0x21..0x7E and '%'
 * becomes %XX (upper-case hex).  Returns the encoded length (excluding the
 * NUL written) or -ENAMETOOLONG if it does not fit in cap. */
int proto_encode_path(const char *in, size_t len, char *out, size_t cap);
/* Decodes; rejects malformed escapes and %00.  Returns the decoded length
 * or -EINVAL / -ENAMETOOLONG. */
int proto_decode_path(const char *in, size_t len, char *out, size_t cap);

/* A status line as the client sees it. */
struct proto_status {
	bool ok;
	int code;           /* 0 for OK */
	const char *text;   /* rest of the line after "OK " or "ERR NNN " ("" if none) */
};

/* Parses "OK[ rest]" or "ERR NNN text".  Returns 0 or -EPROTO. */
int proto_parse_status(const char *line, struct proto_status *st);

/* Greeting: "TCPFILE 1 <nonce>".  Format returns length or -ENOSPC;
 * parse returns 0, -EPROTO (not a tcpfile server) or -EPROTONOSUPPORT. */
int proto_format_greeting(char *buf, size_t cap, const char *nonce);
int proto_parse_greeting(const char *line, int *version, const char **nonce);

/* "ERR <code> <text>[: detail]\n", detail sanitised to printable ASCII and
 * truncated so the line fits PROTO_MAX_LINE.  Returns the length. */
int proto_format_error(char *buf, size_t cap, int code, const char *detail);

/* Octal permission bits (PUT's mode=, STAT's answer) from len bytes that
 * need not be NUL-terminated.  Returns 0 and sets *out; -EINVAL if len is
 * 0 or a byte is no octal digit; -ERANGE above 07777. */
int proto_parse_mode(const char *s, size_t len, uint32_t *out);

/* Splits the next space-separated token off *cursor (within end).  Returns
 * true and sets *tok and *tok_len, false when none is left. */
bool proto_next_token(const char **cursor, const char *end,
		      const char **tok, size_t *tok_len);
