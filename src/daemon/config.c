/* config: the INI configuration, loaded table-driven through inih. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_config.h"
#include "listener.h"
#include "log.h"
#include "parse.h"
#include "users.h"

#define CONFIG_DEFAULT_LISTEN   "127.0.0.1:5005"
#define CONFIG_SHARE_NAME_MAX   64
#define CONFIG_HOST_MAX         253
#define CONFIG_SCOPE_MAX        15      /* IFNAMSIZ - 1 */

#define SEC_MS  UINT64_C(1000)
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

enum config_kind {
	CONFIG_KIND_NONE,       /* before the first [section] */
	CONFIG_KIND_SERVER,
	CONFIG_KIND_SHARE,
};

enum config_type {
	CONFIG_BOOL,
	CONFIG_UINT,
	CONFIG_SIZE,
	CONFIG_DURATION,
	CONFIG_LOGLEVEL,
	CONFIG_LISTEN,
	CONFIG_PATH,
	CONFIG_HOSTS,
	CONFIG_TLS_VERSION,
	CONFIG_OPTPATH,         /* an absolute path, or empty for none */
	CONFIG_OCTAL,
	CONFIG_MARGIN,          /* def: a percentage */
	CONFIG_TLS_LISTEN,      /* like CONFIG_LISTEN, into tls_listen */
	CONFIG_SECRET,          /* an absolute path or credential:NAME */
	CONFIG_ANONYMOUS,       /* no, read or write */
	CONFIG_USERS,           /* user names or "*" */
};

#define CONFIG_CREDENTIAL_PREFIX "credential:"
#define CONFIG_CREDENTIAL_MAX    255

struct config_key {
	enum config_kind kind;
	const char *name;
	enum config_type type;
	uint64_t min, max, def;
	size_t offset;
	size_t size;
};

#define SERVER_FIELD(m) \
	offsetof(struct config, m), sizeof(((struct config *)0)->m)
#define SHARE_FIELD(m) \
	offsetof(struct share_conf, m), sizeof(((struct share_conf *)0)->m)

static const struct config_key config_keys[] = {
	{ CONFIG_KIND_SERVER, "listen", CONFIG_LISTEN, 0, 0, 0, SERVER_FIELD(listen) },
	{ CONFIG_KIND_SERVER, "tls_listen", CONFIG_TLS_LISTEN, 0, 0, 0,
	  SERVER_FIELD(tls_listen) },
	{ CONFIG_KIND_SERVER, "workers", CONFIG_UINT, 1, CONFIG_WORKERS_MAX, 4,
	  SERVER_FIELD(workers) },
	/* Default 0: not a valid value, replaced by config_default_backlog(). */
	{ CONFIG_KIND_SERVER, "backlog", CONFIG_UINT, 1, 65535, 0, SERVER_FIELD(backlog) },
	{ CONFIG_KIND_SERVER, "defer_accept", CONFIG_DURATION, 0, 10 * MIN_MS, 5 * SEC_MS,
	  SERVER_FIELD(defer_accept_ms) },
	{ CONFIG_KIND_SERVER, "hosts_allow", CONFIG_HOSTS, 0, 0, 0, SERVER_FIELD(hosts_allow) },
	{ CONFIG_KIND_SERVER, "hosts_deny", CONFIG_HOSTS, 0, 0, 0, SERVER_FIELD(hosts_deny) },
	{ CONFIG_KIND_SERVER, "max_per_ip", CONFIG_UINT, 0, 65535, 0, SERVER_FIELD(max_per_ip) },
	{ CONFIG_KIND_SERVER, "shutdown_timeout", CONFIG_DURATION, 0, HOUR_MS, 30 * SEC_MS,
	  SERVER_FIELD(shutdown_timeout_ms) },
	{ CONFIG_KIND_SERVER, "idle_timeout", CONFIG_DURATION, SEC_MS, DAY_MS, 5 * MIN_MS,
	  SERVER_FIELD(idle_timeout_ms) },
	{ CONFIG_KIND_SERVER, "handshake_timeout", CONFIG_DURATION, SEC_MS, HOUR_MS, 10 * SEC_MS,
	  SERVER_FIELD(handshake_timeout_ms) },
	{ CONFIG_KIND_SERVER, "min_rate", CONFIG_SIZE, 0, UINT64_MAX, 1024,
	  SERVER_FIELD(min_rate) },
	{ CONFIG_KIND_SERVER, "min_rate_window", CONFIG_DURATION, SEC_MS, HOUR_MS, 20 * SEC_MS,
	  SERVER_FIELD(min_rate_window_ms) },
	{ CONFIG_KIND_SERVER, "crash_loop_timeout", CONFIG_DURATION, 0, DAY_MS, 60 * SEC_MS,
	  SERVER_FIELD(crash_loop_timeout_ms) },
	{ CONFIG_KIND_SERVER, "min_spare", CONFIG_UINT, 0, CONFIG_WORKERS_MAX, 2,
	  SERVER_FIELD(min_spare) },
	{ CONFIG_KIND_SERVER, "max_spare", CONFIG_UINT, 0, CONFIG_WORKERS_MAX, 8,
	  SERVER_FIELD(max_spare) },
	{ CONFIG_KIND_SERVER, "max_workers", CONFIG_UINT, 1, CONFIG_WORKERS_MAX, 64,
	  SERVER_FIELD(max_workers) },
	{ CONFIG_KIND_SERVER, "max_requests", CONFIG_UINT, 0, UINT32_MAX, 10000,
	  SERVER_FIELD(max_requests) },
	{ CONFIG_KIND_SERVER, "max_requests_jitter", CONFIG_UINT, 0, 1000000, 1000,
	  SERVER_FIELD(max_requests_jitter) },
	{ CONFIG_KIND_SERVER, "hung_timeout", CONFIG_DURATION, 0, DAY_MS, 10 * MIN_MS,
	  SERVER_FIELD(hung_timeout_ms) },
	{ CONFIG_KIND_SERVER, "status_file", CONFIG_OPTPATH, 0, 0, 0,
	  SERVER_FIELD(status_file) },
	{ CONFIG_KIND_SERVER, "log_level", CONFIG_LOGLEVEL, 0, 0, LOG_INFO,
	  SERVER_FIELD(log_level) },
	{ CONFIG_KIND_SERVER, "fsync", CONFIG_BOOL, 0, 1, 1, SERVER_FIELD(fsync) },
	{ CONFIG_KIND_SERVER, "users_file", CONFIG_SECRET, 0, 0, 0, SERVER_FIELD(users_file) },
	{ CONFIG_KIND_SERVER, "tls_certificate", CONFIG_SECRET, 0, 0, 0,
	  SERVER_FIELD(tls_certificate) },
	{ CONFIG_KIND_SERVER, "tls_key", CONFIG_SECRET, 0, 0, 0, SERVER_FIELD(tls_key) },
	{ CONFIG_KIND_SERVER, "tls_min_version", CONFIG_TLS_VERSION, 0, 0, CONFIG_TLS_1_3,
	  SERVER_FIELD(tls_min_version) },
	{ CONFIG_KIND_SERVER, "allow_plaintext", CONFIG_BOOL, 0, 1, 0,
	  SERVER_FIELD(allow_plaintext) },
	{ CONFIG_KIND_SERVER, "anonymous_remote", CONFIG_BOOL, 0, 1, 0,
	  SERVER_FIELD(anonymous_remote) },
	{ CONFIG_KIND_SHARE, "path", CONFIG_PATH, 0, 0, 0, SHARE_FIELD(path) },
	{ CONFIG_KIND_SHARE, "read_only", CONFIG_BOOL, 0, 1, 0, SHARE_FIELD(read_only) },
	{ CONFIG_KIND_SHARE, "overwrite", CONFIG_BOOL, 0, 1, 1, SHARE_FIELD(overwrite) },
	{ CONFIG_KIND_SHARE, "max_file_size", CONFIG_SIZE, 0, UINT64_MAX, 0,
	  SHARE_FIELD(max_file_size) },
	{ CONFIG_KIND_SHARE, "min_free", CONFIG_MARGIN, 0, 100, 1, SHARE_FIELD(min_free) },
	{ CONFIG_KIND_SHARE, "umask", CONFIG_OCTAL, 0, 0777, 022, SHARE_FIELD(umask) },
	{ CONFIG_KIND_SHARE, "anonymous", CONFIG_ANONYMOUS, 0, 0, CONFIG_ANON_NO,
	  SHARE_FIELD(anonymous) },
	{ CONFIG_KIND_SHARE, "read_users", CONFIG_USERS, 0, 0, 0, SHARE_FIELD(read_users) },
	{ CONFIG_KIND_SHARE, "write_users", CONFIG_USERS, 0, 0, 0, SHARE_FIELD(write_users) },
};

