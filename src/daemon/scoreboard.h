/* scoreboard: per-worker state in shared memory, read by the master for
 * STATUS= lines (the prefork "scoreboard" of Apache's MPM). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SCOREBOARD_SLOTS 4096

enum worker_state {
	WORKER_FREE = 0,     /* slot unused */
	WORKER_IDLE,         /* blocked waiting for a connection */
	WORKER_BUSY,         /* serving a connection */
	WORKER_RETIRING,     /* old generation, finishing its connection */
};

struct scoreboard_slot {
	int state;               /* enum worker_state, accessed atomically */
	pid_t pid;
	uint64_t transfers;      /* completed transfers */
	uint64_t bytes;          /* body bytes moved */
};

struct scoreboard {
	struct scoreboard_slot slots[SCOREBOARD_SLOTS];
	/* Counters of workers that have exited (master only). */
	uint64_t released_transfers;
	uint64_t released_bytes;
};

/* Shared anonymous mapping that survives fork.  NULL on failure (errno). */
struct scoreboard *scoreboard_new(void);
void scoreboard_free(struct scoreboard *sb);

/* Master side: claim a free slot for a new worker (returns -1 if none).
 * The slot starts IDLE with zero counters; record the child's pid with
 * scoreboard_set_pid() after fork(). */
int scoreboard_claim(struct scoreboard *sb);
void scoreboard_set_pid(struct scoreboard *sb, int slot, pid_t pid);
/* Master side: adds a dead worker's counters to the totals, frees it. */
void scoreboard_release(struct scoreboard *sb, int slot);

/* The worker's own slot, for the calls below; NULL for slot -1 (or any
 * out-of-range slot). */
struct scoreboard_slot *scoreboard_slot(struct scoreboard *sb, int slot);

/* Worker side (slot may be NULL: no-ops).  add_bytes counts body bytes as
 * they move (so STATUS= shows a long transfer progressing, and a failed
 * one's bytes count too); add_transfer counts one completed transfer. */
void scoreboard_set_state(struct scoreboard_slot *slot, enum worker_state st);
void scoreboard_add_transfer(struct scoreboard_slot *slot);
void scoreboard_add_bytes(struct scoreboard_slot *slot, uint64_t bytes);

struct scoreboard_totals {
	unsigned workers;     /* live slots */
	unsigned busy;
	uint64_t transfers;   /* including released slots */
	uint64_t bytes;
};
void scoreboard_totals(const struct scoreboard *sb, struct scoreboard_totals *out);
