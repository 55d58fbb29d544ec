/* config: the INI configuration, loaded table-driven through inih. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "listener.h"

#define CONFIG_WORKERS_MAX   512
#define CONFIG_LISTEN_MAX    LISTENER_MAX  /* one socket per address */
#define CONFIG_ERROR_MAX     512

/* Values of tls_min_version (the TLS wire version numbers). */
#define CONFIG_TLS_1_2       0x0303
#define CONFIG_TLS_1_3       0x0304
/* Space to keep free: a byte count or a percentage of the file system
 * (exactly one of them non-zero, or both zero for none). */
struct config_margin {
	uint64_t bytes;
	unsigned percent;       /* 0..100 */
};

/* Anonymous access to a share (no login): the "anonymous" key. */
enum config_anonymous {
	CONFIG_ANON_NO,
	CONFIG_ANON_READ,
	CONFIG_ANON_WRITE,
};

/* A share's read_users or write_users: user names, or "*" (any user who
 * logged in).  The names need not exist in the users file (yet). */
struct config_users {
	char **names;
	size_t n;
	bool any;               /* "*" */
};

struct share_conf {
	char *name;             /* section name: first path component on the wire */
	char *path;             /* absolute directory */
	bool read_only;         /* default no */
	bool overwrite;         /* default yes */
	uint64_t max_file_size; /* bytes, 0 = unlimited (default) */
	struct config_margin min_free; /* default 1% */
	unsigned umask;         /* octal 0..0777, default 022 */
	int anonymous;          /* enum config_anonymous, default CONFIG_ANON_NO */
	struct config_users read_users;   /* default none */
	struct config_users write_users;  /* default none; implies read */
	unsigned line;          /* line of the [section] header */
	unsigned path_line;     /* line of its path key */
};

struct config {
	char *file;                 /* path it was loaded from (or a label) */
	char *listen[CONFIG_LISTEN_MAX];
	size_t n_listen;            /* default: 1 entry "127.0.0.1:5005" */
	char *tls_listen[CONFIG_LISTEN_MAX]; /* implicit TLS; n_listen + n_tls_listen
						<= CONFIG_LISTEN_MAX */
	size_t n_tls_listen;        /* default 0 */
	unsigned workers;           /* 1..CONFIG_WORKERS_MAX, default 4 */
	int backlog;                /* 1..65535, default the kernel's somaxconn */
	uint64_t defer_accept_ms;   /* TCP_DEFER_ACCEPT, 0 = off (default) */
	struct access_list hosts_allow; /* empty: every address not denied */
	struct access_list hosts_deny;
	unsigned max_per_ip;        /* connections per client address, 0 = no cap */
	uint64_t shutdown_timeout_ms; /* default 30s */
	uint64_t idle_timeout_ms;   /* default 5m: between requests */
	uint64_t handshake_timeout_ms; /* default 10s: for the HELLO */
	uint64_t min_rate;          /* bytes/s a body must keep up, 0 = off; default 1K */
	uint64_t min_rate_window_ms; /* over windows this long; default 20s; also the
					longest wait for one body byte */
	uint64_t crash_loop_timeout_ms; /* default 60s; 0 = never give up */
	/* The pool (see tcpfiled.conf(5)): workers is the start size and the
	 * floor; it grows towards max_workers while fewer than min_spare are
	 * idle and shrinks while more than max_spare are. */
	unsigned min_spare;         /* 0..CONFIG_WORKERS_MAX, default 2 */
	unsigned max_spare;         /* min_spare..CONFIG_WORKERS_MAX, default 8 */
	unsigned max_workers;       /* workers..CONFIG_WORKERS_MAX, default 64 */
	uint64_t max_requests;      /* connections per worker, 0 = unlimited */
	unsigned max_requests_jitter; /* random extra 0..jitter, default 1000 */
	uint64_t hung_timeout_ms;   /* default 10m, 0 = never; > idle_timeout */
	char *status_file;          /* scoreboard file; "" = none */
	int log_level;              /* syslog priority, default LOG_INFO */
	bool fsync;                 /* default yes */
	/* The three secrets may be written "credential:NAME": they are then
	 * $CREDENTIALS_DIRECTORY/NAME (systemd's LoadCredential=), resolved
	 * at load. */
	char *users_file;           /* absolute path or NULL (no logins) */
	char *tls_certificate;      /* PEM chain, absolute path or NULL */
	char *tls_key;              /* PEM key; set exactly when tls_certificate is */
	int tls_min_version;        /* CONFIG_TLS_1_3 (default) or CONFIG_TLS_1_2 */
	bool allow_plaintext;       /* logins over plain TCP from any peer; default no */
	bool anonymous_remote;      /* anonymous= honoured for non-loopback peers; default no */
	struct share_conf *shares;
	size_t n_shares;
};

/* Parses and validates a file.  On failure returns -errno (-EINVAL for a
 * bad config) and writes "FILE:LINE: KEY: why" (or "FILE: why") into err.
 * Share paths must be absolute existing directories. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* The backlog when the config sets none: net.core.somaxconn from
 * /proc/sys/net/core/somaxconn (the kernel caps listen() there anyway),
 * clamped to 1..65535, or CONFIG_BACKLOG_FALLBACK when unreadable. */
#define CONFIG_BACKLOG_FALLBACK 4096
int config_default_backlog(void);

/* Same over an in-memory INI text; name is used in messages. */
int config_load_string(const char *text, const char *name,
		       struct config **out, char *err, size_t errlen);

void config_free(struct config *conf);

/* Looks a share up by name (len bytes, need not be NUL-terminated). */
const struct share_conf *config_find_share(const struct config *conf,
					   const char *name, size_t len);

/* True when both configs listen on the same address lists (plain and TLS). */
bool config_listen_equal(const struct config *a, const struct config *b);
