/* tlsutil: what the TLS and login integration tests share: certificates
 * made with openssl(1), a users file made with `tcpfiled passwd`, a
 * protocol connection over plain TCP or raw OpenSSL (no project code on
 * the client side), and a SCRAM client driven by GNU SASL directly. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* Makes dir/NAME.crt and dir/NAME.key: a self-signed P-256 certificate for
 * localhost and 127.0.0.1.  Fails the test when openssl fails. */
void tls_make_cert(const char *dir, const char *name);
/* The same with subject CN=cn and subjectAltName san (e.g.
 * "DNS:other.example"). */
void tls_make_cert_for(const char *dir, const char *name, const char *cn, const char *san);
/* SHA-256 of the certificate's DER form, lower-case hex (65 bytes). */
void tls_file_fingerprint(const char *pem, char hex[65]);

/* Adds USER with PASSWORD to users_file through `tcpfiled passwd -f` (at
 * the minimum iteration count, for speed); fails the test on error. */
void users_add(const char *users_file, const char *user, const char *password);

/* A protocol connection: TLS when ssl is set. */
struct tconn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char buf[HARNESS_LINE_CAP * 2];
	size_t len;
};

/* Connects to 127.0.0.1:port; with cafile, does a TLS handshake offering
 * ALPN alpn (NULL: none) and verifying the certificate against cafile.
 * Returns 0 or -errno (-EPROTO: the handshake failed). */
int tconn_open(struct tconn *c, uint16_t port, const char *cafile, const char *alpn);
/* tconn_open, then the hello: HARNESS_HELLO, the greeting into greeting
 * (may be NULL) and the OK; fails the test otherwise. */
void tconn_hello(struct tconn *c, uint16_t port, const char *cafile, char *greeting,
		 size_t cap);
void tconn_close(struct tconn *c);
void tconn_send(struct tconn *c, const void *p, size_t n);
void tconn_printf(struct tconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line without its LF; fails the test on EOF or error. */
void tconn_line(struct tconn *c, char *out, size_t cap);
/* Like tconn_line, but returns false on EOF instead of failing. */
bool tconn_try_line(struct tconn *c, char *out, size_t cap);
void tconn_read(struct tconn *c, void *p, size_t n);
/* The peer certificate's SHA-256 (DER), hex. */
void tconn_peer_fingerprint(struct tconn *c, char hex[65]);

/* PUT remote with the body p[0..n) (one DATA frame per MiB) and its
 * digest, then the answer into final. */
void tconn_put(struct tconn *c, const char *remote, const void *p, size_t n, char *final,
	       size_t cap);
/* GET remote: the OK line into status; on OK the body (at most cap bytes)
 * into buf with its length in *n; fails the test unless END's digest
 * matches.  Returns true on OK. */
bool tconn_get(struct tconn *c, const char *remote, void *buf, size_t cap, size_t *n,
	       char *status, size_t scap);

/* A SCRAM login over c: mech is sent as is; the exporter is taken from
 * the TLS connection when mech ends in -PLUS (cb_override, 32 bytes, NULL:
 * the real one).  The final line goes to final.  When sent is not NULL
 * the client-final line sent ("+ ...") is copied there (for replays);
 * replay, when not NULL, is sent instead of the computed one.
 * Returns true when the server said OK and its server-final verified. */
bool tconn_login(struct tconn *c, const char *mech, const char *user, const char *password,
		 char *final, size_t cap, char *sent, size_t sent_cap, const char *replay);
