/* scoreboard: per-worker state and counters in a shared mapping the master and `tcpfiled status` read. */
#define _GNU_SOURCE
#include "scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "monotonic.h"

static const char scoreboard_magic[8] = "tcpfsb\0";

/* Workers write their own slot while the master and status read all of
 * them: every number goes through __atomic builtins.  Counters need no
 * ordering; the state is published with release/acquire.  Text and the
 * request fields sit under a per-slot seqlock: the writer makes seq odd,
 * writes, makes it even again; a reader retries when seq was odd or moved.
 * Bytes are copied with relaxed atomic accesses, so a torn read is
 * detected and discarded, never undefined. */

#define SCOREBOARD_READ_TRIES 1000

static void seq_write_begin(unsigned *seq)
{
	unsigned s = __atomic_load_n(seq, __ATOMIC_RELAXED);

	__atomic_store_n(seq, s | 1u, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void seq_write_end(unsigned *seq)
{
	unsigned s = __atomic_load_n(seq, __ATOMIC_RELAXED);

	__atomic_store_n(seq, (s | 1u) + 1, __ATOMIC_RELEASE);
}

static void text_store(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < cap; i++)
		__atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
	__atomic_store_n(&dst[i], '\0', __ATOMIC_RELAXED);
}

static void text_load(char *dst, const char *src, size_t cap)
{
	for (size_t i = 0; i < cap; i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	dst[cap - 1] = '\0';
}

static uint64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void scoreboard_init(struct scoreboard *sb)
{
	memcpy(sb->magic, scoreboard_magic, sizeof(sb->magic));
	sb->version = SCOREBOARD_VERSION;
	sb->n_slots = SCOREBOARD_SLOTS;
	sb->size = sizeof(*sb);
	sb->master_pid = getpid();
	sb->start_real_ms = realtime_ms();
	sb->start_mono_ms = monotonic_ms();
}

/* Creates the file under a temporary name beside path, so the rename
 * publishes a complete board (and replaces a stale one atomically). */
static int scoreboard_create_file(const char *path, char *tmp, size_t cap)
{
	int fd, n;

	n = snprintf(tmp, cap, "%s.XXXXXX", path);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0640) < 0 || ftruncate(fd, sizeof(struct scoreboard)) < 0) {
		int err = -errno;

		unlink(tmp);
		close(fd);
		return err;
	}
	return fd;
}

struct scoreboard *scoreboard_new(const char *path)
{
	char tmp[PATH_MAX];
	struct scoreboard *sb;
	int fd = -1, err;
	void *p;

	if (!path) {
		/* MAP_SHARED survives fork() as the same pages, unlike the heap. */
		p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		scoreboard_init(p);
		return p;
	}
	fd = scoreboard_create_file(path, tmp, sizeof(tmp));
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto err_unlink;
	sb = p;
	scoreboard_init(sb);
	if (rename(tmp, path) < 0)
		goto err_unmap;
	close(fd);
	return sb;

err_unmap:
	err = errno;
	munmap(p, sizeof(struct scoreboard));
	errno = err;
err_unlink:
	err = errno;
	unlink(tmp);
	close(fd);
	errno = err;
	return NULL;
}

void scoreboard_free(struct scoreboard *sb, const char *path)
{
	int saved = errno;

	if (!sb)
		return;
	/* Another master may have put its own board there since (a second
	 * instance with the same config): remove the file only while it
	 * still names our board. */
	if (path) {
		const struct scoreboard *there;

		if (scoreboard_open(path, &there) == 0) {
			bool ours = there->master_pid == sb->master_pid &&
				    there->start_mono_ms == sb->start_mono_ms;

			scoreboard_close(there);
			if (ours)
				unlink(path);
		}
	}
	munmap(sb, sizeof(*sb));
	errno = saved;
}

int scoreboard_open(const char *path, const struct scoreboard **out)
{
	const struct scoreboard *sb;
	struct stat st;
	void *p;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != sizeof(struct scoreboard)) {
		close(fd);
		return -EPROTO;
	}
	p = mmap(NULL, sizeof(struct scoreboard), PROT_READ, MAP_SHARED, fd, 0);
	err = errno;
	close(fd);
	if (p == MAP_FAILED)
		return -err;
	sb = p;
	if (memcmp(sb->magic, scoreboard_magic, sizeof(sb->magic)) != 0 ||
	    sb->version != SCOREBOARD_VERSION || sb->n_slots != SCOREBOARD_SLOTS ||
	    sb->size != sizeof(*sb)) {
		munmap(p, sizeof(struct scoreboard));
		return -EPROTO;
	}
	*out = sb;
	return 0;
}

