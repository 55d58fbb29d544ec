/* client: tcpfile's connection, replies, ls/stat/rm, errors and exit status. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "netio.h"
#include "progress.h"
#include "protocol.h"
#include "tls.h"

#define CLIENT_DEFAULT_HOST "localhost"
#define CLIENT_DEFAULT_PORT 5005
#define CLIENT_DEFAULT_TLS_PORT 5006
#define CLIENT_SERVER_ENV "TCPFILE_SERVER"
#define CLIENT_USER_ENV "TCPFILE_USER"
#define CLIENT_PASSWORD_ENV "TCPFILE_PASSWORD"
/* connect() and the greeting must both finish within this. */
#define CLIENT_CONNECT_TIMEOUT_MS 10000
/* Longest wait for any byte to move once connected. */
#define CLIENT_IO_TIMEOUT_MS 120000
/* File bytes per read()/write(), per digest update and per DATA frame
 * sent: 1 MiB took 25 % less time than 256 KiB for a 1 GiB upload on
 * loopback (fewer system calls per byte). */
#define CLIENT_CHUNK ((size_t)1024 * 1024)

/* Exit statuses (sysexits.h values); tcpfile(1) documents them. */
enum client_exit {
	CLIENT_EXIT_OK = 0,
	CLIENT_EXIT_FAILED = 1,        /* a file or operation failed */
	CLIENT_EXIT_USAGE = 64,        /* EX_USAGE */
	CLIENT_EXIT_UNAVAILABLE = 69,  /* EX_UNAVAILABLE: cannot connect */
	CLIENT_EXIT_TEMPFAIL = 75,     /* EX_TEMPFAIL: only 4xx-type failures */
	CLIENT_EXIT_PROTOCOL = 76,     /* EX_PROTOCOL: bad reply, connection lost,
					  TLS handshake refused */
	CLIENT_EXIT_NOPERM = 77,       /* EX_NOPERM: the login failed */
};

/* What kind of failure an error message reports; decides the exit status. */
enum client_fail {
	CLIENT_FAIL_PERMANENT,    /* 5xx, digest mismatch, local error */
	CLIENT_FAIL_TEMPORARY,    /* 4xx, timeout */
	CLIENT_FAIL_PROTOCOL,     /* unexpected reply, connection lost */
	CLIENT_FAIL_UNAVAILABLE,  /* cannot connect */
	CLIENT_FAIL_LOGIN,        /* no password, 535, no safe mechanism, a
				     server that could not prove itself */
	CLIENT_FAIL_KINDS,
};

struct client_server {
	char host[256];
	char port[6];
	char display[272];  /* "host:port" or "[v6]:port", for messages */
	bool tls;           /* tcps:// */
	bool port_given;    /* the spec named the port */
};

/* How to check a TLS server, and who to log in as; none of it owned. */
struct client_security {
	SSL_CTX *tls_ctx;             /* for a tcps:// server */
	const char *cafile;           /* what tls_ctx trusts (NULL: the system's
					 store), for messages */
	const unsigned char *pin;     /* TLS_PIN_LEN bytes, or NULL */
	const char *user;             /* log in as this user, or NULL */
};

struct client {
	struct client_server server;
	enum digest_alg alg;         /* requested with alg= on PUT and GET */
	struct progress progress;
	struct conn conn;            /* conn.fd is -1 when not connected */
	struct linebuf lb;           /* replies, read through conn */
	/* The connection can take no more requests: the server announced it
	 * is closing (421, 426), or it broke.  The error is already reported. */
	bool gone;
	/* The server announced the close (ERR 421 or 426), so losing the
	 * connection afterwards is a temporary failure, not a protocol one. */
	bool closing;
	unsigned failures[CLIENT_FAIL_KINDS];
	struct client_security sec;
	/* The password for sec.user, from credentials_get (owned: wiped and
	 * freed once the login has used it, or by client_finish). */
	char *password;
	/* The greeting's auth= value ("" when it offered none). */
	char auth_offered[PROTO_MAX_LINE / 8];
	bool logged_in;
};

/* "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 address, after
 * an optional "tcp://" (plain) or "tcps://" (TLS) in any case; the port
 * defaults to CLIENT_DEFAULT_PORT, or CLIENT_DEFAULT_TLS_PORT for tcps.
 * Returns 0 or -EINVAL. */
int client_server_parse(const char *spec, struct client_server *srv);

/* progress_enabled: stderr is a terminal and -q was not given. */
void client_init(struct client *c, const struct client_server *srv,
		 enum digest_alg alg, bool progress_enabled);
/* TLS checks and the login for the connections to come: sec is copied
 * (its pointers must outlive c).  With a user, client_connect gets the
 * password (credentials_get) before it connects. */
void client_set_security(struct client *c, const struct client_security *sec);
/* Wipes and frees the password, if the client still holds one. */
void client_forget_password(struct client *c);
/* Closes the connection, if any, and forgets the password. */
void client_finish(struct client *c);

/* Resolves the server, connects to the first address that answers within
 * CLIENT_CONNECT_TIMEOUT_MS, makes the TLS handshake for a tcps:// server
 * (within the same time), sends "HELLO 2 client=tcpfile/VERSION" at once
 * and reads the greeting and the HELLO's answer (unknown tokens and
 * capabilities ignored); with a user, logs in (signin_run) before
 * returning, so no request goes out before the login is done.  Reports
 * failures (69 unavailable; 75 for "ERR 4xx" instead of a greeting, a
 * busy server; 1 for "ERR 5xx"; 76 for a peer that is no tcpfile protocol
 * 2 server, or a TLS handshake refused; 77 for a failed login) and
 * returns 0 or a negative errno.  Leaves the socket blocking, with
 * CLIENT_IO_TIMEOUT_MS send and receive timeouts. */
