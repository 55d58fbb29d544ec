/* Integration: the tcpfile command line over TLS and with logins, against
 * the real daemon (tcps:// with --cafile and --pin, certificates it must
 * refuse, -u with $TCPFILE_PASSWORD, the credentials file, wrong
 * passwords) and against scripted servers (a TLS server offering only
 * SCRAM-SHA-256, one whose proof does not verify, a 538). */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"
#include "protocol.h"
#include "tls.h"
#include "tlsutil.h"

#define OUT_CAP 16384

static struct daemon d;
static char dir[256];
static char cfg[300];           /* XDG_CONFIG_HOME for every client run */
static char ca[300];            /* the served certificate */
static char tls_server[64];     /* "tcps://127.0.0.1:PORT" */
static uint16_t tls_port;
static char extra[4096], shares[1024];
static int fake_fd = -1;

static void client_tls_fini(void)
{
	test_release_all();
	if (fake_fd >= 0)
		close(fake_fd);
	fake_fd = -1;
	daemon_stop(&d);
	scratch_remove(dir);
}

TestSuite(client_tls, .fini = client_tls_fini, .timeout = 120);

/* Certificates a (localhost, 127.0.0.1), b (the same names, another key)
 * and other (DNS:other.example only), user alice, the config dir. */
static void make_files(void)
{
	char users[300];

	scratch_create(dir, sizeof(dir), "itest_ctls");
	tls_make_cert(dir, "a");
	tls_make_cert(dir, "b");
	tls_make_cert_for(dir, "other", "other.example", "DNS:other.example");
	snprintf(users, sizeof(users), "%s/users", dir);
	users_add(users, "alice", "alice-secret");
	snprintf(cfg, sizeof(cfg), "%s/cfg", dir);
	cr_assert_eq(mkdir(cfg, 0700), 0);
}

/* The daemon serves dir/<cert>.crt on a TLS listener beside its plain
 * one; share priv is alice's (no anonymous access), files is anonymous. */
static void start_tls_daemon(const char *cert)
{
	char priv[300];

	make_files();
	snprintf(ca, sizeof(ca), "%s/%s.crt", dir, cert);
	snprintf(priv, sizeof(priv), "%s/priv", dir);
	cr_assert_eq(mkdir(priv, 0755), 0);
	cr_assert_eq(harness_free_port(&tls_port), 0);
	snprintf(tls_server, sizeof(tls_server), "tcps://127.0.0.1:%u", (unsigned)tls_port);
	snprintf(extra, sizeof(extra),
		 "users_file = %s/users\ntls_listen = 127.0.0.1:%u\ntls_certificate = %s\n"
		 "tls_key = %s/%s.key\n", dir, (unsigned)tls_port, ca, dir, cert);
	snprintf(shares, sizeof(shares), "[priv]\npath = %s\nwrite_users = alice\n", priv);
	struct daemon_opts o = { .self_bind = true, .server_extra = extra,
				 .shares_extra = shares };
	start_daemon(&d, &o);
}

/* Starts tcpfile with args (NULL-terminated, after the program name) in a
 * session of its own (no controlling terminal: it can never sit at a
 * password prompt), XDG_CONFIG_HOME=cfg and env1/env2 ("NAME=value" or
 * NULL) added to the environment. */
