/* tls: OpenSSL contexts for the daemon and the client, and the TLS side of
 * struct conn (handshake with a deadline, records, sendfile with or
 * without kernel TLS, tls-exporter channel binding). */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "monotonic.h"
#include "netio.h"
#include "parse.h"

#define TLS_EXPORTER_LABEL "EXPORTER-Channel-Binding"
#define TLS_SESSION_ID_CTX "tcpfiled"
#define TLS_SENDFILE_BUF   (64 * 1024)
#define TLS_SENDFILE_CHUNK (1 << 30)   /* per SSL_sendfile call */

/* ALPN wire form: one length-prefixed name. */
static const unsigned char tls_alpn_wire[] = "\x09" TLS_ALPN;
#define TLS_ALPN_WIRE_LEN (sizeof(tls_alpn_wire) - 1)

struct tls_conn {
	SSL *ssl;
	unsigned char pin[TLS_PIN_LEN];
	bool has_pin;
	bool pin_ok;            /* the verify callback saw the pinned leaf */
	char *buf;              /* sendfile bounce buffer, allocated on first use */
	/* Set by tls_conn_nonblocking(): reads return -EAGAIN instead of
	 * waiting inside OpenSSL; writes wait here, bounded by SO_SNDTIMEO. */
	bool nonblocking;
};

static const struct conn_ops tls_conn_ops;

__attribute__((format(printf, 3, 4)))
static void tls_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "what: OpenSSL's reason" from the error queue, which it empties. */
static void tls_fail_openssl(char *err, size_t errlen, const char *what)
{
	char reason[160] = "unknown error";
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last)
		ERR_error_string_n(last, reason, sizeof(reason));
	tls_fail(err, errlen, "%s: %s", what, reason);
}

/* Refuses a client hello without ALPN: the select callback only runs
 * when the extension is there. */