int client_connect(struct client *c);
void client_disconnect(struct client *c);

/* Prints "tcpfile: <message>" on stderr (erasing any progress bar first)
 * and counts one failure of that kind. */
void client_error(struct client *c, enum client_fail kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Reports an "ERR" reply as "tcpfile: <what>: <code> <text>", counts it as
 * temporary (4xx) or permanent (5xx) and marks the connection gone for the
 * codes after which the server closes (421, 426).  A 530 without a login
 * adds a hint at -u. */
void client_error_status(struct client *c, const char *what,
			 const struct proto_status *st);
/* Notes that the server closes after this status (421, 426): marks the
 * connection closing and gone.  client_error_status() calls it; callers
 * that stay silent about an ERR call it themselves. */
void client_note_status(struct client *c, const struct proto_status *st);
/* Reports a broken connection (err: 0 for EOF, or a negative errno from
 * reading or writing) and marks it gone.  A timeout counts as temporary,
 * anything else as a protocol failure unless the server announced the
 * close. */
void client_error_connection(struct client *c, const char *what, int err);
/* Reports a reply that is no status line or lacks the shape its request
 * calls for, as "tcpfile: <what>: unexpected reply: <text>" (escaped, cut
 * to 80 bytes), and marks the connection gone: we are out of step with
 * the server.  Returns -EPROTO for the caller to pass on. */
int client_error_reply(struct client *c, const char *what, const char *text);

/* Room for client_alg_arg()'s text. */
#define CLIENT_ALG_ARG_MAX 32
/* Writes "alg=<name>" for c's digest into buf and returns it, or returns
 * NULL when c uses the protocol's default (xxh3-128) and PUT and GET need
 * no alg= argument. */
const char *client_alg_arg(const struct client *c, char *buf, size_t cap);

/* Formats "VERB <encoded path>[ <args>]\n" into buf.  args may be NULL.
 * Returns the length, -ENAMETOOLONG when the path is longer than
 * PROTO_MAX_PATH or the line longer than PROTO_MAX_LINE or cap, -EINVAL if
 * the path is empty. */
int client_format_request(char *buf, size_t cap, const char *verb,
			  const char *path, const char *args);

/* Writes len bytes of request(s) through c->conn.  Reports failure as for
 * client_error_connection().  Returns 0 or a negative errno. */
int client_send(struct client *c, const char *what, const char *buf, size_t len);
/* Reads and parses one status line; st->text stays valid until the next
 * read.  A broken connection or a line that is no status is reported
 * (what names the operation) and the connection marked gone.  Returns 0
 * (st->ok tells OK from ERR) or a negative errno. */
int client_read_status(struct client *c, const char *what, struct proto_status *st);

/* Reads one line (a frame, an ENTRY).  A broken connection is reported
 * (what names the operation) and the connection marked gone.  Returns 0
 * with *line (valid until the next read) and *len set, or a negative
 * errno. */
int client_read_line(struct client *c, const char *what, char **line, size_t *len);
/* Reports a line that is not what the operation expects at this point:
 * an "ERR" status as by client_error_status() (a server that closes says
 * ERR 421 or 426 anywhere), anything else as by client_error_reply().  The
 * connection is marked gone either way.  Returns -EPROTO. */
int client_error_line(struct client *c, const char *what, const char *line);

/* The tokens of PUT's final answer, "size=N digest=ALG:HEX" (others
 * ignored).  Returns 0 or -EPROTO. */
int client_parse_put_reply(const char *text, uint64_t *size,
			   struct digest_value *digest);
/* GET's answer: "size=N mtime=SEC[.NSEC] mode=OCTAL" (others ignored). */
struct client_get_reply {
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
};
int client_parse_get_reply(const char *text, struct client_get_reply *out);
/* The HELLO's answer after "OK ": "version=2" among any tokens.  Returns
 * 0 or -EPROTO. */
int client_parse_hello_reply(const char *text);
/* d's text form into buf (DIGEST_TEXT_MAX bytes), or "?" if it cannot be
 * formatted: for messages.  Returns buf. */
char *client_digest_text(const struct digest_value *d, char *buf, size_t cap);

/* Strips leading and trailing '/' from a REMOTE argument in place.
 * Returns the result, or NULL if nothing is left. */
char *client_remote_normalize(char *remote);
/* The last '/'-separated component of path (path itself if it has no
 * '/'); trailing '/' must already be gone. */
const char *client_basename(const char *path);
/* Room for an operation's name in messages: a verb, two paths, an arrow. */
#define CLIENT_WHAT_MAX (2 * PROTO_MAX_PATH + 64)
/* "VERB A" or "VERB A → B" (b may be NULL) into buf, with the paths
 * escaped as by client_escape() and cut to fit.  Returns buf. */
char *client_what(char *buf, size_t cap, const char *verb, const char *a,
		  const char *b);
/* Copies len bytes of in to out as text with the bytes 0x00-0x1F and 0x7F
 * written as \xNN, so names and server texts cannot drive the terminal;
 * cut short to fit cap (> 0).  Returns out. */
char *client_escape(char *out, size_t cap, const char *in, size_t len);

/* The commands that need no file transfer.  Each reports its own errors. */
void client_ls(struct client *c, const char *remote, bool long_format);
void client_stat(struct client *c, const char *remote);
void client_rm(struct client *c, char *const *remotes, size_t n);

/* The exit status for all failures counted so far: 69, 76 or 77 if any
 * such failure occurred (in that order), else 1 if any permanent failure,
 * else 75 if any temporary failure, else 0. */
int client_exit_status(const struct client *c);