void scoreboard_close(const struct scoreboard *sb)
{
	int saved = errno;

	if (sb)
		munmap((void *)sb, sizeof(*sb));
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

/* Clears what a previous worker left in the slot (the master, while no
 * worker owns it). */
static void scoreboard_slot_reset(struct scoreboard_slot *s)
{
	__atomic_store_n(&s->accepted, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->transfers, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->bytes, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->requests, 0, __ATOMIC_RELAXED);
	/* A worker killed inside a write left seq odd. */
	__atomic_store_n(&s->seq, __atomic_load_n(&s->seq, __ATOMIC_RELAXED) & ~1u,
			 __ATOMIC_RELAXED);
	seq_write_begin(&s->seq);
	__atomic_store_n(&s->conn_mono_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->conn_real_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->req_mono_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->req_real_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->req_bytes_base, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->req_total, 0, __ATOMIC_RELAXED);
	text_store(s->client, sizeof(s->client), NULL);
	text_store(s->op, sizeof(s->op), NULL);
	text_store(s->share, sizeof(s->share), NULL);
	text_store(s->path, sizeof(s->path), NULL);
	seq_write_end(&s->seq);
}

unsigned scoreboard_hwm(const struct scoreboard *sb)
{
	unsigned hwm = __atomic_load_n(&sb->hwm, __ATOMIC_ACQUIRE);

	return hwm < SCOREBOARD_SLOTS ? hwm : SCOREBOARD_SLOTS;
}

int scoreboard_claim(struct scoreboard *sb, unsigned gen)
{
	if (!sb)
		return -1;
	for (int i = 0; i < SCOREBOARD_SLOTS; i++) {
		struct scoreboard_slot *s = &sb->slots[i];

		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != WORKER_FREE ||
		    __atomic_load_n(&s->pid, __ATOMIC_RELAXED) != 0)
			continue;
		scoreboard_slot_reset(s);
		if ((unsigned)i + 1 > __atomic_load_n(&sb->hwm, __ATOMIC_RELAXED))
			__atomic_store_n(&sb->hwm, (unsigned)i + 1, __ATOMIC_RELEASE);
		__atomic_store_n(&s->generation, gen, __ATOMIC_RELAXED);
		__atomic_store_n(&s->start_mono_ms, monotonic_ms(), __ATOMIC_RELAXED);
		__atomic_store_n(&s->state, WORKER_STARTING, __ATOMIC_RELEASE);
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
	__atomic_fetch_add(&sb->released_accepted,
			   __atomic_exchange_n(&s->accepted, 0, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
	scoreboard_slot_reset(s);
	__atomic_store_n(&s->pid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, WORKER_FREE, __ATOMIC_RELEASE);
}

void scoreboard_note_spawn(struct scoreboard *sb)
{
	if (sb)
		__atomic_fetch_add(&sb->spawns, 1, __ATOMIC_RELAXED);
}

void scoreboard_note_death(struct scoreboard *sb, pid_t pid, unsigned gen,
			   const char *reason)
{
	struct scoreboard_death *d;
	unsigned n;

	if (!sb)
		return;
	__atomic_fetch_add(&sb->deaths, 1, __ATOMIC_RELAXED);
	seq_write_begin(&sb->death_seq);
	n = __atomic_load_n(&sb->death_next, __ATOMIC_RELAXED);
	d = &sb->death[n % SCOREBOARD_DEATHS];
	__atomic_store_n(&d->pid, pid, __ATOMIC_RELAXED);
	__atomic_store_n(&d->generation, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&d->real_ms, realtime_ms(), __ATOMIC_RELAXED);
	text_store(d->reason, sizeof(d->reason), reason);
	__atomic_store_n(&sb->death_next, n + 1, __ATOMIC_RELAXED);
	seq_write_end(&sb->death_seq);
}

void scoreboard_set_pool(struct scoreboard *sb, unsigned generation,
			 unsigned min_workers, unsigned max_workers)
{
	if (!sb)
		return;
	__atomic_store_n(&sb->generation, generation, __ATOMIC_RELAXED);
	__atomic_store_n(&sb->min_workers, min_workers, __ATOMIC_RELAXED);
	__atomic_store_n(&sb->max_workers, max_workers, __ATOMIC_RELAXED);
}

void scoreboard_set_state(struct scoreboard_slot *slot, enum worker_state st)
{
	if (slot)
		__atomic_store_n(&slot->state, (int)st, __ATOMIC_RELEASE);
}

static void scoreboard_clear_request(struct scoreboard_slot *slot)
{
	__atomic_store_n(&slot->req_mono_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->req_real_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->req_bytes_base, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->req_total, 0, __ATOMIC_RELAXED);
	text_store(slot->op, sizeof(slot->op), NULL);
	text_store(slot->share, sizeof(slot->share), NULL);
	text_store(slot->path, sizeof(slot->path), NULL);
}

void scoreboard_begin_connection(struct scoreboard_slot *slot,
				 const struct sockaddr_storage *peer)
{
	char addr[SCOREBOARD_CLIENT_MAX];

	if (!slot)
		return;
	listener_format_sockaddr((const struct sockaddr *)peer, addr, sizeof(addr));
	seq_write_begin(&slot->seq);
	__atomic_store_n(&slot->conn_mono_ms, monotonic_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&slot->conn_real_ms, realtime_ms(), __ATOMIC_RELAXED);
	scoreboard_clear_request(slot);
	text_store(slot->client, sizeof(slot->client), addr);
	seq_write_end(&slot->seq);
	__atomic_fetch_add(&slot->accepted, 1, __ATOMIC_RELEASE);
	scoreboard_set_state(slot, WORKER_BUSY);
}

void scoreboard_end_connection(struct scoreboard_slot *slot, bool retiring)
{
	if (!slot)
		return;
	seq_write_begin(&slot->seq);
	__atomic_store_n(&slot->conn_mono_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->conn_real_ms, 0, __ATOMIC_RELAXED);
	scoreboard_clear_request(slot);
	text_store(slot->client, sizeof(slot->client), NULL);
	seq_write_end(&slot->seq);
	scoreboard_set_state(slot, retiring ? WORKER_RETIRING : WORKER_IDLE);
}

void scoreboard_set_client(struct scoreboard_slot *slot, const char *addr)
{
	char text[SCOREBOARD_CLIENT_MAX];

	if (!slot)
		return;
	scoreboard_escape(text, sizeof(text), addr ? addr : "");
	seq_write_begin(&slot->seq);
	text_store(slot->client, sizeof(slot->client), text);
	seq_write_end(&slot->seq);
}

void scoreboard_begin_request(struct scoreboard_slot *slot, const char *op,
			      const char *share, const char *path, uint64_t total)
{
	char op_text[SCOREBOARD_OP_MAX];
	char share_text[SCOREBOARD_SHARE_MAX];
	char path_text[SCOREBOARD_PATH_MAX];

	if (!slot)
		return;
	scoreboard_escape(op_text, sizeof(op_text), op ? op : "");
	scoreboard_escape(share_text, sizeof(share_text), share ? share : "");
	scoreboard_escape(path_text, sizeof(path_text), path ? path : "");
	seq_write_begin(&slot->seq);
	__atomic_store_n(&slot->req_mono_ms, monotonic_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&slot->req_real_ms, realtime_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&slot->req_bytes_base,
			 __atomic_load_n(&slot->bytes, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	__atomic_store_n(&slot->req_total, total, __ATOMIC_RELAXED);
	text_store(slot->op, sizeof(slot->op), op_text);
	text_store(slot->share, sizeof(slot->share), share_text);
	text_store(slot->path, sizeof(slot->path), path_text);
	seq_write_end(&slot->seq);
	__atomic_fetch_add(&slot->requests, 1, __ATOMIC_RELAXED);
}

void scoreboard_end_request(struct scoreboard_slot *slot)
{
	if (!slot)
		return;
	seq_write_begin(&slot->seq);
	scoreboard_clear_request(slot);
	seq_write_end(&slot->seq);
	/* The end of a request is progress too, for the hung-worker check. */
	__atomic_fetch_add(&slot->requests, 1, __ATOMIC_RELAXED);
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

static void scoreboard_read_numbers(const struct scoreboard_slot *s,
				    struct scoreboard_view *out)
{
	out->state = (enum worker_state)__atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
	out->pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
	out->generation = __atomic_load_n(&s->generation, __ATOMIC_RELAXED);
	out->accepted = __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
	out->transfers = __atomic_load_n(&s->transfers, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
	out->requests = __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
	out->start_mono_ms = __atomic_load_n(&s->start_mono_ms, __ATOMIC_RELAXED);
}

int scoreboard_read(const struct scoreboard_slot *s, struct scoreboard_view *out)
{
	uint64_t base = 0;

	memset(out, 0, sizeof(*out));
	scoreboard_read_numbers(s, out);
	for (int tries = 0; tries < SCOREBOARD_READ_TRIES; tries++) {
		unsigned before = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);

		if (before & 1u)
			continue;
		out->conn_mono_ms = __atomic_load_n(&s->conn_mono_ms, __ATOMIC_RELAXED);
		out->conn_real_ms = __atomic_load_n(&s->conn_real_ms, __ATOMIC_RELAXED);
		out->req_mono_ms = __atomic_load_n(&s->req_mono_ms, __ATOMIC_RELAXED);
		out->req_real_ms = __atomic_load_n(&s->req_real_ms, __ATOMIC_RELAXED);
		base = __atomic_load_n(&s->req_bytes_base, __ATOMIC_RELAXED);
		out->req_total = __atomic_load_n(&s->req_total, __ATOMIC_RELAXED);
		text_load(out->client, s->client, sizeof(out->client));
		text_load(out->op, s->op, sizeof(out->op));
		text_load(out->share, s->share, sizeof(out->share));
		text_load(out->path, s->path, sizeof(out->path));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != before)
			continue;
		/* bytes was read before the request fields: refresh it so done
		 * never comes out negative. */
		out->bytes = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
		if (out->req_mono_ms)
			out->req_done = out->bytes >= base ? out->bytes - base : 0;
		return 0;
	}
	out->conn_mono_ms = out->conn_real_ms = out->req_mono_ms = out->req_real_ms = 0;
	out->req_total = 0;
	out->client[0] = out->op[0] = out->share[0] = out->path[0] = '\0';
	return -EAGAIN;
}

size_t scoreboard_read_deaths(const struct scoreboard *sb,
			      struct scoreboard_death out[SCOREBOARD_DEATHS])
{
	for (int tries = 0; sb && tries < SCOREBOARD_READ_TRIES; tries++) {
		unsigned before = __atomic_load_n(&sb->death_seq, __ATOMIC_ACQUIRE);
		unsigned next;
		size_t n;

		if (before & 1u)
			continue;
		next = __atomic_load_n(&sb->death_next, __ATOMIC_RELAXED);
		n = next < SCOREBOARD_DEATHS ? next : SCOREBOARD_DEATHS;
		for (size_t i = 0; i < n; i++) {
			const struct scoreboard_death *d =
				&sb->death[(next - 1 - i) % SCOREBOARD_DEATHS];

			out[i].pid = __atomic_load_n(&d->pid, __ATOMIC_RELAXED);
			out[i].generation = __atomic_load_n(&d->generation, __ATOMIC_RELAXED);
			out[i].real_ms = __atomic_load_n(&d->real_ms, __ATOMIC_RELAXED);
			text_load(out[i].reason, d->reason, sizeof(out[i].reason));
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&sb->death_seq, __ATOMIC_RELAXED) == before)
			return n;
	}
	return 0;
}

void scoreboard_totals(const struct scoreboard *sb, struct scoreboard_totals *out)
{
	memset(out, 0, sizeof(*out));
	if (!sb)
		return;
	out->transfers = __atomic_load_n(&sb->released_transfers, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&sb->released_bytes, __ATOMIC_RELAXED);
	out->accepted = __atomic_load_n(&sb->released_accepted, __ATOMIC_RELAXED);
	for (int i = 0, n = (int)scoreboard_hwm(sb); i < n; i++) {
		const struct scoreboard_slot *s = &sb->slots[i];
		int st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);

		if (st == WORKER_FREE)
			continue;
		out->workers++;
		/* An old-generation worker still holds a connection. */
		if (st == WORKER_BUSY || st == WORKER_RETIRING || st == WORKER_WAITING)
			out->busy++;
		out->transfers += __atomic_load_n(&s->transfers, __ATOMIC_RELAXED);
		out->bytes += __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
		out->accepted += __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
	}
}

void scoreboard_escape(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, mark = 0;   /* mark: last boundary where "..." fits */

	if (cap == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		bool plain = *p >= 0x20 && *p < 0x7f && *p != '\\';
		size_t need = plain ? 1 : 4;

		if (o + need + 1 > cap) {
			for (o = mark; o + 1 < cap && o < mark + 3; o++)
				dst[o] = '.';
			break;
		}
		if (plain) {
			dst[o++] = (char)*p;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 15];
		}
		if (o + 4 <= cap)
			mark = o;
	}
	dst[o] = '\0';
}

const char *scoreboard_state_name(enum worker_state st)
{
	switch (st) {
	case WORKER_FREE:
		return "free";
	case WORKER_IDLE:
		return "idle";
	case WORKER_BUSY:
		return "busy";
	case WORKER_RETIRING:
		return "retiring";
	case WORKER_STARTING:
		return "starting";
	case WORKER_WAITING:
		return "waiting";
	}
	return "?";
}