static int tls_client_hello(SSL *ssl, int *al, void *arg)
{
	const unsigned char *ext;
	size_t len;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
				       &ext, &len)) {
		*al = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel = NULL;
	unsigned char sellen = 0;

	if (SSL_select_next_proto(&sel, &sellen, tls_alpn_wire, TLS_ALPN_WIRE_LEN,
				  in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	*outlen = sellen;
	return SSL_TLSEXT_ERR_OK;
}

int tls_server_ctx_new(const char *cert, const char *key, int min_version,
		       SSL_CTX **out, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (min_version != TLS1_3_VERSION && min_version != TLS1_2_VERSION) {
		tls_fail(err, errlen, "unsupported minimum TLS version %#x", min_version);
		return -EINVAL;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		tls_fail_openssl(err, errlen, "SSL_CTX_new");
		return -ENOMEM;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, min_version)) {
		tls_fail_openssl(err, errlen, "minimum TLS version");
		goto err_free;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_fail_openssl(err, errlen, cert);
		goto err_free;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_fail_openssl(err, errlen, key);
		goto err_free;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_fail_openssl(err, errlen, "tls_key does not match tls_certificate");
		goto err_free;
	}
	/* No renegotiation (TLS 1.2), a missing close_notify reads as EOF
	 * (the protocol frames its data, so truncation shows there), kernel
	 * TLS where the kernel has it. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
			    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_ENABLE_KTLS);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CTX,
					   strlen(TLS_SESSION_ID_CTX)) != 1) {
		tls_fail_openssl(err, errlen, "session id context");
		goto err_free;
	}
	SSL_CTX_set_client_hello_cb(ctx, tls_client_hello, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	*out = ctx;
	return 0;

err_free:
	SSL_CTX_free(ctx);
	return -EINVAL;
}

int tls_server_ctx_reload(SSL_CTX **ctx, const char *cert, const char *key,
			  int min_version, char *err, size_t errlen)
{
	SSL_CTX *fresh;
	int r;

	r = tls_server_ctx_new(cert, key, min_version, &fresh, err, errlen);
	if (r < 0)
		return r;
	SSL_CTX_free(*ctx);
	*ctx = fresh;
	return 0;
}

/* load_store false: no CA at all (for pinned servers only). */
static int tls_client_ctx_make(const char *cafile, bool load_store, SSL_CTX **out, char *err,
			       size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		tls_fail_openssl(err, errlen, "SSL_CTX_new");
		return -ENOMEM;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		tls_fail_openssl(err, errlen, "minimum TLS version");
		goto err_free;
	}
	if (load_store && (cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1 :
				   SSL_CTX_set_default_verify_paths(ctx) != 1)) {
		tls_fail_openssl(err, errlen, cafile ? cafile : "system CA store");
		goto err_free;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
			    SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_alpn_protos(ctx, tls_alpn_wire, TLS_ALPN_WIRE_LEN) != 0) {
		tls_fail_openssl(err, errlen, "ALPN");
		goto err_free;
	}
	*out = ctx;
	return 0;

err_free:
	SSL_CTX_free(ctx);
	return -EINVAL;
}

void tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

int tls_client_ctx_new(const char *cafile, SSL_CTX **out, char *err, size_t errlen)
{
	return tls_client_ctx_make(cafile, true, out, err, errlen);
}

int tls_client_ctx_new_pinned(SSL_CTX **out, char *err, size_t errlen)
{
	return tls_client_ctx_make(NULL, false, out, err, errlen);
}

int tls_parse_pin(const char *text, unsigned char pin[TLS_PIN_LEN])
{
	static const char prefix[] = "sha256:";
	const char *s = text;
	size_t n = 0;
	int hi, lo;

	if (strncasecmp(s, prefix, strlen(prefix)) != 0)
		return -EINVAL;
	s += strlen(prefix);
	while (*s) {
		if (n > 0 && *s == ':')
			s++;
		if (n == TLS_PIN_LEN)
			return -EINVAL;
		hi = parse_hex_digit(s[0]);
		lo = hi < 0 ? -1 : parse_hex_digit(s[1]);
		if (lo < 0)
			return -EINVAL;
		pin[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	return n == TLS_PIN_LEN ? 0 : -EINVAL;
}

static int tls_x509_pin(X509 *x, unsigned char pin[TLS_PIN_LEN])
{
	unsigned int len = 0;

	if (X509_digest(x, EVP_sha256(), pin, &len) != 1 || len != TLS_PIN_LEN)
		return -EIO;
	return 0;
}

int tls_cert_pin(const char *pem_path, unsigned char pin[TLS_PIN_LEN])
{
	X509 *x;
	FILE *fp;
	int r;

	fp = fopen(pem_path, "re");
	if (!fp)
		return -errno;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!x)
		return -EINVAL;
	r = tls_x509_pin(x, pin);
	X509_free(x);
	return r;
}

/* With a pin, the chain's own validity does not matter: the leaf must be
 * the pinned certificate, whatever signed it. */
static int tls_verify_pin(int preverify, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *t = ssl ? SSL_get_app_data(ssl) : NULL;
	unsigned char pin[TLS_PIN_LEN];
	X509 *x;

	if (!t || !t->has_pin)
		return preverify;
	if (X509_STORE_CTX_get_error_depth(store) != 0)
		return 1;
	x = X509_STORE_CTX_get_current_cert(store);
	if (!x || tls_x509_pin(x, pin) < 0 || CRYPTO_memcmp(pin, t->pin, TLS_PIN_LEN) != 0) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
		t->pin_ok = false;
		return 0;
	}
	t->pin_ok = true;
	return 1;
}

/* Why a handshake failed, for err. */
static int tls_handshake_error(struct tls_conn *t, int ret, char *err, size_t errlen)
{
	long verify = SSL_get_verify_result(t->ssl);
	int e = SSL_get_error(t->ssl, ret);
	int saved = errno;

	if (e == SSL_ERROR_SYSCALL) {
		ERR_clear_error();
		if (saved == 0) {
			tls_fail(err, errlen, "TLS handshake: connection closed by the peer");
			return -ECONNRESET;
		}
		tls_fail(err, errlen, "TLS handshake: %s", strerror(saved));
		return -saved;
	}
	if (verify != X509_V_OK) {
		ERR_clear_error();
		tls_fail(err, errlen, "TLS handshake: certificate verify failed: %s",
			 t->has_pin && verify == X509_V_ERR_CERT_REJECTED ?
			 "not the pinned certificate" : X509_verify_cert_error_string(verify));
		return -EPROTO;
	}
	tls_fail_openssl(err, errlen, "TLS handshake");
	return -EPROTO;
}

/* Runs the handshake non-blocking, so that the deadline bounds it however
 * slowly the peer trickles bytes, then puts the socket back to blocking
 * (tls_conn_nonblocking() makes it non-blocking for good). */
static int tls_handshake(struct tls_conn *t, int fd, bool server, int timeout_ms,
			 char *err, size_t errlen)
{
	uint64_t deadline = monotonic_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd pfd = { .fd = fd };
	uint64_t now;
	int ret, e, r;

	r = fd_set_nonblock(fd, true);
	if (r < 0) {
		tls_fail(err, errlen, "TLS handshake: %s", strerror(-r));
		return r;
	}
	for (;;) {
		ERR_clear_error();
		errno = 0;
		ret = server ? SSL_accept(t->ssl) : SSL_connect(t->ssl);
		if (ret == 1)
			break;
		e = SSL_get_error(t->ssl, ret);
		if (e == SSL_ERROR_WANT_READ)
			pfd.events = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			pfd.events = POLLOUT;
		else
			return tls_handshake_error(t, ret, err, errlen);
		do {
			now = monotonic_ms();
			if (now >= deadline) {
				tls_fail(err, errlen, "TLS handshake: timed out");
				return -ETIMEDOUT;
			}
			r = poll(&pfd, 1, (int)(deadline - now));
		} while (r < 0 && errno == EINTR);
		if (r < 0) {
			r = -errno;
			tls_fail(err, errlen, "TLS handshake: poll: %s", strerror(-r));
			return r;
		}
	}
	r = fd_set_nonblock(fd, false);
	if (r < 0)
		tls_fail(err, errlen, "TLS handshake: %s", strerror(-r));
	return r;
}

/* A non-blocking socket's write wants room (or, rarely, a read): waits
 * for it as long as SO_SNDTIMEO says a blocking send would.  Returns 0 to
 * retry, or -EAGAIN when that time passed with no room. */
static int tls_wait_io(struct tls_conn *t, int fd, int want)
{
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);
	struct pollfd pfd = { .fd = fd, .events = want == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT };
	int timeout = -1, r;

	(void)t;
	if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 &&
	    (tv.tv_sec || tv.tv_usec))
		timeout = (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
	do
		r = poll(&pfd, 1, timeout);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -EAGAIN : 0;
}