#define CONFIG_N_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* Integer fields are stored through fixed-width copies. */
_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned is 32 bits");
_Static_assert(sizeof(int) == sizeof(uint32_t), "int is 32 bits");

struct config_parser {
	struct config *conf;
	const char *file;
	char *err;
	size_t errlen;
	int error;              /* first error (negative errno), 0 while fine */
	unsigned err_line;      /* its line, 0 when it has none */

	FILE *fp;               /* line source: a file ... */
	const char *text;       /* ... or a string (NULL once consumed) */
	char *buf;              /* getline() buffer */
	size_t cap;
	unsigned lineno;        /* line most recently handed to inih */

	enum config_kind kind;  /* of the section being read */
	size_t share;           /* index into conf->shares when kind is SHARE */
	unsigned server_line;   /* line of [server], 0 until seen */
	unsigned key_line[CONFIG_N_KEYS]; /* where each key of this section was set */
	unsigned server_key_line[CONFIG_N_KEYS]; /* the same for [server], kept */
};

__attribute__((format(printf, 4, 5)))
static void config_fail(struct config_parser *p, int error, unsigned line,
			const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->error)
		return;
	p->error = error;
	p->err_line = line;
	if (!p->err || p->errlen == 0)
		return;
	if (line)
		n = snprintf(p->err, p->errlen, "%s:%u: ", p->file, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->file);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static const struct config_key *config_key_find(enum config_kind kind, const char *name)
{
	size_t i;

	for (i = 0; i < CONFIG_N_KEYS; i++)
		if (config_keys[i].kind == kind && strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static void *config_field(void *base, const struct config_key *key)
{
	return (char *)base + key->offset;
}

static void config_store_u64(void *base, const struct config_key *key, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;

	if (key->size == sizeof(uint64_t))
		memcpy(config_field(base, key), &v, sizeof(v));
	else
		memcpy(config_field(base, key), &v32, sizeof(v32));
}

static void config_apply_defaults(void *base, enum config_kind kind)
{
	const struct config_key *key;
	struct config_margin m;
	bool b;
	int i;

	for (key = config_keys; key < config_keys + CONFIG_N_KEYS; key++) {
		if (key->kind != kind)
			continue;
		switch (key->type) {
		case CONFIG_BOOL:
			b = key->def != 0;
			memcpy(config_field(base, key), &b, sizeof(b));
			break;
		case CONFIG_UINT:
		case CONFIG_SIZE:
		case CONFIG_DURATION:
		case CONFIG_OCTAL:
			config_store_u64(base, key, key->def);
			break;
		case CONFIG_MARGIN:
			m = (struct config_margin){ .percent = (unsigned)key->def };
			memcpy(config_field(base, key), &m, sizeof(m));
			break;
		case CONFIG_LOGLEVEL:
		case CONFIG_TLS_VERSION:
		case CONFIG_ANONYMOUS:
			i = (int)key->def;
			memcpy(config_field(base, key), &i, sizeof(i));
			break;
		case CONFIG_LISTEN:     /* filled in after parsing if never set */
		case CONFIG_OPTPATH:    /* likewise */
		case CONFIG_PATH:       /* required, no default */
		case CONFIG_SECRET:     /* optional, NULL */
		case CONFIG_HOSTS:      /* calloc'd empty list */
		case CONFIG_TLS_LISTEN: /* none */
		case CONFIG_USERS:      /* none */
			break;
		}
	}
}

/* Renders a range bound the way a user would write it. */
static const char *config_format_bound(const struct config_key *key, uint64_t v,
				       char *buf, size_t cap)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "d", DAY_MS }, { "h", HOUR_MS }, { "m", MIN_MS }, { "s", SEC_MS },
	};
	size_t i;

	if (key->type == CONFIG_OCTAL) {
		snprintf(buf, cap, "%04" PRIo64, v);
		return buf;
	}
	if (key->type == CONFIG_DURATION && v != 0) {
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (v % units[i].ms == 0) {
				snprintf(buf, cap, "%" PRIu64 "%s", v / units[i].ms, units[i].unit);
				return buf;
			}
		}
		snprintf(buf, cap, "%" PRIu64 "ms", v);
		return buf;
	}
	snprintf(buf, cap, "%" PRIu64, v);
	return buf;
}

