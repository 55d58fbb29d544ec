/* Unit tests for config: every key, defaults, and every error message. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "listener.h"

static char tmpdir[64];         /* removed after each test */
static char sharedir[128];      /* an existing directory for share paths */
static char errbuf[CONFIG_ERROR_MAX];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/tcpfiled-test-config-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	snprintf(sharedir, sizeof(sharedir), "%s/share", tmpdir);
	cr_assert_eq(mkdir(sharedir, 0700), 0, "mkdir: %s", strerror(errno));
	errbuf[0] = '\0';
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Joins the parts into a fresh string (freed by the caller). */
static char *join(const char *a, const char *b, const char *c)
{
	char *s = NULL;

	cr_assert_neq(asprintf(&s, "%s%s%s", a, b, c), -1);
	return s;
}

/* "[files]\npath = SHAREDIR\n" */
static char *files_share(void)
{
	char *s = NULL;

	cr_assert_neq(asprintf(&s, "[files]\npath = %s\n", sharedir), -1);
	return s;
}

static int load(const char *text, struct config **conf)
{
	*conf = NULL;
	errbuf[0] = '\0';
	return config_load_string(text, "t.conf", conf, errbuf, sizeof(errbuf));
}

static struct config *load_ok(const char *text)
{
	struct config *conf;
	int r = load(text, &conf);

	cr_assert_eq(r, 0, "load failed (%d): %s\n--- text:\n%s", r, errbuf, text);
	cr_assert_not_null(conf);
	return conf;
}

static void expect_error(const char *text, const char *want)
{
	struct config *conf;
	int r = load(text, &conf);

	cr_expect_eq(r, -EINVAL, "want -EINVAL, got %d for:\n%s", r, text);
	cr_expect_null(conf, "conf must stay NULL on failure");
	cr_expect_str_eq(errbuf, want, "for:\n%s", text);
	config_free(conf);
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(close(fd), 0);
}

/* The documented defaults, with one share [files] at sharedir. */
static void expect_defaults(const struct config *conf)
{
	cr_assert_eq(conf->n_listen, 1);
	cr_expect_str_eq(conf->listen[0], "127.0.0.1:5005");
	cr_expect_eq(conf->workers, 4);
	cr_expect_eq(conf->backlog, config_default_backlog());
	cr_expect_eq(conf->defer_accept_ms, 5000);
	cr_expect_eq(conf->hosts_allow.n, 0);
	cr_expect_eq(conf->hosts_deny.n, 0);
	cr_expect_eq(conf->max_per_ip, 0);
	cr_expect_eq(conf->shutdown_timeout_ms, 30000);
	cr_expect_eq(conf->idle_timeout_ms, 300000);
	cr_expect_eq(conf->crash_loop_timeout_ms, 60000);
	cr_expect_eq(conf->min_spare, 2);
	cr_expect_eq(conf->max_spare, 8);
	cr_expect_eq(conf->max_workers, 64);
	cr_expect_eq(conf->max_requests, 10000);
	cr_expect_eq(conf->max_requests_jitter, 1000);
	cr_expect_eq(conf->hung_timeout_ms, 600000);
	cr_expect_str_eq(conf->status_file, "/run/tcpfiled/status");
	cr_expect_eq(conf->log_level, LOG_INFO);
	cr_expect(conf->fsync);
	cr_expect_null(conf->users_file);
	cr_expect_null(conf->tls_certificate);
	cr_expect_null(conf->tls_key);
	cr_expect_eq(conf->tls_min_version, CONFIG_TLS_1_3);
	cr_assert_eq(conf->n_shares, 1);
	cr_expect_str_eq(conf->shares[0].name, "files");
	cr_expect_str_eq(conf->shares[0].path, sharedir);
	cr_expect(!conf->shares[0].read_only);
	cr_expect(conf->shares[0].overwrite);
	cr_expect_eq(conf->shares[0].max_file_size, 0);
	cr_expect_eq(conf->shares[0].min_free.percent, 1);
	cr_expect_eq(conf->shares[0].min_free.bytes, 0);
	cr_expect_eq(conf->shares[0].umask, 022);
}

Test(config, defaults)
{
	char *text = files_share();
	struct config *conf = load_ok(text);

	cr_expect_str_eq(conf->file, "t.conf");
	expect_defaults(conf);
	cr_expect_eq(conf->shares[0].line, 1);
	config_free(conf);
	free(text);
}

Test(config, every_key)
{
	char *text = NULL;
	struct config *conf;

	cr_assert_neq(asprintf(&text,
		"; a comment\n"
		"# another comment\n"
		"\n"
		"[server]\n"
		"listen = 0.0.0.0:6000 [::1]:6001\n"
		"workers = 512\n"
		"backlog = 65535\n"
		"shutdown_timeout = 1h\n"
		"idle_timeout = 1d\n"
		"crash_loop_timeout = 0\n"
		"log_level = debug\n"
		"fsync = off\n"
		"defer_accept = 3s\n"
		"hosts_allow = 127.0.0.0/8, ::1 192.168.0.0/16\n"
		"hosts_deny = 192.168.7.7\n"
		"max_per_ip = 8\n"
		"\n"
		"[files]\n"
		"path = %s\n"
		"read_only = yes\n"
		"overwrite = false\n"
		"max_file_size = 10M\n"
		"min_free = 512M\n"
		"umask = 0027\n"
		"\n"
		"[other.share-2_x]\n"
		"path = %s/\n"
		"read_only = 0\n"
		"overwrite = ON\n"
		"max_file_size = 1T\n"
		"min_free = 0%%\n"
		"umask = 0\n",
		sharedir, sharedir), -1);
	conf = load_ok(text);
	cr_assert_eq(conf->n_listen, 2);
	cr_expect_str_eq(conf->listen[0], "0.0.0.0:6000");
	cr_expect_str_eq(conf->listen[1], "[::1]:6001");
	cr_expect_eq(conf->workers, 512);
	cr_expect_eq(conf->backlog, 65535);
	cr_expect_eq(conf->shutdown_timeout_ms, 3600000);
	cr_expect_eq(conf->idle_timeout_ms, 86400000);
	cr_expect_eq(conf->crash_loop_timeout_ms, 0);
	cr_expect_eq(conf->log_level, LOG_DEBUG);
	cr_expect(!conf->fsync);
	cr_expect_eq(conf->defer_accept_ms, 3000);
	cr_expect_eq(conf->hosts_allow.n, 3);
	cr_expect_eq(conf->hosts_deny.n, 1);
	cr_expect_eq(conf->max_per_ip, 8);
	cr_assert_eq(conf->n_shares, 2);
	cr_expect_str_eq(conf->shares[0].name, "files");
	cr_expect(conf->shares[0].read_only);
	cr_expect(!conf->shares[0].overwrite);
	cr_expect_eq(conf->shares[0].max_file_size, 10485760);
	cr_expect_eq(conf->shares[0].min_free.bytes, 536870912);
	cr_expect_eq(conf->shares[0].min_free.percent, 0);
	cr_expect_eq(conf->shares[0].umask, 027);
	cr_expect_eq(conf->shares[0].line, 18);
	cr_expect_eq(conf->shares[0].path_line, 19);
	cr_expect_str_eq(conf->shares[1].name, "other.share-2_x");
	cr_expect(!conf->shares[1].read_only);
	cr_expect(conf->shares[1].overwrite);
	cr_expect_eq(conf->shares[1].max_file_size, 1099511627776);
	cr_expect_eq(conf->shares[1].min_free.bytes, 0);
	cr_expect_eq(conf->shares[1].min_free.percent, 0);
	cr_expect_eq(conf->shares[1].umask, 0);
	cr_expect_eq(conf->shares[1].line, 26);
	config_free(conf);
	free(text);
}