int tls_conn_nonblocking(struct conn *c)
{
	struct tls_conn *t = c->impl;
	int r = fd_set_nonblock(c->fd, true);

	if (r == 0)
		t->nonblocking = true;
	return r;
}

static bool tls_alpn_agreed(SSL *ssl)
{
	const unsigned char *alpn = NULL;
	unsigned int len = 0;

	SSL_get0_alpn_selected(ssl, &alpn, &len);
	return len == TLS_ALPN_WIRE_LEN - 1 && memcmp(alpn, tls_alpn_wire + 1, len) == 0;
}

static struct tls_conn *tls_conn_new(SSL_CTX *ctx, int fd)
{
	struct tls_conn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	SSL_set_app_data(t->ssl, t);
	return t;
}

static void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t->buf);
	free(t);
}

/* Both ends: the handshake, then the checks the library cannot make. */
static int tls_conn_finish(struct conn *c, struct tls_conn *t, int fd, bool server,
			   int timeout_ms, char *err, size_t errlen)
{
	unsigned char pin[TLS_PIN_LEN];
	X509 *peer;
	int r;

	r = tls_handshake(t, fd, server, timeout_ms, err, errlen);
	if (r < 0)
		goto err_free;
	r = -EPROTO;
	if (!tls_alpn_agreed(t->ssl)) {
		tls_fail(err, errlen, "TLS handshake: ALPN %s not negotiated", TLS_ALPN);
		goto err_free;
	}
	if (t->has_pin) {
		/* The callback already checked; a resumed session skips it, so
		 * look at the certificate the session carries either way. */
		peer = SSL_get0_peer_certificate(t->ssl);
		if (!peer || tls_x509_pin(peer, pin) < 0 ||
		    CRYPTO_memcmp(pin, t->pin, TLS_PIN_LEN) != 0) {
			tls_fail(err, errlen, "TLS handshake: not the pinned certificate");
			goto err_free;
		}
	}
	c->fd = fd;
	c->ops = &tls_conn_ops;
	c->impl = t;
	return 0;

err_free:
	tls_conn_free(t);
	close(fd);
	return r;
}