/* Octal digits only, at most 4 of them (0777 with a leading 0). */
static int config_parse_octal(const char *s, uint64_t *out)
{
	size_t len = strlen(s);

	if (len == 0 || len > 4 || strspn(s, "01234567") != len)
		return -EINVAL;
	*out = strtoull(s, NULL, 8);
	return 0;
}

/* "N%" (0..100) or a size. */
static int config_set_margin(struct config_parser *p, const struct config_key *key,
			     void *base, const char *value)
{
	struct config_margin m = { 0 };
	size_t len = strlen(value);
	uint64_t v;
	int r;

	if (len > 1 && value[len - 1] == '%') {
		r = parse_u64_n(value, len - 1, &v);
		if (r == 0 && v > key->max)
			r = -ERANGE;
		m.percent = (unsigned)v;
	} else {
		r = parse_size(value, &m.bytes);
	}
	if (r < 0) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: expected a size such as 512M or 2G, or a percentage from 0%% to %" PRIu64 "%%, got \"%s\"",
			    key->name, key->max, value);
		return -EINVAL;
	}
	memcpy(config_field(base, key), &m, sizeof(m));
	return 0;
}

static int config_set_number(struct config_parser *p, const struct config_key *key,
			     void *base, const char *value)
{
	char lo[32], hi[32];
	const char *expected;
	uint64_t v = 0;
	int r;

	switch (key->type) {
	case CONFIG_OCTAL:
		r = config_parse_octal(value, &v);
		expected = "an octal mode such as 022 or 0027";
		break;
	case CONFIG_SIZE:
		r = parse_size(value, &v);
		expected = "a size such as 1048576, 512K, 10M or 2G";
		break;
	case CONFIG_DURATION:
		r = parse_duration_ms(value, &v);
		expected = "a duration such as 500ms, 30s, 5m, 2h or 1d";
		break;
	default:
		r = parse_u64(value, &v);
		expected = "a decimal number";
		break;
	}
	if (r == -EINVAL) {
		config_fail(p, -EINVAL, p->lineno, "%s: expected %s, got \"%s\"",
			    key->name, expected, value);
		return r;
	}
	if (r == -ERANGE && key->max == UINT64_MAX) {
		config_fail(p, -EINVAL, p->lineno, "%s: value too large, got \"%s\"",
			    key->name, value);
		return -EINVAL;
	}
	if (r == -ERANGE || v < key->min || v > key->max) {
		config_fail(p, -EINVAL, p->lineno, "%s: must be between %s and %s, got \"%s\"",
			    key->name, config_format_bound(key, key->min, lo, sizeof(lo)),
			    config_format_bound(key, key->max, hi, sizeof(hi)), value);
		return -EINVAL;
	}
	config_store_u64(base, key, v);
	return 0;
}

