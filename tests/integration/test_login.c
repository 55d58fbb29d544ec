/* Integration: logins (SCRAM-SHA-256-PLUS on TLS, SCRAM-SHA-256 on
 * loopback), failures that look alike, replay, downgrade, a relay that
 * terminates TLS, per-user share access, and plaintext from another host. */
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include "harness.h"
#include "tlsutil.h"

static struct daemon d;
static char dir[256];
static uint16_t tls_port;
static char extra[4096], shares[1024], ca[300];
static pid_t helper = -1;
static char netns[64];

static void login_fini(void)
{
	char out[1024];

	test_release_all();
	if (helper > 0) {
		kill(helper, SIGKILL);
		waitpid(helper, NULL, 0);
	}
	if (netns[0]) {
		const char *del[] = { "/usr/sbin/ip", "netns", "del", netns, NULL };
		(void)harness_run(del, out, sizeof(out));
		const char *link[] = { "/usr/sbin/ip", "link", "del", "tfv0", NULL };
		(void)harness_run(link, out, sizeof(out));
	}
	daemon_stop(&d);
	scratch_remove(dir);
}

TestSuite(login, .fini = login_fini, .timeout = 120);

/* Users alice (writes priv), bob (reads priv) and carol (nothing on
 * priv); share priv needs a login; files and ro stay anonymous. */
static void start_login_daemon(const char *more, bool self_bind)
{
	char users[300], priv[300];

	scratch_create(dir, sizeof(dir), "itest_login");
	tls_make_cert(dir, "a");
	snprintf(ca, sizeof(ca), "%s/a.crt", dir);
	snprintf(users, sizeof(users), "%s/users", dir);
	users_add(users, "alice", "alice-secret");
	users_add(users, "bob", "bob-secret");
	users_add(users, "carol", "carol-secret");
	snprintf(priv, sizeof(priv), "%s/priv", dir);
	cr_assert_eq(mkdir(priv, 0755), 0);
	write_file("/dev/null", "", 0);
	char hello[400];
	snprintf(hello, sizeof(hello), "%s/hello.txt", priv);
	write_file(hello, "hello\n", 6);
	cr_assert_eq(harness_free_port(&tls_port), 0);
	snprintf(extra, sizeof(extra),
		 "users_file = %s\ntls_listen = %s:%u\ntls_certificate = %s/a.crt\n"
		 "tls_key = %s/a.key\n%s", users, self_bind ? "127.0.0.1" : "127.0.0.1",
		 (unsigned)tls_port, dir, dir, more ? more : "");
	snprintf(shares, sizeof(shares),
		 "[priv]\npath = %s\nread_users = bob\nwrite_users = alice\n", priv);
	struct daemon_opts o = { .self_bind = true, .server_extra = extra,
				 .shares_extra = shares };
	start_daemon(&d, &o);
}

Test(login, plus_over_tls_and_plain_on_loopback)
{
	char greeting[HARNESS_LINE_CAP], line[HARNESS_LINE_CAP];
	struct tconn c;

	start_login_daemon(NULL, true);
	tconn_hello(&c, tls_port, ca, greeting, sizeof(greeting));
	cr_assert_not_null(strstr(greeting, " auth=SCRAM-SHA-256-PLUS"), "%s", greeting);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256-PLUS", "alice", "alice-secret", line,
			      sizeof(line), NULL, 0, NULL), "%s", line);
	cr_expect(strncmp(line, "OK user=alice data=", 19) == 0, "%s", line);
	/* A second AUTH is refused without a new exchange. */
	tconn_printf(&c, "AUTH SCRAM-SHA-256-PLUS Zm9v\n");
	tconn_line(&c, line, sizeof(line));
	cr_expect_str_eq(line, "ERR 501 bad argument: already logged in");
	tconn_close(&c);
	cr_expect(daemon_log_contains(&d, "user alice logged in (SCRAM-SHA-256-PLUS"));

	tconn_hello(&c, d.port, NULL, greeting, sizeof(greeting));
	cr_assert_not_null(strstr(greeting, " auth=SCRAM-SHA-256"), "%s", greeting);
	cr_assert_null(strstr(greeting, "PLUS"), "%s", greeting);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256", "bob", "bob-secret", line, sizeof(line),
			      NULL, 0, NULL), "%s", line);
	tconn_close(&c);
}

static int64_t timed_login(const char *user, const char *pw, char *line, size_t cap)
{
	struct tconn c;

	tconn_hello(&c, tls_port, ca, NULL, 0);
	int64_t t0 = harness_now_ms();
	cr_assert(!tconn_login(&c, "SCRAM-SHA-256-PLUS", user, pw, line, cap, NULL, 0, NULL));
	int64_t t = harness_now_ms() - t0;
	tconn_close(&c);
	return t;
}