static void client_spawn(struct harness_proc *p, const char *env1, const char *env2,
			 const char *const *args)
{
	const char *argv[64] = { "/usr/bin/setsid", "-w", harness_bin("TCPFILE_BIN") };
	char xdg[400];
	const char *env[4] = { xdg, NULL, NULL, NULL };
	size_t n = 3, e = 1;

	cr_assert_not_null(argv[2]);
	for (size_t i = 0; args[i]; i++) {
		cr_assert_lt(n, 63);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	snprintf(xdg, sizeof(xdg), "XDG_CONFIG_HOME=%s", cfg);
	if (env1)
		env[e++] = env1;
	if (env2)
		env[e++] = env2;
	cr_assert_eq(harness_spawn(argv, env, p), 0);
}

/* Runs tcpfile as client_spawn does; its output into out.  Returns its
 * exit status. */
static int client_run(char *out, const char *env1, const char *env2, const char *const *args)
{
	struct harness_proc p;

	client_spawn(&p, env1, env2, args);
	return harness_proc_wait(&p, out, OUT_CAP, HARNESS_RUN_TIMEOUT_MS);
}

#define RUN(out, env1, env2, ...) \
	client_run(out, env1, env2, (const char *const[]){ __VA_ARGS__, NULL })

/* ---- TLS -------------------------------------------------------------- */

Test(client_tls, put_get_ls_stat_rm_with_cafile)
{
	char out[OUT_CAP], local[400], back[400], remote[400];
	size_t n = 2 * 1024 * 1024 + 5;
	int st;

	start_tls_daemon("a");
	unsigned char *p = random_buf(n);
	path_join(local, sizeof(local), dir, "up.bin");
	write_file(local, p, n);

	st = RUN(out, NULL, NULL, "-q", "-s", tls_server, "--cafile", ca, "put", local,
		 "files/tls/up.bin");
	cr_assert_eq(st, 0, "put: %d\n%s", st, out);
	path_join(remote, sizeof(remote), d.share_dir, "tls/up.bin");
	cr_assert(file_is(remote, p, n));

	path_join(back, sizeof(back), dir, "back.bin");
	st = RUN(out, NULL, NULL, "-q", "-s", tls_server, "--cafile", ca, "get",
		 "files/tls/up.bin", back);
	cr_assert_eq(st, 0, "get: %d\n%s", st, out);
	cr_assert(file_is(back, p, n));

	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "ls", "-l", "files/tls");
	cr_assert_eq(st, 0, "ls: %d\n%s", st, out);
	cr_assert_not_null(strstr(out, "2097157 "), "%s", out);
	cr_assert_not_null(strstr(out, "up.bin"), "%s", out);

	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "stat", "files/tls/up.bin");
	cr_assert_eq(st, 0, "stat: %d\n%s", st, out);
	cr_assert_not_null(strstr(out, "type: file\nsize: 2097157\n"), "%s", out);

	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "rm", "files/tls/up.bin");
	cr_assert_eq(st, 0, "rm: %d\n%s", st, out);
	cr_assert(!path_exists(remote));
	/* The transfers above really went through the TLS listener. */
	cr_expect(daemon_log_contains(&d, "TLS downloads in this worker:"));
}

Test(client_tls, pin_trusts_exactly_that_certificate)
{
	char out[OUT_CAP], hex[65], pin[80], colons[120], local[400];
	int st;

	start_tls_daemon("a");
	path_join(local, sizeof(local), d.share_dir, "pinned.txt");
	write_file(local, "pinned\n", 7);
	tls_file_fingerprint(ca, hex);
	snprintf(pin, sizeof(pin), "sha256:%s", hex);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--pin", pin, "get", "files/pinned.txt", "-");
	cr_assert_eq(st, 0, "%d\n%s", st, out);
	cr_assert_str_eq(out, "pinned\n");

	/* As `openssl x509 -fingerprint -sha256` prints it: upper case, colons. */
	size_t k = snprintf(colons, sizeof(colons), "SHA256:");
	for (int i = 0; i < 64; i += 2)
		k += snprintf(colons + k, sizeof(colons) - k, "%s%c%c", i ? ":" : "",
			      hex[i] >= 'a' ? hex[i] - 32 : hex[i],
			      hex[i + 1] >= 'a' ? hex[i + 1] - 32 : hex[i + 1]);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--pin", colons, "ls", "files");
	cr_assert_eq(st, 0, "%s: %d\n%s", colons, st, out);
	cr_assert_not_null(strstr(out, "pinned.txt"), "%s", out);

	/* A malformed pin, or a pin for a plain server, is a usage error. */
	st = RUN(out, NULL, NULL, "-s", tls_server, "--pin", "sha256:abcd", "ls", "files");
	cr_expect_eq(st, 64, "%d\n%s", st, out);
	st = RUN(out, NULL, NULL, "-s", d.server, "--pin", pin, "ls", "files");
	cr_expect_eq(st, 64, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "tcps://"), "%s", out);
}