/* ASCII only, whatever the locale says. */
static bool config_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool config_hostname_valid(const char *host, size_t len)
{
	size_t label = 0;
	size_t i;

	if (len == 0 || len > CONFIG_HOST_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = host[i];

		if (c == '.') {
			if (label == 0 || host[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!config_is_alnum(c) && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && host[len - 1] != '-';
}

/* Vets the host listener_split_address took out of addr: brackets hold an
 * IPv6 address with an optional %scope; otherwise it is "" (from "*"), an
 * IPv4 address or a host name.  Returns NULL or why it is malformed. */
static const char *config_host_problem(const char *addr, char *host)
{
	unsigned char bin[sizeof(struct in6_addr)];
	size_t hlen = strlen(host);
	char *pct;

	if (addr[0] == '[') {
		pct = strchr(host, '%');
		if (pct) {
			size_t slen = strlen(pct + 1);

			if (slen == 0 || slen > CONFIG_SCOPE_MAX)
				return "bad IPv6 scope (expected an interface name after '%')";
			*pct = '\0';
		}
		return inet_pton(AF_INET6, host, bin) == 1 ? NULL : "not an IPv6 address";
	}
	if (hlen == 0)
		return NULL;
	if (hlen > CONFIG_HOST_MAX)
		return "host name too long";
	if (strspn(host, "0123456789.") == hlen)
		return inet_pton(AF_INET, host, bin) == 1 ? NULL : "not an IPv4 address";
	return config_hostname_valid(host, hlen) ? NULL : "not a valid host name";
}

/* Splits with the listener's own parser and buffer sizes, so that every
 * address accepted here is one listener_bind can split.  Returns NULL or
 * why the address is malformed. */
static const char *config_address_problem(const char *addr)
{
	char host[LISTENER_HOST_CAP], port[LISTENER_PORT_CAP];
	const char *why = "malformed address";

	if (listener_split_address(addr, host, sizeof(host), port, sizeof(port), &why) < 0)
		return why;
	return config_host_problem(addr, host);
}

static int config_set_listen(struct config_parser *p, const struct config_key *key,
			     const char *value)
{
	static const char seps[] = " \t,";
	struct config *conf = p->conf;
	bool tls = key->type == CONFIG_TLS_LISTEN;
	char **list = tls ? conf->tls_listen : conf->listen;
	size_t *n = tls ? &conf->n_tls_listen : &conf->n_listen;
	const char *s = value;
	const char *why;
	size_t len, i;
	char *addr;

	for (s += strspn(s, seps); *s; s += strspn(s, seps)) {
		len = strcspn(s, seps);
		if (*n == CONFIG_LISTEN_MAX) {
			config_fail(p, -EINVAL, p->lineno, "%s: at most %d addresses, got \"%s\"",
				    key->name, CONFIG_LISTEN_MAX, value);
			return -EINVAL;
		}
		addr = strndup(s, len);
		if (!addr) {
			config_fail(p, -ENOMEM, p->lineno, "%s: out of memory", key->name);
			return -ENOMEM;
		}
		why = config_address_problem(addr);
		for (i = 0; !why && i < *n; i++)
			if (strcmp(list[i], addr) == 0)
				why = "address listed twice";
		if (why) {
			config_fail(p, -EINVAL, p->lineno, "%s: %s, got \"%s\"",
				    key->name, why, addr);
			free(addr);
			return -EINVAL;
		}
		list[(*n)++] = addr;
		s += len;
	}
	if (*n == 0) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: expected one or more addresses such as 127.0.0.1:5005, got \"%s\"",
			    key->name, value);
		return -EINVAL;
	}
	return 0;
}

static int config_set_hosts(struct config_parser *p, const struct config_key *key,
			    void *base, const char *value)
{
	struct access_list *list = config_field(base, key);
	const char *why = "malformed rule";
	char bad[64] = "";
	int r;

	r = access_list_parse(list, value, &why, bad, sizeof(bad));
	if (r == -ENOMEM) {
		config_fail(p, r, p->lineno, "%s: out of memory", key->name);
		return r;
	}
	if (r < 0) {
		config_fail(p, -EINVAL, p->lineno, "%s: %s, got \"%s\"", key->name, why, bad);
		return -EINVAL;
	}
	if (list->n == 0) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: expected addresses such as 127.0.0.0/8 ::1, got \"%s\"",
			    key->name, value);
		return -EINVAL;
	}
	return 0;
}

/* "credential:NAME": the file systemd's LoadCredential= put in
 * $CREDENTIALS_DIRECTORY.  Returns the path (malloc'd) or NULL with the
 * error recorded. */
static char *config_credential_path(struct config_parser *p, const struct config_key *key,
				    const char *value)
{
	const char *name = value + strlen(CONFIG_CREDENTIAL_PREFIX);
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	size_t len = strlen(name);
	char *path;

	if (len == 0 || len > CONFIG_CREDENTIAL_MAX || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: bad credential name (1 to %d bytes, no '/'), got \"%s\"",
			    key->name, CONFIG_CREDENTIAL_MAX, value);
		return NULL;
	}
	if (!dir || dir[0] != '/') {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: \"%s\" names a systemd credential, but $CREDENTIALS_DIRECTORY "
			    "is not set (LoadCredential= in the unit provides it)", key->name, value);
		return NULL;
	}
	path = malloc(strlen(dir) + 1 + len + 1);
	if (!path) {
		config_fail(p, -ENOMEM, p->lineno, "%s: out of memory", key->name);
		return NULL;
	}
	sprintf(path, "%s/%s", dir, name);
	return path;
}

static int config_set_anonymous(struct config_parser *p, const struct config_key *key,
				void *base, const char *value)
{
	static const char *const names[] = {
		[CONFIG_ANON_NO] = "no", [CONFIG_ANON_READ] = "read", [CONFIG_ANON_WRITE] = "write",
	};

	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
		if (strcmp(value, names[i]) == 0) {
			memcpy(config_field(base, key), &i, sizeof(i));
			return 0;
		}
	}
	config_fail(p, -EINVAL, p->lineno, "%s: expected no, read or write, got \"%s\"",
		    key->name, value);
	return -EINVAL;
}

