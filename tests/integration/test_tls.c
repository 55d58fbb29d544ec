/* Integration: implicit TLS listeners: a round trip through the real
 * daemon with a raw OpenSSL client, ALPN enforcement (openssl s_client and
 * OpenSSL directly), and certificate rotation by reload mid-transfer. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tlsutil.h"

static struct daemon d;
static char certs[256];
static uint16_t tls_port;
static char extra[2048];

static void tls_fini(void)
{
	test_release_all();
	daemon_stop(&d);
	scratch_remove(certs);
}

TestSuite(tls, .fini = tls_fini, .timeout = 120);

/* Certificates "a" and "b" in a scratch dir; the daemon serves
 * server.crt/server.key, a copy of "a", on a TLS listener beside its
 * plain one. */
static void start_tls_daemon(const char *more)
{
	char a[300], b[300], out[1024];

	scratch_create(certs, sizeof(certs), "itest_tls");
	tls_make_cert(certs, "a");
	tls_make_cert(certs, "b");
	snprintf(a, sizeof(a), "%s/a.crt", certs);
	snprintf(b, sizeof(b), "%s/server.crt", certs);
	const char *cp1[] = { "/bin/cp", a, b, NULL };
	cr_assert_eq(harness_run(cp1, out, sizeof(out)), 0, "%s", out);
	snprintf(a, sizeof(a), "%s/a.key", certs);
	snprintf(b, sizeof(b), "%s/server.key", certs);
	const char *cp2[] = { "/bin/cp", a, b, NULL };
	cr_assert_eq(harness_run(cp2, out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(harness_free_port(&tls_port), 0);
	snprintf(extra, sizeof(extra),
		 "tls_listen = 127.0.0.1:%u\ntls_certificate = %s/server.crt\n"
		 "tls_key = %s/server.key\n%s", (unsigned)tls_port, certs, certs, more ? more : "");
	struct daemon_opts o = { .self_bind = true, .server_extra = extra };
	start_daemon(&d, &o);
}

static void ca_path(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s.crt", certs, name);
}

Test(tls, round_trip_put_get_with_digests)
{
	char ca[300], greeting[HARNESS_LINE_CAP], line[HARNESS_LINE_CAP];
	struct tconn c;
	size_t n = 3 * 1024 * 1024 + 17, got;

	start_tls_daemon(NULL);
	ca_path("a", ca, sizeof(ca));
	tconn_hello(&c, tls_port, ca, greeting, sizeof(greeting));
	/* No users_file: no auth= offered, TLS or not. */
	cr_expect_null(strstr(greeting, "auth="), "%s", greeting);
	cr_expect_str_eq(SSL_get_version(c.ssl), "TLSv1.3");

	unsigned char *p = random_buf(n), *back = test_alloc(n);
	tconn_put(&c, "files/tls.bin", p, n, line, sizeof(line));
	cr_assert(strncmp(line, "OK", 2) == 0, "%s", line);
	cr_assert(tconn_get(&c, "files/tls.bin", back, n, &got, line, sizeof(line)), "%s", line);
	cr_assert_eq(got, n);
	cr_assert(memcmp(back, p, n) == 0);
	char path[400];
	path_join(path, sizeof(path), d.share_dir, "tls.bin");
	cr_assert(file_is(path, p, n));
	tconn_printf(&c, "QUIT\n");
	tconn_line(&c, line, sizeof(line));
	cr_expect_str_eq(line, "OK bye");
	tconn_close(&c);
	/* This machine's kernel has no tls module: the fallback is said. */
	cr_expect(daemon_log_contains(&d, "TLS downloads in this worker:"));
	cr_expect(daemon_log_contains(&d, "kernel TLS for downloads:"));
	/* The plain listener still speaks plain. */
	int fd = raw_open(&d, NULL, 0);
	close(fd);
}

Test(tls, alpn_is_required)
{
	char ca[300], out[16384], connect[64];

	start_tls_daemon(NULL);
	ca_path("a", ca, sizeof(ca));
	snprintf(connect, sizeof(connect), "127.0.0.1:%u", (unsigned)tls_port);

	const char *ok[] = { "/usr/bin/openssl", "s_client", "-connect", connect, "-alpn",
			     "tcpfile/2", "-CAfile", ca, "-servername", "localhost", NULL };
	int st = harness_run(ok, out, sizeof(out));
	cr_expect_eq(st, 0, "s_client -alpn tcpfile/2: %d\n%s", st, out);
	cr_expect_not_null(strstr(out, "ALPN protocol: tcpfile/2"), "%s", out);

	const char *none[] = { "/usr/bin/openssl", "s_client", "-connect", connect, "-CAfile",
			       ca, NULL };
	st = harness_run(none, out, sizeof(out));
	cr_expect_neq(st, 0, "a handshake without ALPN must fail:\n%s", out);
	cr_expect_null(strstr(out, "ALPN protocol: tcpfile/2"));

	const char *other[] = { "/usr/bin/openssl", "s_client", "-connect", connect, "-alpn",
				"http/1.1", "-CAfile", ca, NULL };
	st = harness_run(other, out, sizeof(out));
	cr_expect_neq(st, 0, "a handshake with ALPN http/1.1 must fail:\n%s", out);

	/* The same through OpenSSL directly. */
	struct tconn c;
	cr_expect_eq(tconn_open(&c, tls_port, ca, NULL), -EPROTO);
	cr_expect_eq(tconn_open(&c, tls_port, ca, "h2"), -EPROTO);
	cr_assert_eq(tconn_open(&c, tls_port, ca, "tcpfile/2"), 0);
	const unsigned char *sel;
	unsigned len;
	SSL_get0_alpn_selected(c.ssl, &sel, &len);
	cr_expect(len == 9 && memcmp(sel, "tcpfile/2", 9) == 0);
	tconn_close(&c);
	cr_expect(daemon_log_contains(&d, "TLS handshake failed"));
}

/* The daemon still answers on the TLS port (reloads are asynchronous). */
static bool serves_cert_b(void *arg)
{
	char ca[300], fp[65];
	struct tconn c;

	(void)arg;
	ca_path("b", ca, sizeof(ca));
	if (tconn_open(&c, tls_port, ca, "tcpfile/2") < 0)
		return false;
	tconn_peer_fingerprint(&c, fp);
	tconn_close(&c);
	return true;
}

Test(tls, certificate_rotation_by_reload_mid_transfer)
{
	char ca[300], line[HARNESS_LINE_CAP], fa[65], fb[65], got_fp[65], msg[1024];
	char src[300], dst[300], out[1024], xxh[DIGEST_TEXT_LEN];
	size_t n = 4 * 1024 * 1024, half = n / 2, got;
	struct tconn c, c2;

	start_tls_daemon(NULL);
	ca_path("a", ca, sizeof(ca));
	tls_file_fingerprint(ca, fa);
	ca_path("b", src, sizeof(src));
	tls_file_fingerprint(src, fb);
	cr_assert_str_neq(fa, fb);

	tconn_hello(&c, tls_port, ca, NULL, 0);
	tconn_peer_fingerprint(&c, got_fp);
	cr_assert_str_eq(got_fp, fa);
	unsigned char *p = random_buf(n), *back = test_alloc(n);
	digest_buf(p, n, xxh, NULL);
	tconn_printf(&c, "PUT files/rot.bin size=%zu\nDATA %zu\n", n, half);
	tconn_send(&c, p, half);

	/* Rotate: b replaces the served files, then SIGHUP. */
	for (int i = 0; i < 2; i++) {
		snprintf(src, sizeof(src), "%s/b.%s", certs, i ? "key" : "crt");
		snprintf(dst, sizeof(dst), "%s/server.%s", certs, i ? "key" : "crt");
		const char *cp[] = { "/bin/cp", src, dst, NULL };
		cr_assert_eq(harness_run(cp, out, sizeof(out)), 0, "%s", out);
	}
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_assert(daemon_log_contains(&d, "reloaded: generation 2"));

	/* New connections see the new certificate (verified against b). */
	cr_assert(wait_until(serves_cert_b, NULL, HARNESS_TIMEOUT_MS));
	ca_path("b", src, sizeof(src));
	tconn_hello(&c2, tls_port, src, NULL, 0);
	tconn_peer_fingerprint(&c2, got_fp);
	cr_expect_str_eq(got_fp, fb);
	tconn_close(&c2);

	/* The transfer in flight completes on its old session. */
	tconn_printf(&c, "DATA %zu\n", n - half);
	tconn_send(&c, p + half, n - half);
	tconn_printf(&c, "END digest=%s\n", xxh);
	tconn_line(&c, line, sizeof(line));
	cr_assert(strncmp(line, "OK", 2) == 0, "%s", line);
	cr_assert(tconn_get(&c, "files/rot.bin", back, n, &got, line, sizeof(line)), "%s", line);
	cr_assert(got == n && memcmp(back, p, n) == 0);
	tconn_close(&c);
}

Test(tls, bad_certificate_on_reload_keeps_the_old_one)
{
	char ca[300], dst[300], msg[1024], fp[65], fa[65];
	struct tconn c;

	start_tls_daemon(NULL);
	snprintf(dst, sizeof(dst), "%s/server.key", certs);
	write_file(dst, "not a key\n", 10);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	char *hist = daemon_notify_history(&d);
	cr_assert_not_null(hist);
	cr_expect_not_null(strstr(hist, "reload failed"), "STATUS= says so: %s", hist);
	free(hist);
	cr_expect(daemon_log_contains(&d, "reload failed, keeping the running configuration: TLS"));
	ca_path("a", ca, sizeof(ca));
	tls_file_fingerprint(ca, fa);
	tconn_hello(&c, tls_port, ca, NULL, 0);
	tconn_peer_fingerprint(&c, fp);
	cr_expect_str_eq(fp, fa);
	tconn_close(&c);
}

Test(tls, tls_listen_without_certificate_is_a_config_error)
{
	char conf[300], out[2048];

	scratch_create(certs, sizeof(certs), "itest_tls");
	snprintf(conf, sizeof(conf), "%s/t.conf", certs);
	char text[512];
	snprintf(text, sizeof(text), "[server]\ntls_listen = 127.0.0.1:5999\n[f]\npath = %s\n", certs);
	write_file(conf, text, strlen(text));
	const char *argv[] = { harness_bin("TCPFILED_BIN"), "-t", "-c", conf, NULL };
	int st = harness_run(argv, out, sizeof(out));
	cr_expect_eq(st, 78, "%d: %s", st, out);
	cr_expect_not_null(strstr(out, "t.conf:2: tls_listen: needs tls_certificate and tls_key"),
			   "%s", out);
}

/* A peer that trickles one TLS record a byte at a time after the handshake
 * must not hold its worker past handshake_timeout: the worker waits in
 * ppoll() under its deadline, never inside OpenSSL for the record's end. */
Test(tls, a_trickled_record_does_not_hold_a_worker)
{
	static const unsigned char header[] = { 0x17, 0x03, 0x03, 0x40, 0x11 };
	char ca[300], drain[256];
	struct tconn c;
	int64_t start, closed = 0;

	start_tls_daemon("handshake_timeout = 2s\n");
	ca_path("a", ca, sizeof(ca));
	cr_assert_eq(tconn_open(&c, tls_port, ca, "tcpfile/2"), 0);
	start = harness_now_ms();
	/* The start of an application-data record of 16 KiB, then a byte
	 * every 200 ms: the HELLO never completes. */
	cr_assert_eq(write(c.fd, header, sizeof(header)), (ssize_t)sizeof(header));
	while (harness_now_ms() - start < 10000) {
		struct pollfd pfd = { .fd = c.fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 200) > 0) {
			n = recv(c.fd, drain, sizeof(drain), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				closed = harness_now_ms();
				break;
			}
			continue;    /* the greeting's record; the alert comes later */
		}
		if (send(c.fd, "x", 1, MSG_NOSIGNAL) < 0) {
			closed = harness_now_ms();
			break;
		}
	}
	cr_assert_neq(closed, 0, "the trickling peer still held its worker after 10 s");
	cr_log_info("trickled TLS record cut after %lld ms", (long long)(closed - start));
	cr_assert_lt(closed - start, 2000 + 2500, "cut after %lld ms", (long long)(closed - start));
	tconn_close(&c);
}