Test(login, wrong_password_and_unknown_user_look_alike)
{
	char l1[HARNESS_LINE_CAP], l2[HARNESS_LINE_CAP];

	start_login_daemon(NULL, true);
	int64_t t1 = timed_login("alice", "wrong", l1, sizeof(l1));
	int64_t t2 = timed_login("mallory", "whatever", l2, sizeof(l2));
	cr_expect_str_eq(l1, "ERR 535 authentication failed");
	cr_expect_str_eq(l2, l1);
	cr_expect_geq(t1, 1000, "wrong password answered after %lld ms", (long long)t1);
	cr_expect_geq(t2, 1000, "unknown user answered after %lld ms", (long long)t2);
	cr_expect_lt(llabs(t1 - t2), 300, "timings %lld vs %lld ms", (long long)t1, (long long)t2);
	cr_expect(daemon_log_contains(&d, "login failed for user \"alice\""));
	cr_expect(daemon_log_contains(&d, "login failed for user \"mallory\""));
	cr_expect(daemon_log_contains(&d, "unknown user"));
}

Test(login, third_failure_closes)
{
	char line[HARNESS_LINE_CAP];
	struct tconn c;

	start_login_daemon(NULL, true);
	tconn_hello(&c, d.port, NULL, NULL, 0);
	for (int i = 0; i < 3; i++) {
		cr_assert(!tconn_login(&c, "SCRAM-SHA-256", "bob", "nope", line, sizeof(line),
				       NULL, 0, NULL));
		cr_expect_str_eq(line, "ERR 535 authentication failed");
	}
	cr_expect(!tconn_try_line(&c, line, sizeof(line)), "closed after 3 failures");
	tconn_close(&c);
}

Test(login, replayed_client_final_fails)
{
	char line[HARNESS_LINE_CAP], sent[HARNESS_LINE_CAP];
	struct tconn c;

	start_login_daemon(NULL, true);
	tconn_hello(&c, d.port, NULL, NULL, 0);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256", "bob", "bob-secret", line, sizeof(line),
			      sent, sizeof(sent), NULL), "%s", line);
	tconn_close(&c);
	tconn_hello(&c, d.port, NULL, NULL, 0);
	cr_assert(!tconn_login(&c, "SCRAM-SHA-256", "bob", "bob-secret", line, sizeof(line),
			       NULL, 0, sent));
	cr_expect_str_eq(line, "ERR 535 authentication failed");
	tconn_close(&c);
}

Test(login, plain_scram_on_tls_is_a_downgrade)
{
	char line[HARNESS_LINE_CAP];
	struct tconn c;

	start_login_daemon(NULL, true);
	tconn_hello(&c, tls_port, ca, NULL, 0);
	tconn_printf(&c, "AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWFiY2RlZmdoaWprbG1ub3A=\n");
	tconn_line(&c, line, sizeof(line));
	cr_expect(strncmp(line, "ERR 538 encryption required", 27) == 0, "%s", line);
	/* Still usable: the client may go on (or log in properly). */
	cr_assert(tconn_login(&c, "SCRAM-SHA-256-PLUS", "alice", "alice-secret", line,
			      sizeof(line), NULL, 0, NULL), "%s", line);
	tconn_close(&c);
}

/* A man in the middle holding a certificate the client trusts: it ends
 * the client's TLS and opens its own to the daemon (with ALPN tcpfile/2),
 * relaying bytes.  Runs in a child until killed. */
