/* Unit tests for tls: contexts, handshakes (ALPN, names, pins), data both
 * ways, sendfile, resumption across forked workers, reload, exporter. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monotonic.h"
#include "tls.h"

extern char **environ;

#define FILE_LEN (300 * 1024 + 7)
#define TIMEOUT_MS 5000

static char tmpdir[64];
static char cert_a[128], key_a[128], cert_b[128], key_b[128], data_path[128];
static unsigned char data[FILE_LEN];
static char err[TLS_ERROR_MAX];

static void make_cert(const char *cert, const char *key, const char *cn)
{
	char subj[64], *argv[32];
	posix_spawn_file_actions_t fa;
	int status, i = 0;
	pid_t pid;

	snprintf(subj, sizeof(subj), "/CN=%s", cn);
	argv[i++] = "openssl";
	argv[i++] = "req";
	argv[i++] = "-x509";
	argv[i++] = "-newkey";
	argv[i++] = "ec";
	argv[i++] = "-pkeyopt";
	argv[i++] = "ec_paramgen_curve:P-256";
	argv[i++] = "-nodes";
	argv[i++] = "-days";
	argv[i++] = "2";
	argv[i++] = "-subj";
	argv[i++] = subj;
	argv[i++] = "-addext";
	argv[i++] = "subjectAltName=DNS:localhost,IP:127.0.0.1";
	argv[i++] = "-keyout";
	argv[i++] = (char *)key;
	argv[i++] = "-out";
	argv[i++] = (char *)cert;
	argv[i] = NULL;
	cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
	cr_assert_eq(posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0), 0);
	cr_assert_eq(posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ), 0,
		     "cannot run openssl");
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "openssl req failed");
}

static void setup(void)
{
	int fd;

	signal(SIGPIPE, SIG_IGN);
	strcpy(tmpdir, "/tmp/tcpfiled-test-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(cert_a, sizeof(cert_a), "%s/a.crt", tmpdir);
	snprintf(key_a, sizeof(key_a), "%s/a.key", tmpdir);
	snprintf(cert_b, sizeof(cert_b), "%s/b.crt", tmpdir);
	snprintf(key_b, sizeof(key_b), "%s/b.key", tmpdir);
	snprintf(data_path, sizeof(data_path), "%s/data", tmpdir);
	make_cert(cert_a, key_a, "localhost");
	make_cert(cert_b, key_b, "localhost");
	cr_assert_eq(getrandom(data, sizeof(data), 0), (ssize_t)sizeof(data));
	fd = open(data_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	close(fd);
	err[0] = '\0';
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(tls, .init = setup, .fini = teardown);

static SSL_CTX *server_ctx(const char *cert, const char *key)
{
	SSL_CTX *ctx = NULL;

	cr_assert_eq(tls_server_ctx_new(cert, key, TLS1_3_VERSION, &ctx, err, sizeof(err)), 0,
		     "%s", err);
	return ctx;
}

static int read_exact(struct conn *c, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = c->ops->read(c, (char *)buf + got, len - got);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -EPIPE : (int)n;
		got += (size_t)n;
	}
	return 0;
}

/* The server side of the exchange both ends run; exit codes say where it
 * stopped: 10 handshake, 11.. data; 20 + resumed when all went well. */
static void serve(int fd, SSL_CTX *ctx)
{
	unsigned char ekm[TLS_EXPORTER_LEN];
	char buf[5];
	struct conn c;
	off_t off = 0;
	int in;

	if (tls_conn_accept(&c, fd, ctx, TIMEOUT_MS, err, sizeof(err)) < 0) {
		fprintf(stderr, "server: %s\n", err);
		_exit(10);
	}
	if (read_exact(&c, buf, 5) < 0 || memcmp(buf, "hello", 5) != 0)
		_exit(11);
	if (c.ops->write(&c, "world", 5, true) < 0)
		_exit(12);
	in = open(data_path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || c.ops->sendfile(&c, in, &off, FILE_LEN) < 0 || off != FILE_LEN)
		_exit(13);
	/* The file is FILE_LEN bytes: asking for one more is a shrunk file. */
	off = FILE_LEN;
	if (c.ops->sendfile(&c, in, &off, 1) != -ENODATA)
		_exit(14);
	close(in);
	if (tls_conn_exporter(&c, ekm) < 0 || c.ops->write(&c, ekm, sizeof(ekm), false) < 0)
		_exit(15);
	if (c.ops->pending(&c) != 0)
		_exit(16);
	/* Wait for the client's close so tickets and data are all read. */
	if (c.ops->read(&c, buf, 1) != 0)
		_exit(17);
	_exit(20 + tls_conn_resumed(&c));
}

