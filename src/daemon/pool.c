/* pool: spare-worker sizing and crash-loop accounting for the master, without I/O. */
#include "pool.h"

uint64_t pool_health_failure(struct pool_health *h, uint64_t now, uint32_t rnd)
{
	uint64_t delay = POOL_BACKOFF_FIRST_MS;

	if (h->failures == 0 && h->loop_since_ms == 0)
		h->loop_since_ms = now ? now : 1;
	if (h->failures < UINT32_MAX)
		h->failures++;
	h->last_change_ms = now;
	for (unsigned i = 1; i < h->failures && delay < POOL_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > POOL_BACKOFF_MAX_MS)
		delay = POOL_BACKOFF_MAX_MS;
	/* Jitter of +-25% so that several daemons do not retry in lockstep. */
	return delay * 3 / 4 + rnd % (delay / 2 + 1);
}

void pool_health_serving(struct pool_health *h)
{
	*h = (struct pool_health){ 0 };
}

void pool_health_decay(struct pool_health *h, uint64_t now)
{
	while (h->failures && now - h->last_change_ms >= POOL_QUIET_MS) {
		h->failures /= 2;
		h->last_change_ms += POOL_QUIET_MS;
	}
	if (h->failures == 0)
		h->loop_since_ms = 0;
}

bool pool_health_looping(const struct pool_health *h, uint64_t now,
			 uint64_t timeout_ms)
{
	return timeout_ms && h->failures && h->loop_since_ms &&
	       now - h->loop_since_ms >= timeout_ms;
}

void pool_size_init(struct pool_size *ps, const struct config *conf)
{
	ps->target = conf->workers;
	ps->rate = 1;
}

int pool_size_tick(struct pool_size *ps, const struct config *conf, unsigned idle)
{
	unsigned room, add;

	if (ps->target > conf->max_workers)
		ps->target = conf->max_workers;
	if (ps->target < conf->workers)
		ps->target = conf->workers;
	if (idle > conf->max_spare && ps->target > conf->workers) {
		ps->rate = 1;
		ps->target--;
		return -1;
	}
	if (idle >= conf->min_spare || ps->target >= conf->max_workers) {
		ps->rate = 1;
		return 0;
	}
	/* Like Apache: 1, 2, 4, ... a tick while the shortage lasts. */
	room = conf->max_workers - ps->target;
	add = ps->rate < room ? ps->rate : room;
	ps->target += add;
	if (ps->rate < POOL_SPAWN_RATE_MAX)
		ps->rate *= 2;
	return (int)add;
}
