/* tlsutil: certificates, users, TLS and SCRAM on the client side for the
 * integration tests (raw OpenSSL and GNU SASL, not the project's code). */
#define _GNU_SOURCE
#include "tlsutil.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gsasl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void tls_make_cert(const char *dir, const char *name)
{
	tls_make_cert_for(dir, name, "localhost", "DNS:localhost,IP:127.0.0.1");
}

void tls_make_cert_for(const char *dir, const char *name, const char *cn, const char *san)
{
	char crt[512], key[512], out[4096], subj[300], ext[600];

	snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	snprintf(subj, sizeof(subj), "/CN=%s", cn);
	snprintf(ext, sizeof(ext), "subjectAltName=%s", san);
	const char *argv[] = {
		"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
		"ec_paramgen_curve:P-256", "-nodes", "-subj", subj, "-addext",
		ext, "-days", "2", "-keyout", key, "-out", crt, NULL,
	};
	int st = harness_run(argv, out, sizeof(out));
	cr_assert_eq(st, 0, "openssl req: %d: %s", st, out);
}

static void tls_hex(const unsigned char *md, size_t n, char *hex)
{
	for (size_t i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

void tls_file_fingerprint(const char *pem, char hex[65])
{
	FILE *f = fopen(pem, "re");
	cr_assert_not_null(f, "%s: %s", pem, strerror(errno));
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(x);
	unsigned char md[32];
	unsigned int len = sizeof(md);
	cr_assert_eq(X509_digest(x, EVP_sha256(), md, &len), 1);
	X509_free(x);
	tls_hex(md, 32, hex);
}

void users_add(const char *users_file, const char *user, const char *password)
{
	char in_path[512], out[4096];
	struct harness_proc p;
	int fd;

	snprintf(in_path, sizeof(in_path), "%s.pw", users_file);
	fd = open(in_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dprintf(fd, "%s\n", password), (int)strlen(password) + 1);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	const char *argv[] = {
		harness_bin("TCPFILED_BIN"), "passwd", "-f", users_file, "-i", "4096", user, NULL,
	};
	cr_assert_eq(harness_spawn_in(argv, NULL, fd, &p), 0);
	close(fd);
	int st = harness_proc_wait(&p, out, sizeof(out), HARNESS_TIMEOUT_MS);
	unlink(in_path);
	cr_assert_eq(st, 0, "tcpfiled passwd %s: %d: %s", user, st, out);
}

int tconn_open(struct tconn *c, uint16_t port, const char *cafile, const char *alpn)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = HARNESS_TIMEOUT_MS / 1000 };

	memset(c, 0, sizeof(*c));
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		int r = -errno;
		close(c->fd);
		c->fd = -1;
		return r;
	}
	if (!cafile)
		return 0;
	c->ctx = SSL_CTX_new(TLS_client_method());
	cr_assert_not_null(c->ctx);
	cr_assert_eq(SSL_CTX_load_verify_locations(c->ctx, cafile, NULL), 1);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	c->ssl = SSL_new(c->ctx);
	cr_assert_not_null(c->ssl);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	cr_assert_eq(SSL_set1_host(c->ssl, "localhost"), 1);
	if (alpn) {
		unsigned char wire[64];
		size_t n = strlen(alpn);
		wire[0] = (unsigned char)n;
		memcpy(wire + 1, alpn, n);
		cr_assert_eq(SSL_set_alpn_protos(c->ssl, wire, (unsigned)n + 1), 0);
	}
	if (SSL_connect(c->ssl) != 1) {
		ERR_clear_error();
		tconn_close(c);
		return -EPROTO;
	}
	return 0;
}

void tconn_close(struct tconn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->ctx = NULL;
	c->fd = -1;
}

void tconn_send(struct tconn *c, const void *p, size_t n)
{
	const char *b = p;

	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			size_t done = 0;
			cr_assert_eq(SSL_write_ex(c->ssl, b, n, &done), 1, "SSL_write");
			w = (ssize_t)done;
		} else {
			w = send(c->fd, b, n, MSG_NOSIGNAL);
			cr_assert_gt(w, 0, "send: %s", strerror(errno));
		}
		b += w;
		n -= (size_t)w;
	}
}