Test(config, minimum_values_and_alternative_forms)
{
	char *share = files_share();
	char *text = join("[server]\n"
			  "workers: 1\n"
			  "backlog=1\n"
			  "shutdown_timeout = 0\n"
			  "idle_timeout = 1000ms\n"
			  "crash_loop_timeout = 90\n"
			  "log_level = error\n"
			  "fsync = TRUE\n", share, "max_file_size = 0\n");
	struct config *conf = load_ok(text);

	cr_expect_eq(conf->workers, 1);
	cr_expect_eq(conf->backlog, 1);
	cr_expect_eq(conf->shutdown_timeout_ms, 0);
	cr_expect_eq(conf->idle_timeout_ms, 1000);
	cr_expect_eq(conf->crash_loop_timeout_ms, 90000);
	cr_expect_eq(conf->log_level, LOG_ERR);
	cr_expect(conf->fsync);
	cr_expect_eq(conf->shares[0].max_file_size, 0);
	config_free(conf);
	free(text);
	free(share);
}

Test(config, log_levels)
{
	static const struct {
		const char *name;
		int level;
	} cases[] = {
		{ "err", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
		{ "info", LOG_INFO }, { "debug", LOG_DEBUG }, { "DEBUG", LOG_DEBUG },
	};
	char *share = files_share();
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = join("[server]\nlog_level = ", cases[i].name, "\n");
		char *text = join(line, share, "");
		struct config *conf = load_ok(text);

		cr_expect_eq(conf->log_level, cases[i].level, "log_level = %s", cases[i].name);
		config_free(conf);
		free(text);
		free(line);
	}
	free(share);
}

Test(config, empty_server_section)
{
	char *share = files_share();
	char *text = join("[server]\n", share, "");
	struct config *conf = load_ok(text);

	cr_expect_eq(conf->workers, 4);
	config_free(conf);
	free(text);
	free(share);
}

struct bad_case {
	const char *line;
	const char *want;
};

