/* scoreboard: per-worker state and counters in a shared anonymous mapping the master reads. */
#include "scoreboard.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* Workers write their own slot while the master reads all of them: every
 * field goes through __atomic builtins.  Counters need no ordering; the
 * state is published with release/acquire so a reader that sees a state
 * also sees what the writer did before setting it. */

struct scoreboard *scoreboard_new(void)
{
	/* MAP_SHARED survives fork() as the same pages, unlike the heap. */
	void *p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	return p;
}

void scoreboard_free(struct scoreboard *sb)
{
	int saved = errno;

	if (sb)
		munmap(sb, sizeof(*sb));
	errno = saved;
}

static bool scoreboard_valid(const struct scoreboard *sb, int slot)
{
	return sb && slot >= 0 && slot < SCOREBOARD_SLOTS;
}

struct scoreboard_slot *scoreboard_slot(struct scoreboard *sb, int slot)
{
	if (!scoreboard_valid(sb, slot))
		return NULL;
	return &sb->slots[slot];
}

int scoreboard_claim(struct scoreboard *sb)
{
	if (!sb)
		return -1;
	for (int i = 0; i < SCOREBOARD_SLOTS; i++) {
		struct scoreboard_slot *s = &sb->slots[i];

		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != WORKER_FREE ||
		    __atomic_load_n(&s->pid, __ATOMIC_RELAXED) != 0)
			continue;
		__atomic_store_n(&s->transfers, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->bytes, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->state, WORKER_IDLE, __ATOMIC_RELEASE);
		return i;
	}
	return -1;
}

void scoreboard_set_pid(struct scoreboard *sb, int slot, pid_t pid)
{
	if (!scoreboard_valid(sb, slot))
		return;
	__atomic_store_n(&sb->slots[slot].pid, pid, __ATOMIC_RELEASE);
}

void scoreboard_release(struct scoreboard *sb, int slot)
{
	struct scoreboard_slot *s;

	if (!scoreboard_valid(sb, slot))
		return;
	s = &sb->slots[slot];
	/* The worker is dead: its counters can no longer move. */
	__atomic_fetch_add(&sb->released_transfers,
			   __atomic_exchange_n(&s->transfers, 0, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
	__atomic_fetch_add(&sb->released_bytes,
			   __atomic_exchange_n(&s->bytes, 0, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
	__atomic_store_n(&s->pid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, WORKER_FREE, __ATOMIC_RELEASE);
}

void scoreboard_set_state(struct scoreboard_slot *slot, enum worker_state st)
{
	if (slot)
		__atomic_store_n(&slot->state, (int)st, __ATOMIC_RELEASE);
}

void scoreboard_add_transfer(struct scoreboard_slot *slot)
{
	if (slot)
		__atomic_fetch_add(&slot->transfers, 1, __ATOMIC_RELAXED);
}

void scoreboard_add_bytes(struct scoreboard_slot *slot, uint64_t bytes)
{
	if (slot)
		__atomic_fetch_add(&slot->bytes, bytes, __ATOMIC_RELAXED);
}

void scoreboard_totals(const struct scoreboard *sb, struct scoreboard_totals *out)
{
	memset(out, 0, sizeof(*out));
	if (!sb)
		return;
	out->transfers = __atomic_load_n(&sb->released_transfers, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&sb->released_bytes, __ATOMIC_RELAXED);
	for (int i = 0; i < SCOREBOARD_SLOTS; i++) {
		const struct scoreboard_slot *s = &sb->slots[i];
		int st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);

		if (st == WORKER_FREE)
			continue;
		out->workers++;
		/* An old-generation worker still holds a connection. */
		if (st == WORKER_BUSY || st == WORKER_RETIRING)
			out->busy++;
		out->transfers += __atomic_load_n(&s->transfers, __ATOMIC_RELAXED);
		out->bytes += __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
	}
}
