/* progress: the one-line transfer progress bar tcpfile draws on a terminal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nothing is drawn during a transfer's first second, so quick transfers
 * leave the terminal alone; after that, at most one redraw per period. */
#define PROGRESS_DELAY_NS  1000000000ULL
#define PROGRESS_PERIOD_NS  200000000ULL

struct progress {
	int fd;              /* where the bar goes (stderr); not owned */
	bool enabled;        /* false: every call is a no-op */
	bool shown;          /* a bar is on the terminal line right now */
	const char *name;    /* borrowed from progress_begin()'s caller */
	uint64_t total;
	uint64_t done;
	uint64_t start_ns;   /* CLOCK_MONOTONIC */
	uint64_t last_ns;    /* last redraw */
};

/* enabled should be "fd is a terminal and not -q". */
void progress_init(struct progress *p, int fd, bool enabled);

/* The total of a stream (put -): the bar shows no percentage and no ETA. */
#define PROGRESS_TOTAL_UNKNOWN UINT64_MAX

/* Starts a bar for one transfer of total bytes (or PROGRESS_TOTAL_UNKNOWN).  name must stay valid
 * until progress_end(). */
void progress_begin(struct progress *p, const char *name, uint64_t total);
/* done bytes so far; redraws when due. */
void progress_update(struct progress *p, uint64_t done);
/* Ends the transfer and erases the bar. */
void progress_end(struct progress *p);
/* Erases the bar (if drawn) so other text can be printed; the next due
 * progress_update() draws it again. */
void progress_clear(struct progress *p);

/* The bar's text, "NAME  45%  230.1 MiB  112.4 MiB/s  ETA 0:03" (for an
 * unknown total "NAME  230.1 MiB  112.4 MiB/s"), fitted
 * into width columns (the name is cut, never the figures); no \r, no
 * newline.  Control bytes in name are shown as '?'.  Returns the length
 * written (always NUL-terminated, cap > 0). */
size_t progress_format(char *buf, size_t cap, const char *name,
		       uint64_t done, uint64_t total, uint64_t elapsed_ns,
		       size_t width);