/* Each line goes on line 2, inside [server]. */
static const struct bad_case bad_server_values[] = {
	{ "workers = 0", "t.conf:2: workers: must be between 1 and 512, got \"0\"" },
	{ "workers = 513", "t.conf:2: workers: must be between 1 and 512, got \"513\"" },
	{ "workers = 99999999999999999999",
	  "t.conf:2: workers: must be between 1 and 512, got \"99999999999999999999\"" },
	{ "workers = four", "t.conf:2: workers: expected a decimal number, got \"four\"" },
	{ "workers = -1", "t.conf:2: workers: expected a decimal number, got \"-1\"" },
	{ "workers = 4x", "t.conf:2: workers: expected a decimal number, got \"4x\"" },
	{ "workers =", "t.conf:2: workers: expected a decimal number, got \"\"" },
	{ "workers = 4 # four", "t.conf:2: workers: expected a decimal number, got \"4 # four\"" },
	{ "backlog = 0", "t.conf:2: backlog: must be between 1 and 65535, got \"0\"" },
	{ "backlog = 65536", "t.conf:2: backlog: must be between 1 and 65535, got \"65536\"" },
	{ "shutdown_timeout = 2h",
	  "t.conf:2: shutdown_timeout: must be between 0 and 1h, got \"2h\"" },
	{ "shutdown_timeout = 3601",
	  "t.conf:2: shutdown_timeout: must be between 0 and 1h, got \"3601\"" },
	{ "shutdown_timeout = 30 s",
	  "t.conf:2: shutdown_timeout: expected a duration such as 500ms, 30s, 5m, 2h or 1d, "
	  "got \"30 s\"" },
	{ "shutdown_timeout = -1s",
	  "t.conf:2: shutdown_timeout: expected a duration such as 500ms, 30s, 5m, 2h or 1d, "
	  "got \"-1s\"" },
	{ "idle_timeout = 999ms",
	  "t.conf:2: idle_timeout: must be between 1s and 1d, got \"999ms\"" },
	{ "idle_timeout = 0", "t.conf:2: idle_timeout: must be between 1s and 1d, got \"0\"" },
	{ "idle_timeout = 25h", "t.conf:2: idle_timeout: must be between 1s and 1d, got \"25h\"" },
	{ "idle_timeout = 5M",
	  "t.conf:2: idle_timeout: expected a duration such as 500ms, 30s, 5m, 2h or 1d, "
	  "got \"5M\"" },
	{ "crash_loop_timeout = 2d",
	  "t.conf:2: crash_loop_timeout: must be between 0 and 1d, got \"2d\"" },
	{ "crash_loop_timeout = 99999999999999999999d",
	  "t.conf:2: crash_loop_timeout: must be between 0 and 1d, got \"99999999999999999999d\"" },
	{ "log_level = verbose",
	  "t.conf:2: log_level: expected err, warning, notice, info or debug, got \"verbose\"" },
	{ "log_level =",
	  "t.conf:2: log_level: expected err, warning, notice, info or debug, got \"\"" },
	{ "fsync = maybe",
	  "t.conf:2: fsync: expected yes/no, true/false, on/off or 1/0, got \"maybe\"" },
	{ "fsync = 2", "t.conf:2: fsync: expected yes/no, true/false, on/off or 1/0, got \"2\"" },
	{ "hosts_allow = 10.0.0.0/33",
	  "t.conf:2: hosts_allow: prefix length must be 0..32 for IPv4, got \"10.0.0.0/33\"" },
	{ "hosts_deny = ::1 fe80::/129",
	  "t.conf:2: hosts_deny: prefix length must be 0..128 for IPv6, got \"fe80::/129\"" },
	{ "hosts_allow = 10.0.0.1/8",
	  "t.conf:2: hosts_allow: address has bits set beyond the prefix length, "
	  "got \"10.0.0.1/8\"" },
	{ "hosts_deny = example.com",
	  "t.conf:2: hosts_deny: expected an IPv4 or IPv6 address (numeric, no host names), "
	  "got \"example.com\"" },
	{ "hosts_deny = ,",
	  "t.conf:2: hosts_deny: expected addresses such as 127.0.0.0/8 ::1, got \",\"" },
	{ "max_per_ip = 65536",
	  "t.conf:2: max_per_ip: must be between 0 and 65535, got \"65536\"" },
	{ "defer_accept = 11m",
	  "t.conf:2: defer_accept: must be between 0 and 10m, got \"11m\"" },
	{ "fsync =", "t.conf:2: fsync: expected yes/no, true/false, on/off or 1/0, got \"\"" },
	{ "listen = 127.0.0.1", "t.conf:2: listen: expected HOST:PORT, got \"127.0.0.1\"" },
	{ "listen = 127.0.0.1:70000",
	  "t.conf:2: listen: port must be a number between 0 and 65535, got \"127.0.0.1:70000\"" },
	{ "listen = 127.0.0.1:http",
	  "t.conf:2: listen: port must be a number between 0 and 65535, got \"127.0.0.1:http\"" },
	{ "listen = 127.0.0.1:",
	  "t.conf:2: listen: port must be a number between 0 and 65535, got \"127.0.0.1:\"" },
	{ "listen = 127.0.0.1:-1",
	  "t.conf:2: listen: port must be a number between 0 and 65535, got \"127.0.0.1:-1\"" },
	{ "listen = ::1:5005",
	  "t.conf:2: listen: an IPv6 address needs brackets, as in [::1]:5005, got \"::1:5005\"" },
	{ "listen = [::1:5005",
	  "t.conf:2: listen: missing ']' after the IPv6 address, got \"[::1:5005\"" },
	{ "listen = [::1]5005", "t.conf:2: listen: expected [IPV6]:PORT, got \"[::1]5005\"" },
	{ "listen = [::1]", "t.conf:2: listen: expected [IPV6]:PORT, got \"[::1]\"" },
	{ "listen = [::g]:5005", "t.conf:2: listen: not an IPv6 address, got \"[::g]:5005\"" },
	{ "listen = [127.0.0.1]:5005",
	  "t.conf:2: listen: not an IPv6 address, got \"[127.0.0.1]:5005\"" },
	{ "listen = [fe80::1%]:5005",
	  "t.conf:2: listen: bad IPv6 scope (expected an interface name after '%'), "
	  "got \"[fe80::1%]:5005\"" },
	{ "listen = [fe80::1%abcdefghijklmnop]:5005",
	  "t.conf:2: listen: bad IPv6 scope (expected an interface name after '%'), "
	  "got \"[fe80::1%abcdefghijklmnop]:5005\"" },
	{ "listen = []:5005", "t.conf:2: listen: not an IPv6 address, got \"[]:5005\"" },
	{ "listen = [*]:5005", "t.conf:2: listen: not an IPv6 address, got \"[*]:5005\"" },
	{ "listen = a:b:5005",
	  "t.conf:2: listen: an IPv6 address needs brackets, as in [::1]:5005, got \"a:b:5005\"" },
	{ "listen = 300.1.1.1:5005", "t.conf:2: listen: not an IPv4 address, got \"300.1.1.1:5005\"" },
	{ "listen = 1.2.3:5005", "t.conf:2: listen: not an IPv4 address, got \"1.2.3:5005\"" },
	{ "listen = :5005",
	  "t.conf:2: listen: missing host (use * for every address), got \":5005\"" },
	{ "listen = bad_host:5005", "t.conf:2: listen: not a valid host name, got \"bad_host:5005\"" },
	{ "listen = -bad.example:5005",
	  "t.conf:2: listen: not a valid host name, got \"-bad.example:5005\"" },
	{ "listen = bad-.example:5005",
	  "t.conf:2: listen: not a valid host name, got \"bad-.example:5005\"" },
	{ "listen = bad..example:5005",
	  "t.conf:2: listen: not a valid host name, got \"bad..example:5005\"" },
	{ "listen = 127.0.0.1:5005 localhost",
	  "t.conf:2: listen: expected HOST:PORT, got \"localhost\"" },
	{ "listen = , ,",
	  "t.conf:2: listen: expected one or more addresses such as 127.0.0.1:5005, got \", ,\"" },
	{ "listen =",
	  "t.conf:2: listen: expected one or more addresses such as 127.0.0.1:5005, got \"\"" },
	{ "listen = a:1 b:2, a:1", "t.conf:2: listen: address listed twice, got \"a:1\"" },
	{ "listen = a:1 a:2 a:3 a:4 a:5 a:6 a:7 a:8 a:9 a:10 a:11 a:12 a:13 a:14 a:15 a:16 a:17",
	  "t.conf:2: listen: at most 16 addresses, got \"a:1 a:2 a:3 a:4 a:5 a:6 a:7 a:8 a:9 "
	  "a:10 a:11 a:12 a:13 a:14 a:15 a:16 a:17\"" },
	{ "frobnicate = 1", "t.conf:2: frobnicate: unknown key in [server]" },
	{ "Workers = 4", "t.conf:2: Workers: unknown key in [server]" },
	{ "read_only = yes",
	  "t.conf:2: read_only: unknown key in [server] (it belongs in a share section)" },
	{ "path = /tmp", "t.conf:2: path: unknown key in [server] (it belongs in a share section)" },
	{ "users_file = users", "t.conf:2: users_file: must be an absolute path or credential:NAME, got \"users\"" },
	{ "tls_min_version = 1.1", "t.conf:2: tls_min_version: expected 1.3 or 1.2, got \"1.1\"" },
	{ "tls_min_version = 1.3\ntls_key = /k\ntls_certificate = /c\ntls_min_version = 1.2",
	  "t.conf:5: tls_min_version: duplicate key (first set at line 2)" },
};