/* User names separated by spaces, tabs or commas, or "*" alone. */
static int config_set_users(struct config_parser *p, const struct config_key *key,
			    void *base, const char *value)
{
	static const char seps[] = " \t,";
	struct config_users *u = config_field(base, key);
	const char *s = value;
	size_t len;

	for (s += strspn(s, seps); *s; s += strspn(s, seps)) {
		len = strcspn(s, seps);
		if (len == 1 && *s == '*') {
			u->any = true;
		} else if (!users_name_valid(s, len)) {
			config_fail(p, -EINVAL, p->lineno,
				    "%s: bad user name \"%.*s\" (1 to %d letters, digits, '.', '_', "
				    "'-' or '@', not starting with '.' or '-')",
				    key->name, (int)len, s, USERS_NAME_MAX);
			return -EINVAL;
		} else {
			char **names = reallocarray(u->names, u->n + 1, sizeof(*names));

			if (names)
				u->names = names;
			if (!names || !(u->names[u->n] = strndup(s, len))) {
				config_fail(p, -ENOMEM, p->lineno, "%s: out of memory", key->name);
				return -ENOMEM;
			}
			u->n++;
		}
		s += len;
	}
	if (u->any && u->n > 0) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: either \"*\" (any user who logged in) or names, not both, got \"%s\"",
			    key->name, value);
		return -EINVAL;
	}
	if (!u->any && u->n == 0) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: expected user names or \"*\", got \"%s\"", key->name, value);
		return -EINVAL;
	}
	return 0;
}

static int config_set_value(struct config_parser *p, const struct config_key *key,
			    void *base, const char *value)
{
	char *copy;
	bool b;
	int level;

	switch (key->type) {
	case CONFIG_BOOL:
		if (parse_bool(value, &b) < 0) {
			config_fail(p, -EINVAL, p->lineno,
				    "%s: expected yes/no, true/false, on/off or 1/0, got \"%s\"",
				    key->name, value);
			return -EINVAL;
		}
		memcpy(config_field(base, key), &b, sizeof(b));
		return 0;
	case CONFIG_UINT:
	case CONFIG_SIZE:
	case CONFIG_DURATION:
	case CONFIG_OCTAL:
		return config_set_number(p, key, base, value);
	case CONFIG_MARGIN:
		return config_set_margin(p, key, base, value);
	case CONFIG_LOGLEVEL:
		level = log_level_from_name(value);
		if (level < 0) {
			config_fail(p, -EINVAL, p->lineno,
				    "%s: expected err, warning, notice, info or debug, got \"%s\"",
				    key->name, value);
			return -EINVAL;
		}
		memcpy(config_field(base, key), &level, sizeof(level));
		return 0;
	case CONFIG_LISTEN:
	case CONFIG_TLS_LISTEN:
		return config_set_listen(p, key, value);
	case CONFIG_ANONYMOUS:
		return config_set_anonymous(p, key, base, value);
	case CONFIG_USERS:
		return config_set_users(p, key, base, value);
	case CONFIG_SECRET:
		if (strncmp(value, CONFIG_CREDENTIAL_PREFIX, strlen(CONFIG_CREDENTIAL_PREFIX)) == 0) {
			copy = config_credential_path(p, key, value);
			if (!copy)
				return p->error;
			memcpy(config_field(base, key), &copy, sizeof(copy));
			return 0;
		}
		if (value[0] != '/') {
			config_fail(p, -EINVAL, p->lineno,
				    "%s: must be an absolute path or credential:NAME, got \"%s\"",
				    key->name, value);
			return -EINVAL;
		}
		copy = strdup(value);
		if (!copy) {
			config_fail(p, -ENOMEM, p->lineno, "%s: out of memory", key->name);
			return -ENOMEM;
		}
		memcpy(config_field(base, key), &copy, sizeof(copy));
		return 0;
	case CONFIG_HOSTS:
		return config_set_hosts(p, key, base, value);
	case CONFIG_PATH:
	case CONFIG_OPTPATH:
		if (value[0] != '/' && !(key->type == CONFIG_OPTPATH && value[0] == '\0')) {
			config_fail(p, -EINVAL, p->lineno,
				    "%s: must be an absolute path%s, got \"%s\"", key->name,
				    key->type == CONFIG_OPTPATH ? " or empty" : "", value);
			return -EINVAL;
		}
		copy = strdup(value);
		if (!copy) {
			config_fail(p, -ENOMEM, p->lineno, "%s: out of memory", key->name);
			return -ENOMEM;
		}
		memcpy(config_field(base, key), &copy, sizeof(copy));
		if (p->kind == CONFIG_KIND_SHARE)
			p->conf->shares[p->share].path_line = p->lineno;
		return 0;
	case CONFIG_TLS_VERSION:
		if (strcmp(value, "1.3") == 0)
			level = CONFIG_TLS_1_3;
		else if (strcmp(value, "1.2") == 0)
			level = CONFIG_TLS_1_2;
		else {
			config_fail(p, -EINVAL, p->lineno, "%s: expected 1.3 or 1.2, got \"%s\"",
				    key->name, value);
			return -EINVAL;
		}
		memcpy(config_field(base, key), &level, sizeof(level));
		return 0;
	}
	return -EINVAL;
}

/* inih copies section names into a 50-byte buffer and silently cuts longer
 * ones, so the section comes from the reader (which saw the whole header),
 * not from the argument. */
static int config_handler(void *user, const char *section, const char *name,
			  const char *value)
{
	struct config_parser *p = user;
	const struct config_key *key;
	const struct config_key *elsewhere;
	void *base;
	size_t idx;

	if (p->error)
		return 0;
	if (p->kind == CONFIG_KIND_NONE) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: key outside of any section (put it under [server] or a share)",
			    name);
		return 0;
	}
	key = config_key_find(p->kind, name);
	if (!key) {
		elsewhere = config_key_find(p->kind == CONFIG_KIND_SERVER ?
					    CONFIG_KIND_SHARE : CONFIG_KIND_SERVER, name);
		if (p->kind == CONFIG_KIND_SERVER)
			config_fail(p, -EINVAL, p->lineno, "%s: unknown key in [server]%s",
				    name, elsewhere ? " (it belongs in a share section)" : "");
		else
			config_fail(p, -EINVAL, p->lineno, "%s: unknown key in share [%s]%s",
				    name, p->conf->shares[p->share].name,
				    elsewhere ? " (it belongs in [server])" : "");
		return 0;
	}
	idx = (size_t)(key - config_keys);
	if (p->key_line[idx]) {
		config_fail(p, -EINVAL, p->lineno, "%s: duplicate key (first set at line %u)",
			    name, p->key_line[idx]);
		return 0;
	}
	p->key_line[idx] = p->lineno;
	if (p->kind == CONFIG_KIND_SERVER)
		p->server_key_line[idx] = p->lineno;
	if (p->kind == CONFIG_KIND_SERVER)
		base = p->conf;
	else
		base = &p->conf->shares[p->share];
	return config_set_value(p, key, base, value) == 0;
}