int tls_conn_accept(struct conn *c, int fd, SSL_CTX *ctx, int timeout_ms,
		    char *err, size_t errlen)
{
	struct tls_conn *t;

	t = tls_conn_new(ctx, fd);
	if (!t) {
		tls_fail(err, errlen, "TLS: out of memory");
		close(fd);
		return -ENOMEM;
	}
	return tls_conn_finish(c, t, fd, true, timeout_ms, err, errlen);
}

/* Name checking: an IP address literal is matched against the
 * certificate's IP addresses, anything else against its DNS names. */
static int tls_set_host(struct tls_conn *t, const char *host)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);

	if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1)
		return 0;
	ERR_clear_error();
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(t->ssl, host) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1)
		return -EINVAL;
	return 0;
}

int tls_conn_connect(struct conn *c, int fd, SSL_CTX *ctx, const struct tls_client_opts *o,
		     int timeout_ms, char *err, size_t errlen)
{
	struct tls_conn *t;

	if (!o->pin && (!o->host || !*o->host)) {
		tls_fail(err, errlen, "TLS: a host name or a pin is needed to check the server");
		close(fd);
		return -EINVAL;
	}
	t = tls_conn_new(ctx, fd);
	if (!t) {
		tls_fail(err, errlen, "TLS: out of memory");
		close(fd);
		return -ENOMEM;
	}
	if (o->pin) {
		memcpy(t->pin, o->pin, TLS_PIN_LEN);
		t->has_pin = true;
		SSL_set_verify(t->ssl, SSL_VERIFY_PEER, tls_verify_pin);
		if (o->host && *o->host && SSL_set_tlsext_host_name(t->ssl, o->host) != 1)
			ERR_clear_error();      /* an IP address: no SNI, no harm */
	} else if (tls_set_host(t, o->host) < 0) {
		tls_fail_openssl(err, errlen, o->host);
		tls_conn_free(t);
		close(fd);
		return -EINVAL;
	}
	if (o->session && SSL_set_session(t->ssl, o->session) != 1)
		ERR_clear_error();      /* then a full handshake */
	return tls_conn_finish(c, t, fd, false, timeout_ms, err, errlen);
}

/* Maps a failed SSL_read_ex/SSL_write_ex.  In blocking mode WANT_READ and
 * WANT_WRITE only come from an interrupted or timed-out system call. */