void tconn_printf(struct tconn *c, const char *fmt, ...)
{
	char line[HARNESS_LINE_CAP + 1];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof(line));
	tconn_send(c, line, (size_t)n);
}

/* Appends what arrives; false on EOF. */
static bool tconn_fill(struct tconn *c)
{
	ssize_t n;

	cr_assert_lt(c->len, sizeof(c->buf), "line too long");
	if (c->ssl) {
		size_t got = 0;
		if (SSL_read_ex(c->ssl, c->buf + c->len, sizeof(c->buf) - c->len, &got) != 1) {
			int e = SSL_get_error(c->ssl, 0);
			ERR_clear_error();
			cr_assert(e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ||
				  e == SSL_ERROR_SSL, "SSL_read: %d", e);
			return false;
		}
		n = (ssize_t)got;
	} else {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		cr_assert_geq(n, 0, "recv: %s", strerror(errno));
		if (n == 0)
			return false;
	}
	c->len += (size_t)n;
	return true;
}

bool tconn_try_line(struct tconn *c, char *out, size_t cap)
{
	for (;;) {
		char *lf = memchr(c->buf, '\n', c->len);
		if (lf) {
			size_t n = (size_t)(lf - c->buf);
			cr_assert_lt(n, cap);
			memcpy(out, c->buf, n);
			out[n] = '\0';
			memmove(c->buf, lf + 1, c->len - n - 1);
			c->len -= n + 1;
			return true;
		}
		if (!tconn_fill(c))
			return false;
	}
}

void tconn_line(struct tconn *c, char *out, size_t cap)
{
	cr_assert(tconn_try_line(c, out, cap), "connection closed while a line was expected");
}

void tconn_read(struct tconn *c, void *p, size_t n)
{
	char *b = p;

	while (n > 0) {
		if (c->len == 0)
			cr_assert(tconn_fill(c), "EOF inside a body");
		size_t k = c->len < n ? c->len : n;
		memcpy(b, c->buf, k);
		memmove(c->buf, c->buf + k, c->len - k);
		c->len -= k;
		b += k;
		n -= k;
	}
}

void tconn_hello(struct tconn *c, uint16_t port, const char *cafile, char *greeting,
		 size_t cap)
{
	char line[HARNESS_LINE_CAP];

	cr_assert_eq(tconn_open(c, port, cafile, cafile ? "tcpfile/2" : NULL), 0, "connect");
	tconn_printf(c, "%s\n", HARNESS_HELLO);
	tconn_line(c, line, sizeof(line));
	cr_assert(greeting_is_v2(line), "greeting: %s", line);
	if (greeting)
		snprintf(greeting, cap, "%s", line);
	tconn_line(c, line, sizeof(line));
	cr_assert(strncmp(line, "OK version=2", 12) == 0, "hello answer: %s", line);
}

void tconn_peer_fingerprint(struct tconn *c, char hex[65])
{
	X509 *x = SSL_get1_peer_certificate(c->ssl);
	unsigned char md[32];
	unsigned int len = sizeof(md);

	cr_assert_not_null(x);
	cr_assert_eq(X509_digest(x, EVP_sha256(), md, &len), 1);
	X509_free(x);
	tls_hex(md, 32, hex);
}

void tconn_put(struct tconn *c, const char *remote, const void *p, size_t n, char *final,
	       size_t cap)
{
	char xxh[DIGEST_TEXT_LEN];
	const char *b = p;

	digest_buf(p, n, xxh, NULL);
	tconn_printf(c, "PUT %s size=%zu\n", remote, n);
	for (size_t off = 0; off < n;) {
		size_t k = n - off < (1u << 20) ? n - off : (1u << 20);
		tconn_printf(c, "DATA %zu\n", k);
		tconn_send(c, b + off, k);
		off += k;
	}
	tconn_printf(c, "END digest=%s\n", xxh);
	tconn_line(c, final, cap);
}

