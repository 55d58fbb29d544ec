/* Integration: the crypto module (tcpfile-crypto.so) is loaded only where
 * it is needed.  A plain daemon and a plain client never map OpenSSL or
 * GNU SASL; SHA-256, TLS and logins load it and work; a client without
 * the module says so and still puts files over plain TCP; a reload that
 * turns logins on reaches new connections, not the workers forked before
 * it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build_config.h"
#include "cryptomod.h"
#include "harness.h"
#include "tlsutil.h"

static struct daemon d;
static char dir[256];

static void cryptomod_fini(void)
{
	test_release_all();
	daemon_stop(&d);
	scratch_remove(dir);
}

TestSuite(cryptomod, .fini = cryptomod_fini, .timeout = 120);

/* The names a process that loaded the module maps. */
static const char *const crypto_libs[] = {
	CRYPTOMOD_FILE, "/libcrypto.so", "/libssl.so", "/libgsasl.so",
};

/* Which of crypto_libs pid maps: the first one, or NULL for none. */
static const char *maps_crypto(pid_t pid)
{
	char *text = proc_text(pid, "maps");
	const char *found = NULL;

	for (size_t i = 0; i < sizeof(crypto_libs) / sizeof(crypto_libs[0]) && !found; i++)
		if (strstr(text, crypto_libs[i]))
			found = crypto_libs[i];
	test_free(text);
	return found;
}

/* Runs tcpfile with LD_DEBUG=files, which makes the dynamic linker list
 * every object it loads on stderr (captured into out with the rest). */
static int tcpfile_traced(const char *const argv[], char *out, size_t cap)
{
	static const char *const env[] = { "LD_DEBUG=files", NULL };
	struct harness_proc p;
	int r = tcpfile_spawn_env(&d, argv, env, -1, &p);

	cr_assert_eq(r, 0, "spawn tcpfile: %s", strerror(-r));
	return harness_proc_wait(&p, out, cap, HARNESS_RUN_TIMEOUT_MS);
}

static void make_local(const char *name, size_t len, char *path, size_t cap)
{
	path_join(path, cap, d.dir, name);
	cr_assert_eq(make_random_file(path, len), 0);
}

Test(cryptomod, plain_daemon_and_client_map_no_crypto)
{
	pid_t pids[HARNESS_MAX_WORKERS];
	char out[65536], local[400], remote[400];
	const char *lib;

	start_daemon(&d, NULL);
	cr_assert_eq(daemon_wait_workers(&d, 2, pids, 2, HARNESS_TIMEOUT_MS), 0);
	lib = maps_crypto(d.pid);
	cr_expect_null(lib, "the plain master maps %s", lib);
	for (size_t i = 0; i < 2; i++) {
		lib = maps_crypto(pids[i]);
		cr_expect_null(lib, "plain worker %d maps %s", (int)pids[i], lib);
	}

	make_local("plain.bin", 100000, local, sizeof(local));
	const char *argv[] = { "put", local, "files/plain.bin", NULL };
	int st = tcpfile_traced(argv, out, sizeof(out));
	cr_assert_eq(st, 0, "put: %d: %s", st, out);
	/* The trace is real: it names libc, which every run loads. */
	cr_assert_not_null(strstr(out, "libc.so"), "no LD_DEBUG trace: %s", out);
	for (size_t i = 0; i < sizeof(crypto_libs) / sizeof(crypto_libs[0]); i++)
		cr_expect_null(strstr(out, crypto_libs[i]), "a plain put loaded %s",
			       crypto_libs[i]);
	path_join(remote, sizeof(remote), d.share_dir, "plain.bin");
	cr_expect(files_equal(local, remote));
}

Test(cryptomod, sha256_loads_the_module_in_the_worker_that_needs_it)
{
	pid_t pids[HARNESS_MAX_WORKERS];
	char out[65536], local[400], remote[400];
	size_t n_loaded = 0;

	start_daemon(&d, NULL);
	make_local("sha.bin", 300000, local, sizeof(local));
	const char *argv[] = { "put", "--sha256", local, "files/sha.bin", NULL };
	int st = tcpfile_traced(argv, out, sizeof(out));
	cr_assert_eq(st, 0, "put --sha256: %d: %s", st, out);
	cr_expect_not_null(strstr(out, CRYPTOMOD_FILE), "the client did not load the module");
	path_join(remote, sizeof(remote), d.share_dir, "sha.bin");
	cr_expect(files_equal(local, remote));

	/* A SHA-256 download checks the digest the server computed. */
	char back[400];
	path_join(back, sizeof(back), d.dir, "sha.back");
	st = tcpfile_run(&d, out, sizeof(out), "get", "--sha256", "files/sha.bin", back, NULL);
	cr_assert_eq(st, 0, "get --sha256: %d: %s", st, out);
	cr_expect(files_equal(local, back));

	cr_assert_eq(daemon_wait_workers(&d, 2, pids, 2, HARNESS_TIMEOUT_MS), 0);
	cr_expect_null(maps_crypto(d.pid), "the master loaded the module for a worker's digest");
	for (size_t i = 0; i < 2; i++)
		if (maps_crypto(pids[i]))
			n_loaded++;
	cr_expect_geq(n_loaded, 1, "no worker maps the module after two SHA-256 transfers");
}