Test(config, bad_server_values)
{
	char *share = files_share();
	size_t i;

	for (i = 0; i < sizeof(bad_server_values) / sizeof(bad_server_values[0]); i++) {
		char *head = join("[server]\n", bad_server_values[i].line, "\n");
		char *text = join(head, share, "");

		expect_error(text, bad_server_values[i].want);
		free(text);
		free(head);
	}
	free(share);
}

/* Each line goes on line 2, inside [files], before its path. */
static const struct bad_case bad_share_values[] = {
	{ "read_only = 2",
	  "t.conf:2: read_only: expected yes/no, true/false, on/off or 1/0, got \"2\"" },
	{ "overwrite =", "t.conf:2: overwrite: expected yes/no, true/false, on/off or 1/0, got \"\"" },
	{ "max_file_size = 10 M",
	  "t.conf:2: max_file_size: expected a size such as 1048576, 512K, 10M or 2G, got \"10 M\"" },
	{ "max_file_size = -1",
	  "t.conf:2: max_file_size: expected a size such as 1048576, 512K, 10M or 2G, got \"-1\"" },
	{ "max_file_size = 1.5G",
	  "t.conf:2: max_file_size: expected a size such as 1048576, 512K, 10M or 2G, got \"1.5G\"" },
	{ "max_file_size =",
	  "t.conf:2: max_file_size: expected a size such as 1048576, 512K, 10M or 2G, got \"\"" },
	{ "max_file_size = 16777216T",
	  "t.conf:2: max_file_size: value too large, got \"16777216T\"" },
	{ "max_file_size = 18446744073709551616",
	  "t.conf:2: max_file_size: value too large, got \"18446744073709551616\"" },
	{ "min_free = 101%",
	  "t.conf:2: min_free: expected a size such as 512M or 2G, or a percentage from 0% to 100%, got \"101%\"" },
	{ "min_free = %",
	  "t.conf:2: min_free: expected a size such as 512M or 2G, or a percentage from 0% to 100%, got \"%\"" },
	{ "min_free = 1.5%",
	  "t.conf:2: min_free: expected a size such as 512M or 2G, or a percentage from 0% to 100%, got \"1.5%\"" },
	{ "min_free = 1 G",
	  "t.conf:2: min_free: expected a size such as 512M or 2G, or a percentage from 0% to 100%, got \"1 G\"" },
	{ "umask = 0888", "t.conf:2: umask: expected an octal mode such as 022 or 0027, got \"0888\"" },
	{ "umask = 00777", "t.conf:2: umask: expected an octal mode such as 022 or 0027, got \"00777\"" },
	{ "umask = 1777", "t.conf:2: umask: must be between 0000 and 0777, got \"1777\"" },
	{ "umask =", "t.conf:2: umask: expected an octal mode such as 022 or 0027, got \"\"" },
	{ "workers = 4", "t.conf:2: workers: unknown key in share [files] (it belongs in [server])" },
	{ "Path = /tmp", "t.conf:2: Path: unknown key in share [files]" },
	{ "path = relative/dir", "t.conf:2: path: must be an absolute path, got \"relative/dir\"" },
	{ "path = ~/files", "t.conf:2: path: must be an absolute path, got \"~/files\"" },
	{ "path =", "t.conf:2: path: must be an absolute path, got \"\"" },
	{ "anonymous = yes", "t.conf:2: anonymous: expected no, read or write, got \"yes\"" },
	{ "read_users =", "t.conf:2: read_users: expected user names or \"*\", got \"\"" },
	{ "read_users = alice *", "t.conf:2: read_users: either \"*\" (any user who logged in) or names, not both, got \"alice *\"" },
	{ "write_users = alice .bob", "t.conf:2: write_users: bad user name \".bob\" (1 to 64 letters, digits, '.', '_', '-' or '@', not starting with '.' or '-')" },
	{ "write_users = a:b", "t.conf:2: write_users: bad user name \"a:b\" (1 to 64 letters, digits, '.', '_', '-' or '@', not starting with '.' or '-')" },
};

Test(config, login_and_tls_keys)
{
	char *share = files_share();
	char *text = join("[server]\nusers_file = /etc/tcpfiled/users\n"
			  "tls_certificate = /etc/tcpfiled/cert.pem\ntls_key = /etc/tcpfiled/key.pem\n"
			  "tls_min_version = 1.2\n", share, "");
	struct config *conf = load_ok(text);

	cr_expect_str_eq(conf->users_file, "/etc/tcpfiled/users");
	cr_expect_str_eq(conf->tls_certificate, "/etc/tcpfiled/cert.pem");
	cr_expect_str_eq(conf->tls_key, "/etc/tcpfiled/key.pem");
	cr_expect_eq(conf->tls_min_version, CONFIG_TLS_1_2);
	config_free(conf);
	free(text);
	text = join("[server]\ntls_certificate = /c.pem\n", share, "");
	expect_error(text, "t.conf: tls_key: missing (tls_certificate and tls_key go together)");
	free(text);
	text = join("[server]\ntls_key = /k.pem\n", share, "");
	expect_error(text, "t.conf: tls_certificate: missing (tls_certificate and tls_key go together)");
	free(text);
	free(share);
}

Test(config, share_access_keys)
{
	char *head = NULL, *text;
	struct config *conf;

	cr_assert_neq(asprintf(&head, "[files]\npath = %s\n", sharedir), -1);
	text = join(head, "anonymous = read\nread_users = alice, bob carol\nwrite_users = *\n", "");
	conf = load_ok(text);
	cr_expect_eq(conf->shares[0].anonymous, CONFIG_ANON_READ);
	cr_assert_eq(conf->shares[0].read_users.n, 3);
	cr_expect_str_eq(conf->shares[0].read_users.names[0], "alice");
	cr_expect_str_eq(conf->shares[0].read_users.names[2], "carol");
	cr_expect(!conf->shares[0].read_users.any);
	cr_expect(conf->shares[0].write_users.any);
	cr_expect_eq(conf->shares[0].write_users.n, 0);
	config_free(conf);
	free(text);
	/* Defaults: nobody, not even anonymously. */
	conf = load_ok(head);
	cr_expect_eq(conf->shares[0].anonymous, CONFIG_ANON_NO);
	cr_expect_eq(conf->shares[0].read_users.n + conf->shares[0].write_users.n, 0);
	cr_expect(!conf->allow_plaintext);
	cr_expect(!conf->anonymous_remote);
	cr_expect_eq(conf->n_tls_listen, 0);
	config_free(conf);
	free(head);
}

