/* tls: OpenSSL contexts for the daemon and the client, and the TLS side of
 * struct conn (handshake with a deadline, records, sendfile with or
 * without kernel TLS, tls-exporter channel binding). */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

#define TLS_ALPN          "tcpfile/2"
#define TLS_EXPORTER_LEN  32    /* RFC 9266 tls-exporter */
#define TLS_PIN_LEN       32    /* SHA-256 of the certificate's DER */
#define TLS_ERROR_MAX     256

/* The daemon's context: certificate chain and key from PEM files (they must
 * match), TLS 1.3 or also 1.2 (min_version is TLS1_3_VERSION or
 * TLS1_2_VERSION), ALPN tcpfile/2 required (a client hello without ALPN,
 * or without tcpfile/2 in it, ends the handshake with a fatal alert),
 * stateless session tickets (so that every worker forked after this
 * resumes every session: build it in the master before forking), and
 * SSL_OP_ENABLE_KTLS.  Returns 0 or -errno (-EINVAL for a bad file) with
 * why in err. */
int tls_server_ctx_new(const char *cert, const char *key, int min_version,
		       SSL_CTX **out, char *err, size_t errlen);

/* Builds a new server context from the paths; on success frees *ctx (open
 * connections hold their own reference) and stores the new one, on failure
 * leaves *ctx serving and returns -errno with why in err. */
int tls_server_ctx_reload(SSL_CTX **ctx, const char *cert, const char *key,
			  int min_version, char *err, size_t errlen);

/* Drops a context from tls_*_ctx_new (no-op on NULL). */
void tls_ctx_free(SSL_CTX *ctx);

/* The client's context: peers verified against cafile (PEM) or, when it is
 * NULL, the system's CA store; TLS 1.2 or 1.3.  There is no way to turn
 * verification off: see tls_conn_connect for pinning.  Returns 0 or
 * -errno with why in err. */
int tls_client_ctx_new(const char *cafile, SSL_CTX **out, char *err, size_t errlen);
/* The same without any CA: only for connections with a pin, which decides
 * alone (reading the system's store costs some 15 ms per process). */
int tls_client_ctx_new_pinned(SSL_CTX **out, char *err, size_t errlen);

/* "sha256:" followed by 64 hex digits, optionally in colon-separated
 * pairs (as `openssl x509 -fingerprint -sha256` prints them).
 * Returns 0 or -EINVAL. */
int tls_parse_pin(const char *text, unsigned char pin[TLS_PIN_LEN]);

/* SHA-256 of the DER form of the first certificate in a PEM file, the pin
 * for --pin.  Returns 0 or -errno. */
int tls_cert_pin(const char *pem_path, unsigned char pin[TLS_PIN_LEN]);

/* Server handshake on the connected socket fd, within timeout_ms (the
 * socket stays blocking afterwards, with whatever SO_RCVTIMEO/SO_SNDTIMEO
 * it had).  On success fills *c with the TLS operations; c->ops->close
 * closes fd.  Takes ownership of fd: closed on failure.  Returns 0,
 * -ETIMEDOUT, -EPROTO (handshake refused: why in err) or -errno.
 * Like sendfile_full, writes to a socket whose peer has gone raise
 * SIGPIPE: a process using these connections must ignore SIGPIPE. */
/* Makes an established TLS connection's socket non-blocking for good: a
 * read returns -EAGAIN until a whole record is in, rather than waiting
 * inside OpenSSL for the rest of one a peer trickles byte by byte, so the
 * caller can wait in ppoll() under its own deadlines; a write still waits
 * for room, as long as SO_SNDTIMEO.  The server's sessions use it.
 * Returns 0 or -errno. */
int tls_conn_nonblocking(struct conn *c);

int tls_conn_accept(struct conn *c, int fd, SSL_CTX *ctx, int timeout_ms,
		    char *err, size_t errlen);

struct tls_client_opts {
	/* Server name: sent as SNI and, without a pin, checked against the
	 * certificate (a DNS name or an IP address literal). */
	const char *host;
	/* TLS_PIN_LEN bytes: accept exactly the certificate with this SHA-256
	 * (of its DER form) instead of a CA-verified one; NULL for none. */
	const unsigned char *pin;
	/* A session from tls_conn_session() to resume, or NULL. */
	SSL_SESSION *session;
};

/* Client handshake, otherwise as tls_conn_accept.  Fails unless the
 * certificate verifies (chain and host name, or pin) and the server
 * selected ALPN tcpfile/2. */
int tls_conn_connect(struct conn *c, int fd, SSL_CTX *ctx, const struct tls_client_opts *o,
		     int timeout_ms, char *err, size_t errlen);

/* True when c is a TLS connection made by this module. */
bool tls_conn_is_tls(const struct conn *c);

/* The RFC 9266 tls-exporter channel binding: 32 bytes exported with the
 * label "EXPORTER-Channel-Binding" and no context.  Refused (-EPROTO) on a
 * TLS 1.2 connection without the extended master secret. */
int tls_conn_exporter(struct conn *c, unsigned char out[TLS_EXPORTER_LEN]);

/* True when the kernel encrypts what this connection sends (kTLS), so
 * sendfile is zero-copy; otherwise it reads and encrypts in user space. */
bool tls_conn_ktls_send(const struct conn *c);

/* True when the handshake resumed a session. */
bool tls_conn_resumed(const struct conn *c);

/* The session to resume later (a new reference, for SSL_SESSION_free), or
 * NULL.  TLS 1.3 tickets arrive after the handshake: ask after a read. */
SSL_SESSION *tls_conn_session(const struct conn *c);

/* The negotiated protocol version, e.g. "TLSv1.3". */
const char *tls_conn_version(const struct conn *c);

/* Whether downloads can use kernel TLS at all here: OpenSSL built with
 * kTLS and the kernel's tls module loaded (it may also load on demand at
 * the first connection, which tls_conn_ktls_send then shows).  *why says
 * what is missing, or what is there. */
bool tls_ktls_possible(const char **why);