Test(cryptomod, tls_listeners_load_it_in_the_master_before_forking)
{
	pid_t pids[HARNESS_MAX_WORKERS];
	char extra[1024], out[4096], pem[300], local[400];
	uint16_t tls_port;

	scratch_create(dir, sizeof(dir), "itest_cryptomod");
	tls_make_cert(dir, "a");
	cr_assert_eq(harness_free_port(&tls_port), 0);
	snprintf(extra, sizeof(extra),
		 "tls_listen = 127.0.0.1:%u\ntls_certificate = %s/a.crt\ntls_key = %s/a.key\n",
		 (unsigned)tls_port, dir, dir);
	struct daemon_opts o = { .self_bind = true, .server_extra = extra };
	start_daemon(&d, &o);
	cr_assert_eq(daemon_wait_workers(&d, 2, pids, 2, HARNESS_TIMEOUT_MS), 0);
	cr_expect_not_null(maps_crypto(d.pid), "the TLS master has no module");
	for (size_t i = 0; i < 2; i++)
		cr_expect_not_null(maps_crypto(pids[i]), "worker %d has no module", (int)pids[i]);

	make_local("tls.bin", 50000, local, sizeof(local));
	char server[64];
	snprintf(server, sizeof(server), "tcps://127.0.0.1:%u", (unsigned)tls_port);
	snprintf(pem, sizeof(pem), "%s/a.crt", dir);
	const char *argv[] = { "-s", server, "--cafile", pem, "put", local, "files/tls.bin",
			       NULL };
	int st = tcpfile_runv(NULL, out, sizeof(out), argv, NULL);
	cr_expect_eq(st, 0, "put over TLS: %d: %s", st, out);
}

/* Copies the file at from to to, mode 0755. */
static void copy_program(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);

	cr_assert_geq(in, 0, "%s: %s", from, strerror(errno));
	cr_assert_geq(out, 0, "%s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	cr_assert_eq(n, 0);
	close(in);
	cr_assert_eq(close(out), 0);
}

/* Starts the prepared daemon d from the program bin with env added. */
static void spawn_from(const char *bin, const char *const *env)
{
	const char *argv[] = { bin, "-c", d.conf_path, NULL };

	cr_assert_eq(daemon_spawn(&d, argv, env), 0);
}

Test(cryptomod, a_client_without_the_module_says_so_and_still_puts_plain)
{
	char installed[400], lonely[400], out[4096], local[400], remote[400];
	struct stat st;

	snprintf(installed, sizeof(installed), "%s/%s", TCPFILED_MODULEDIR, CRYPTOMOD_FILE);
	if (stat(installed, &st) == 0)
		cr_skip_test("%s is installed: a copy of tcpfile would find it", installed);
	start_daemon(&d, NULL);
	/* A copy of the client in a directory without the module. */
	path_join(lonely, sizeof(lonely), d.dir, "tcpfile");
	copy_program(harness_bin("TCPFILE_BIN"), lonely);

	make_local("lonely.bin", 20000, local, sizeof(local));
	const char *put[] = { lonely, "-s", d.server, "put", local, "files/lonely.bin", NULL };
	int r = harness_run(put, out, sizeof(out));
	cr_assert_eq(r, 0, "plain put without the module: %d: %s", r, out);
	path_join(remote, sizeof(remote), d.share_dir, "lonely.bin");
	cr_expect(files_equal(local, remote));

	const char *sha[] = { lonely, "-s", d.server, "put", "--sha256", local, "files/x", NULL };
	r = harness_run(sha, out, sizeof(out));
	cr_expect_neq(r, 0, "put --sha256 without the module succeeded: %s", out);
	cr_expect_not_null(strstr(out, CRYPTOMOD_FILE), "no reason given: %s", out);
	path_join(remote, sizeof(remote), d.share_dir, "x");
	cr_expect(!path_exists(remote));

	const char *tls[] = { lonely, "-s", "tcps://127.0.0.1:9", "ls", "files", NULL };
	r = harness_run(tls, out, sizeof(out));
	cr_expect_neq(r, 0, "a TLS client without the module succeeded: %s", out);
	cr_expect_not_null(strstr(out, "cannot load the crypto module"), "%s", out);
}