Test(config, tls_listen)
{
	char *share = files_share(), *text;
	struct config *conf;

	text = join("[server]\nlisten = 127.0.0.1:5005\ntls_listen = *:5006 [::1]:5007\n"
		    "tls_certificate = /c.pem\ntls_key = /k.pem\nallow_plaintext = yes\n"
		    "anonymous_remote = yes\n", share, "");
	conf = load_ok(text);
	cr_assert_eq(conf->n_tls_listen, 2);
	cr_expect_str_eq(conf->tls_listen[0], "*:5006");
	cr_expect_str_eq(conf->tls_listen[1], "[::1]:5007");
	cr_expect(conf->allow_plaintext);
	cr_expect(conf->anonymous_remote);
	config_free(conf);
	free(text);

	text = join("[server]\ntls_listen = 127.0.0.1:5006\n", share, "");
	expect_error(text, "t.conf:2: tls_listen: needs tls_certificate and tls_key in [server]");
	free(text);
	text = join("[server]\nlisten = 127.0.0.1:5006\ntls_certificate = /c\ntls_key = /k\n"
		    "tls_listen = 127.0.0.1:5006\n", share, "");
	expect_error(text, "t.conf:5: tls_listen: \"127.0.0.1:5006\" is in listen too "
		     "(one address serves either plain TCP or TLS)");
	free(text);
	text = join("[server]\ntls_listen = 127.0.0.1:x\n", share, "");
	expect_error(text, "t.conf:2: tls_listen: port must be a number between 0 and 65535, got \"127.0.0.1:x\"");
	free(text);
	free(share);
}

Test(config, credentials)
{
	char *share = files_share(), *text;
	struct config *conf;

	text = join("[server]\nusers_file = credential:users\ntls_certificate = credential:cert\n"
		    "tls_key = credential:key\n", share, "");
	cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", "/run/credentials/tcpfiled.service", 1), 0);
	conf = load_ok(text);
	cr_expect_str_eq(conf->users_file, "/run/credentials/tcpfiled.service/users");
	cr_expect_str_eq(conf->tls_certificate, "/run/credentials/tcpfiled.service/cert");
	cr_expect_str_eq(conf->tls_key, "/run/credentials/tcpfiled.service/key");
	config_free(conf);
	cr_assert_eq(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	expect_error(text, "t.conf:2: users_file: \"credential:users\" names a systemd credential, "
		     "but $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit provides it)");
	free(text);
	cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", "/run/c", 1), 0);
	text = join("[server]\ntls_key = credential:../key\n", share, "");
	expect_error(text, "t.conf:2: tls_key: bad credential name (1 to 255 bytes, no '/'), "
		     "got \"credential:../key\"");
	free(text);
	text = join("[server]\nusers_file = credential:\n", share, "");
	expect_error(text, "t.conf:2: users_file: bad credential name (1 to 255 bytes, no '/'), "
		     "got \"credential:\"");
	free(text);
	free(share);
}

Test(config, bad_share_values)
{
	char *tail = NULL;
	size_t i;

	cr_assert_neq(asprintf(&tail, "path = %s\n", sharedir), -1);
	for (i = 0; i < sizeof(bad_share_values) / sizeof(bad_share_values[0]); i++) {
		char *head = join("[files]\n", bad_share_values[i].line, "\n");
		char *text = join(head, tail, "");

		expect_error(text, bad_share_values[i].want);
		free(text);
		free(head);
	}
	free(tail);
}

Test(config, size_values)
{
	static const struct {
		const char *value;
		uint64_t bytes;
	} cases[] = {
		{ "0", 0 }, { "1", 1 }, { "512K", 524288 }, { "512KiB", 524288 }, { "512kb", 524288 },
		{ "10M", 10485760 }, { "2G", 2147483648 }, { "2GiB", 2147483648 },
		{ "18446744073709551615", UINT64_MAX },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *share = files_share();
		char *text = join(share, "max_file_size = ", cases[i].value);
		struct config *conf = load_ok(text);

		cr_expect_eq(conf->shares[0].max_file_size, cases[i].bytes,
			     "max_file_size = %s", cases[i].value);
		config_free(conf);
		free(text);
		free(share);
	}
}

Test(config, syntax_errors)
{
	static const struct bad_case cases[] = {
		{ "[server]\nworkers\n",
		  "t.conf:2: expected \"key = value\", a [section] or a comment" },
		{ "[server]\n= 4\n", "t.conf:2: expected \"key = value\", a [section] or a comment" },
		{ "[server]\n: 4\n", "t.conf:2: expected \"key = value\", a [section] or a comment" },
		{ "[server]\nworkers ;= 4\n",
		  "t.conf:2: expected \"key = value\", a [section] or a comment" },
		{ "[server\nworkers = 4\n", "t.conf:1: missing ']' in section header" },
		{ "[server] junk\n",
		  "t.conf:1: unexpected text after ']' (inline comments start with ';')" },
		{ "[server] # comment\n",
		  "t.conf:1: unexpected text after ']' (inline comments start with ';')" },
		{ "[server]\nworkers = 2\n  backlog = 5\n",
		  "t.conf:3: indented line (keys and [sections] start in the first column)" },
		{ "\tworkers = 2\n",
		  "t.conf:1: indented line (keys and [sections] start in the first column)" },
		{ " [server]\n",
		  "t.conf:1: indented line (keys and [sections] start in the first column)" },
		{ "workers = 4\n",
		  "t.conf:1: workers: key outside of any section (put it under [server] or a share)" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].line, cases[i].want);
}

Test(config, first_error_wins)
{
	/* A syntax error before a bad value, and the other way round. */
	expect_error("[server]\nworkers\nbacklog = 0\n",
		     "t.conf:2: expected \"key = value\", a [section] or a comment");
	expect_error("[server]\nbacklog = 0\nworkers\n",
		     "t.conf:2: backlog: must be between 1 and 65535, got \"0\"");
	expect_error("[server]\nbacklog = 0\nworkers = 0\n",
		     "t.conf:2: backlog: must be between 1 and 65535, got \"0\"");
}

Test(config, duplicate_keys)
{
	char *share = files_share();
	char *text;

	text = join("[server]\nworkers = 2\nbacklog = 5\nworkers = 3\n", share, "");
	expect_error(text, "t.conf:4: workers: duplicate key (first set at line 2)");
	free(text);

	text = join("[server]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n", share, "");
	expect_error(text, "t.conf:3: listen: duplicate key (first set at line 2)");
	free(text);

	text = join(share, "read_only = yes\nread_only = yes\n", "");
	expect_error(text, "t.conf:4: read_only: duplicate key (first set at line 3)");
	free(text);

	text = join(share, "path = /tmp\n", "");
	expect_error(text, "t.conf:3: path: duplicate key (first set at line 2)");
	free(text);
	free(share);
}

Test(config, same_key_in_two_shares_is_fine)
{
	char *text = NULL;
	struct config *conf;

	cr_assert_neq(asprintf(&text, "[a]\npath = %s\nread_only = yes\n"
			       "[b]\npath = %s\nread_only = no\n", sharedir, sharedir), -1);
	conf = load_ok(text);
	cr_assert_eq(conf->n_shares, 2);
	cr_expect(conf->shares[0].read_only);
	cr_expect(!conf->shares[1].read_only);
	config_free(conf);
	free(text);
}

Test(config, duplicate_sections)
{
	char *text = NULL;

	cr_assert_neq(asprintf(&text, "[files]\npath = %s\n[other]\npath = %s\n"
			       "[files]\nread_only = yes\n", sharedir, sharedir), -1);
	expect_error(text, "t.conf:5: [files]: duplicate section (first at line 1)");
	free(text);

	/* Even with nothing in between, and even when empty. */
	expect_error("[files]\n[files]\n", "t.conf:2: [files]: duplicate section (first at line 1)");

	cr_assert_neq(asprintf(&text, "[server]\nworkers = 2\n[files]\npath = %s\n[server]\n",
			       sharedir), -1);
	expect_error(text, "t.conf:5: [server]: duplicate section (first at line 1)");
	free(text);
}

Test(config, share_names)
{
	static const char *const bad[] = {
		"bad name", ".hidden", "-dash", "", "a/b", "caf\xc3\xa9", " files",
		/* 65 characters */
		"a1234567890123456789012345678901234567890123456789012345678901234",
	};
	char name64[] = "a123456789012345678901234567890123456789012345678901234567890123";
	char *text = NULL;
	struct config *conf;
	size_t i;

	cr_assert_eq(strlen(name64), 64);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *line = join("[", bad[i], "]\n");
		char *want = join("t.conf:1: [", bad[i],
				  "]: invalid share name (1 to 64 letters, digits, '_', '.' or '-', "
				  "not starting with '.' or '-')");

		expect_error(line, want);
		free(want);
		free(line);
	}

	/* Longer than inih's 49-byte section buffer: must survive uncut. */
	cr_assert_neq(asprintf(&text, "[%s]\npath = %s\nread_only = yes\n[_x]\npath = %s\n",
			       name64, sharedir, sharedir), -1);
	conf = load_ok(text);
	cr_assert_eq(conf->n_shares, 2);
	cr_expect_str_eq(conf->shares[0].name, name64);
	cr_expect(conf->shares[0].read_only);
	cr_expect_str_eq(conf->shares[1].name, "_x");
	config_free(conf);
	free(text);
}

