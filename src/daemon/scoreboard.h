/* scoreboard: per-worker state in shared memory, read by the master for
 * STATUS= lines and pool decisions and by `tcpfiled status` (the prefork
 * "scoreboard" of Apache's MPM). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SCOREBOARD_SLOTS 4096
#define SCOREBOARD_DEATHS 8          /* reasons of the last deaths kept */

#define SCOREBOARD_CLIENT_MAX 64     /* sizes include the NUL */
#define SCOREBOARD_OP_MAX 16
#define SCOREBOARD_SHARE_MAX 80
#define SCOREBOARD_PATH_MAX 256
#define SCOREBOARD_REASON_MAX 96

/* Bumped whenever the layout changes: `tcpfiled status` refuses a file
 * of another version instead of misreading it. */
#define SCOREBOARD_VERSION 2

enum worker_state {
	WORKER_FREE = 0,     /* slot unused */
	WORKER_IDLE,         /* blocked waiting for a connection */
	WORKER_BUSY,         /* serving a connection */
	WORKER_RETIRING,     /* told to go: finishing its connection */
	WORKER_STARTING,     /* forked, not yet waiting for connections */
	WORKER_WAITING,      /* holds a connection that owes its next line
				(HELLO or request): yields it when clients
				queue up and the pool is full */
};

/* Fields are written by one process at a time (the master before fork and
 * after death, the worker in between) and read concurrently: numbers
 * through __atomic builtins, the text and request fields under the slot's
 * seqlock `seq` (odd while a write is in progress). */
struct scoreboard_slot {
	int state;                   /* enum worker_state */
	pid_t pid;
	unsigned generation;
	unsigned seq;
	uint64_t accepted;           /* connections accepted */
	uint64_t transfers;          /* completed transfers */
	uint64_t bytes;              /* body bytes moved */
	uint64_t requests;           /* requests begun */
	uint64_t start_mono_ms;      /* worker forked (CLOCK_MONOTONIC) */
	/* Under seq: */
	uint64_t conn_mono_ms, conn_real_ms;  /* connection accepted */
	uint64_t req_mono_ms, req_real_ms;    /* request begun; 0: none */
	uint64_t req_bytes_base;     /* bytes when the request began */
	uint64_t req_total;          /* bytes the request will move; 0: unknown */
	char client[SCOREBOARD_CLIENT_MAX];
	char op[SCOREBOARD_OP_MAX];
	char share[SCOREBOARD_SHARE_MAX];
	char path[SCOREBOARD_PATH_MAX];
};

struct scoreboard_death {
	pid_t pid;
	unsigned generation;
	uint64_t real_ms;            /* CLOCK_REALTIME */
	char reason[SCOREBOARD_REASON_MAX];
};

struct scoreboard {
	char magic[8];
	uint32_t version;
	uint32_t n_slots;
	uint64_t size;               /* sizeof(struct scoreboard) */
	pid_t master_pid;
	unsigned generation;         /* the master's current generation */
	uint64_t start_real_ms;      /* master start */
	uint64_t start_mono_ms;
	unsigned min_workers, max_workers;
	/* Master only (atomically): */
	uint64_t spawns;
	uint64_t deaths;
	uint64_t released_transfers;
	uint64_t released_bytes;
	uint64_t released_accepted;
	unsigned death_seq;          /* seqlock over the ring below */
	unsigned death_next;         /* deaths recorded, ever: ring index */
	/* Slots ever claimed are below this: readers scan no further, so the
	 * pages of slots never used are never touched (an idle pool's
	 * memory stays small). */
	unsigned hwm;
	struct scoreboard_death death[SCOREBOARD_DEATHS];
	struct scoreboard_slot slots[SCOREBOARD_SLOTS];
};

/* One past the highest slot ever claimed (at most SCOREBOARD_SLOTS). */
unsigned scoreboard_hwm(const struct scoreboard *sb);

/* A consistent copy of one slot, as readers see it. */
struct scoreboard_view {
	enum worker_state state;
	pid_t pid;
	unsigned generation;
	uint64_t accepted, transfers, bytes, requests;
	uint64_t start_mono_ms;
	uint64_t conn_mono_ms, conn_real_ms;
	uint64_t req_mono_ms, req_real_ms;
	uint64_t req_done, req_total;
	char client[SCOREBOARD_CLIENT_MAX];
	char op[SCOREBOARD_OP_MAX];
	char share[SCOREBOARD_SHARE_MAX];
	char path[SCOREBOARD_PATH_MAX];
};