Test(cryptomod, logins_turned_on_by_a_reload_reach_new_connections)
{
	char msg[1024], users[400], extra[512], greeting[HARNESS_LINE_CAP];
	char line[HARNESS_LINE_CAP];
	struct tconn old, fresh;

	start_daemon(&d, NULL);
	cr_expect_null(maps_crypto(d.pid));
	tconn_hello(&old, d.port, NULL, greeting, sizeof(greeting));
	cr_expect_null(strstr(greeting, "auth="), "%s", greeting);

	path_join(users, sizeof(users), d.dir, "users");
	users_add(users, "alice", "alice-secret");
	snprintf(extra, sizeof(extra), "users_file = %s\n", users);
	struct daemon_opts o = { .server_extra = extra };
	cr_assert_eq(daemon_write_config(&d, &o), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_expect_not_null(maps_crypto(d.pid), "the master did not load the module for logins");

	/* The connection from before goes on, without logins. */
	tconn_printf(&old, "NOOP\n");
	tconn_line(&old, line, sizeof(line));
	cr_expect_eq(strncmp(line, "OK", 2), 0, "%s", line);
	tconn_close(&old);
	cr_expect(daemon_log_contains(&d, "logins were turned on by a reload"));

	tconn_hello(&fresh, d.port, NULL, greeting, sizeof(greeting));
	cr_assert_not_null(strstr(greeting, " auth=SCRAM-SHA-256"), "%s", greeting);
	cr_expect(tconn_login(&fresh, "SCRAM-SHA-256", "alice", "alice-secret", line,
			      sizeof(line), NULL, 0, NULL), "%s", line);
	tconn_close(&fresh);
}

/* The module file beside TCPFILED_BIN (the build tree's). */
static void module_beside(const char *bin, char *out, size_t cap)
{
	const char *slash = strrchr(bin, '/');

	cr_assert_not_null(slash);
	snprintf(out, cap, "%.*s/%s", (int)(slash - bin), bin, CRYPTOMOD_FILE);
}

Test(cryptomod, workers_load_the_module_the_daemon_started_with)
{
	char bin[400], mod[400], built[400], junk[400], out[4096], local[400], remote[400];

	/* A daemon installed in a directory of its own, module beside it. */
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ 0 }), 0);
	path_join(bin, sizeof(bin), d.dir, "tcpfiled");
	path_join(mod, sizeof(mod), d.dir, CRYPTOMOD_FILE);
	copy_program(harness_bin("TCPFILED_BIN"), bin);
	module_beside(harness_bin("TCPFILED_BIN"), built, sizeof(built));
	copy_program(built, mod);
	spawn_from(bin, NULL);
	cr_assert_eq(daemon_wait_ready(&d), 0);

	/* An "upgrade" replaces the module with one that cannot load. */
	path_join(junk, sizeof(junk), d.dir, "junk.so");
	write_file(junk, "not an ELF file\n", 16);
	cr_assert_eq(rename(junk, mod), 0);

	make_local("pinned.bin", 70000, local, sizeof(local));
	int st = tcpfile_run(&d, out, sizeof(out), "put", "--sha256", local, "files/pinned.bin",
			     NULL);
	cr_expect_eq(st, 0, "a worker loaded the replaced module: %d: %s", st, out);
	path_join(remote, sizeof(remote), d.share_dir, "pinned.bin");
	cr_expect(files_equal(local, remote));
}

/* libsystemd, too, is loaded only for what systemd hands the daemon. */
static bool maps_libsystemd(pid_t pid)
{
	char *text = proc_text(pid, "maps");
	bool found = strstr(text, "/libsystemd.so") != NULL;

	test_free(text);
	return found;
}

Test(cryptomod, libsystemd_is_mapped_only_under_systemd)
{
	pid_t pids[HARNESS_MAX_WORKERS];

	/* No NOTIFY_SOCKET, no LISTEN_FDS, stderr not the journal. */
	start_daemon(&d, &(struct daemon_opts){ .self_bind = true, .no_notify = true });
	cr_assert_eq(daemon_wait_workers(&d, 2, pids, 2, HARNESS_TIMEOUT_MS), 0);
	cr_expect_not(maps_libsystemd(d.pid), "a daemon outside systemd maps libsystemd");
	cr_expect_not(maps_libsystemd(pids[0]));
	daemon_stop(&d);

	/* Socket activation and sd_notify, as the harness does by default. */
	memset(&d, 0, sizeof(d));
	start_daemon(&d, NULL);
	cr_assert_eq(daemon_wait_workers(&d, 2, pids, 2, HARNESS_TIMEOUT_MS), 0);
	cr_expect(maps_libsystemd(d.pid), "an activated daemon did not load libsystemd");
	cr_expect(daemon_notify_seen(&d, "READY=1"));
}