Test(config, shares_that_differ_past_49_characters)
{
	const char *a = "s1234567890123456789012345678901234567890123456789_a";
	const char *b = "s1234567890123456789012345678901234567890123456789_b";
	char *text = NULL;
	struct config *conf;

	cr_assert_neq(asprintf(&text, "[%s]\npath = %s\n[%s]\npath = %s\nread_only = yes\n",
			       a, sharedir, b, sharedir), -1);
	conf = load_ok(text);
	cr_assert_eq(conf->n_shares, 2);
	cr_expect(!config_find_share(conf, a, strlen(a))->read_only);
	cr_expect(config_find_share(conf, b, strlen(b))->read_only);
	config_free(conf);
	free(text);
}

Test(config, missing_path)
{
	char *share = files_share();
	char *text = join(share, "[empty]\n", "");

	expect_error(text, "t.conf: [empty] path: missing (every share needs one)");
	free(text);
	text = join(share, "[nopath]\nread_only = yes\n", "");
	expect_error(text, "t.conf: [nopath] path: missing (every share needs one)");
	free(text);
	free(share);
}

Test(config, path_does_not_exist)
{
	char *text = NULL;
	char *want = NULL;

	cr_assert_neq(asprintf(&text, "[files]\npath = %s/nope\n", tmpdir), -1);
	cr_assert_neq(asprintf(&want, "t.conf:2: [files] path: \"%s/nope\": No such file or directory",
			       tmpdir), -1);
	expect_error(text, want);
	free(want);
	free(text);
}

Test(config, path_not_a_directory)
{
	char file[256];
	char *text = NULL;
	char *want = NULL;

	snprintf(file, sizeof(file), "%s/plain", tmpdir);
	write_file(file, "x", 1);
	cr_assert_neq(asprintf(&text, "[files]\npath = %s\n", file), -1);
	cr_assert_neq(asprintf(&want, "t.conf:2: [files] path: \"%s\" is not a directory", file), -1);
	expect_error(text, want);
	free(want);
	free(text);
}

Test(config, no_share)
{
	expect_error("[server]\nworkers = 2\n",
		     "t.conf: no share defined (add a section such as [files] with a path)");
	expect_error("", "t.conf: no share defined (add a section such as [files] with a path)");
	expect_error("; only a comment\n",
		     "t.conf: no share defined (add a section such as [files] with a path)");
}

Test(config, comments_and_whitespace)
{
	char *text = NULL;
	struct config *conf;

	text = strdup("\xEF\xBB\xBF; byte order mark first\n"
		      "[server] ; the server\n"
		      "   # indented comment\n"
		      "\t; another\n"
		      "workers   =    8   ; eight\n"
		      "backlog=16;not a comment without a space before it, so junk\n");
	cr_assert_not_null(text);
	expect_error(text, "t.conf:6: backlog: expected a decimal number, "
		     "got \"16;not a comment without a space before it, so junk\"");
	free(text);

	cr_assert_neq(asprintf(&text,
		"\xEF\xBB\xBF; byte order mark first\r\n"
		"[server] ; the server\r\n"
		"   # indented comment\r\n"
		"\r\n"
		"workers   =    8   ; eight\r\n"
		"[files]\r\n"
		"path = %s\r\n"
		"max_file_size = 1K", sharedir), -1);
	conf = load_ok(text);
	cr_expect_eq(conf->workers, 8);
	cr_expect_str_eq(conf->shares[0].path, sharedir);
	cr_expect_eq(conf->shares[0].max_file_size, 1024);
	config_free(conf);
	free(text);
}