/* Shared mapping that survives fork: an anonymous one when path is NULL,
 * else the file at path, created (mode 0640) under a temporary name and
 * renamed into place, so a reader never sees a half-initialised board.
 * NULL on failure (errno). */
struct scoreboard *scoreboard_new(const char *path);
/* Unmaps; with a path, removes the file if it is still this board's. */
void scoreboard_free(struct scoreboard *sb, const char *path);

/* Maps an existing board file read-only for `tcpfiled status`.  Returns
 * 0 or -errno: -EPROTO for a file that is not a board of this version. */
int scoreboard_open(const char *path, const struct scoreboard **out);
void scoreboard_close(const struct scoreboard *sb);

/* Master side: claim a free slot for a new worker of generation gen
 * (returns -1 if none).  The slot starts STARTING with zero counters;
 * record the child's pid with scoreboard_set_pid() after fork(). */
int scoreboard_claim(struct scoreboard *sb, unsigned gen);
void scoreboard_set_pid(struct scoreboard *sb, int slot, pid_t pid);
/* Master side: adds a dead worker's counters to the totals, frees it. */
void scoreboard_release(struct scoreboard *sb, int slot);
/* Master side: counts a spawn / records a death and its reason. */
void scoreboard_note_spawn(struct scoreboard *sb);
void scoreboard_note_death(struct scoreboard *sb, pid_t pid, unsigned gen,
			   const char *reason);
/* Master side: what status shows about the pool as a whole. */
void scoreboard_set_pool(struct scoreboard *sb, unsigned generation,
			 unsigned min_workers, unsigned max_workers);

/* The worker's own slot, for the calls below; NULL for slot -1 (or any
 * out-of-range slot). */
struct scoreboard_slot *scoreboard_slot(struct scoreboard *sb, int slot);

/* Worker side (slot may be NULL: no-ops). */
void scoreboard_set_state(struct scoreboard_slot *slot, enum worker_state st);
/* A connection from peer was accepted: counts it (the master reads a
 * non-zero count as "reached its first accept"), records the client and
 * the time, and marks the slot BUSY. */
void scoreboard_begin_connection(struct scoreboard_slot *slot,
				 const struct sockaddr_storage *peer);
/* The connection is over: clears the client and request; the slot goes
 * IDLE (or RETIRING when retiring is set). */
void scoreboard_end_connection(struct scoreboard_slot *slot, bool retiring);
/* Replaces the client text the worker formatted (for a session that
 * learns a better name).  NULL or "" clears it. */
void scoreboard_set_client(struct scoreboard_slot *slot, const char *addr);
/* A request begins: op ("put", "get", "list", ...), share and path
 * (raw bytes from the wire, NUL-terminated; stored escaped and cut to
 * fit; either may be NULL) and the bytes it will move (0: unknown).
 * Bytes counted by add_bytes from now on are its progress. */
void scoreboard_begin_request(struct scoreboard_slot *slot, const char *op,
			      const char *share, const char *path, uint64_t total);
void scoreboard_end_request(struct scoreboard_slot *slot);
/* add_bytes counts body bytes as they move (so status shows a long
 * transfer progressing, and a failed one's bytes count too);
 * add_transfer counts one completed transfer. */
void scoreboard_add_transfer(struct scoreboard_slot *slot);
void scoreboard_add_bytes(struct scoreboard_slot *slot, uint64_t bytes);

/* Reader side: a consistent copy of a slot.  Returns 0, or -EAGAIN when a
 * writer kept the slot busy (or died inside a write) for every retry; the
 * numbers in out are then valid and the text fields empty. */
int scoreboard_read(const struct scoreboard_slot *slot, struct scoreboard_view *out);
/* The last deaths, newest first; returns how many (<= SCOREBOARD_DEATHS). */
size_t scoreboard_read_deaths(const struct scoreboard *sb,
			      struct scoreboard_death out[SCOREBOARD_DEATHS]);

struct scoreboard_totals {
	unsigned workers;     /* live slots */
	unsigned busy;
	uint64_t transfers;   /* including released slots */
	uint64_t bytes;
	uint64_t accepted;
};
void scoreboard_totals(const struct scoreboard *sb, struct scoreboard_totals *out);

/* Copies src into dst (cap bytes with the NUL), every byte outside
 * printable ASCII and the backslash written as \xNN, cut at an escape
 * boundary with "..." when it does not fit. */
void scoreboard_escape(char *dst, size_t cap, const char *src);

const char *scoreboard_state_name(enum worker_state st);
