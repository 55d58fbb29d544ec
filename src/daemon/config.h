/* config: the INI configuration, loaded table-driven through inih. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "listener.h"

#define CONFIG_WORKERS_MAX   512
#define CONFIG_LISTEN_MAX    LISTENER_MAX  /* one socket per address */
#define CONFIG_ERROR_MAX     512

/* Space to keep free: a byte count or a percentage of the file system
 * (exactly one of them non-zero, or both zero for none). */
struct config_margin {
	uint64_t bytes;
	unsigned percent;       /* 0..100 */
};

struct share_conf {
	char *name;             /* section name: first path component on the wire */
	char *path;             /* absolute directory */
	bool read_only;         /* default no */
	bool overwrite;         /* default yes */
	uint64_t max_file_size; /* bytes, 0 = unlimited (default) */
	struct config_margin min_free; /* default 1% */
	unsigned umask;         /* octal 0..0777, default 022 */
	unsigned line;          /* line of the [section] header */
};

struct config {
	char *file;                 /* path it was loaded from (or a label) */
	char *listen[CONFIG_LISTEN_MAX];
	size_t n_listen;            /* default: 1 entry "127.0.0.1:5005" */
	unsigned workers;           /* 1..CONFIG_WORKERS_MAX, default 4 */
	int backlog;                /* 1..65535, default 128 */
	uint64_t shutdown_timeout_ms; /* default 30s */
	uint64_t idle_timeout_ms;   /* default 5m; also bounds a stalled body */
	uint64_t crash_loop_timeout_ms; /* default 60s; 0 = never give up */
	int log_level;              /* syslog priority, default LOG_INFO */
	bool fsync;                 /* default yes */
	struct share_conf *shares;
	size_t n_shares;
};

/* Parses and validates a file.  On failure returns -errno (-EINVAL for a
 * bad config) and writes "FILE:LINE: KEY: why" (or "FILE: why") into err.
 * Share paths must be absolute existing directories. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* Same over an in-memory INI text; name is used in messages. */
int config_load_string(const char *text, const char *name,
		       struct config **out, char *err, size_t errlen);

void config_free(struct config *conf);

/* Looks a share up by name (len bytes, need not be NUL-terminated). */
const struct share_conf *config_find_share(const struct config *conf,
					   const char *name, size_t len);

/* True when both configs listen on the same address list. */
bool config_listen_equal(const struct config *a, const struct config *b);