Test(config, line_length_limit)
{
	char line[300];
	char *share = files_share();
	char *text;

	/* Debian's libinih reads lines through a 200-byte buffer. */
	memset(line, 'x', sizeof(line));
	line[0] = '#';
	line[198] = '\0';
	text = join(share, line, "\n");
	config_free(load_ok(text));
	free(text);

	line[198] = 'x';
	line[199] = '\0';
	text = join(share, line, "\nworkers = 4\n");
	expect_error(text, "t.conf:3: line longer than 198 characters");
	free(text);
	free(share);
}

Test(config, listen_list)
{
	char *share = files_share();
	char *text = join("[server]\n"
			  "listen = 127.0.0.1:5005, [::1]:5005 [::]:0,*:80\t,,host.name:65535 "
			  "localhost:1 [fe80::1%lo]:5005 [::ffff:10.0.0.1]:7\n", share, "");
	struct config *conf = load_ok(text);
	static const char *const want[] = {
		"127.0.0.1:5005", "[::1]:5005", "[::]:0", "*:80", "host.name:65535",
		"localhost:1", "[fe80::1%lo]:5005", "[::ffff:10.0.0.1]:7",
	};
	size_t i;

	cr_assert_eq(conf->n_listen, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < conf->n_listen; i++)
		cr_expect_str_eq(conf->listen[i], want[i]);
	config_free(conf);
	free(text);
	free(share);
}

/* Whatever the config accepts, the listener can split with its own
 * buffers: the same parser decides both. */
Test(config, listen_addresses_split_for_the_listener)
{
	char *share = files_share();
	char *text = join("[server]\n"
			  "listen = h:000000000000000000000080 [fe80::1%abcdefghijklmno]:0 "
			  "[::ffff:255.255.255.255]:65535 *:00 a-b.c:1\n", share, "");
	struct config *conf = load_ok(text);
	static const char *const want_port[] = { "80", "0", "65535", "0", "1" };
	char host[LISTENER_HOST_CAP], port[LISTENER_PORT_CAP];
	size_t i;

	cr_assert_eq(conf->n_listen, sizeof(want_port) / sizeof(want_port[0]));
	for (i = 0; i < conf->n_listen; i++) {
		cr_assert_eq(listener_split_address(conf->listen[i], host, sizeof(host),
						    port, sizeof(port), NULL), 0,
			     "%s", conf->listen[i]);
		cr_expect_str_eq(port, want_port[i], "%s", conf->listen[i]);
	}
	config_free(conf);
	free(text);
	free(share);
}

Test(config, listen_sixteen_addresses)
{
	char *share = files_share();
	char *text = join("[server]\nlisten = a:1 a:2 a:3 a:4 a:5 a:6 a:7 a:8 a:9 a:10 a:11 "
			  "a:12 a:13 a:14 a:15 a:16\n", share, "");
	struct config *conf = load_ok(text);

	cr_assert_eq(conf->n_listen, CONFIG_LISTEN_MAX);
	cr_expect_str_eq(conf->listen[15], "a:16");
	config_free(conf);
	free(text);
	free(share);
}

Test(config, listen_equal)
{
	char *share = files_share();
	char *t1 = join("[server]\nlisten = 127.0.0.1:1 [::1]:2\n", share, "");
	char *t2 = join("[server]\nlisten = [::1]:2,127.0.0.1:1\n", share, "");
	char *t3 = join("[server]\nlisten = 127.0.0.1:1 [::1]:3\n", share, "");
	char *t4 = join("[server]\nlisten = 127.0.0.1:1\n", share, "");
	struct config *c1 = load_ok(t1), *c2 = load_ok(t2), *c3 = load_ok(t3), *c4 = load_ok(t4);
	struct config *dflt = load_ok(share);

	cr_expect(config_listen_equal(c1, c1));
	cr_expect(config_listen_equal(c1, c2));
	cr_expect(config_listen_equal(c2, c1));
	cr_expect(!config_listen_equal(c1, c3));
	cr_expect(!config_listen_equal(c1, c4));
	cr_expect(!config_listen_equal(c4, c1));
	cr_expect(!config_listen_equal(c4, dflt));
	config_free(dflt);
	config_free(c4);
	config_free(c3);
	config_free(c2);
	config_free(c1);
	free(t4);
	free(t3);
	free(t2);
	free(t1);
	free(share);
}

Test(config, find_share)
{
	char *text = NULL;
	struct config *conf;
	const struct share_conf *s;

	cr_assert_neq(asprintf(&text, "[files]\npath = %s\n[files2]\npath = %s\nread_only = yes\n",
			       sharedir, sharedir), -1);
	conf = load_ok(text);
	s = config_find_share(conf, "files/some/file", 5);
	cr_assert_not_null(s);
	cr_expect_str_eq(s->name, "files");
	s = config_find_share(conf, "files2", 6);
	cr_assert_not_null(s);
	cr_expect(s->read_only);
	cr_expect_null(config_find_share(conf, "file", 4));
	cr_expect_null(config_find_share(conf, "files22", 7));
	cr_expect_null(config_find_share(conf, "server", 6));
	cr_expect_null(config_find_share(conf, "", 0));
	cr_expect_null(config_find_share(NULL, "files", 5));
	config_free(conf);
	free(text);
}

Test(config, free_null)
{
	config_free(NULL);
}

Test(config, load_file_reports_path_and_line)
{
	char path[256];
	char want[512];
	char *text = NULL;
	struct config *conf = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/tcpfiled.conf", tmpdir);
	cr_assert_neq(asprintf(&text, "# test\n[server]\nlisten = 127.0.0.1:0\n\n"
			       "fsync = yes\nbacklog = 64\nworkers = 0\n[files]\npath = %s\n",
			       sharedir), -1);
	write_file(path, text, strlen(text));
	r = config_load(path, &conf, errbuf, sizeof(errbuf));
	cr_expect_eq(r, -EINVAL);
	cr_expect_null(conf);
	snprintf(want, sizeof(want), "%s:7: workers: must be between 1 and 512, got \"0\"", path);
	cr_expect_str_eq(errbuf, want);
	free(text);
}