Test(client_tls, refuses_untrusted_certificate)
{
	char out[OUT_CAP], b[300];
	int st;

	start_tls_daemon("a");
	/* The system's CA store has never heard of a. */
	st = RUN(out, NULL, NULL, "-s", tls_server, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "certificate verify failed"), "%s", out);
	cr_expect_not_null(strstr(out, "--cafile"), "%s", out);
	/* Trusting another certificate does not help. */
	snprintf(b, sizeof(b), "%s/b.crt", dir);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", b, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "certificate verify failed"), "%s", out);
	/* A --cafile that cannot be read fails before connecting. */
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", "/nonexistent.pem", "ls", "files");
	cr_expect_eq(st, 1, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "/nonexistent.pem"), "%s", out);
}

Test(client_tls, refuses_wrong_host_name)
{
	char out[OUT_CAP], server[80], hex[65], pin[80];
	int st;

	start_tls_daemon("other");
	/* The certificate names only other.example: neither 127.0.0.1 ... */
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "IP address mismatch"), "%s", out);
	cr_expect_not_null(strstr(out, "not issued for this host"), "%s", out);
	/* ... nor localhost. */
	snprintf(server, sizeof(server), "tcps://localhost:%u", (unsigned)tls_port);
	st = RUN(out, NULL, NULL, "-s", server, "--cafile", ca, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "hostname mismatch"), "%s", out);
	/* A pin trusts that one certificate whatever names it carries. */
	tls_file_fingerprint(ca, hex);
	snprintf(pin, sizeof(pin), "sha256:%s", hex);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--pin", pin, "ls", "files");
	cr_assert_eq(st, 0, "%d\n%s", st, out);
}

Test(client_tls, refuses_mismatching_pin)
{
	char out[OUT_CAP], b[300], hex[65], pin[80];
	int st;

	start_tls_daemon("a");
	snprintf(b, sizeof(b), "%s/b.crt", dir);
	tls_file_fingerprint(b, hex);
	snprintf(pin, sizeof(pin), "sha256:%s", hex);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--pin", pin, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "not the pinned certificate"), "%s", out);
	/* Even with a CA that would vouch for it: the pin rules. */
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "--pin", pin, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
}

Test(client_tls, tls_client_on_a_plain_port)
{
	char out[OUT_CAP], server[80];
	int st;

	start_tls_daemon("a");
	snprintf(server, sizeof(server), "tcps://%s", d.server);
	st = RUN(out, NULL, NULL, "-s", server, "--cafile", ca, "ls", "files");
	cr_assert_eq(st, 76, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "no TLS on this port"), "%s", out);
}

/* ---- logins against the daemon ---------------------------------------- */

Test(client_tls, login_with_env_password)
{
	char out[OUT_CAP], local[400], remote[400];
	int st;

	start_tls_daemon("a");
	path_join(local, sizeof(local), dir, "mine.txt");
	write_file(local, "mine\n", 5);

	/* Without a login: 530, with a hint at -u. */
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "ls", "priv");
	cr_assert_eq(st, 1, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "530"), "%s", out);
	cr_expect_not_null(strstr(out, "-u USER"), "%s", out);

	st = RUN(out, "TCPFILE_PASSWORD=alice-secret", NULL, "-q", "-s", tls_server, "--cafile",
		 ca, "-u", "alice", "put", local, "priv/mine.txt");
	cr_assert_eq(st, 0, "%d\n%s", st, out);
	snprintf(remote, sizeof(remote), "%s/priv/mine.txt", dir);
	cr_assert(file_is(remote, "mine\n", 5));
	cr_expect(daemon_log_contains(&d, "user alice logged in (SCRAM-SHA-256-PLUS"));

	/* $TCPFILE_USER instead of -u. */
	st = RUN(out, "TCPFILE_PASSWORD=alice-secret", "TCPFILE_USER=alice", "-s", tls_server,
		 "--cafile", ca, "get", "priv/mine.txt", "-");
	cr_assert_eq(st, 0, "%d\n%s", st, out);
	cr_assert_str_eq(out, "mine\n");
	st = RUN(out, "TCPFILE_PASSWORD=alice-secret", "TCPFILE_USER=alice", "-s", tls_server,
		 "--cafile", ca, "rm", "priv/mine.txt", "priv/nothing");
	cr_assert_eq(st, 1, "%d\n%s", st, out);
	cr_assert(!path_exists(remote));
	cr_expect_not_null(strstr(out, "rm priv/nothing: 550"), "%s", out);

	/* Plain TCP from loopback: SCRAM-SHA-256 without channel binding. */
	st = RUN(out, "TCPFILE_PASSWORD=alice-secret", NULL, "-s", d.server, "-u", "alice", "ls",
		 "priv");
	cr_assert_eq(st, 0, "%d\n%s", st, out);
	cr_expect(daemon_log_contains(&d, "user alice logged in (SCRAM-SHA-256,"),
		  "the plain login shows in the log");
}