static void relay_run(int lfd)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
	char crt[300], key[300];
	static const unsigned char alpn[] = "\x09tcpfile/2";

	snprintf(crt, sizeof(crt), "%s/a.crt", dir);
	snprintf(key, sizeof(key), "%s/a.key", dir);
	if (!sctx || !cctx || SSL_CTX_use_certificate_chain_file(sctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1)
		_exit(2);
	int cfd = accept(lfd, NULL, NULL);
	SSL *in = SSL_new(sctx), *out = SSL_new(cctx);
	SSL_set_fd(in, cfd);
	if (SSL_accept(in) != 1)
		_exit(3);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(tls_port) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int sfd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(sfd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		_exit(4);
	SSL_set_fd(out, sfd);
	SSL_set_alpn_protos(out, alpn, sizeof(alpn) - 1);
	if (SSL_connect(out) != 1)
		_exit(5);
	for (;;) {
		struct pollfd p[2] = { { .fd = cfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		char buf[16384];
		size_t n;

		if (!SSL_pending(in) && !SSL_pending(out) && poll(p, 2, -1) < 0)
			_exit(6);
		if ((SSL_pending(in) || p[0].revents) ) {
			if (SSL_read_ex(in, buf, sizeof(buf), &n) != 1 || SSL_write_ex(out, buf, n, &n) != 1)
				_exit(0);
		}
		if ((SSL_pending(out) || p[1].revents)) {
			if (SSL_read_ex(out, buf, sizeof(buf), &n) != 1 || SSL_write_ex(in, buf, n, &n) != 1)
				_exit(0);
		}
	}
}

Test(login, relay_terminating_tls_cannot_log_in)
{
	char line[HARNESS_LINE_CAP];
	uint16_t rport;
	struct tconn c;

	start_login_daemon(NULL, true);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	rport = ntohs(sin.sin_port);
	helper = fork();
	cr_assert_geq(helper, 0);
	if (helper == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		relay_run(lfd);
	}
	close(lfd);
	/* Through the relay the protocol works (the relay is transparent)... */
	tconn_hello(&c, rport, ca, NULL, 0);
	/* ...but the -PLUS login binds to the client's TLS leg, not the
	 * daemon's: the exporters differ and the login fails. */
	cr_assert(!tconn_login(&c, "SCRAM-SHA-256-PLUS", "alice", "alice-secret", line,
			       sizeof(line), NULL, 0, NULL));
	cr_expect_str_eq(line, "ERR 535 authentication failed");
	tconn_close(&c);
	cr_expect(daemon_log_contains(&d, "login failed for user \"alice\""));
}

static void expect_cmd(struct tconn *c, const char *cmd, const char *want)
{
	char line[HARNESS_LINE_CAP];

	tconn_printf(c, "%s\n", cmd);
	tconn_line(c, line, sizeof(line));
	cr_expect(strncmp(line, want, strlen(want)) == 0, "%s -> %s (want %s)", cmd, line, want);
}

Test(login, per_user_share_access)
{
	char line[HARNESS_LINE_CAP], nosuch[HARNESS_LINE_CAP];
	struct tconn c;

	start_login_daemon(NULL, true);
	/* No login: the anonymous share works, priv and a missing share look alike. */
	tconn_hello(&c, tls_port, ca, NULL, 0);
	expect_cmd(&c, "STAT files", "OK type=d");
	expect_cmd(&c, "LIST priv", "ERR 530 login required");
	expect_cmd(&c, "LIST nosuch", "ERR 530 login required");
	expect_cmd(&c, "GET priv/hello.txt", "ERR 530 login required");
	tconn_close(&c);

	/* bob reads priv, cannot write or delete. */
	tconn_hello(&c, tls_port, ca, NULL, 0);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256-PLUS", "bob", "bob-secret", line, sizeof(line),
			      NULL, 0, NULL), "%s", line);
	expect_cmd(&c, "STAT priv/hello.txt", "OK type=f size=6");
	tconn_put(&c, "priv/new.txt", "x", 1, line, sizeof(line));
	cr_expect_str_eq(line, "ERR 553 forbidden: no write access");
	expect_cmd(&c, "DEL priv/hello.txt", "ERR 553 forbidden: no write access");
	expect_cmd(&c, "STAT files", "OK type=d");
	tconn_close(&c);

	/* carol: priv is exactly a missing share. */
	tconn_hello(&c, tls_port, ca, NULL, 0);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256-PLUS", "carol", "carol-secret", line,
			      sizeof(line), NULL, 0, NULL), "%s", line);
	tconn_printf(&c, "LIST priv\n");
	tconn_line(&c, line, sizeof(line));
	tconn_printf(&c, "LIST nosuch\n");
	tconn_line(&c, nosuch, sizeof(nosuch));
	cr_expect_str_eq(line, "ERR 550 not found: no such share");
	cr_expect_str_eq(line, nosuch);
	tconn_close(&c);

	/* alice writes. */
	tconn_hello(&c, tls_port, ca, NULL, 0);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256-PLUS", "alice", "alice-secret", line,
			      sizeof(line), NULL, 0, NULL), "%s", line);
	tconn_put(&c, "priv/new.txt", "abc", 3, line, sizeof(line));
	cr_expect(strncmp(line, "OK", 2) == 0, "%s", line);
	expect_cmd(&c, "DEL priv/new.txt", "OK");
	tconn_close(&c);
}