static pid_t spawn_server(int fd, SSL_CTX *ctx, int other)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(other);
		serve(fd, ctx);
	}
	close(fd);
	return pid;
}

static int wait_exit(pid_t pid)
{
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "server died");
	return WEXITSTATUS(status);
}

/* The client side of serve(). */
static void talk(struct conn *c)
{
	unsigned char ekm[TLS_EXPORTER_LEN], peer[TLS_EXPORTER_LEN];
	static unsigned char got[FILE_LEN];
	char buf[5];

	cr_assert_eq(c->ops->write(c, "hello", 5, false), 0);
	cr_assert_eq(read_exact(c, buf, 5), 0);
	cr_assert_eq(memcmp(buf, "world", 5), 0);
	cr_assert_eq(read_exact(c, got, FILE_LEN), 0);
	cr_assert_eq(memcmp(got, data, FILE_LEN), 0, "file bytes differ");
	cr_assert_eq(read_exact(c, peer, sizeof(peer)), 0);
	cr_assert_eq(tls_conn_exporter(c, ekm), 0);
	cr_expect_eq(memcmp(ekm, peer, sizeof(ekm)), 0, "exporter differs between the ends");
}

static int client_connect(struct conn *c, int fd, const char *cafile,
			  const struct tls_client_opts *o)
{
	SSL_CTX *ctx = NULL;
	int r;

	cr_assert_eq(tls_client_ctx_new(cafile, &ctx, err, sizeof(err)), 0, "%s", err);
	r = tls_conn_connect(c, fd, ctx, o, TIMEOUT_MS, err, sizeof(err));
	SSL_CTX_free(ctx);      /* the connection keeps its reference */
	return r;
}

Test(tls, round_trip_sendfile_and_exporter)
{
	struct tls_client_opts o = { .host = "localhost" };
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	struct conn c;
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_assert_eq(client_connect(&c, sv[1], cert_a, &o), 0, "%s", err);
	cr_expect(tls_conn_is_tls(&c));
	cr_expect_str_eq(tls_conn_version(&c), "TLSv1.3");
	cr_expect_not(tls_conn_resumed(&c));
	/* No kTLS on a Unix socket: the user-space path serves sendfile. */
	cr_expect_not(tls_conn_ktls_send(&c));
	talk(&c);
	c.ops->close(&c);
	cr_expect_eq(c.fd, -1);
	cr_expect_eq(wait_exit(pid), 20);
	SSL_CTX_free(ctx);
}

Test(tls, ip_address_name_checks)
{
	struct tls_client_opts o = { .host = "127.0.0.1" };
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	struct conn c;
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_assert_eq(client_connect(&c, sv[1], cert_a, &o), 0, "%s", err);
	talk(&c);
	c.ops->close(&c);
	cr_expect_eq(wait_exit(pid), 20);
	SSL_CTX_free(ctx);
}