/* A libsystemd that cannot be loaded, found first through LD_LIBRARY_PATH
 * (the daemon itself links no libsystemd, so nothing else is shadowed). */
static void broken_libsystemd(char *env, size_t cap)
{
	char lib[400];

	path_join(lib, sizeof(lib), d.dir, "libsystemd.so.0");
	write_file(lib, "not an ELF file\n", 16);
	snprintf(env, cap, "LD_LIBRARY_PATH=%s", d.dir);
}

Test(cryptomod, notifications_expected_without_libsystemd_fail_at_start)
{
	char env_ld[400];

	/* The harness's NOTIFY_SOCKET: systemd would wait for READY=1. */
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .self_bind = true }), 0);
	broken_libsystemd(env_ld, sizeof(env_ld));
	const char *env[] = { env_ld, NULL };
	spawn_from(harness_bin("TCPFILED_BIN"), env);
	int st = daemon_wait_exit(&d, HARNESS_TIMEOUT_MS);
	cr_assert(st >= 0 && WIFEXITED(st), "the daemon did not exit (status %d)", st);
	cr_expect_eq(WEXITSTATUS(st), 71, "exit status %d", WEXITSTATUS(st));
	cr_expect(daemon_log_contains(&d, "systemd expects notifications"));
	cr_expect(daemon_log_contains(&d, "libsystemd.so.0"));
}

Test(cryptomod, sockets_passed_to_another_process_are_not_ours)
{
	char env_ld[400];

	/* LISTEN_FDS for some other pid: sd_listen_fds() would ignore it, and
	 * so does the daemon, without even loading libsystemd (which here
	 * could not be loaded). */
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .self_bind = true,
							       .no_notify = true }), 0);
	broken_libsystemd(env_ld, sizeof(env_ld));
	const char *env[] = { env_ld, "LISTEN_FDS=1", "LISTEN_PID=1", NULL };
	spawn_from(harness_bin("TCPFILED_BIN"), env);
	cr_assert_eq(daemon_wait_ready(&d), 0, "the daemon did not bind its own listener");
	cr_expect_not(maps_libsystemd(d.pid));
	int fd = daemon_connect_hello(&d);
	cr_expect_geq(fd, 0, "no greeting: %s", strerror(-fd));
	if (fd >= 0)
		close(fd);
}

static bool module_loaded_cond(void *arg)
{
	return maps_crypto(*(pid_t *)arg) != NULL;
}

static bool wait_for_module(pid_t pid)
{
	return wait_until(module_loaded_cond, &pid, HARNESS_TIMEOUT_MS);
}

Test(cryptomod, a_module_installed_after_start_serves_the_next_reload)
{
	char installed[400], bin[400], mod[400], built[400], users[400], extra[512], msg[1024];
	struct stat st;

	snprintf(installed, sizeof(installed), "%s/%s", TCPFILED_MODULEDIR, CRYPTOMOD_FILE);
	if (stat(installed, &st) == 0)
		cr_skip_test("%s is installed: the daemon would find it", installed);
	/* A daemon installed without its module. */
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ 0 }), 0);
	path_join(bin, sizeof(bin), d.dir, "tcpfiled");
	copy_program(harness_bin("TCPFILED_BIN"), bin);
	spawn_from(bin, NULL);
	cr_assert_eq(daemon_wait_ready(&d), 0);
	cr_expect(daemon_log_contains(&d, "TLS, logins and SHA-256 digests are unavailable"));

	/* Logins need the module: the reload fails and says why. */
	path_join(users, sizeof(users), d.dir, "users");
	users_add(users, "alice", "alice-secret");
	snprintf(extra, sizeof(extra), "users_file = %s\n", users);
	cr_assert_eq(daemon_write_config(&d, &(struct daemon_opts){ .server_extra = extra }), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg, sizeof(msg)), 0);
	cr_expect(daemon_log_contains(&d, "cannot load the crypto module"));

	/* Installed now: the next reload finds it. */
	path_join(mod, sizeof(mod), d.dir, CRYPTOMOD_FILE);
	module_beside(harness_bin("TCPFILED_BIN"), built, sizeof(built));
	copy_program(built, mod);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert(wait_for_module(d.pid), "the master did not load the module at the reload");
}
