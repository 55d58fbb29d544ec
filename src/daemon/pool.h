/* pool: the master's decisions about the worker pool, free of I/O: how
 * many workers to run (Apache prefork's spare-worker rule) and when start-up
 * failures are a crash loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Delay before the first refill of a slot whose worker failed at start-up;
 * it doubles with each failure in a row, up to POOL_BACKOFF_MAX_MS. */
#define POOL_BACKOFF_FIRST_MS 100
#define POOL_BACKOFF_MAX_MS   5000
/* Without a new start-up failure for this long the count halves.  Longer
 * than the largest backoff (with its jitter), so that a real crash loop,
 * which fails at least once per backoff, never decays. */
#define POOL_QUIET_MS         10000
/* Apache's cap on the spawn rate per tick. */
#define POOL_SPAWN_RATE_MAX   32

/* Start-up failures: workers that died before their first accept. */
struct pool_health {
	unsigned failures;          /* decaying count */
	uint64_t last_change_ms;    /* last failure or decay step */
	uint64_t loop_since_ms;     /* first failure of the current run; 0: none */
};

/* Counts a failure at now; returns how long its slot waits before it is
 * refilled (backoff with +-25% jitter drawn from rnd). */
uint64_t pool_health_failure(struct pool_health *h, uint64_t now, uint32_t rnd);
/* A worker reached its first accept (or any worker served): the pool
 * works, whatever failed before. */
void pool_health_serving(struct pool_health *h);
/* Halves the count for every POOL_QUIET_MS without a failure; the run
 * ends when it reaches 0. */
void pool_health_decay(struct pool_health *h, uint64_t now);
/* True when failures have gone on without a break for timeout_ms (0:
 * never): a crash loop. */
bool pool_health_looping(const struct pool_health *h, uint64_t now,
			 uint64_t timeout_ms);

/* The pool's size between conf->workers and conf->max_workers. */
struct pool_size {
	unsigned target;            /* workers of the current generation wanted */
	unsigned rate;              /* spawns allowed on the next short tick */
};

void pool_size_init(struct pool_size *ps, const struct config *conf);

/* One tick (a second) of the spare-worker rule, given how many workers of
 * the current generation are idle (starting ones count as idle).  Returns
 * the number of workers to add (target already raised), -1 when one idle
 * worker should retire (target already lowered), or 0. */
int pool_size_tick(struct pool_size *ps, const struct config *conf, unsigned idle);
