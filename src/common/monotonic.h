/* monotonic: milliseconds on CLOCK_MONOTONIC, for deadlines and durations. */
#pragma once

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC cannot fail with a valid clock id and buffer. */
static inline uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