Test(config, load_file_ok)
{
	char path[256];
	char *text = NULL;
	struct config *conf = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/tcpfiled.conf", tmpdir);
	cr_assert_neq(asprintf(&text, "[server]\nworkers = 3\n[files]\npath = %s\n", sharedir), -1);
	write_file(path, text, strlen(text));
	r = config_load(path, &conf, errbuf, sizeof(errbuf));
	cr_assert_eq(r, 0, "%s", errbuf);
	cr_expect_str_eq(conf->file, path);
	cr_expect_eq(conf->workers, 3);
	cr_expect_str_eq(conf->shares[0].path, sharedir);
	config_free(conf);
	free(text);
}

Test(config, load_file_nul_byte)
{
	static const char data[] = "[server]\nwork\0ers = 4\n";
	char path[256];
	char want[512];
	struct config *conf = NULL;

	snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
	write_file(path, data, sizeof(data) - 1);
	cr_expect_eq(config_load(path, &conf, errbuf, sizeof(errbuf)), -EINVAL);
	cr_expect_null(conf);
	snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", path);
	cr_expect_str_eq(errbuf, want);
}

Test(config, load_missing_file)
{
	char path[256];
	char want[512];
	struct config *conf = NULL;

	snprintf(path, sizeof(path), "%s/absent.conf", tmpdir);
	cr_expect_eq(config_load(path, &conf, errbuf, sizeof(errbuf)), -ENOENT);
	cr_expect_null(conf);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	cr_expect_str_eq(errbuf, want);
}

Test(config, load_directory)
{
	char want[512];
	struct config *conf = NULL;

	cr_expect_eq(config_load(sharedir, &conf, errbuf, sizeof(errbuf)), -EISDIR);
	cr_expect_null(conf);
	snprintf(want, sizeof(want), "%s: Is a directory", sharedir);
	cr_expect_str_eq(errbuf, want);
}

Test(config, small_or_no_error_buffer)
{
	char small[8];
	struct config *conf = NULL;

	memset(small, 'x', sizeof(small));
	cr_expect_eq(config_load_string("[server]\nworkers = 0\n", "t.conf", &conf,
					small, sizeof(small)), -EINVAL);
	cr_expect_str_eq(small, "t.conf:");
	cr_expect_eq(config_load_string("[server]\nworkers = 0\n", "t.conf", &conf,
					NULL, 0), -EINVAL);
	cr_expect_null(conf);
}

/* The shipped reference config must always load, with every default. */
Test(config, reference_config)
{
	const char *root = getenv("TCPFILED_SOURCE_ROOT");
	static const char needle[] = "/var/lib/tcpfiled/files";
	char path[256];
	char *data = NULL, *out = NULL, *p, *hit;
	size_t len = 0, outlen = 0;
	FILE *fp, *mem;
	struct config *conf;
	int hits = 0;

	cr_assert_not_null(root, "TCPFILED_SOURCE_ROOT is not set (run through meson test)");
	cr_assert_lt(snprintf(path, sizeof(path), "%s/conf/tcpfiled.conf", root),
		     (int)sizeof(path));
	fp = fopen(path, "re");
	cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
	cr_assert_neq(getdelim(&data, &len, '\0', fp), -1);
	fclose(fp);

	mem = open_memstream(&out, &outlen);
	cr_assert_not_null(mem);
	for (p = data; (hit = strstr(p, needle)); p = hit + strlen(needle)) {
		fwrite(p, 1, (size_t)(hit - p), mem);
		fputs(sharedir, mem);
		hits++;
	}
	fputs(p, mem);
	fclose(mem);
	cr_assert_eq(hits, 1, "the reference config should name %s once", needle);

	conf = load_ok(out);
	expect_defaults(conf);
	config_free(conf);
	free(out);
	free(data);
}

/* ---- the pool keys bound each other ---- */

static struct config *load_server(const char *server)
{
	char *text = NULL, *share = files_share();
	struct config *conf;

	cr_assert_neq(asprintf(&text, "[server]\n%s\n%s", server, share), -1);
	conf = load_ok(text);
	free(text);
	free(share);
	return conf;
}

static void expect_server_error(const char *server, const char *want)
{
	char *text = NULL, *share = files_share();

	cr_assert_neq(asprintf(&text, "[server]\n%s\n%s", server, share), -1);
	expect_error(text, want);
	free(text);
	free(share);
}

Test(config, pool_bounds_follow_the_key_that_was_set)
{
	struct config *conf = load_server("workers = 100\nmin_spare = 20");

	cr_expect_eq(conf->max_workers, 100, "max_workers rises to workers");
	cr_expect_eq(conf->max_spare, 20, "max_spare rises to min_spare");
	config_free(conf);

	conf = load_server("idle_timeout = 1h");
	cr_expect_eq(conf->hung_timeout_ms, 2 * 3600 * 1000, "hung_timeout above idle_timeout");
	config_free(conf);

	conf = load_server("workers = 3\nmax_workers = 3\nmin_spare = 0\nmax_spare = 0\n"
			   "max_requests = 0\nhung_timeout = 0\nstatus_file =");
	cr_expect_eq(conf->max_workers, 3);
	cr_expect_eq(conf->max_spare, 0);
	cr_expect_eq(conf->max_requests, 0);
	cr_expect_eq(conf->hung_timeout_ms, 0);
	cr_expect_str_eq(conf->status_file, "");
	config_free(conf);
}

Test(config, pool_bounds_set_against_each_other)
{
	expect_server_error("workers = 8\nmax_workers = 4",
			    "t.conf:3: max_workers: max_workers (4) must be at least workers (8)");
	expect_server_error("max_workers = 4\nworkers = 8",
			    "t.conf:3: workers: max_workers (4) must be at least workers (8)");
	expect_server_error("max_workers = 2",
			    "t.conf:2: max_workers: max_workers (2) must be at least workers (4)");
	expect_server_error("min_spare = 5\nmax_spare = 4",
			    "t.conf:3: max_spare: max_spare (4) must be at least min_spare (5)");
	expect_server_error("idle_timeout = 10m\nhung_timeout = 10m",
			    "t.conf:3: hung_timeout: hung_timeout (600000 ms) must be longer "
			    "than idle_timeout (600000 ms), or 0");
	expect_server_error("max_workers = 513",
			    "t.conf:2: max_workers: must be between 1 and 512, got \"513\"");
	expect_server_error("status_file = run/status",
			    "t.conf:2: status_file: must be an absolute path or empty, got "
			    "\"run/status\"");
}