Test(login, users_follow_a_reload_in_flight)
{
	char line[HARNESS_LINE_CAP], msg[1024], users[300];
	struct tconn c;

	start_login_daemon(NULL, true);
	tconn_hello(&c, tls_port, ca, NULL, 0);
	cr_assert(tconn_login(&c, "SCRAM-SHA-256-PLUS", "bob", "bob-secret", line, sizeof(line),
			      NULL, 0, NULL), "%s", line);
	expect_cmd(&c, "STAT priv/hello.txt", "OK");
	/* bob leaves the users file; his connection follows at its next request. */
	snprintf(users, sizeof(users), "%s/users", dir);
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(users, "re");
	cr_assert_not_null(f);
	cr_assert_gt(getdelim(&text, &len, '\0', f), 0);
	fclose(f);
	char *bob = strstr(text, "bob:");
	cr_assert_not_null(bob);
	char *eol = strchr(bob, '\n');
	memmove(bob, eol + 1, strlen(eol + 1) + 1);
	write_file(users, text, strlen(text));
	free(text);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	expect_cmd(&c, "STAT priv/hello.txt", "ERR 530 login required");
	tconn_close(&c);
	cr_expect(daemon_log_contains(&d, "no longer in the reloaded users file"));
}

/* Runs argv, returns its status (output kept in out). */
static int run(char *out, size_t cap, const char *const *argv)
{
	return harness_run(argv, out, cap);
}

Test(login, plaintext_login_from_another_host_is_refused)
{
	char out[8192], port[16], hostaddr[64];

	if (geteuid() != 0)
		cr_skip_test("network namespaces need root");
	snprintf(netns, sizeof(netns), "tfns%d", (int)getpid());
	const char *add[] = { "/usr/sbin/ip", "netns", "add", netns, NULL };
	if (run(out, sizeof(out), add) != 0) {
		netns[0] = '\0';
		cr_skip_test("cannot create a network namespace: %s", out);
	}
	/* `ip netns exec` remounts / as a slave; in a chroot (no mount point
	 * at /) that fails although the namespace itself was made. */
	const char *probe[] = { "/usr/sbin/ip", "netns", "exec", netns, "/bin/true", NULL };
	if (run(out, sizeof(out), probe) != 0)
		cr_skip_test("cannot run in a network namespace here: %s", out);
	const char *veth[] = { "/usr/sbin/ip", "link", "add", "tfv0", "type", "veth", "peer",
			       "name", "tfv1", "netns", netns, NULL };
	if (run(out, sizeof(out), veth) != 0)
		cr_skip_test("cannot create a veth pair: %s", out);
	const char *const steps[][12] = {
		{ "/usr/sbin/ip", "addr", "add", "10.199.77.1/24", "dev", "tfv0", NULL },
		{ "/usr/sbin/ip", "link", "set", "tfv0", "up", NULL },
		{ "/usr/sbin/ip", "netns", "exec", netns, "/usr/sbin/ip", "addr", "add",
		  "10.199.77.2/24", "dev", "tfv1", NULL },
		{ "/usr/sbin/ip", "netns", "exec", netns, "/usr/sbin/ip", "link", "set", "tfv1",
		  "up", NULL },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		cr_assert_eq(run(out, sizeof(out), steps[i]), 0, "%s", out);

	scratch_create(dir, sizeof(dir), "itest_login");
	char users[300];
	snprintf(users, sizeof(users), "%s/users", dir);
	users_add(users, "alice", "alice-secret");
	uint16_t p;
	cr_assert_eq(harness_free_port(&p), 0);
	snprintf(extra, sizeof(extra), "users_file = %s\nlisten = 10.199.77.1:%u\n", users,
		 (unsigned)p);
	struct daemon_opts o = { .self_bind = true, .server_extra = extra };
	/* The harness's own listen line comes first; ours replaces it. */
	start_daemon(&d, &o);

	/* A client in the namespace: greeting without auth=, AUTH -> 538,
	 * the anonymous share -> 550 (anonymous is for loopback only). */
	snprintf(port, sizeof(port), "%u", (unsigned)p);
	snprintf(hostaddr, sizeof(hostaddr), "TCP:10.199.77.1:%s", port);
	const char *client[] = {
		"/usr/sbin/ip", "netns", "exec", netns, "/usr/bin/socat", "-t", "3", "-",
		hostaddr, NULL,
	};
	char in_path[300];
	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	const char *script = HARNESS_HELLO "\nAUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWFiY2Q=\n"
			     "STAT files\nQUIT\n";
	write_file(in_path, script, strlen(script));
	int in = open(in_path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(in, 0);
	struct harness_proc hp;
	cr_assert_eq(harness_spawn_in(client, NULL, in, &hp), 0);
	close(in);
	int st = harness_proc_wait(&hp, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert_eq(st, 0, "socat: %d: %s", st, out);
	cr_expect_not_null(strstr(out, "TCPFILE 2"), "%s", out);
	cr_expect_null(strstr(out, "auth="), "no auth= for a remote plain peer: %s", out);
	cr_expect_not_null(strstr(out, "ERR 538 encryption required"), "%s", out);
	cr_expect_not_null(strstr(out, "ERR 530 login required"), "%s", out);
	cr_expect_null(strstr(out, "OK user="), "%s", out);
}