static bool config_share_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > CONFIG_SHARE_NAME_MAX)
		return false;
	if (!config_is_alnum(name[0]) && name[0] != '_')
		return false;
	for (i = 1; i < len; i++)
		if (!config_is_alnum(name[i]) && name[i] != '.' && name[i] != '_' &&
		    name[i] != '-')
			return false;
	return true;
}

static int config_add_share(struct config_parser *p, const char *name, size_t len)
{
	struct config *conf = p->conf;
	const struct share_conf *first;
	struct share_conf *shares;
	struct share_conf *share;

	first = config_find_share(conf, name, len);
	if (first) {
		config_fail(p, -EINVAL, p->lineno, "[%.*s]: duplicate section (first at line %u)",
			    (int)len, name, first->line);
		return -EINVAL;
	}
	shares = reallocarray(conf->shares, conf->n_shares + 1, sizeof(*shares));
	if (!shares)
		goto err_nomem;
	conf->shares = shares;
	share = &shares[conf->n_shares];
	memset(share, 0, sizeof(*share));
	share->name = strndup(name, len);
	if (!share->name)
		goto err_nomem;
	share->line = p->lineno;
	config_apply_defaults(share, CONFIG_KIND_SHARE);
	p->share = conf->n_shares++;
	return 0;

err_nomem:
	config_fail(p, -ENOMEM, p->lineno, "out of memory");
	return -ENOMEM;
}

static int config_section_line(struct config_parser *p, const char *line)
{
	const char *name = line + 1;
	const char *close = strchr(name, ']');
	const char *rest;
	size_t len;
	int r;

	if (!close) {
		config_fail(p, -EINVAL, p->lineno, "missing ']' in section header");
		return -EINVAL;
	}
	len = (size_t)(close - name);
	rest = close + 1;
	rest += strspn(rest, " \t\r\f\v");
	if (*rest != '\0' && *rest != ';') {
		config_fail(p, -EINVAL, p->lineno,
			    "unexpected text after ']' (inline comments start with ';')");
		return -EINVAL;
	}
	memset(p->key_line, 0, sizeof(p->key_line));
	if (len == strlen("server") && memcmp(name, "server", len) == 0) {
		if (p->server_line) {
			config_fail(p, -EINVAL, p->lineno,
				    "[server]: duplicate section (first at line %u)",
				    p->server_line);
			return -EINVAL;
		}
		p->server_line = p->lineno;
		p->kind = CONFIG_KIND_SERVER;
		return 0;
	}
	if (!config_share_name_valid(name, len)) {
		config_fail(p, -EINVAL, p->lineno,
			    "[%.*s]: invalid share name (1 to %d letters, digits, '_', '.' or '-', "
			    "not starting with '.' or '-')",
			    (int)len, name, CONFIG_SHARE_NAME_MAX);
		return -EINVAL;
	}
	r = config_add_share(p, name, len);
	if (r < 0)
		return r;
	p->kind = CONFIG_KIND_SHARE;
	return 0;
}

/* Mirrors inih's scan for the separator: an inline ';' comment needs
 * whitespace before it. */
static bool config_has_separator(const char *s)
{
	bool was_space = false;

	for (; *s; s++) {
		if (*s == '=' || *s == ':')
			return true;
		if (was_space && *s == ';')
			return false;
		was_space = isspace((unsigned char)*s);
	}
	return false;
}

/* Rejects, with its line number, what inih would accept silently or
 * report without a reason. */