Test(client_tls, wrong_password_is_77)
{
	char out[OUT_CAP];
	int st;

	start_tls_daemon("a");
	int64_t t0 = harness_now_ms();
	st = RUN(out, "TCPFILE_PASSWORD=not-her-secret", NULL, "-s", tls_server, "--cafile", ca,
		 "-u", "alice", "ls", "priv");
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "login as alice: authentication failed"), "%s", out);
	cr_expect_null(strstr(out, "not-her-secret"), "the password is never shown: %s", out);
	/* The server answers failures after its fixed delay. */
	cr_expect_geq(harness_now_ms() - t0, 900);
	/* An unknown user reads the same. */
	st = RUN(out, "TCPFILE_PASSWORD=whatever", NULL, "-s", tls_server, "--cafile", ca,
		 "-u", "mallory", "ls", "priv");
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "login as mallory: authentication failed"), "%s", out);
}

static void write_credentials(const char *text, mode_t mode)
{
	char sub[400], path[450];
	int fd;

	snprintf(sub, sizeof(sub), "%s/tcpfile", cfg);
	if (mkdir(sub, 0700) < 0)
		cr_assert_eq(errno, EEXIST);
	snprintf(path, sizeof(path), "%s/credentials", sub);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

Test(client_tls, credentials_file)
{
	char out[OUT_CAP], text[512];
	int st;

	start_tls_daemon("a");
	snprintf(text, sizeof(text),
		 "# tcpfile credentials\n127.0.0.1:1 alice wrong-port\n"
		 "127.0.0.1:%u alice alice-secret\n", (unsigned)tls_port);
	write_credentials(text, 0600);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "-u", "alice", "ls", "priv");
	cr_assert_eq(st, 0, "%d\n%s", st, out);

	/* $TCPFILE_PASSWORD comes first. */
	st = RUN(out, "TCPFILE_PASSWORD=bad", NULL, "-s", tls_server, "--cafile", ca, "-u",
		 "alice", "ls", "priv");
	cr_assert_eq(st, 77, "%d\n%s", st, out);

	/* Readable by others: refused, nothing sent. */
	write_credentials(text, 0644);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "-u", "alice", "ls", "priv");
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "mode 0644"), "%s", out);
	cr_expect_not_null(strstr(out, "chmod 600"), "%s", out);
	cr_expect_null(strstr(out, "alice-secret"), "%s", out);

	/* No line for this server, no terminal, no $TCPFILE_PASSWORD. */
	write_credentials("other.example alice x\n", 0600);
	st = RUN(out, NULL, NULL, "-s", tls_server, "--cafile", ca, "-u", "alice", "ls", "priv");
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "no password"), "%s", out);
	cr_expect_not_null(strstr(out, "TCPFILE_PASSWORD"), "%s", out);
}

/* ---- scripted servers ---------------------------------------------------- */

enum fake_act {
	FAKE_EXPECT_NO_AUTH,    /* the client must close without an AUTH */
	FAKE_BAD_PROOF,         /* a SCRAM exchange whose server-final is wrong */
	FAKE_ENCRYPTION,        /* AUTH gets ERR 538 */
};