/* A client made with OpenSSL directly, to offer what ours never does. */
static int raw_client(int fd, const unsigned char *alpn, unsigned alpnlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int r;

	cr_assert_not_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (alpn)
		cr_assert_eq(SSL_CTX_set_alpn_protos(ctx, alpn, alpnlen), 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	r = SSL_connect(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	ERR_clear_error();
	return r;
}

Test(tls, handshake_without_alpn_or_with_another_fails)
{
	static const unsigned char other[] = "\x08http/1.1";
	static const unsigned char both[] = "\x08http/1.1\x09tcpfile/2";
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_expect_neq(raw_client(sv[1], NULL, 0), 1);
	cr_expect_eq(wait_exit(pid), 10);

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_expect_neq(raw_client(sv[1], other, sizeof(other) - 1), 1);
	cr_expect_eq(wait_exit(pid), 10);

	/* tcpfile/2 among others is chosen (the server then waits for data
	 * that never comes, and sees EOF). */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_expect_eq(raw_client(sv[1], both, sizeof(both) - 1), 1);
	cr_expect_eq(wait_exit(pid), 11);
	SSL_CTX_free(ctx);
}

/* Runs a client handshake that must fail, with why containing want. */
static void expect_refused(const char *cafile, const struct tls_client_opts *o,
			   const char *want)
{
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	struct conn c;
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_expect_eq(client_connect(&c, sv[1], cafile, o), -EPROTO);
	cr_expect_not_null(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
	cr_expect_eq(wait_exit(pid), 10);
	SSL_CTX_free(ctx);
}

Test(tls, wrong_host_name_fails)
{
	struct tls_client_opts o = { .host = "example.com" };

	expect_refused(cert_a, &o, "certificate verify failed");
}

Test(tls, untrusted_certificate_fails)
{
	struct tls_client_opts o = { .host = "localhost" };

	expect_refused(NULL, &o, "certificate verify failed");
	expect_refused(cert_b, &o, "certificate verify failed");
}

Test(tls, pin_decides)
{
	struct tls_client_opts o = { .host = "example.com" };
	unsigned char pin[TLS_PIN_LEN];
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	struct conn c;
	int sv[2];
	pid_t pid;

	/* The right pin: accepted without a CA and whatever the name. */
	cr_assert_eq(tls_cert_pin(cert_a, pin), 0);
	o.pin = pin;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_assert_eq(client_connect(&c, sv[1], NULL, &o), 0, "%s", err);
	talk(&c);
	c.ops->close(&c);
	cr_expect_eq(wait_exit(pid), 20);
	SSL_CTX_free(ctx);

	/* Another certificate's pin, even one the CA file trusts. */
	cr_assert_eq(tls_cert_pin(cert_b, pin), 0);
	expect_refused(NULL, &o, "not the pinned certificate");
	expect_refused(cert_a, &o, "not the pinned certificate");
}

Test(tls, parse_pin)
{
	unsigned char pin[TLS_PIN_LEN];
	char text[128];
	size_t i;

	cr_expect_eq(tls_parse_pin("sha256:000102030405060708090a0b0c0d0e0f"
				   "101112131415161718191A1B1C1D1E1F", pin), 0);
	for (i = 0; i < TLS_PIN_LEN; i++)
		cr_expect_eq(pin[i], i);
	strcpy(text, "SHA256:00");
	for (i = 1; i < TLS_PIN_LEN; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ":%02zX", i);
	cr_expect_eq(tls_parse_pin(text, pin), 0, "%s", text);
	cr_expect_eq(pin[31], 31);
	cr_expect_eq(tls_parse_pin("sha256:0001", pin), -EINVAL);
	cr_expect_eq(tls_parse_pin("md5:000102030405060708090a0b0c0d0e0f"
				   "101112131415161718191a1b1c1d1e1f", pin), -EINVAL);
	cr_expect_eq(tls_parse_pin("sha256:000102030405060708090a0b0c0d0e0f"
				   "101112131415161718191a1b1c1d1e1f00", pin), -EINVAL);
	cr_expect_eq(tls_parse_pin("sha256:0g0102030405060708090a0b0c0d0e0f"
				   "101112131415161718191a1b1c1d1e1f", pin), -EINVAL);
	cr_expect_eq(tls_parse_pin("sha256:", pin), -EINVAL);
}

Test(tls, client_needs_a_host_or_a_pin)
{
	struct tls_client_opts o = { 0 };
	struct conn c;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(client_connect(&c, sv[1], cert_a, &o), -EINVAL);
	/* It took the descriptor and closed it. */
	cr_expect_eq(fcntl(sv[1], F_GETFD), -1);
	close(sv[0]);
}

Test(tls, resumption_across_forked_workers)
{
	struct tls_client_opts o = { .host = "localhost" };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	SSL_SESSION *sess;
	struct conn c;
	int lfd, fd, i, st[2];
	pid_t pid[2];

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	/* Two workers forked after the context was built, one connection each. */
	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		cr_assert_geq(pid[i], 0);
		if (pid[i] == 0) {
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				_exit(9);
			close(lfd);
			serve(fd, ctx);
		}
	}
	close(lfd);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(client_connect(&c, fd, cert_a, &o), 0, "%s", err);
	cr_log_info("kTLS send on loopback TCP: %s", tls_conn_ktls_send(&c) ? "yes" : "no");
	talk(&c);
	sess = tls_conn_session(&c);
	cr_assert_not_null(sess);
	cr_expect_not(tls_conn_resumed(&c));
	c.ops->close(&c);
	/* The worker that took the first connection accepts no other, so
	 * the second one lands on the other worker. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	o.session = sess;
	cr_assert_eq(client_connect(&c, fd, cert_a, &o), 0, "%s", err);
	cr_expect(tls_conn_resumed(&c), "the second worker did not resume the session");
	talk(&c);
	c.ops->close(&c);
	SSL_SESSION_free(sess);
	st[0] = wait_exit(pid[0]);
	st[1] = wait_exit(pid[1]);
	cr_expect(st[0] + st[1] == 41, "worker exits %d and %d", st[0], st[1]);
	SSL_CTX_free(ctx);
}

Test(tls, reload_keeps_the_old_context_on_errors)
{
	struct tls_client_opts o = { .host = "localhost" };
	unsigned char pin[TLS_PIN_LEN];
	SSL_CTX *ctx = server_ctx(cert_a, key_a), *before = ctx;
	char garbage[160];
	struct conn c;
	int sv[2], fd;
	pid_t pid;

	snprintf(garbage, sizeof(garbage), "%s/garbage.pem", tmpdir);
	fd = open(garbage, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_eq(write(fd, "not a key\n", 10), 10);
	close(fd);
	cr_expect_eq(tls_server_ctx_reload(&ctx, cert_a, key_b, TLS1_3_VERSION, err,
					   sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "mismatch"), "%s", err);
	cr_expect_eq(tls_server_ctx_reload(&ctx, cert_a, garbage, TLS1_3_VERSION, err,
					   sizeof(err)), -EINVAL);
	cr_expect_eq(tls_server_ctx_reload(&ctx, garbage, key_a, TLS1_3_VERSION, err,
					   sizeof(err)), -EINVAL);
	cr_expect_eq(tls_server_ctx_reload(&ctx, cert_a, "/nonexistent.key", TLS1_3_VERSION,
					   err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "/nonexistent.key"), "%s", err);
	cr_assert_eq(ctx, before);

	/* Still serving the old certificate. */
	cr_assert_eq(tls_cert_pin(cert_a, pin), 0);
	o.pin = pin;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_assert_eq(client_connect(&c, sv[1], NULL, &o), 0, "%s", err);
	talk(&c);
	c.ops->close(&c);
	cr_expect_eq(wait_exit(pid), 20);

	/* A good pair replaces it. */
	cr_assert_eq(tls_server_ctx_reload(&ctx, cert_b, key_b, TLS1_3_VERSION, err,
					   sizeof(err)), 0, "%s", err);
	cr_assert_eq(tls_cert_pin(cert_b, pin), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_assert_eq(client_connect(&c, sv[1], NULL, &o), 0, "%s", err);
	talk(&c);
	c.ops->close(&c);
	cr_expect_eq(wait_exit(pid), 20);
	SSL_CTX_free(ctx);
}

Test(tls, tls12_only_when_allowed)
{
	struct tls_client_opts o = { .host = "localhost" };
	SSL_CTX *ctx = NULL, *cctx = NULL;
	struct conn c;
	int sv[2];
	pid_t pid;

	cr_assert_eq(tls_client_ctx_new(cert_a, &cctx, err, sizeof(err)), 0);
	cr_assert_eq(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);

	/* Default server: 1.3 only. */
	ctx = server_ctx(cert_a, key_a);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_expect_eq(tls_conn_connect(&c, sv[1], cctx, &o, TIMEOUT_MS, err, sizeof(err)),
		     -EPROTO);
	cr_expect_eq(wait_exit(pid), 10);
	SSL_CTX_free(ctx);

	/* tls_min_version = 1.2: works, exporter included (extended master
	 * secret is on by default). */
	cr_assert_eq(tls_server_ctx_new(cert_a, key_a, TLS1_2_VERSION, &ctx, err, sizeof(err)), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_server(sv[0], ctx, sv[1]);
	cr_assert_eq(tls_conn_connect(&c, sv[1], cctx, &o, TIMEOUT_MS, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_str_eq(tls_conn_version(&c), "TLSv1.2");
	talk(&c);
	c.ops->close(&c);
	cr_expect_eq(wait_exit(pid), 20);
	SSL_CTX_free(ctx);
	SSL_CTX_free(cctx);
	cr_expect_eq(tls_server_ctx_new(cert_a, key_a, TLS1_1_VERSION, &ctx, err, sizeof(err)),
		     -EINVAL);
}

Test(tls, handshake_deadline)
{
	SSL_CTX *ctx = server_ctx(cert_a, key_a);
	uint64_t t0;
	struct conn c;
	int sv[2];

	/* A peer that connects and says nothing. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	t0 = monotonic_ms();
	cr_expect_eq(tls_conn_accept(&c, sv[0], ctx, 200, err, sizeof(err)), -ETIMEDOUT);
	cr_expect_geq(monotonic_ms() - t0, 200);
	cr_expect_lt(monotonic_ms() - t0, 3000);
	cr_expect_eq(fcntl(sv[0], F_GETFD), -1, "descriptor not closed");
	close(sv[1]);
	SSL_CTX_free(ctx);
}