static int config_check_line(struct config_parser *p, const char *line)
{
	const char *start;

	if (p->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;      /* inih skips a UTF-8 byte order mark too */
	start = line;
	while (isspace((unsigned char)*start))
		start++;
	if (*start == '\0' || *start == ';' || *start == '#')
		return 0;
	if (start != line) {
		/* inih would take it as the continuation of the previous value. */
		config_fail(p, -EINVAL, p->lineno,
			    "indented line (keys and [sections] start in the first column)");
		return -EINVAL;
	}
	if (*start == '[')
		return config_section_line(p, start);
	if (*start == '=' || *start == ':' || !config_has_separator(start)) {
		config_fail(p, -EINVAL, p->lineno,
			    "expected \"key = value\", a [section] or a comment");
		return -EINVAL;
	}
	return 0;
}

/* Returns 1 with the next line (without its newline), 0 at the end, or a
 * negative errno. */
static int config_next_line(struct config_parser *p, const char **line, size_t *len)
{
	const char *nl;
	ssize_t n;

	if (p->fp) {
		errno = 0;
		n = getline(&p->buf, &p->cap, p->fp);
		if (n < 0)
			return ferror(p->fp) ? (errno ? -errno : -EIO) : 0;
		*line = p->buf;
		*len = (size_t)n;
	} else {
		if (!p->text || !*p->text)
			return 0;
		*line = p->text;
		nl = strchr(p->text, '\n');
		*len = nl ? (size_t)(nl - p->text + 1) : strlen(p->text);
		p->text = nl ? nl + 1 : NULL;
	}
	if (*len > 0 && (*line)[*len - 1] == '\n')
		(*len)--;
	return 1;
}

/* inih's reader: hands over one whole line at a time so that lineno stays
 * in step with inih's, and vets it first. */
static char *config_reader(char *str, int num, void *stream)
{
	struct config_parser *p = stream;
	const char *line = NULL;
	size_t len = 0;
	int r;

	if (p->error || num < 2)
		return NULL;
	r = config_next_line(p, &line, &len);
	if (r < 0) {
		config_fail(p, r, 0, "%s", strerror(-r));
		return NULL;
	}
	if (r == 0)
		return NULL;
	p->lineno++;
	/* inih would cut a longer line and read the rest as a line of its own. */
	if (len > (size_t)num - 2) {
		config_fail(p, -EINVAL, p->lineno, "line longer than %d characters", num - 2);
		return NULL;
	}
	if (memchr(line, '\0', len)) {
		config_fail(p, -EINVAL, p->lineno, "line contains a NUL byte");
		return NULL;
	}
	memcpy(str, line, len);
	str[len] = '\0';
	if (config_check_line(p, str) < 0)
		return NULL;
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* Line where a [server] key was set, 0 when it was left to its default. */
static unsigned config_server_line(const struct config_parser *p, const char *name)
{
	const struct config_key *key = config_key_find(CONFIG_KIND_SERVER, name);

	return key ? p->server_key_line[key - config_keys] : 0;
}

/* An upper bound (hi, its key set at line l_hi, 0 if defaulted) found
 * below the value it bounds (lo, set at l_lo): a defaulted bound follows
 * lo; two settings against each other are an error at the later line. */
static int config_raise_bound(struct config_parser *p, unsigned *hi, const char *hi_name,
			      unsigned l_hi, unsigned lo, const char *lo_name, unsigned l_lo)
{
	if (!l_hi) {
		*hi = lo;
		return 0;
	}
	config_fail(p, -EINVAL, l_hi > l_lo ? l_hi : l_lo, "%s: %s (%u) must be at least %s (%u)",
		    l_hi > l_lo ? hi_name : lo_name, hi_name, *hi, lo_name, lo);
	return -EINVAL;
}

/* The pool keys bound each other.  A bound left to its default follows
 * the key that was set (workers = 100 alone raises max_workers to 100);
 * two keys set against each other are an error at the later line. */
static int config_validate_pool(struct config_parser *p)
{
	struct config *conf = p->conf;
	unsigned l_workers = config_server_line(p, "workers");
	unsigned l_max = config_server_line(p, "max_workers");
	unsigned l_min_spare = config_server_line(p, "min_spare");
	unsigned l_max_spare = config_server_line(p, "max_spare");
	unsigned l_hung = config_server_line(p, "hung_timeout");
	unsigned l_idle = config_server_line(p, "idle_timeout");

	if (conf->max_workers < conf->workers &&
	    config_raise_bound(p, &conf->max_workers, "max_workers", l_max,
			       conf->workers, "workers", l_workers) < 0)
		return -EINVAL;
	if (conf->max_spare < conf->min_spare &&
	    config_raise_bound(p, &conf->max_spare, "max_spare", l_max_spare,
			       conf->min_spare, "min_spare", l_min_spare) < 0)
		return -EINVAL;
	/* A connection waiting for its next request makes no progress: the
	 * worker must close it (idle_timeout) before it looks hung. */
	if (conf->hung_timeout_ms && conf->hung_timeout_ms <= conf->idle_timeout_ms) {
		if (!l_hung) {
			conf->hung_timeout_ms = 2 * conf->idle_timeout_ms;
		} else {
			config_fail(p, -EINVAL, l_hung > l_idle ? l_hung : l_idle,
				    "%s: hung_timeout (%" PRIu64 " ms) must be longer than "
				    "idle_timeout (%" PRIu64 " ms), or 0",
				    l_hung > l_idle ? "hung_timeout" : "idle_timeout",
				    conf->hung_timeout_ms, conf->idle_timeout_ms);
			return -EINVAL;
		}
	}
	if (!conf->status_file) {
		conf->status_file = strdup(TCPFILED_STATUS_PATH);
		if (!conf->status_file) {
			config_fail(p, -ENOMEM, 0, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

/* TLS listeners need a certificate, and the two lists share the
 * listener set and must not name one address twice. */
static int config_validate_tls_listen(struct config_parser *p)
{
	struct config *conf = p->conf;
	unsigned line = config_server_line(p, "tls_listen");

	if (conf->n_tls_listen == 0)
		return 0;
	if (!conf->tls_certificate) {
		config_fail(p, -EINVAL, line,
			    "tls_listen: needs tls_certificate and tls_key in [server]");
		return -EINVAL;
	}
	if (conf->n_listen + conf->n_tls_listen > CONFIG_LISTEN_MAX) {
		config_fail(p, -EINVAL, line,
			    "tls_listen: at most %d addresses in listen and tls_listen together",
			    CONFIG_LISTEN_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < conf->n_tls_listen; i++)
		for (size_t j = 0; j < conf->n_listen; j++)
			if (strcmp(conf->tls_listen[i], conf->listen[j]) == 0) {
				config_fail(p, -EINVAL, line,
					    "tls_listen: \"%s\" is in listen too (one "
					    "address serves either plain TCP or TLS)",
					    conf->tls_listen[i]);
				return -EINVAL;
			}
	return 0;
}

static int config_validate(struct config_parser *p)
{
	struct config *conf = p->conf;
	struct share_conf *share;
	struct stat st;
	int r;

	if (!conf->tls_certificate != !conf->tls_key) {
		config_fail(p, -EINVAL, 0, "%s: missing (tls_certificate and tls_key go together)",
			    conf->tls_key ? "tls_certificate" : "tls_key");
		return -EINVAL;
	}
	if (config_validate_tls_listen(p) < 0)
		return -EINVAL;
	if (conf->n_shares == 0) {
		config_fail(p, -EINVAL, 0,
			    "no share defined (add a section such as [files] with a path)");
		return -EINVAL;
	}
	for (share = conf->shares; share < conf->shares + conf->n_shares; share++) {
		if (!share->path) {
			config_fail(p, -EINVAL, 0,
				    "[%s] path: missing (every share needs one)", share->name);
			return -EINVAL;
		}
		if (stat(share->path, &st) < 0) {
			r = errno;
			config_fail(p, -EINVAL, share->path_line, "[%s] path: \"%s\": %s",
				    share->name, share->path, strerror(r));
			return -EINVAL;
		}
		if (!S_ISDIR(st.st_mode)) {
			config_fail(p, -EINVAL, share->path_line,
				    "[%s] path: \"%s\" is not a directory",
				    share->name, share->path);
			return -EINVAL;
		}
	}
	return 0;
}

static int config_parse(struct config_parser *p, struct config **out)
{
	struct config *conf;
	int r;

	conf = calloc(1, sizeof(*conf));
	if (!conf) {
		config_fail(p, -ENOMEM, 0, "out of memory");
		return -ENOMEM;
	}
	p->conf = conf;
	conf->file = strdup(p->file);
	if (!conf->file) {
		config_fail(p, -ENOMEM, 0, "out of memory");
		goto err_free_conf;
	}
	config_apply_defaults(conf, CONFIG_KIND_SERVER);

	r = ini_parse_stream(config_reader, p, config_handler, p);
	free(p->buf);
	p->buf = NULL;
	if (r < 0)
		config_fail(p, -ENOMEM, 0, "out of memory");
	/* A line inih rejected for a reason the reader did not foresee. */
	if (r > 0 && (p->error == 0 || (unsigned)r < p->err_line)) {
		p->error = 0;
		config_fail(p, -EINVAL, (unsigned)r, "syntax error");
	}
	if (p->error)
		goto err_free_conf;

	if (conf->n_listen == 0) {
		conf->listen[0] = strdup(CONFIG_DEFAULT_LISTEN);
		if (!conf->listen[0]) {
			config_fail(p, -ENOMEM, 0, "out of memory");
			goto err_free_conf;
		}
		conf->n_listen = 1;
	}
	if (conf->backlog == 0)
		conf->backlog = config_default_backlog();
	if (config_validate_pool(p) < 0 || config_validate(p) < 0)
		goto err_free_conf;
	*out = conf;
	return 0;

err_free_conf:
	config_free(conf);
	return p->error;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct config_parser p = {
		.file = path, .err = err, .errlen = errlen,
	};
	int r;

	p.fp = fopen(path, "re");
	if (!p.fp) {
		r = -errno;
		config_fail(&p, r, 0, "%s", strerror(-r));
		return r;
	}
	r = config_parse(&p, out);
	fclose(p.fp);
	return r;
}

int config_load_string(const char *text, const char *name,
		       struct config **out, char *err, size_t errlen)
{
	struct config_parser p = {
		.file = name, .err = err, .errlen = errlen, .text = text,
	};

	return config_parse(&p, out);
}

int config_default_backlog(void)
{
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
	char line[32];
	uint64_t v;
	size_t len;

	if (!f)
		return CONFIG_BACKLOG_FALLBACK;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return CONFIG_BACKLOG_FALLBACK;
	}
	fclose(f);
	len = strcspn(line, "\n");
	line[len] = '\0';
	if (parse_u64(line, &v) < 0 || v == 0)
		return CONFIG_BACKLOG_FALLBACK;
	return v > 65535 ? 65535 : (int)v;
}

static void config_users_finish(struct config_users *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->names[i]);
	free(u->names);
}

void config_free(struct config *conf)
{
	size_t i;

	if (!conf)
		return;
	access_list_finish(&conf->hosts_allow);
	access_list_finish(&conf->hosts_deny);
	for (i = 0; i < conf->n_listen; i++)
		free(conf->listen[i]);
	for (i = 0; i < conf->n_tls_listen; i++)
		free(conf->tls_listen[i]);
	for (i = 0; i < conf->n_shares; i++) {
		free(conf->shares[i].name);
		free(conf->shares[i].path);
		config_users_finish(&conf->shares[i].read_users);
		config_users_finish(&conf->shares[i].write_users);
	}
	free(conf->shares);
	free(conf->users_file);
	free(conf->tls_certificate);
	free(conf->tls_key);
	free(conf->status_file);
	free(conf->file);
	free(conf);
}

const struct share_conf *config_find_share(const struct config *conf,
					   const char *name, size_t len)
{
	size_t i;

	if (!conf || !name)
		return NULL;
	for (i = 0; i < conf->n_shares; i++)
		if (strlen(conf->shares[i].name) == len &&
		    memcmp(conf->shares[i].name, name, len) == 0)
			return &conf->shares[i];
	return NULL;
}

static bool config_addrs_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t i, j;

	if (na != nb)
		return false;
	/* Order does not matter to the sockets; duplicates are refused at load. */
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb; j++)
			if (strcmp(a[i], b[j]) == 0)
				break;
		if (j == nb)
			return false;
	}
	return true;
}

bool config_listen_equal(const struct config *a, const struct config *b)
{
	return config_addrs_equal(a->listen, a->n_listen, b->listen, b->n_listen) &&
	       config_addrs_equal(a->tls_listen, a->n_tls_listen, b->tls_listen,
				  b->n_tls_listen);
}