bool tconn_get(struct tconn *c, const char *remote, void *buf, size_t cap, size_t *n,
	       char *status, size_t scap)
{
	char line[HARNESS_LINE_CAP], xxh[DIGEST_TEXT_LEN], want[DIGEST_TEXT_LEN + 16];
	char *b = buf;

	*n = 0;
	tconn_printf(c, "GET %s\n", remote);
	tconn_line(c, status, scap);
	if (strncmp(status, "OK", 2) != 0)
		return false;
	for (;;) {
		tconn_line(c, line, sizeof(line));
		if (strncmp(line, "END", 3) == 0)
			break;
		unsigned long long k;
		cr_assert_eq(sscanf(line, "DATA %llu", &k), 1, "frame: %s", line);
		cr_assert_leq(*n + k, cap);
		tconn_read(c, b + *n, k);
		*n += k;
	}
	digest_buf(buf, *n, xxh, NULL);
	snprintf(want, sizeof(want), "END digest=%s", xxh);
	cr_assert_str_eq(line, want);
	return true;
}

static char *tconn_b64(Gsasl_session *s, const char *p, size_t n)
{
	char *b64 = NULL;
	(void)s;
	if (n == 0)
		return strdup("");
	cr_assert_eq(gsasl_base64_to(p, n, &b64, NULL), GSASL_OK);
	return b64;
}

bool tconn_login(struct tconn *c, const char *mech, const char *user, const char *password,
		 char *final, size_t cap, char *sent, size_t sent_cap, const char *replay)
{
	static Gsasl *g;
	Gsasl_session *s;
	char *out = NULL, *b64, *in = NULL, line[HARNESS_LINE_CAP];
	size_t outlen = 0, inlen = 0;
	bool plus = strstr(mech, "-PLUS") != NULL;
	int rc;

	if (!g)
		cr_assert_eq(gsasl_init(&g), GSASL_OK);
	cr_assert_eq(gsasl_client_start(g, mech, &s), GSASL_OK);
	gsasl_property_set(s, GSASL_AUTHID, user);
	gsasl_property_set(s, GSASL_PASSWORD, password);
	if (plus) {
		unsigned char cb[32];
		cr_assert_not_null(c->ssl, "-PLUS needs TLS");
		cr_assert_eq(SSL_export_keying_material(c->ssl, cb, sizeof(cb),
			"EXPORTER-Channel-Binding", 24, NULL, 0, 0), 1);
		b64 = tconn_b64(s, (const char *)cb, sizeof(cb));
		gsasl_property_set(s, GSASL_CB_TLS_EXPORTER, b64);
		free(b64);
	}
	rc = gsasl_step(s, NULL, 0, &out, &outlen);
	cr_assert_eq(rc, GSASL_NEEDS_MORE);
	b64 = tconn_b64(s, out, outlen);
	gsasl_free(out);
	tconn_printf(c, "AUTH %s %s\n", mech, b64);
	free(b64);
	for (;;) {
		tconn_line(c, line, sizeof(line));
		if (strncmp(line, "+ ", 2) != 0)
			break;
		cr_assert_eq(gsasl_base64_from(line + 2, strlen(line + 2), &in, &inlen), GSASL_OK);
		rc = gsasl_step(s, in, inlen, &out, &outlen);
		gsasl_free(in);
		cr_assert(rc == GSASL_NEEDS_MORE || rc == GSASL_OK, "client step: %d", rc);
		b64 = tconn_b64(s, out, outlen);
		gsasl_free(out);
		if (sent)
			snprintf(sent, sent_cap, "+ %s", b64);
		tconn_printf(c, "%s%s\n", replay ? "" : "+ ", replay ? replay : b64);
		free(b64);
	}
	snprintf(final, cap, "%s", line);
	bool ok = false;
	char *data = strstr(line, " data=");
	if (strncmp(line, "OK ", 3) == 0 && data) {
		data += 6;
		cr_assert_eq(gsasl_base64_from(data, strlen(data), &in, &inlen), GSASL_OK);
		rc = gsasl_step(s, in, inlen, &out, &outlen);
		gsasl_free(in);
		gsasl_free(out);
		ok = rc == GSASL_OK;
	}
	gsasl_finish(s);
	return ok;
}