static int tls_io_error(struct tls_conn *t, int saved_errno)
{
	switch (SSL_get_error(t->ssl, 0)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return saved_errno == EINTR ? -EINTR : -EAGAIN;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return saved_errno ? -saved_errno : -ECONNRESET;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

static ssize_t tls_read(struct conn *c, void *buf, size_t len)
{
	struct tls_conn *t = c->impl;
	size_t n = 0;

	ERR_clear_error();
	errno = 0;
	if (SSL_read_ex(t->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return tls_io_error(t, errno);
}

/* Records are not held back for "more": each write is sent as it comes. */
static int tls_write(struct conn *c, const void *buf, size_t len, bool more)
{
	struct tls_conn *t = c->impl;
	size_t n = 0;
	int r;

	if (len == 0)
		return 0;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		/* Partial writes are off: success means all len bytes. */
		if (SSL_write_ex(t->ssl, buf, len, &n) == 1)
			return 0;
		r = tls_io_error(t, errno);
		if (r == -EINTR)
			continue;       /* the same arguments, as OpenSSL requires */
		if (r == -EAGAIN && t->nonblocking) {
			r = tls_wait_io(t, c->fd, SSL_get_error(t->ssl, 0));
			if (r == 0)
				continue;
		}
		return r == 0 ? -EPIPE : r;
	}
}

static int tls_sendfile_ktls(struct tls_conn *t, int in_fd, off_t *offset, uint64_t count)
{
	ossl_ssize_t n;
	int r;

	while (count > 0) {
		ERR_clear_error();
		errno = 0;
		n = SSL_sendfile(t->ssl, in_fd, *offset,
				 count < TLS_SENDFILE_CHUNK ? (size_t)count : TLS_SENDFILE_CHUNK, 0);
		if (n == 0)
			return -ENODATA;
		if (n < 0) {
			r = tls_io_error(t, errno);
			if (r == -EINTR)
				continue;
			if (r == -EAGAIN && t->nonblocking && tls_wait_io(t, SSL_get_fd(t->ssl), SSL_ERROR_WANT_WRITE) == 0)
				continue;
			return r == 0 ? -EPIPE : r;
		}
		*offset += n;
		count -= (uint64_t)n;
	}
	return 0;
}

static int tls_sendfile(struct conn *c, int in_fd, off_t *offset, uint64_t count)
{
	struct tls_conn *t = c->impl;
	size_t want;
	ssize_t n;
	int r;

	if (tls_conn_ktls_send(c))
		return tls_sendfile_ktls(t, in_fd, offset, count);
	if (!t->buf) {
		t->buf = malloc(TLS_SENDFILE_BUF);
		if (!t->buf)
			return -ENOMEM;
	}
	while (count > 0) {
		want = count < TLS_SENDFILE_BUF ? (size_t)count : TLS_SENDFILE_BUF;
		n = pread(in_fd, t->buf, want, *offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		r = tls_write(c, t->buf, (size_t)n, (uint64_t)n < count);
		if (r < 0)
			return r;
		*offset += n;
		count -= (uint64_t)n;
	}
	return 0;
}

static size_t tls_pending(struct conn *c)
{
	struct tls_conn *t = c->impl;
	int n = SSL_pending(t->ssl);

	return n > 0 ? (size_t)n : 0;
}

/* Sends close_notify without waiting for the peer's: nothing is read
 * after this end decided to close. */
static void tls_close(struct conn *c)
{
	struct tls_conn *t = c->impl;

	if (t) {
		ERR_clear_error();
		if (SSL_shutdown(t->ssl) < 0)
			ERR_clear_error();
		tls_conn_free(t);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->impl = NULL;
	c->ops = NULL;
}

static const struct conn_ops tls_conn_ops = {
	.read = tls_read,
	.write = tls_write,
	.sendfile = tls_sendfile,
	.pending = tls_pending,
	.close = tls_close,
};

bool tls_conn_is_tls(const struct conn *c)
{
	return c && c->ops == &tls_conn_ops && c->impl;
}

int tls_conn_exporter(struct conn *c, unsigned char out[TLS_EXPORTER_LEN])
{
	struct tls_conn *t;

	if (!tls_conn_is_tls(c))
		return -EINVAL;
	t = c->impl;
	/* RFC 9266 section 2: over TLS 1.2 only with the extended master secret. */
	if (SSL_version(t->ssl) < TLS1_3_VERSION && SSL_get_extms_support(t->ssl) != 1)
		return -EPROTO;
	ERR_clear_error();
	if (SSL_export_keying_material(t->ssl, out, TLS_EXPORTER_LEN, TLS_EXPORTER_LABEL,
				       strlen(TLS_EXPORTER_LABEL), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return -EPROTO;
	}
	return 0;
}

bool tls_conn_ktls_send(const struct conn *c)
{
	const struct tls_conn *t;

	if (!tls_conn_is_tls(c))
		return false;
	t = c->impl;
	return BIO_get_ktls_send(SSL_get_wbio(t->ssl));
}

bool tls_conn_resumed(const struct conn *c)
{
	return tls_conn_is_tls(c) && SSL_session_reused(((struct tls_conn *)c->impl)->ssl);
}

SSL_SESSION *tls_conn_session(const struct conn *c)
{
	return tls_conn_is_tls(c) ? SSL_get1_session(((struct tls_conn *)c->impl)->ssl) : NULL;
}

const char *tls_conn_version(const struct conn *c)
{
	return tls_conn_is_tls(c) ? SSL_get_version(((struct tls_conn *)c->impl)->ssl) : NULL;
}

bool tls_ktls_possible(const char **why)
{
#ifdef OPENSSL_NO_KTLS
	*why = "OpenSSL was built without kTLS";
	return false;
#else
	/* The module shows here once loaded, whether built in or not. */
	if (access("/sys/module/tls", F_OK) < 0) {
		*why = "the kernel's tls module is not loaded (it may load at the first "
		       "TLS connection)";
		return false;
	}
	*why = "OpenSSL and the kernel's tls module support it";
	return true;
#endif
}