/* A listening socket on 127.0.0.1 (fake_fd); returns its port. */
static uint16_t fake_listen(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	signal(SIGPIPE, SIG_IGN);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	fake_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fake_fd, 0);
	cr_assert_eq(bind(fake_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fake_fd, 4), 0);
	cr_assert_eq(getsockname(fake_fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void fake_send(struct conn *c, const char *line)
{
	cr_assert_eq(conn_write(c, line, strlen(line), false), 0);
}

/* One line into out; false at EOF. */
static bool fake_line(struct linebuf *lb, char *out, size_t cap)
{
	char *line;
	size_t len;
	int r = linebuf_read_line(lb, &line, &len);

	/* The client's close, with or without close_notify. */
	if (r == 0 || r == -ECONNRESET || r == -EPROTO)
		return false;
	cr_assert_eq(r, 1, "read: %d", r);
	cr_assert_lt(len, cap);
	memcpy(out, line, len + 1);
	return true;
}

static void fake_b64_send(struct conn *c, const char *prefix, const char *msg,
			  const char *suffix)
{
	char b64[1024], line[1200];

	cr_assert_geq(proto_base64_encode(msg, strlen(msg), b64, sizeof(b64)), 0);
	snprintf(line, sizeof(line), "%s%s%s\n", prefix, b64, suffix);
	fake_send(c, line);
}

/* Serves one connection on fake_fd (TLS with dir/a when tls) greeting
 * with greeting, then acts.  Returns whether an AUTH line arrived. */
static bool fake_serve(bool tls, const char *greeting, enum fake_act act)
{
	char line[HARNESS_LINE_CAP], msg[1024], err[TLS_ERROR_MAX], crt[300], key[300];
	struct pollfd pfd = { .fd = fake_fd, .events = POLLIN };
	SSL_CTX *ctx = NULL;
	struct linebuf lb;
	struct conn c;
	bool auth = false;
	int fd;

	cr_assert_eq(poll(&pfd, 1, HARNESS_TIMEOUT_MS), 1, "no client came");
	fd = accept4(fake_fd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(socket_set_timeouts(fd, HARNESS_TIMEOUT_MS), 0);
	if (tls) {
		snprintf(crt, sizeof(crt), "%s/a.crt", dir);
		snprintf(key, sizeof(key), "%s/a.key", dir);
		cr_assert_eq(tls_server_ctx_new(crt, key, TLS1_3_VERSION, &ctx, err, sizeof(err)),
			     0, "%s", err);
		cr_assert_eq(tls_conn_accept(&c, fd, ctx, HARNESS_TIMEOUT_MS, err, sizeof(err)), 0,
			     "%s", err);
	} else {
		conn_init_plain(&c, fd);
	}
	cr_assert_eq(linebuf_init(&lb, &c, PROTO_MAX_LINE), 0);
	fake_send(&c, greeting);
	cr_assert(fake_line(&lb, line, sizeof(line)));
	cr_assert(strncmp(line, "HELLO 2 ", 8) == 0, "%s", line);
	fake_send(&c, "OK version=2\n");
	while (fake_line(&lb, line, sizeof(line))) {
		if (strncmp(line, "AUTH ", 5) != 0)
			continue;
		auth = true;
		if (act == FAKE_ENCRYPTION) {
			fake_send(&c, "ERR 538 encryption required: log in over TLS\n");
			continue;
		}
		if (act != FAKE_BAD_PROOF)
			continue;
		/* client-first: gs2 header, then n=USER,r=NONCE. */
		const char *b64 = strrchr(line, ' ') + 1;
		int n = proto_base64_decode(b64, strlen(b64), msg, sizeof(msg) - 1);
		cr_assert_gt(n, 0);
		msg[n] = '\0';
		char *nonce = strstr(msg, ",r=");
		cr_assert_not_null(nonce, "%s", msg);
		char first[600];
		snprintf(first, sizeof(first), "r=%sfake0nonce,s=c2FsdHNhbHRzYWx0,i=4096",
			 nonce + 3);
		fake_b64_send(&c, "+ ", first, "");
		cr_assert(fake_line(&lb, line, sizeof(line)));
		cr_assert(strncmp(line, "+ ", 2) == 0, "client-final: %s", line);
		/* A proof made without the verifier: 32 zero bytes. */
		fake_b64_send(&c, "OK user=alice data=",
			      "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "");
	}
	linebuf_finish(&lb);
	conn_close(&c);
	SSL_CTX_free(ctx);
	return auth;
}

Test(client_tls, refuses_plain_scram_on_tls)
{
	char out[OUT_CAP], server[64], crt[300];
	struct harness_proc p;
	int st;

	make_files();
	snprintf(crt, sizeof(crt), "%s/a.crt", dir);
	snprintf(server, sizeof(server), "tcps://127.0.0.1:%u", (unsigned)fake_listen());
	client_spawn(&p, "TCPFILE_PASSWORD=alice-secret", NULL,
		     (const char *const[]){ "-s", server, "--cafile", crt, "-u", "alice", "ls",
					    "priv", NULL });
	bool auth = fake_serve(true, "TCPFILE 2 server=fake/1 auth=SCRAM-SHA-256\n",
			       FAKE_EXPECT_NO_AUTH);
	st = harness_proc_wait(&p, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert(!auth, "the client sent AUTH without channel binding over TLS");
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "refusing a login without channel binding"), "%s", out);
}

Test(client_tls, refuses_a_server_proof_that_does_not_verify)
{
	char out[OUT_CAP], server[64], crt[300];
	struct harness_proc p;
	int st;

	make_files();
	snprintf(crt, sizeof(crt), "%s/a.crt", dir);
	snprintf(server, sizeof(server), "tcps://127.0.0.1:%u", (unsigned)fake_listen());
	client_spawn(&p, "TCPFILE_PASSWORD=alice-secret", NULL,
		     (const char *const[]){ "-s", server, "--cafile", crt, "-u", "alice", "ls",
					    "priv", NULL });
	bool auth = fake_serve(true, "TCPFILE 2 server=fake/1 auth=SCRAM-SHA-256-PLUS\n",
			       FAKE_BAD_PROOF);
	st = harness_proc_wait(&p, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert(auth);
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "proof does not verify"), "%s", out);
}

Test(client_tls, encryption_required_suggests_tcps)
{
	char out[OUT_CAP], server[64];
	struct harness_proc p;
	int st;

	make_files();
	snprintf(server, sizeof(server), "127.0.0.1:%u", (unsigned)fake_listen());
	client_spawn(&p, "TCPFILE_PASSWORD=alice-secret", NULL,
		     (const char *const[]){ "-s", server, "-u", "alice", "ls", "priv", NULL });
	bool auth = fake_serve(false, "TCPFILE 2 server=fake/1 auth=SCRAM-SHA-256\n",
			       FAKE_ENCRYPTION);
	st = harness_proc_wait(&p, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert(auth);
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "538"), "%s", out);
	cr_expect_not_null(strstr(out, "use -s tcps://127.0.0.1"), "%s", out);
}

Test(client_tls, no_login_offered_on_plain)
{
	char out[OUT_CAP], server[64];
	struct harness_proc p;
	int st;

	make_files();
	snprintf(server, sizeof(server), "127.0.0.1:%u", (unsigned)fake_listen());
	client_spawn(&p, "TCPFILE_PASSWORD=alice-secret", NULL,
		     (const char *const[]){ "-s", server, "-u", "alice", "ls", "priv", NULL });
	bool auth = fake_serve(false, "TCPFILE 2 server=fake/1\n", FAKE_EXPECT_NO_AUTH);
	st = harness_proc_wait(&p, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert(!auth);
	cr_assert_eq(st, 77, "%d\n%s", st, out);
	cr_expect_not_null(strstr(out, "offers no login"), "%s", out);
	cr_expect_not_null(strstr(out, "tcps://"), "%s", out);
}
